"""Estimators of lumbarstats.survival against published R output and hand-computed values."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_lung, load_rossi

import lumbarstats as ls

S = ls.survival
DATA = Path(__file__).parent / "data" / "survival"

# Ten observations with ties between events and censorings. R output (survival package), published in
# W. Dai, "Regression HW2" (2024, R Markdown on GitHub):
#   fit <- survfit(Surv(time, status) ~ 1, data, conf.type = "log-log"); summary(fit)
#    time n.risk n.event survival std.err lower 95% CI upper 95% CI
#     1.5     10       1    0.900  0.0949       0.4730        0.985
#     4.5      8       1    0.787  0.1340       0.3809        0.943
#     5.5      6       1    0.656  0.1638       0.2604        0.876
#     8.5      4       2    0.328  0.1834       0.0509        0.659
#    11.5      1       1    0.000     NaN           NA           NA
#   print(fit, rmean = "common")  ->  rmean* 7.94, se(rmean) 1.12 (upper limit 11.5)
#   all ten as events: print(fit2, rmean = "common")  ->  rmean* 6.3, se(rmean) 0.892
TEN = pd.DataFrame({"time": [1.5, 3.5, 4.5, 4.5, 5.5, 6.5, 8.5, 8.5, 8.5, 11.5],
                    "status": [1, 0, 1, 0, 1, 0, 1, 0, 1, 1]})
R_KM = pd.DataFrame({"time": [1.5, 4.5, 5.5, 8.5], "survival": [0.900, 0.787, 0.656, 0.328],
                     "se": [0.0949, 0.1340, 0.1638, 0.1834], "lower": [0.4730, 0.3809, 0.2604, 0.0509],
                     "upper": [0.985, 0.943, 0.876, 0.659], "at_risk": [10, 8, 6, 4]})


# ------------------------------------------------------------------------------ Kaplan–Meier
def test_kaplan_meier_matches_r_survfit_loglog():
    km = S.kaplan_meier(TEN, duration="time", event="status", times=R_KM["time"])
    assert list(km["at_risk"]) == list(R_KM["at_risk"])
    np.testing.assert_allclose(km["survival"], R_KM["survival"], atol=5e-4)
    np.testing.assert_allclose(km["se"], R_KM["se"], atol=5e-5)
    np.testing.assert_allclose(km["lower"], R_KM["lower"], atol=5e-5)
    np.testing.assert_allclose(km["upper"], R_KM["upper"], atol=5e-4)
    assert km["conf_level"].eq(0.95).all()


def test_kaplan_meier_groups_and_default_grid():
    df = pd.concat([TEN.assign(g="a"), TEN.assign(g="b", time=TEN["time"] * 2)])
    km = S.kaplan_meier(df, duration="time", event="status", by="g")
    assert set(km["g"]) == {"a", "b"}
    b = km.loc[km.g == "b"].set_index("time")
    assert b.loc[0.0, "survival"] == 1.0
    assert b.loc[17.0, "survival"] == pytest.approx(0.328125)  # 0.9 * 7/8 * 5/6 * 2/4


# ------------------------------------------------------------------------------ RMST
def test_rmst_matches_r_print_survfit():
    r = S.rmst(TEN, duration="time", event="status", tau=11.5)
    assert r["rmst"].iloc[0] == pytest.approx(7.94, abs=5e-3)
    assert r["se"].iloc[0] == pytest.approx(1.12, abs=5e-3)
    r = S.rmst(TEN.assign(status=1), duration="time", event="status", tau=11.5)
    assert r["rmst"].iloc[0] == pytest.approx(6.3, abs=1e-12)  # the sample mean without censoring
    assert r["se"].iloc[0] == pytest.approx(0.892, abs=5e-4)


def test_rmst_lung_by_sex_matches_r():
    # R: print(survfit(Surv(time, status) ~ sex, data = lung), rmean = "common")
    #        n events rmean* se(rmean) median 0.95LCL 0.95UCL
    #  sex=1 138    112    326      22.9    270     212     310
    #  sex=2  90     53    461      34.7    426     348     550
    #      * restricted mean with upper limit =  1022
    # (lifelines.datasets.load_lung is R's survival::lung with status recoded 0/1.)
    lung = load_lung()
    r = S.rmst(lung, duration="time", event="status", tau=1022, by="sex", extend=True).set_index("sex")
    assert r.loc[1, "rmst"] == pytest.approx(326, abs=0.5)
    assert r.loc[1, "se"] == pytest.approx(22.9, abs=0.05)
    assert r.loc[2, "rmst"] == pytest.approx(461, abs=0.5)
    assert r.loc[2, "se"] == pytest.approx(34.7, abs=0.05)
    assert list(r["n"]) == [138, 90] and list(r["events"]) == [112, 53]
    d = S.rmst_difference(lung, duration="time", event="status", tau=1022, group="sex", reference=1, extend=True)
    assert d["difference"].iloc[0] == pytest.approx(r.loc[2, "rmst"] - r.loc[1, "rmst"])
    assert d["se"].iloc[0] == pytest.approx(np.hypot(r.loc[1, "se"], r.loc[2, "se"]))
    assert d["lower"].iloc[0] < d["difference"].iloc[0] < d["upper"].iloc[0]
    assert 0 < d["p_value"].iloc[0] < 0.01


def test_rmst_refuses_tau_beyond_follow_up():
    with pytest.raises(ValueError, match="beyond the last observed time"):
        S.rmst(load_lung(), duration="time", event="status", tau=1022, by="sex")
    with pytest.raises(ValueError, match="tau"):
        S.rmst(TEN, duration="time", event="status", tau=0)


def test_rmst_truncated_is_area_under_km():
    # tau = 5: 1*1.5 + 0.9*(4.5-1.5) + 0.7875*(5-4.5)
    r = S.rmst(TEN, duration="time", event="status", tau=5)
    assert r["rmst"].iloc[0] == pytest.approx(1.5 + 0.9 * 3 + 0.7875 * 0.5)


# ------------------------------------------------------------------------------ Aalen–Johansen
def test_cumulative_incidence_hand_computed_ties_and_censoring():
    # By hand (events at a time processed together, censorings at the same time still at risk):
    # t=2: n=10, d1=1, d2=1 -> F1 = 1/10, F2 = 1/10, S = 8/10 ; one censored at 2
    # t=3: n=7, d1=2 -> F1 += 8/10*2/7 = 16/70 -> 23/70, S = 8/10*5/7 = 4/7 ; censored at 5
    # t=6: n=4, d1=1, d2=1 -> F1 += 4/7*1/4 = 1/7 -> 33/70, F2 = 1/10 + 1/7 = 17/70, S = 2/7
    # t=8: n=2, d1=1 -> F1 += 2/7*1/2 -> 43/70, S = 1/7 ; censored at 9
    df = pd.read_csv(DATA / "competing_risks_ties.csv")
    f1 = S.cumulative_incidence(df, duration="time", event="event", event_of_interest=1).set_index("time")
    f2 = S.cumulative_incidence(df, duration="time", event="event", event_of_interest=2).set_index("time")
    np.testing.assert_allclose(f1.loc[[0, 2, 3, 5, 6, 8, 9], "cif"], np.array([0, 7, 23, 23, 33, 43, 43]) / 70)
    np.testing.assert_allclose(f2.loc[[2, 3, 6, 9], "cif"], np.array([7, 7, 17, 17]) / 70)
    assert list(f1.loc[[2, 3, 5, 6, 8, 9], "at_risk"]) == [10, 7, 5, 4, 2, 1]
    assert list(f1.loc[[2, 3, 6, 8], "events"]) == [1, 3, 4, 5]
    # F1 + F2 + S = 1 at the end
    assert f1.loc[9, "cif"] + f2.loc[9, "cif"] + 1 / 7 == pytest.approx(1.0)
    at = S.cumulative_incidence(df, duration="time", event="event", times=[1, 2.5, 7, 100])
    np.testing.assert_allclose(at["cif"], np.array([0, 7, 33, 43]) / 70)


def test_cumulative_incidence_without_censoring_is_empirical_proportion():
    # register-like data: integer days, heavy ties, three causes, no censoring
    rng = np.random.default_rng(2024)
    n = 2000
    df = pd.DataFrame({"t": rng.integers(0, 30, n), "e": rng.choice([1, 2, 3], n, p=[0.5, 0.3, 0.2])})
    times = [0, 5, 10, 29]
    out = S.cumulative_incidence(df, duration="t", event="e", times=times)
    p = np.array([np.mean((df.t <= k) & (df.e == 1)) for k in times])
    np.testing.assert_allclose(out["cif"], p, rtol=1e-12)
    # the delta-method variance reduces to the binomial variance p(1-p)/n
    np.testing.assert_allclose(out["se"], np.sqrt(p * (1 - p) / n), rtol=1e-8)


def test_single_cause_reduces_to_one_minus_km_with_greenwood():
    lung = load_lung()
    times = [100, 300, 500, 800]
    cif = S.cumulative_incidence(lung, duration="time", event="status", times=times)
    km = S.kaplan_meier(lung, duration="time", event="status", times=times)
    np.testing.assert_allclose(cif["cif"], 1 - km["survival"], rtol=1e-10)
    np.testing.assert_allclose(cif["se"], km["se"], rtol=1e-8)
    # and on R's published ten observations: R's std.err of S(t)
    ten = S.cumulative_incidence(TEN, duration="time", event="status", times=R_KM["time"])
    np.testing.assert_allclose(ten["se"], R_KM["se"], atol=5e-5)


def test_cumulative_incidence_equals_lifelines_without_ties():
    # lifelines' AalenJohansenFitter implements the same estimator and delta-method variance; without
    # tied times it does not jitter, so the two independent implementations must agree.
    from lifelines import AalenJohansenFitter

    rng = np.random.default_rng(7)
    n = 300
    t = rng.permutation(np.arange(1, n + 1)) + rng.uniform(0, 0.5, n)
    e = rng.choice([0, 1, 2], n, p=[0.3, 0.4, 0.3])
    df = pd.DataFrame({"t": t, "e": e})
    ours = S.cumulative_incidence(df, duration="t", event="e").set_index("time")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ajf = AalenJohansenFitter(calculate_variance=True).fit(t, e, event_of_interest=1)
    ref = ajf.cumulative_density_.iloc[:, 0]
    common = ref.index.intersection(ours.index)
    assert len(common) == n + 1  # every observed time and time 0
    np.testing.assert_allclose(ours.loc[common, "cif"], ref.loc[common], atol=1e-12)
    ref_var = np.asarray(ajf.variance_.loc[common], dtype=float).ravel()
    finite = np.isfinite(ref_var)  # lifelines divides by n - d = 0 at the last time (NaN)
    assert finite.sum() >= n - 1
    np.testing.assert_allclose((ours.loc[common, "se"] ** 2).to_numpy()[finite], ref_var[finite], atol=1e-12)
    # lifelines labels its log(-log) limits the other way round (its "upper" column is the lower limit)
    ci = ajf.confidence_interval_.loc[common]
    lo = ci.filter(like="upper").iloc[:, 0].to_numpy()
    ok = ours.loc[common, "cif"].between(1e-9, 1 - 1e-9).to_numpy() & finite
    np.testing.assert_allclose(ours.loc[common, "lower"].to_numpy()[ok], lo[ok], rtol=1e-8)


def test_cumulative_incidence_ties_differ_from_jittering():
    # With heavy ties, processing events together is exact (no-censoring case above); make sure the
    # result is deterministic and does not depend on row order.
    df = pd.read_csv(DATA / "competing_risks_ties.csv")
    a = S.cumulative_incidence(df, duration="time", event="event")
    b = S.cumulative_incidence(df.sample(frac=1, random_state=3), duration="time", event="event")
    pd.testing.assert_frame_equal(a, b)


def test_cumulative_incidence_intervals_and_groups():
    df = pd.read_csv(DATA / "competing_risks_ties.csv")
    df = pd.concat([df.assign(g="x"), df.assign(g="y", time=df["time"] + 1)], ignore_index=True)
    out = S.cumulative_incidence(df, duration="time", event="event", by="g", conf_level=0.9)
    assert list(out.columns[:2]) == ["g", "time"]
    assert {"cif", "lower", "upper", "se", "at_risk"} <= set(out.columns)
    pos = out["cif"].between(1e-9, 1 - 1e-9)
    assert (out.loc[pos, "lower"] < out.loc[pos, "cif"]).all() and (out.loc[pos, "upper"] > out.loc[pos, "cif"]).all()
    assert out["lower"].between(0, 1).all() and out["upper"].between(0, 1).all()
    plain = S.cumulative_incidence(df, duration="time", event="event", by="g", conf_type="plain")
    z = 1.959963984540054
    np.testing.assert_allclose(plain["upper"], np.clip(plain["cif"] + z * plain["se"], 0, 1))


def test_cumulative_incidence_bad_input():
    df = pd.read_csv(DATA / "competing_risks_ties.csv")
    with pytest.raises(KeyError, match="durations"):
        S.cumulative_incidence(df, duration="durations", event="event")
    with pytest.raises(ValueError, match="non-negative"):
        S.cumulative_incidence(df.assign(time=df.time - 5), duration="time", event="event")
    with pytest.raises(ValueError, match="0 = censored"):
        S.cumulative_incidence(df.assign(event=df.event - 1), duration="time", event="event")
    with pytest.raises(ValueError, match="event_of_interest"):
        S.cumulative_incidence(df, duration="time", event="event", event_of_interest=0)
    with pytest.raises(ValueError, match="conf_level"):
        S.cumulative_incidence(df, duration="time", event="event", conf_level=95)


# ------------------------------------------------------------------------------ Cox
# Fox & Weisberg, "Cox Proportional-Hazards Regression for Survival Data in R", appendix to An R
# Companion to Applied Regression: coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio,
# data = Rossi) (Efron ties)
ROSSI_R = pd.DataFrame(
    {"coef": [-0.37942, -0.05744, 0.31390, -0.14980, -0.43372, -0.08487, 0.09150],
     "se": [0.19138, 0.02200, 0.30799, 0.21222, 0.38187, 0.19576, 0.02865]},
    index=["fin", "age", "race", "wexp", "mar", "paro", "prio"],
)


def test_cox_rossi_matches_fox_weisberg():
    rossi = load_rossi()
    m = S.cox(rossi, duration="week", event="arrest", covariates=list(ROSSI_R.index))
    s = m.summary.set_index("term")
    np.testing.assert_allclose(s.loc[ROSSI_R.index, "coef"], ROSSI_R["coef"], atol=6e-5)
    np.testing.assert_allclose(s.loc[ROSSI_R.index, "se"], ROSSI_R["se"], atol=6e-5)
    assert s.loc["fin", "hr"] == pytest.approx(0.68426, abs=1e-4)  # exp(coef) printed by R
    assert s.loc["fin", "p_value"] == pytest.approx(0.04742, abs=1e-4)
    assert {"lower", "upper", "conf_level", "method"} <= set(s.columns)


def test_cox_categorical_strata_robust_and_cause_specific():
    rossi = load_rossi()
    rossi["fin_label"] = np.where(rossi["fin"] == 1, "aid", "no aid")
    # dummy coding against the reference reproduces the numeric 0/1 coding
    a = S.cox(rossi, duration="week", event="arrest", covariates=["fin_label", "age", "prio"],
              reference={"fin_label": "no aid"}).summary.set_index("term")
    b = S.cox(rossi, duration="week", event="arrest", covariates=["fin", "age", "prio"]).summary.set_index("term")
    assert a.loc["fin_label[aid]", "coef"] == pytest.approx(b.loc["fin", "coef"], abs=1e-8)
    assert a.loc["fin_label[aid]", "reference"] == "no aid"
    robust = S.cox(rossi, duration="week", event="arrest", covariates=["fin", "age", "prio"], robust=True)
    rs = robust.summary.set_index("term")
    np.testing.assert_allclose(rs["coef"], b["coef"], atol=1e-8)
    assert not np.allclose(rs["se"], b["se"])
    strat = S.cox(rossi, duration="week", event="arrest", covariates=["fin", "age", "prio"], strata="wexp")
    assert "wexp" not in set(strat.summary["term"])
    # cause-specific: code 2 is censored for cause 1
    r2 = rossi.assign(event=np.where((rossi.arrest == 1) & (rossi.index % 4 == 0), 2, rossi.arrest))
    cs = S.cox(r2, duration="week", event="event", covariates=["fin", "age", "prio"], event_of_interest=1)
    manual = S.cox(r2.assign(event=(r2.event == 1).astype(int)), duration="week", event="event",
                   covariates=["fin", "age", "prio"])
    np.testing.assert_allclose(cs.summary["coef"], manual.summary["coef"], atol=1e-10)
    with pytest.raises(ValueError, match="missing"):
        S.cox(rossi.assign(age=rossi.age.where(rossi.index > 0)), duration="week", event="arrest", covariates=["age"])


def test_ph_test_rossi():
    # Fox & Weisberg's appendix finds non-proportional hazards for age (cox.zph p ~ 0.01) but not for fin
    # or prio in coxph(Surv(week, arrest) ~ fin + age + prio).
    m = S.cox(load_rossi(), duration="week", event="arrest", covariates=["fin", "age", "prio"])
    t = S.ph_test(m).set_index("term")
    assert set(t.index) == {"fin", "age", "prio"}
    assert t.loc["age", "p_value"] < 0.05
    assert t.loc["fin", "p_value"] > 0.5 and t.loc["prio", "p_value"] > 0.2


def test_plot_cumulative_incidence():
    df = pd.read_csv(DATA / "competing_risks_ties.csv").assign(g=lambda d: np.where(d.index % 2, "a", "b"))
    table = S.cumulative_incidence(df, duration="time", event="event", by="g")
    ax = S.plot_cumulative_incidence(table, by="g")
    assert len(ax.get_lines()) == 2
