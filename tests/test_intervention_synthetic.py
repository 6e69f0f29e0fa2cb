"""The Syddanmark evaluation on the synthetic register finds the reduction the register was built with.

The register's expected standardized rates follow the published annual tables 1–2 (``model/base.csv``,
``published_rate``). The built-in effect of the 2018 effort is the post-2018 expected rate against the
2014–2017 log-linear trend extrapolated — the counterfactual an interrupted time series estimates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls


def _built_in_effect(register, modality: str) -> float:
    base = pd.read_csv(register / "model" / "base.csv")
    syd = base[(base["modality"] == modality) & (base["region"] == 1083)].sort_values("year")
    pre = syd[syd["year"] < 2018]
    slope, intercept = np.polyfit(pre["year"], np.log(pre["published_rate"]), 1)
    post = syd[syd["year"] >= 2018]
    counterfactual = np.exp(intercept + slope * post["year"])
    return float(post["published_rate"].sum() / counterfactual.sum() - 1)


@pytest.mark.parametrize("modality", ["MR", "XRAY"])
def test_its_recovers_the_built_in_reduction(small_register, modality):
    truth = _built_in_effect(small_register, modality)
    assert truth < -0.2  # the register was built with a large reduction in Syddanmark
    series = ls.monthly.monthly_standardized_series(small_register, modality=modality)
    syd = series[series["region"] == "Syddanmark"]
    its = ls.trend.its(syd, time="month", events="events", population="expected_events",
                       intervention_start="2018-01", seasonality={"harmonics": 2, "period_length": 12},
                       family="quasipoisson", hac_lags=12)
    eff = its.cumulative_effect().iloc[0]
    assert eff["lower"] <= truth <= eff["upper"], (truth, eff.to_dict())
    assert abs(eff["relative_change"] - truth) < 0.12
    assert "%" in its.interpretation("da")
