"""Aggregation to stratum counts on a hand-built register where every count is known."""

from __future__ import annotations

import pandas as pd
import pytest

import lumbarstats as ls


@pytest.fixture()
def register(tmp_path):
    pop = pd.DataFrame({
        "person_id": [1, 1, 2, 2, 3, 4],
        "year": [2020, 2021, 2020, 2021, 2021, 2021],
        "region": [1083, 1083, 1084, 1081, 1084, 1084],
        "sex": ["F", "F", "M", "M", "F", "M"],
        "age": [34, 35, 70, 71, 50, 29],
        "education": ["primary", "primary", "long_higher", "long_higher", "unknown", "upper_secondary"],
        "employment": ["employed", "employed", "pension", "pension", "sickness_benefit", "employed"],
        "industry": ["06", "06", None, None, None, "17"],
        "cci": [0, 0, 3, 5, 1, 0],
    })
    ex = pd.DataFrame({
        "person_id": [1, 1, 1, 2, 2, 3, 3, 4, 5],
        "date": pd.to_datetime(["2020-03-01", "2020-03-20", "2021-07-01", "2020-05-05", "2021-01-10",
                                "2021-02-02", "2021-02-02", "2021-06-06", "2021-01-01"]),
        "modality": ["MR", "MR", "XRAY", "MR", "MR", "XRAY", "MR", "XRAY", "MR"],
        "procedure_code": ["UXME30", "UXME30", "UXRE30", "UXME30", "UXME30A", "UXRE35", "UXME30", "UXRE30", "UXME30"],
        "payer": ["public", "public", "public", "private", "public", "public", "public", "public", "public"],
    })
    pop.to_parquet(tmp_path / "population.parquet")
    ex.to_parquet(tmp_path / "examinations.parquet")
    return tmp_path


def test_counts_by_year(register):
    r = ls.aggregate.strata_counts(register, by=["year"], modality="MR", count_unmatched=True)
    got = r.set_index("year")
    # 2020: person 1 twice (public core); person 2's exam is private -> 2 events, 1 person
    assert got.loc[2020, "events"] == 2 and got.loc[2020, "persons"] == 1 and got.loc[2020, "population"] == 2
    # 2021: person 3 core MR (1); person 2's UXME30A is a related code, not counted; person 5 has no population row
    assert got.loc[2021, "events"] == 1 and got.loc[2021, "population"] == 4
    assert r.attrs["unmatched"] == 1


def test_related_codes_and_payers(register):
    r = ls.aggregate.strata_counts(register, by=["year"], modality="MR", include_related=True).set_index("year")
    assert r.loc[2021, "events"] == 2
    r = ls.aggregate.strata_counts(register, by=["year", "payer"], modality="MR", payer=None)
    assert r.set_index(["year", "payer"]).loc[(2020, "private"), "events"] == 1
    x = ls.aggregate.strata_counts(register, by=["year"], modality="XRAY").set_index("year")
    assert x.loc[2021, "events"] == 2  # UXRE35 (myelography) is not a lumbar X-ray


def test_attribution_to_the_population_row_of_the_exam_year(register):
    # person 2 lived in 1084 in 2020 and 1081 in 2021: the 2021 exam belongs to 1081 (related code -> include)
    r = ls.aggregate.strata_counts(register, by=["region_name", "year"], modality="MR", include_related=True)
    s = r.set_index(["region_name", "year"])
    assert s.loc[("Nordjylland", 2021), "events"] == 1
    assert s.loc[("Syddanmark", 2020), "events"] == 2


def test_derived_variables(register):
    r = ls.aggregate.strata_counts(register, by=["age_band", "cci_category", "education_profile"], modality="MR",
                                   years=(2021, 2021), include_related=True)
    assert set(r["age_band"]) == {"30-39", "70-79", "50-59", "18-29"}
    row = r[r["age_band"] == "70-79"].iloc[0]
    assert row["cci_category"] == "severe" and row["education_profile"] == "long_higher" and row["events"] == 1
    # cut-points are configurable
    r2 = ls.aggregate.strata_counts(register, by=["cci_category"], years=(2021, 2021), cci_cutpoints=[1, 2, 6])
    assert set(r2["cci_category"]) == {"none", "mild", "moderate"}


def test_month_periods_modalities_and_total(register):
    r = ls.aggregate.strata_counts(register, by=["year", "month"], modality="MR", years=(2020, 2020))
    assert len(r) == 12 and r["population"].sum() == pytest.approx(2)
    assert r.set_index("month").loc[3, "events"] == 2
    p = ls.aggregate.strata_counts(register, by=["period", "modality"], modality=["MR", "XRAY"],
                                   periods={"a": (2020, 2020), "b": (2021, 2021)})
    assert p.set_index(["period", "modality"]).loc[("b", "XRAY"), "events"] == 2
    t = ls.aggregate.strata_counts(register, by=["region_name", "year"], with_total=True)
    tot = t[t["region_name"] == "Landsplan"].set_index("year")
    assert tot.loc[2021, "population"] == 4 and tot.loc[2020, "events"] == 2


def test_errors(register, tmp_path):
    with pytest.raises(ValueError, match="unknown stratum variable"):
        ls.aggregate.strata_counts(register, by=["colour"])
    with pytest.raises(ValueError, match="add 'modality'"):
        ls.aggregate.strata_counts(register, by=["year"], modality=["MR", "XRAY"])
    with pytest.raises(ValueError, match="unknown modality"):
        ls.aggregate.strata_counts(register, by=["year"], modality="PET")
    with pytest.raises(FileNotFoundError, match="lumbarstats synth"):
        ls.aggregate.strata_counts(tmp_path / "empty", by=["year"])


def test_default_standard(register):
    s = ls.aggregate.default_standard(register)
    assert list(s.columns) == ["sex", "age_band", "weight"] and s["weight"].sum() == 6


def test_distinct_persons_whole_country_counts_a_mover_once(register):
    p = ls.aggregate.distinct_persons(register, by=["region_name"], with_total=True, modality="MR", payer=None,
                                      include_related=True).set_index("region_name")["persons"]
    # person 2: private MR in Hovedstaden 2020, related MR in Nordjylland 2021 -> one person nationally
    assert p.to_dict() == {"Hovedstaden": 2, "Nordjylland": 1, "Syddanmark": 1, "Landsplan": 3}


def test_structured_where_matches_the_population(register):
    r = ls.aggregate.strata_counts(register, by=["year"], where={"age": (30, 60), "employment": "employed"},
                                   include_related=True).set_index("year")
    assert r.loc[2020, "population"] == 1 and r.loc[2021, "population"] == 1  # person 1 (34, 35)
    assert r.loc[2020, "events"] == 2
    with pytest.raises(TypeError, match="structured filter"):
        ls.aggregate.strata_counts(register, by=["year"], where="age BETWEEN 30 AND 60")
