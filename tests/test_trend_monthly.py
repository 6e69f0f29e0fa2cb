"""Monthly standardized series (lumbarstats.monthly) on a hand-made stratum table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls


def _fake_counts():
    rng = np.random.default_rng(0)
    rows = []
    for code, name in [(1081, "Nordjylland"), (1083, "Syddanmark")]:
        for year in (2018, 2019):
            for month in range(1, 13):
                for sex in ("F", "M"):
                    for band, base in (("18-39", 0.01), ("40-64", 0.02)):
                        pop = (1000.0 if code == 1081 else 3000.0) * (2 if band == "40-64" else 1) / 12
                        rows.append({"region": code, "region_name": name, "year": year, "month": month,
                                     "sex": sex, "age_band": band, "events": rng.poisson(base * pop * 12),
                                     "persons": 0, "population": pop})
    return pd.DataFrame(rows)


@pytest.fixture
def patched(monkeypatch):
    counts = _fake_counts()
    calls = {}

    def fake_strata_counts(data_dir, *, by, modality="MR", payer="public", years=None, **kw):
        calls["by"], calls["modality"] = list(by), modality
        return counts.copy()

    def fake_default_standard(data_dir, *, strata=("sex", "age_band"), years=None):
        return counts.groupby(list(strata))["population"].sum().rename("weight").reset_index()

    monkeypatch.setattr(ls.aggregate, "strata_counts", fake_strata_counts)
    monkeypatch.setattr(ls.aggregate, "default_standard", fake_default_standard)
    return counts, calls


def test_monthly_series_columns_and_values(patched):
    counts, calls = patched
    out = ls.monthly.monthly_standardized_series("unused", modality="XRAY")
    assert calls["by"] == ["region", "region_name", "year", "month", "sex", "age_band"]
    assert calls["modality"] == "XRAY"
    for col in ["region", "month", "year", "events", "population", "rate", "expected_events"]:
        assert col in out.columns
    assert len(out) == 2 * 24
    assert pd.api.types.is_datetime64_any_dtype(out["month"])
    assert (out["month"].dt.day == 1).all()
    # directly standardized rate for one cell by hand
    cell = counts[(counts.region == 1083) & (counts.year == 2019) & (counts.month == 5)]
    w = counts.groupby(["sex", "age_band"])["population"].sum()
    w = w / w.sum()
    c = cell.set_index(["sex", "age_band"])
    dsr = float((w * c["events"] / c["population"]).sum() * 1000)
    row = out[(out.region == "Syddanmark") & (out.month == pd.Timestamp("2019-05-01"))].iloc[0]
    assert row["rate"] == pytest.approx(dsr, rel=1e-10)
    assert row["events"] == cell["events"].sum()
    assert row["population"] == pytest.approx(cell["population"].sum())
    # indirect standardization with the pooled reference: expected totals equal observed totals
    assert out["expected_events"].sum() == pytest.approx(out["events"].sum(), rel=1e-10)
    ref = counts.groupby(["sex", "age_band"])[["events", "population"]].sum()
    r_s = ref["events"] / ref["population"]
    assert row["expected_events"] == pytest.approx(float((r_s * c["population"]).sum()), rel=1e-10)
    assert row["reference_rate"] == pytest.approx(ref["events"].sum() / ref["population"].sum() * 1000)


def test_monthly_series_region_filter_and_its(patched):
    out = ls.monthly.monthly_standardized_series("unused", regions=["Syddanmark"])
    assert set(out["region"]) == {"Syddanmark"}
    same = ls.monthly.monthly_standardized_series("unused", regions=1083)
    pd.testing.assert_frame_equal(out, same)
    with pytest.raises(ValueError, match="unknown region"):
        ls.monthly.monthly_standardized_series("unused", regions=["Fyn"])
    res = ls.trend.its(out, time="month", events="events", population="expected_events",
                       intervention_start="2019-01", per=out["reference_rate"].iloc[0])
    assert res.unit == "month" and not res.underpowered  # 12 months either side
    # rates on the indirectly standardized scale: observed / expected x reference rate
    fit = res.predict()
    np.testing.assert_allclose(fit["observed_rate"], out["smr"] * out["reference_rate"], rtol=1e-10)
