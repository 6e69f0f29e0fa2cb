# Expected values for tests/test_inference.py::test_wcb_matches_r_enumeration.
# Restricted wild cluster bootstrap (WCR; Roodman, MacKinnon, Nielsen & Webb 2019, Stata Journal 19:4-60)
# with Webb six-point weights, all 6^5 = 7776 weight vectors enumerated (exact, no seed), coded by hand
# in base R; the observed CR1 t-statistic is checked against sandwich::vcovCL(type = "HC1").
# Data: deterministic five-region panel (no RNG), the same formula as in the Python test:
#   y[i, t] = 10 + 0.5 i + 0.1 t + sin(1.7 (i + 1)(t + 1)) + effect * (i == 0 & t >= 12), i = 0..4, t = 0..23
# Run: Rscript tests/reference/wcb_webb_enumerated.R   (prints effect, t, p for effect = 0.8 and 0.0)
suppressMessages(library(sandwich))

make_data <- function(effect) {
  d <- expand.grid(t = 0:23, i = 0:4)
  d$y <- 10 + 0.5 * d$i + 0.1 * d$t + sin(1.7 * (d$i + 1) * (d$t + 1)) + effect * (d$i == 0 & d$t >= 12)
  d$D <- as.numeric(d$i == 0 & d$t >= 12)
  d$unit <- factor(d$i)
  d$time <- factor(d$t)
  d
}

wcr_webb <- function(d) {
  X <- model.matrix(~ D + unit + time, d)
  y <- d$y
  cl <- as.integer(d$unit)
  G <- length(unique(cl)); N <- nrow(X); K <- qr(X)$rank
  fit <- lm(y ~ D + unit + time, data = d)
  t_sandwich <- coef(fit)["D"] / sqrt(vcovCL(fit, cluster = ~unit, type = "HC1")["D", "D"])
  A <- solve(crossprod(X), t(X))          # K x N
  a <- A["D", ]
  ssc <- G / (G - 1) * (N - 1) / (N - K)
  tstat <- function(yy) {
    b <- sum(a * yy)
    u <- yy - X %*% (A %*% yy)
    s <- tapply(a * u, cl, sum)
    b / sqrt(ssc * sum(s^2))
  }
  t_obs <- tstat(y)
  Xr <- X[, colnames(X) != "D"]
  yr <- Xr %*% solve(crossprod(Xr), crossprod(Xr, y))
  ur <- y - yr
  w <- c(-sqrt(1.5), -1, -sqrt(0.5), sqrt(0.5), 1, sqrt(1.5))
  V <- as.matrix(expand.grid(rep(list(w), G)))
  tstar <- apply(V, 1, function(v) tstat(as.vector(yr + ur * v[cl])))
  p <- mean(abs(tstar) >= abs(t_obs) - 1e-9 * max(1, abs(t_obs)))
  c(coef = unname(coef(fit)["D"]), t = unname(t_obs), t_sandwich = unname(t_sandwich), p = p, draws = nrow(V))
}

for (effect in c(0.8, 0.0)) {
  r <- wcr_webb(make_data(effect))
  cat(sprintf("effect=%.1f coef=%.10f t=%.10f t_sandwich=%.10f p=%.10f draws=%d\n",
              effect, r["coef"], r["t"], r["t_sandwich"], r["p"], as.integer(r["draws"])))
}
cat(R.version.string, "sandwich", as.character(packageVersion("sandwich")), "\n")
