"""Regression tests for defects found in review: joint protection of linked tables, years, config,
count-column recognition and numeric keys in disclosure control."""

from __future__ import annotations

import pandas as pd
import pytest

import lumbarstats as ls

MARK = ls.disclosure.SUPPRESSED_MARKER


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    out = tmp_path_factory.mktemp("micro") / "reg"
    ls.synth.generate(out, scale=0.0004, seed=5, verbose=False)
    return out


def test_annual_and_period_tables_are_protected_together(micro):
    a = ls.rates.annual_rates(micro, modality="MR")
    p = ls.rates.period_rates(micro, modality="MR")
    pa, pp = ls.rates.protect_rate_tables(a, p)
    hidden_years = pa[pa["events"] == MARK]
    assert len(hidden_years) > 0  # the micro register has small cells
    spans = ls.aggregate.report_periods()
    for region in pa["region"].unique():
        for name, (y0, y1) in spans.items():
            period_hidden = (pp[(pp["region"] == region) & (pp["period"] == name)]["events"] == MARK).all()
            years = pa[(pa["region"] == region) & pa["year"].between(y0, y1)]
            n_hidden = int((years["events"] == MARK).sum())
            # a visible period with exactly one hidden year would give that year away
            assert period_hidden or n_hidden != 1, (region, name)
    # within each year and period the regions add up to Landsplan: never exactly one region hidden
    for y, g in pa.groupby("year"):
        assert int((g["events"] == MARK).sum()) != 1, y
    for q, g in pp.groupby("period"):
        assert int((g["events"] == MARK).sum()) != 1, q


def test_group_table_protected_with_region_and_group_relations(micro):
    full = ls.groups.report_group_table(micro, modality="MR", regions="all")
    safe = ls.groups.protect_group_table(full)
    hidden = safe["persons"] == MARK
    assert hidden.any()
    for (_v, _g), g in safe.groupby(["variable", "group"]):  # regions + Landsplan
        assert int((g["persons"] == MARK).sum()) != 1
    for (_v, _r), g in safe.groupby(["variable", "region"]):  # the groups of a variable
        # education: the unpublished "unknown" group is a member too and may be the complementary cell
        # (tests/test_attack.py checks that nothing follows from the published cells)
        assert int((g["persons"] == MARK).sum()) != 1 or _v == "education"


def test_years_are_unambiguous(micro):
    years = ls.aggregate.strata_counts(micro, by=["year"], years=[2014, 2016])["year"].tolist()
    assert years == [2014, 2015, 2016]
    with pytest.raises(ValueError, match="first <= last"):
        ls.aggregate.strata_counts(micro, by=["year"], years=(2020, 2014))


def test_changed_config_regenerates(tmp_path):
    out = ls.synth.generate(tmp_path / "r", scale=0.001, seed=2, verbose=False)
    before = (out / "examinations.parquet").read_bytes()
    ls.synth.generate(out, scale=0.001, seed=2, verbose=False, config=ls.synth.SynthConfig(private_mr=(0.5, 0.5)))
    assert (out / "examinations.parquet").read_bytes() != before


def test_protect_recognises_labelled_counts_and_keeps_numeric_keys():
    df = pd.DataFrame({"region": [1081, 1082, 1083], "Antal personer": [2, 40, 50], "rate": [1.0, 2.0, 3.0]})
    out = ls.disclosure.protect(df)
    assert out.loc[0, "Antal personer"] == MARK and out.loc[0, "rate"] == MARK
    assert list(out["region"]) == [1081, 1082, 1083]


def test_landsplan_persons_are_distinct_persons(micro):
    p = ls.rates.period_rates(micro, modality="MR")
    nat = p[p["region"] == "Landsplan"].set_index("period")["persons"]
    direct = ls.aggregate.strata_counts(micro, by=["period"], modality="MR").set_index("period")["persons"]
    assert nat.to_dict() == direct.to_dict()
