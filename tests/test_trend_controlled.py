"""Controlled ITS with placebo-in-space inference, and synthetic control."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls

REGIONS = ["Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland"]


def _panel(effect=0.7, seed=1, noise=0.02, months=None):
    rng = np.random.default_rng(seed)
    months = pd.date_range("2014-01-01", "2023-12-01", freq="MS") if months is None else months
    rows = []
    for i, r in enumerate(REGIONS):
        shock = rng.normal(0, noise, len(months))
        for j, m in enumerate(months):
            pop = 50_000.0 * (1 + i)
            lm = np.log(0.0012) + 0.05 * i + 0.002 * j + 0.08 * np.sin(2 * np.pi * m.month / 12) + shock[j]
            if r == "Syddanmark" and m >= pd.Timestamp("2018-01-01"):
                lm += np.log(effect)
            rows.append({"region": r, "month": m, "events": rng.poisson(np.exp(lm) * pop), "population": pop})
    return pd.DataFrame(rows)


def test_controlled_its_detects_effect_and_placebo_p():
    df = _panel(effect=0.7)
    res = ls.trend.controlled_its(df, unit="region", treated="Syddanmark", time="month", events="events",
                                  population="population", intervention_start="2018-01",
                                  seasonality={"harmonics": 2, "period_length": 12})
    s = res.summary.set_index("term")
    assert s.loc["level_change_difference", "rate_ratio"] == pytest.approx(0.7, abs=0.05)
    assert s.loc["level_change_difference", "lower"] < 0.7 < s.loc["level_change_difference", "upper"]
    # one treated region among 4 controls: the smallest attainable placebo p-value is 1/5
    assert (s["min_attainable_p"] == 0.2).all()
    assert s.loc["level_change_difference", "p_value_placebo"] == pytest.approx(0.2)
    assert s.loc["level_change_difference", "placebo_rank"] == 1
    assert (s["p_value_placebo"] >= 0.2).all() and (s["p_value_placebo"] <= 1).all()
    assert len(res.placebo) == 5 * 3
    assert set(res.placebo["unit"]) == set(REGIONS)
    # the placebo runs leave the treated region out of the control pool: controls' estimates ~ 1
    ctrl = res.placebo[(~res.placebo["is_treated"]) & (res.placebo["term"] == "level_change_difference")]
    assert np.all(np.abs(ctrl["rate_ratio"] - 1) < 0.1)


def test_controlled_its_null_effect_placebo_not_significant():
    df = _panel(effect=1.0, seed=3, noise=0.05)
    res = ls.trend.controlled_its(df, unit="region", treated="Syddanmark", time="month", events="events",
                                  population="population", intervention_start="2018-01", hac_lags=6)
    s = res.summary.set_index("term")
    assert s.loc["level_change_difference", "rate_ratio"] == pytest.approx(1.0, abs=0.1)
    assert "Newey-West" in s["method"].iloc[0]


def test_controlled_its_subset_of_controls_and_errors():
    df = _panel()
    res = ls.trend.controlled_its(df, unit="region", treated="Syddanmark", time="month", events="events",
                                  population="population", intervention_start="2018-01",
                                  controls=["Nordjylland", "Midtjylland"], slope_change=False)
    s = res.summary
    assert list(s["term"]) == ["level_change_difference"]
    assert s["min_attainable_p"].iloc[0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="treated unit"):
        ls.trend.controlled_its(df, unit="region", treated="Fyn", time="month", events="events",
                                population="population", intervention_start="2018-01")
    with pytest.raises(ValueError, match="outside"):
        ls.trend.controlled_its(df, unit="region", treated="Syddanmark", time="month", events="events",
                                population="population", intervention_start="2030-01")
    with pytest.raises(KeyError, match="pop"):
        ls.trend.controlled_its(df, unit="region", treated="Syddanmark", time="month", events="events",
                                population="pop", intervention_start="2018-01")
    with pytest.raises(ValueError, match="repeated"):
        ls.trend.controlled_its(pd.concat([df, df.head(1)]), unit="region", treated="Syddanmark", time="month",
                                events="events", population="population", intervention_start="2018-01")


def test_synthetic_control_recovers_convex_weights():
    """Treated = 0.3 A + 0.7 B exactly before the intervention: weights recovered, pre-RMSPE ~ 0."""
    t = np.arange(2000, 2020)
    rng = np.random.default_rng(0)
    A, B, C, D = (10 + rng.normal(0, 1, t.size).cumsum() for _ in range(4))
    tr = 0.3 * A + 0.7 * B
    tr = np.where(t >= 2012, tr - 3.0, tr)
    df = pd.concat([pd.DataFrame({"unit": u, "year": t, "y": v}) for u, v in
                    zip(["T", "A", "B", "C", "D"], [tr, A, B, C, D], strict=True)])
    res = ls.trend.synthetic_control(df, unit="unit", treated="T", time="year", outcome="y",
                                     intervention_start=2012)
    w = res.weights.set_index("donor")["weight"]
    assert w["A"] == pytest.approx(0.3, abs=1e-4) and w["B"] == pytest.approx(0.7, abs=1e-4)
    assert w.sum() == pytest.approx(1.0)
    s = res.summary.iloc[0]
    assert s["rmspe_pre"] < 1e-3
    assert s["average_gap_post"] == pytest.approx(-3.0, abs=1e-3)
    assert s["placebo_rank"] == 1 and s["p_value"] == pytest.approx(0.2) and s["min_attainable_p"] == 0.2
    assert len(res.placebo) == 5
    assert res.path["post"].sum() == 8


def test_synthetic_control_demeaned_and_errors():
    df = _panel()
    df["rate"] = df["events"] / df["population"] * 1000
    res = ls.trend.synthetic_control(df, unit="region", treated="Syddanmark", time="month", outcome="rate",
                                     intervention_start="2018-01", demean=True)
    assert res.summary["relative_gap_post"].iloc[0] == pytest.approx(-0.3, abs=0.08)
    assert "demeaned" in res.summary["method"].iloc[0]
    with pytest.raises(KeyError, match="ratez"):
        ls.trend.synthetic_control(df, unit="region", treated="Syddanmark", time="month", outcome="ratez",
                                   intervention_start="2018-01")
    with pytest.raises(ValueError, match="missing"):
        ls.trend.synthetic_control(df.iloc[1:], unit="region", treated="Syddanmark", time="month",
                                   outcome="rate", intervention_start="2018-01")
