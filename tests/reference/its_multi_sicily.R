# Expected values for tests/test_interventions.py::test_multi_its_matches_r
# Multi-intervention ITS on the Sicily smoking-ban data (Lopez Bernal et al. 2017): the ban at time 37
# (level + slope) and a made-up second intervention at time 49 with a linear phase-in over 2 months
# (ramp 1/3, 2/3, 1 from time 49), quasi-Poisson, harmonic(month, 2, 12) written out, log(stdpop) offset.
# Run: Rscript tests/reference/its_multi_sicily.R
d <- read.csv("tests/data/validation/sicily.csv")
d$t <- d$time - 1
d$lvA <- as.numeric(d$time >= 37)
d$slA <- pmax(0, d$time - 37)
d$lvB <- pmin(1, pmax(0, (d$time - 49 + 1) / 3))
d$slB <- pmax(0, d$time - (49 + 2))
for (k in 1:2) {
  d[[paste0("cos", k)]] <- cos(2 * pi * k * d$month / 12)
  d[[paste0("sin", k)]] <- sin(2 * pi * k * d$month / 12)
}
m <- glm(aces ~ t + lvA + slA + lvB + slB + cos1 + sin1 + cos2 + sin2 + offset(log(stdpop)),
         family = quasipoisson, data = d)
est <- coef(m)[c("lvA", "slA", "lvB", "slB")]
se <- sqrt(diag(vcov(m)))[c("lvA", "slA", "lvB", "slB")]
out <- data.frame(term = names(est), rr = exp(est), lower = exp(est - qnorm(0.975) * se),
                  upper = exp(est + qnorm(0.975) * se))
print(format(out, digits = 10))
