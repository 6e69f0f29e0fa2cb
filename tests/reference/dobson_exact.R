# Expected values for direct(method = "dobson", count_limits = "exact") (tests/test_tiwari.py).
# Dobson AJ, Kuulasmaa K, Eberle E, Scherer J (1991). Confidence intervals for weighted sums of Poisson
# parameters. Stat Med 10:457-462: limits y + sqrt(v / O) (O_L - O), y + sqrt(v / O) (O_U - O) with the
# exact (Garwood) limits O_L = qchisq(a/2, 2 O) / 2, O_U = qchisq(1 - a/2, 2 O + 2) / 2 of the total O.
# Data as tiwari.R (datasets::esoph). Run from the repository root: Rscript tests/reference/dobson_exact.R
dobson_exact <- function(x, n, stdw, conf.level = 0.95) {
  a <- 1 - conf.level
  w <- stdw / sum(stdw) / n
  y <- sum(w * x); v <- sum(w^2 * x); O <- sum(x)
  OL <- if (O > 0) qchisq(a / 2, 2 * O) / 2 else 0
  OU <- qchisq(1 - a / 2, 2 * O + 2) / 2
  c(rate = y, lower = y + sqrt(v / O) * (OL - O), upper = y + sqrt(v / O) * (OU - O))
}
d <- read.csv("tests/data/reference/esoph.csv", stringsAsFactors = FALSE)
d$persons <- d$ncases + d$ncontrols
std <- aggregate(persons ~ agegp, data = d, FUN = sum)
rows <- list()
for (conf in c(0.95, 0.99)) {
  for (g in split(d, list(d$alcgp, d$tobgp), drop = TRUE)) {
    m <- merge(std, g[, c("agegp", "ncases", "persons")], by = "agegp", suffixes = c("_std", ""), all.x = TRUE)
    if (any(is.na(m$persons)) || sum(m$ncases) == 0) next
    r <- dobson_exact(m$ncases, m$persons, m$persons_std, conf) * 1000
    rows[[length(rows) + 1]] <- data.frame(alcgp = g$alcgp[1], tobgp = g$tobgp[1], conf_level = conf,
                                           events = sum(m$ncases), rate = r[["rate"]], lower = r[["lower"]],
                                           upper = r[["upper"]])
  }
}
res <- do.call(rbind, rows)
write.csv(res, "tests/data/reference/dobson_exact_esoph_expected.csv", row.names = FALSE)
writeLines(R.version.string, "tests/data/reference/versions_dobson_exact.txt")
