# Expected values for direct(method = "tiwari") (tests/test_tiwari.py).
#
# Own implementation of the modified gamma interval of
#   Tiwari RC, Clegg LX, Zou Z (2006). Efficient interval estimation for age-adjusted cancer rates.
#   Stat Methods Med Res 15:547-569 (section 3, "modified gamma" interval),
# the interval of asht::wspoissonTest(wmtype = "tcz") and SAS PROC STDRATE CL=GAMMA(TYPE=AVERAGE)
# (asht is not packaged in Debian, so it is written out here from the paper):
#   y = sum_i w_i x_i, v = sum_i w_i^2 x_i, w_i = standard weight_i / sum(weights) / population_i
#   lower = qgamma(a/2, shape = y^2 / v, scale = v / y)             (0 when y = 0)
#   upper = qgamma(1 - a/2, shape = (y + mean(w))^2 / (v + mean(w^2)),
#                  scale = (v + mean(w^2)) / (y + mean(w)))
# The means are over the strata of the standard (all with positive weight here).
# Data: datasets::esoph (sparse case counts; exported by export_datasets.R), cases per 1000 persons
# (ncases + ncontrols) standardized over the six age groups, one rate per alcohol x tobacco group,
# standard = all persons by age group. Run from the repository root: Rscript tests/reference/tiwari.R
tiwari_ci <- function(x, n, stdw, conf.level = 0.95) {
  a <- 1 - conf.level
  w <- stdw / sum(stdw) / n
  y <- sum(w * x)
  v <- sum(w^2 * x)
  wm <- mean(w)
  w2m <- mean(w^2)
  lower <- if (y > 0) qgamma(a / 2, shape = y^2 / v, scale = v / y) else 0
  upper <- qgamma(1 - a / 2, shape = (y + wm)^2 / (v + w2m), scale = (v + w2m) / (y + wm))
  c(rate = y, lower = lower, upper = upper)
}
d <- read.csv("tests/data/reference/esoph.csv", stringsAsFactors = FALSE)
d$persons <- d$ncases + d$ncontrols
std <- aggregate(persons ~ agegp, data = d, FUN = sum)
rows <- list()
for (conf in c(0.95, 0.99)) {
  for (g in split(d, list(d$alcgp, d$tobgp), drop = TRUE)) {
    m <- merge(std, g[, c("agegp", "ncases", "persons")], by = "agegp", suffixes = c("_std", ""), all.x = TRUE)
    if (any(is.na(m$persons))) next  # a missing age group would be a zero population
    r <- tiwari_ci(m$ncases, m$persons, m$persons_std, conf) * 1000
    rows[[length(rows) + 1]] <- data.frame(alcgp = g$alcgp[1], tobgp = g$tobgp[1], conf_level = conf,
                                           rate = r[["rate"]], lower = r[["lower"]], upper = r[["upper"]])
  }
}
res <- do.call(rbind, rows)
write.csv(res, "tests/data/reference/tiwari_esoph_expected.csv", row.names = FALSE)
writeLines(R.version.string, "tests/data/reference/versions_tiwari.txt")
print(res, digits = 12)
