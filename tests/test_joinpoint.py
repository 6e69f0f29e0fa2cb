"""Joinpoint regression against output of the NCI Joinpoint Regression Program.

Reference data: UK Generations Study, github.com/UK-Generations-Study/UK-cancer-trends,
``Data/Cleaned Data/Cancer_Mortality_Data_Rolling.csv`` (input: 3-year rolling age-standardized
cancer mortality rates, England 2002-2018) and
``Data/Cleaned Data/Joinpoint Output/Cancer_Mortality_Data_Rolling_Joinpoint.txt`` (output of the
official Joinpoint program, run 12/08/2024: log-linear model, constant variance, number of
joinpoints "determined by # points", grid search at observed years; final selected model, its
joinpoint years and segment APCs printed to 4 decimals). The program's default model selection in
version 5 is WBIC. Copied to tests/data/trend/ (ukgs_england_*.csv).

Tolerances: joinpoint years exact; APCs within 0.00051 (the published 4th decimal); the number of
joinpoints selected by WBIC exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls
from lumbarstats.trend.joinpoint import _candidates

DATA = Path(__file__).parent / "data" / "trend"


@pytest.fixture(scope="module")
def ukgs():
    rates = pd.read_csv(DATA / "ukgs_england_mortality_rolling.csv")
    pub = pd.read_csv(DATA / "ukgs_england_joinpoint_published.csv", dtype=str, keep_default_na=False)
    return rates, pub


def _published(pub):
    for _, row in pub.iterrows():
        jps = [float(v) for v in row["joinpoints"].split(";")] if row["joinpoints"] else []
        apcs = [float(v) for v in row["apcs"].split(";")]
        yield row["series"], int(row["n_joinpoints"]), jps, apcs


def test_published_joinpoints_and_apcs_fixed_k(ukgs):
    rates, pub = ukgs
    for series, k, jps, apcs in _published(pub):
        s = rates[rates["series"] == series]
        fit = ls.trend.joinpoint(s, time="year", rate="rate", n_joinpoints=k, heteroscedastic="constant")
        assert fit.joinpoints_ == jps, series
        np.testing.assert_allclose(fit.summary["apc"], apcs, atol=5.1e-4, err_msg=series)


def test_published_number_of_joinpoints_by_wbic(ukgs):
    rates, pub = ukgs
    for series, k, jps, apcs in _published(pub):
        s = rates[rates["series"] == series]
        fit = ls.trend.joinpoint(s, time="year", rate="rate", selection="wbic", heteroscedastic="constant")
        assert fit.k_range_ == (0, 3)  # 17 points -> Joinpoint's default maximum 3
        assert fit.n_joinpoints_ == k, series
        assert fit.joinpoints_ == jps, series
        np.testing.assert_allclose(fit.summary["apc"], apcs, atol=5.1e-4, err_msg=series)


def test_permutation_selection_is_seeded_and_sensible(ukgs):
    rates, _pub = ukgs
    s = rates[rates["series"] == "lung_men"]
    a = ls.trend.joinpoint(s, time="year", rate="rate", selection="permutation", n_permutations=999, seed=1,
                           heteroscedastic="constant")
    b = ls.trend.joinpoint(s, time="year", rate="rate", selection="permutation", n_permutations=999, seed=1,
                           heteroscedastic="constant")
    pd.testing.assert_frame_equal(a.permutation_tests_, b.permutation_tests_)
    assert a.n_joinpoints_ == 3  # published model; strong changes in trend
    tests = a.permutation_tests_
    assert (tests["level"] == 0.05 / 3).all()
    assert tests["p_value"].min() >= 1 / 1000


def test_permutation_finds_no_joinpoint_in_straight_line():
    rng = np.random.default_rng(11)
    x = np.arange(1990, 2012)
    df = pd.DataFrame({"year": x, "rate": np.exp(3 + 0.02 * (x - 1990) + rng.normal(0, 0.02, x.size))})
    fit = ls.trend.joinpoint(df, time="year", rate="rate", n_permutations=499, seed=5)
    assert fit.n_joinpoints_ == 0
    assert fit.summary["apc"].iloc[0] == pytest.approx(100 * (np.exp(0.02) - 1), abs=0.3)


def test_default_max_joinpoints():
    # NCI Joinpoint help: 0-6 points 0; 7-11: 1; 12-16: 2; 17-21: 3; 22-26: 4; 27+: 5
    got = [ls.trend.default_max_joinpoints(n) for n in (6, 7, 11, 12, 16, 17, 21, 22, 26, 27, 40)]
    assert got == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_minimum_observation_rules():
    # 10 points, joinpoints need >= 2 obs before/after and >= 2 between (excluding the joinpoints)
    c1 = _candidates(10, 1, 2, 2)
    assert c1[0] == (2,) and c1[-1] == (7,)
    for comb in _candidates(10, 2, 2, 2):
        assert comb[1] - comb[0] - 1 >= 2
    assert (2, 5) in _candidates(10, 2, 2, 2) and (2, 4) not in _candidates(10, 2, 2, 2)
    assert (2, 4) in _candidates(10, 2, 2, 1)
    assert _candidates(10, 1, 3, 2)[0] == (3,)


def test_aapc(ukgs):
    rates, _pub = ukgs
    s = rates[rates["series"] == "prostate_men"]
    fit = ls.trend.joinpoint(s, time="year", rate="rate", n_joinpoints=1, heteroscedastic="constant")
    seg = fit.summary
    # AAPC over a single segment equals that segment's APC and interval
    a = fit.aapc(2002, 2008).iloc[0]
    assert a["aapc"] == pytest.approx(seg["apc"].iloc[0], rel=1e-10)
    assert a["lower"] == pytest.approx(seg["lower"].iloc[0], rel=1e-10)
    # whole range: length-weighted mean of the log slopes (6 and 10 years)
    b = np.log1p(seg["apc"] / 100)
    expect = 100 * np.expm1((6 * b.iloc[0] + 10 * b.iloc[1]) / 16)
    whole = fit.aapc().iloc[0]
    assert whole["aapc"] == pytest.approx(expect, rel=1e-10)
    assert whole["lower"] < whole["aapc"] < whole["upper"]
    with pytest.raises(ValueError, match="AAPC interval"):
        fit.aapc(2000, 2010)


def test_zero_joinpoint_apc_interval_matches_ols():
    """With no joinpoint the parametric interval is the OLS t-interval of the slope (df = n - 2)."""
    import statsmodels.api as sm

    rng = np.random.default_rng(2)
    x = np.arange(2000, 2015)
    y = np.exp(2 - 0.03 * (x - 2000) + rng.normal(0, 0.03, x.size))
    fit = ls.trend.joinpoint(pd.DataFrame({"t": x, "r": y}), time="t", rate="r", n_joinpoints=0)
    ols = sm.OLS(np.log(y), sm.add_constant(x - 2000.0)).fit()
    lo, hi = ols.conf_int(0.05)[1]
    row = fit.summary.iloc[0]
    assert row["lower"] == pytest.approx(100 * np.expm1(lo), rel=1e-8)
    assert row["upper"] == pytest.approx(100 * np.expm1(hi), rel=1e-8)
    assert row["p_value"] == pytest.approx(ols.pvalues[1], rel=1e-6)


def test_se_weights_and_poisson_fit():
    rng = np.random.default_rng(4)
    x = np.arange(2000, 2020)
    pop = np.full(x.size, 1e6)
    lam = np.exp(np.log(1e-3) + np.where(x < 2010, 0.03 * (x - 2000), 0.3 - 0.05 * (x - 2010)))
    ev = rng.poisson(lam * pop)
    df = pd.DataFrame({"year": x, "events": ev, "pop": pop, "rate": ev / pop})
    df["se"] = np.sqrt(df["events"]) / df["pop"]
    a = ls.trend.joinpoint(df, time="year", rate="rate", se="se", selection="bic")
    assert a.heteroscedastic_ == "se" and a.joinpoints_ == [2010.0]
    b = ls.trend.joinpoint(df, time="year", events="events", population="pop", fit="poisson", selection="bic")
    assert b.joinpoints_ == [2010.0]
    np.testing.assert_allclose(a.summary["apc"], b.summary["apc"], atol=0.3)
    assert b.summary["apc"].iloc[0] == pytest.approx(100 * np.expm1(0.03), abs=0.5)


def test_plot(ukgs):
    import matplotlib

    matplotlib.use("Agg")
    rates, _ = ukgs
    fit = ls.trend.joinpoint(rates[rates.series == "breast_women"], time="year", rate="rate",
                             n_joinpoints=3)
    ax = fit.plot()
    assert len(ax.lines) == 2 + 3


def test_bad_input(ukgs):
    rates, _ = ukgs
    s = rates[rates["series"] == "breast_women"]
    with pytest.raises(KeyError, match="ratez"):
        ls.trend.joinpoint(s, time="year", rate="ratez")
    with pytest.raises(ValueError, match="rate="):
        ls.trend.joinpoint(s, time="year")
    with pytest.raises(ValueError, match="selection"):
        ls.trend.joinpoint(s, time="year", rate="rate", selection="aic")
    with pytest.raises(ValueError, match="cannot hold"):
        ls.trend.joinpoint(s.head(6), time="year", rate="rate", n_joinpoints=2)
    bad = s.copy()
    bad.loc[bad.index[3], "rate"] = 0
    with pytest.raises(ValueError, match="positive"):
        ls.trend.joinpoint(bad, time="year", rate="rate")
    with pytest.raises(ValueError, match="repeated"):
        ls.trend.joinpoint(pd.concat([s, s.head(1)]), time="year", rate="rate")
    with pytest.raises(ValueError, match="permutation"):
        ls.trend.joinpoint(s, time="year", events="rate", population="rate", fit="poisson")
    with pytest.raises(RuntimeError):
        _ = ls.trend.JoinpointFitter().summary
