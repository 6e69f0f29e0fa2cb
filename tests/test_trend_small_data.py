"""Trend, ITS and controlled-ITS fits that cannot be estimated on small data give rows with a reason
(issue 12: small regions are normal in register research; the rest of the analysis goes on)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from lumbarstats import trend

MONTHS = pd.period_range("2016-01", "2021-12", freq="M").astype(str)
RNG = np.random.default_rng(0)
SERIES = {
    "no events": np.zeros(len(MONTHS), int),
    "none after": np.r_[RNG.poisson(0.3, 36), np.zeros(36, int)],
    "one event at the end": np.r_[np.zeros(71, int), 1],
}


def _series(y):
    return pd.DataFrame({"month": MONTHS, "events": y, "population": 1000})


@pytest.mark.parametrize("family", ["quasipoisson", "poisson", "negbin"])
@pytest.mark.parametrize("name", list(SERIES))
def test_its_on_a_series_without_events_on_one_side_gives_a_reason(name, family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = trend.its(_series(SERIES[name]), time="month", events="events", population="population",
                        intervention_start="2019-01", family=family)
    s = res.summary
    assert res.reason and s["reason"].notna().all()
    assert s["rate_ratio"].isna().all() and s["lower"].isna().all()
    assert res.cumulative_effect()[["counterfactual_events", "relative_change"]].isna().all().all()
    assert "could not be estimated" in res.interpretation("en")
    assert "kunne ikke estimeres" in res.interpretation("da")


def test_its_still_estimates_a_sparse_series():
    y = RNG.poisson(2.0, len(MONTHS))
    res = trend.its(_series(y), time="month", events="events", population="population",
                    intervention_start="2019-01")
    assert res.reason is None and res.summary["reason"].isna().all()
    assert np.isfinite(res.summary["rate_ratio"]).all()


def test_its_argument_errors_still_raise():
    with pytest.raises(ValueError, match="family"):
        trend.its(_series(SERIES["no events"]), time="month", events="events", population="population",
                  intervention_start="2019-01", family="binomial")


def test_apc_gives_a_reason_for_a_group_without_events():
    d = pd.DataFrame({"year": list(range(2014, 2024)) * 2, "region": ["A"] * 10 + ["B"] * 10,
                      "events": np.r_[RNG.poisson(20, 10), np.zeros(10, int)], "population": 5000})
    out = trend.apc(d, time="year", events="events", population="population", by="region")
    a, b = out.set_index("region").loc["A"], out.set_index("region").loc["B"]
    assert pd.isna(a["reason"]) and np.isfinite(a["apc"])
    assert "no events" in b["reason"] and np.isnan(b["apc"])


def _panel(treated_post_zero: bool):
    years = np.arange(2010, 2022)
    rows = []
    for u, lam in [("T", 3.0), ("A", 30.0), ("B", 25.0), ("C", 40.0)]:
        y = RNG.poisson(lam, len(years))
        if u == "T" and treated_post_zero:
            y[years >= 2016] = 0
        rows.append(pd.DataFrame({"region": u, "year": years, "events": y, "population": 10_000}))
    return pd.concat(rows, ignore_index=True)


def test_controlled_its_without_treated_events_after_gives_rows_with_a_reason():
    res = trend.controlled_its(_panel(True), unit="region", treated="T", time="year", events="events",
                               population="population", intervention_start=2016)
    s = res.summary
    assert len(s) == 3 and s["rate_ratio"].isna().all() and s["p_value_placebo"].isna().all()
    assert s["reason"].str.contains("after the intervention").all()
    ok = trend.controlled_its(_panel(False), unit="region", treated="T", time="year", events="events",
                              population="population", intervention_start=2016)
    assert ok.summary["reason"].isna().all() and np.isfinite(ok.summary["p_value_placebo"]).all()
