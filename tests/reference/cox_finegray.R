# Expected values for survival.cox (tests/test_survival_cox_r.py) and survival.fine_gray
# (tests/test_fine_gray.py). Run from the repository root after export_datasets.R:
#   Rscript tests/reference/cox_finegray.R
# References: survival::coxph (Therneau); cmprsk::crr and predict.crr (Gray), the Fine & Gray (1999,
# JASA 94:496-509) estimator with its sandwich variance.
suppressPackageStartupMessages({library(survival); library(cmprsk)})
out <- "tests/data/reference"
rows <- list()
add <- function(data, model, ties, robust, fit) {
  s <- summary(fit)$coefficients
  se <- if (robust) s[, "robust se"] else s[, "se(coef)"]
  data.frame(data = data, model = model, ties = ties, robust = robust, term = rownames(s),
             coef = s[, "coef"], se = se, loglik = fit$loglik[2], row.names = NULL)
}
lung <- read.csv(file.path(out, "lung.csv"))
veteran <- read.csv(file.path(out, "veteran.csv"), stringsAsFactors = FALSE)
veteran$celltype <- factor(veteran$celltype, levels = c("squamous", "smallcell", "adeno", "large"))
ctl <- coxph.control(eps = 1e-12, iter.max = 100, toler.chol = 1e-15)
for (ties in c("efron", "breslow")) {
  f <- coxph(Surv(time, status == 2) ~ age + sex + ph.ecog + wt.loss, data = lung, ties = ties, control = ctl)
  rows[[length(rows) + 1]] <- add("lung", "age+sex+ph.ecog+wt.loss", ties, FALSE, f)
  f <- coxph(Surv(time, status == 2) ~ age + sex + ph.ecog + wt.loss, data = lung, ties = ties, control = ctl,
             robust = TRUE)
  rows[[length(rows) + 1]] <- add("lung", "age+sex+ph.ecog+wt.loss", ties, TRUE, f)
  f <- coxph(Surv(time, status) ~ trt + celltype + karno + diagtime + age + prior, data = veteran,
             ties = ties, control = ctl)
  rows[[length(rows) + 1]] <- add("veteran", "trt+celltype+karno+diagtime+age+prior", ties, FALSE, f)
}
write.csv(do.call(rbind, rows), file.path(out, "cox_expected.csv"), row.names = FALSE)

# Fine-Gray on mgus2: progression (1) with death (2) as competing event, complete cases of mspike
m <- read.csv(file.path(out, "mgus2.csv"), stringsAsFactors = FALSE)
m <- m[!is.na(m$mspike), ]
etime <- with(m, ifelse(pstat == 0, futime, ptime))
event <- with(m, ifelse(pstat == 0, 2 * death, 1))
X <- cbind(age = m$age, "sex[M]" = as.numeric(m$sex == "M"), mspike = m$mspike)
fg <- list()
cif <- list()
profiles <- rbind(c(60, 0, 1.2), c(80, 1, 0.5), c(70, 1, 2.0))
times <- c(12, 60, 120, 240, 360)
for (cause in c(1, 2)) {
  f <- crr(etime, event, cov1 = X, failcode = cause, cencode = 0, gtol = 1e-10, maxiter = 100)
  fg[[cause]] <- data.frame(cause = cause, term = names(f$coef), coef = unname(f$coef),
                            se = sqrt(diag(f$var)), converged = f$converged)
  p <- predict(f, cov1 = profiles)
  for (k in seq_len(nrow(profiles))) {
    idx <- findInterval(times, p[, 1])
    val <- ifelse(idx == 0, 0, p[pmax(idx, 1), k + 1])
    cif[[length(cif) + 1]] <- data.frame(cause = cause, profile = k, age = profiles[k, 1],
                                         sex = ifelse(profiles[k, 2] == 1, "M", "F"),
                                         mspike = profiles[k, 3], time = times, cif = val)
  }
}
write.csv(do.call(rbind, fg), file.path(out, "finegray_mgus2_expected.csv"), row.names = FALSE)
write.csv(do.call(rbind, cif), file.path(out, "finegray_mgus2_cif_expected.csv"), row.names = FALSE)
writeLines(c(R.version.string, paste("survival", packageVersion("survival")),
             paste("cmprsk", packageVersion("cmprsk"))), file.path(out, "versions_cox_finegray.txt"))
print(do.call(rbind, fg), digits = 10)

# Aalen-Johansen cumulative incidence and its standard error on mgus2 (all 1384 persons), R's survfit
# for multi-state data (the infinitesimal-jackknife variance), for survival.cumulative_incidence
m2 <- read.csv(file.path(out, "mgus2.csv"), stringsAsFactors = FALSE)
et <- with(m2, ifelse(pstat == 0, futime, ptime))
ev <- with(m2, ifelse(pstat == 0, 2 * death, 1))
aj <- survfit(Surv(et, factor(ev, 0:2)) ~ 1)
s <- summary(aj, times = c(6, 12, 24, 60, 120, 240, 360))
write.csv(data.frame(time = s$time, cif_1 = s$pstate[, 2], se_1 = s$std.err[, 2],
                     cif_2 = s$pstate[, 3], se_2 = s$std.err[, 3]),
          file.path(out, "aalen_johansen_mgus2_expected.csv"), row.names = FALSE)
