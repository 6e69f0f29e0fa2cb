# Export the R datasets the Python tests use, so that the tests never need R.
# Run from the repository root:  Rscript tests/reference/export_datasets.R
# Written with R 4.2.2 and survival 3.5-3 (the versions are printed and stored beside the data).
suppressPackageStartupMessages(library(survival))
out <- "tests/data/reference"
dir.create(out, showWarnings = FALSE, recursive = TRUE)

# lung (NCCTG lung cancer): complete cases of the variables used; status 1 = censored, 2 = dead
lung_cc <- na.omit(survival::lung[, c("time", "status", "age", "sex", "ph.ecog", "wt.loss")])
write.csv(lung_cc, file.path(out, "lung.csv"), row.names = FALSE)
# veteran (VA lung cancer trial): no missing values; celltype is a factor with levels
# squamous, smallcell, adeno, large (R's reference level: squamous)
write.csv(survival::veteran, file.path(out, "veteran.csv"), row.names = FALSE)
# mgus2: time to progression (pstat) with death as the competing event, in months
write.csv(survival::mgus2, file.path(out, "mgus2.csv"), row.names = FALSE)
# esoph (datasets): sparse counts by age group, used as a standardization example
write.csv(datasets::esoph, file.path(out, "esoph.csv"), row.names = FALSE)

writeLines(c(R.version.string, paste("survival", packageVersion("survival"))),
           file.path(out, "versions_export_datasets.txt"))
