"""Cohort builder on a hand-made register (tests/data/survival/*.csv; the `note` column explains each row).

Every expected duration below is counted by hand from the dates in the CSV files (the comments show the
count); the exclusion counts follow the person list in examinations.csv.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls

DATA = Path(__file__).parent / "data" / "survival"


def _read(name: str) -> pd.DataFrame:
    df = pd.read_csv(DATA / f"{name}.csv", dtype={"procedure_code": str})
    df["date"] = pd.to_datetime(df["date"]).dt.date
    return df.drop(columns="note")


def _population() -> pd.DataFrame:
    rows = []
    for pid in range(1, 19):
        for year in range(2014, 2024):
            rows.append(
                {"person_id": pid, "year": year, "region": 1083 if pid == 1 else 1084, "sex": "MF"[pid % 2],
                 "age": 40 + pid + (year - 2014), "education": "primary", "employment": "employed",
                 "industry": None, "cci": pid % 3}
            )
    pop = pd.DataFrame(rows)
    pop = pop.loc[~((pop.person_id == 10) & (pop.year == 2016))]  # not in the population in the index year
    pop.loc[(pop.person_id == 11) & (pop.year == 2016), "education"] = None  # missing covariate
    return pop.reset_index(drop=True)


@pytest.fixture(scope="module")
def tables() -> dict:
    return {"population": _population(), "examinations": _read("examinations"), "surgery": _read("surgery"),
            "exits": _read("exits")}


def _row(cohort, pid):
    d = cohort.data.set_index("person_id")
    assert pid in d.index, f"person {pid} missing from the cohort"
    return d.loc[pid]


def _days(a: str, b: str) -> int:
    return (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days


def test_exclusion_flow(tables):
    c = ls.cohort.build_cohort(tables)
    ex = c.exclusions.set_index("reason")
    # step 0: persons with a public counted examination: all but 8 (private only) and 13 (cervical code)
    assert ex.loc["persons_with_examination", "n_remaining"] == 16
    # persons 3 and 18 (2014-12-31, one day before the first possible index day 2015-01-01)
    assert ex.loc["index_in_left_truncation_window", "n_excluded"] == 2
    # person 4 (X-ray 182 days before) and 9 (private MR 151 days before the public one)
    assert ex.loc["imaging_within_washout_before_index", "n_excluded"] == 2
    assert ex.loc["not_in_population_index_year", "n_excluded"] == 1  # person 10
    assert ex.loc["missing_covariates", "n_excluded"] == 1  # person 11
    assert ex["n_remaining"].iloc[-1] == len(c.data) == 10
    assert (ex["n_remaining"].iloc[:-1].to_numpy() - ex["n_excluded"].iloc[1:].to_numpy()
            == ex["n_remaining"].iloc[1:].to_numpy()).all()
    assert sorted(c.data.person_id) == [1, 2, 5, 6, 7, 12, 14, 15, 16, 17]


def test_index_washout_and_left_truncation(tables):
    c = ls.cohort.build_cohort(tables)
    assert _row(c, 2)["index_date"] == pd.Timestamp("2017-01-01")  # 672 days after the previous examination
    assert _row(c, 17)["index_date"] == pd.Timestamp("2015-01-01")  # first day after the 365-day window
    # a shorter wash-out makes person 2's 2015 examination (304 days after the first) an index
    c200 = ls.cohort.build_cohort(tables, washout_days=200)
    assert _row(c200, 2)["index_date"] == pd.Timestamp("2015-03-01")
    # the wash-out counts private examinations by default; not with washout_all_payers=False
    c_pub = ls.cohort.build_cohort(tables, washout_all_payers=False)
    assert _row(c_pub, 9)["index_date"] == pd.Timestamp("2017-06-01")
    # every payer: person 8's private MR and person 9's private MR are indexes
    c_all = ls.cohort.build_cohort(tables, payer=None)
    assert _row(c_all, 8)["index_date"] == pd.Timestamp("2020-01-01")
    assert _row(c_all, 9)["index_date"] == pd.Timestamp("2017-01-01")


def test_repeat_any_competing_and_censoring(tables):
    c = ls.cohort.build_cohort(tables, outcome="repeat_any")
    assert c.event_codes == {0: "censored", 1: "repeat_any", 2: "death", 3: "emigration"}
    r = _row(c, 1)
    assert (r["duration"], r["event"], r["event_type"]) == (92, 1, "repeat_any")  # 2016-03-01 -> 06-01
    # several examinations on the index day: one index, labelled with both modalities, not an outcome
    r = _row(c, 5)
    assert r["index_modality"] == "MR+XRAY"
    assert (r["duration"], r["event"]) == (241, 2)  # death 2019-01-01
    r = _row(c, 6)
    assert (r["duration"], r["event"], r["event_type"]) == (365, 3, "emigration")  # exam after return ignored
    r = _row(c, 14)
    assert (r["duration"], r["event"]) == (0, 2)  # death on the index day
    for pid, start in [(2, "2017-01-01"), (7, "2016-01-10"), (15, "2016-06-06"), (17, "2015-01-01")]:
        r = _row(c, pid)
        assert (r["duration"], r["event"]) == (_days(start, "2023-12-31"), 0), pid  # end of data
    assert _row(c, 15)["end_date"] == pd.Timestamp("2023-12-31")  # emigration before the index is ignored
    assert c.data.loc[c.data.event == 0, "event_type"].eq("censored").all()


def test_repeat_same_and_other(tables):
    same = ls.cohort.build_cohort(tables, outcome="repeat_same")
    other = ls.cohort.build_cohort(tables, outcome="repeat_other")
    assert (_row(same, 1)["duration"], _row(same, 1)["event"]) == (315, 1)  # next MR 2017-01-10
    assert (_row(other, 1)["duration"], _row(other, 1)["event"]) == (92, 1)  # X-ray 2016-06-01
    # MR index: the same-day X-ray of person 5 neither joins the index nor is an outcome
    mr = ls.cohort.build_cohort(tables, index_modality="MR", outcome="repeat_other")
    assert sorted(mr.data.person_id) == [1, 5, 12, 16]
    assert _row(mr, 5)["index_modality"] == "MR"
    assert _row(mr, 5)["event"] == 2
    assert mr.exclusions.set_index("reason").loc["persons_with_examination", "n_remaining"] == 9


def test_surgery_outcome_ties_and_prior_surgery(tables):
    c = ls.cohort.build_cohort(tables, outcome="surgery")
    r = _row(c, 12)
    assert (r["duration"], r["event"], r["event_type"]) == (59, 1, "surgery")  # lumbar code; death same day
    assert (_row(c, 16)["duration"], _row(c, 16)["event"]) == (114, 1)  # 2019-09-09 -> 2020-01-01
    assert _row(c, 1)["event"] == 0  # repeat imaging is not surgery
    c2 = ls.cohort.build_cohort(tables, outcome="surgery", exclude_prior_surgery=True)
    assert 16 not in set(c2.data.person_id)
    assert c2.exclusions.set_index("reason").loc["prior_lumbar_surgery", "n_excluded"] == 1


def test_competing_options(tables):
    censor = ls.cohort.build_cohort(tables, competing="censor")
    assert (_row(censor, 5)["duration"], _row(censor, 5)["event"]) == (241, 0)
    assert set(censor.data.event) <= {0, 1}
    anyexit = ls.cohort.build_cohort(tables, competing="any_exit")
    assert _row(anyexit, 6)["event"] == 2 and _row(anyexit, 6)["event_type"] == "competing exit"
    death_only = ls.cohort.build_cohort(tables, competing=("death",))
    assert (_row(death_only, 6)["duration"], _row(death_only, 6)["event"]) == (365, 0)
    assert _row(death_only, 5)["event"] == 2


def test_end_of_data_follow_up_period_region(tables):
    c = ls.cohort.build_cohort(tables, outcome="surgery", end_of_data="2019-12-31")
    assert (_row(c, 16)["duration"], _row(c, 16)["event"]) == (113, 0)  # surgery 2020 is after the end
    assert (_row(c, 6)["duration"], _row(c, 6)["event"]) == (333, 0)  # emigration 2020 too
    c = ls.cohort.build_cohort(tables, max_follow_up_days=100)
    assert (_row(c, 1)["duration"], _row(c, 1)["event"]) == (92, 1)
    assert (_row(c, 5)["duration"], _row(c, 5)["event"]) == (100, 0)
    c = ls.cohort.build_cohort(tables, period_split="2019-01-01")
    periods = c.data.set_index("person_id")["period"]
    assert set(periods[periods == "after"].index) == {6, 14, 16}
    c = ls.cohort.build_cohort(tables, region="Syddanmark")
    assert list(c.data.person_id) == [1]
    assert c.exclusions.set_index("reason").loc["resident_in_other_region", "n_excluded"] == 9
    assert c.data["region_name"].iloc[0] == "Syddanmark"
    assert len(ls.cohort.build_cohort(tables, region="Landsplan").data) == 10


def test_related_codes_and_covariates(tables):
    c = ls.cohort.build_cohort(tables, include_related_codes=True)
    assert (_row(c, 17)["duration"], _row(c, 17)["event"]) == (365, 1)  # UXCE30A on 2016-01-01
    r = _row(ls.cohort.build_cohort(tables), 12)
    # covariates of the index year 2018: age 40 + 12 + 4
    assert (r["age"], r["age_band"], r["cci"], r["sex"], r["region"]) == (56, "50-59", 0, "M", 1084)


def test_register_directory_equals_tables(tables, tmp_path):
    # a register folder is validated: education may not be missing there (the dict of DataFrames above keeps
    # the missing value to test the exclusion step), so both get the code "unknown" here
    tables = dict(tables, population=tables["population"].fillna({"education": "unknown"}))
    for name, df in tables.items():
        df = df.copy()
        if "date" in df:
            df["date"] = pd.to_datetime(df["date"]).dt.date  # date32 in Parquet
        df.to_parquet(tmp_path / f"{name}.parquet", index=False)
    a = ls.cohort.build_cohort(tables, outcome="surgery")
    b = ls.cohort.build_cohort(tmp_path, outcome="surgery")
    pd.testing.assert_frame_equal(a.data, b.data)
    pd.testing.assert_frame_equal(a.exclusions, b.exclusions)


def test_register_directory_with_a_missing_covariate_is_refused(tables, tmp_path):
    for name, df in tables.items():
        df.to_parquet(tmp_path / f"{name}.parquet", index=False)
    with pytest.raises(ls.io.RegisterValidationError) as err:
        ls.cohort.build_cohort(tmp_path)
    assert err.value.column == "education" and "missing" in err.value.rule and 102 in list(err.value.rows.index)


def test_survival_on_cohort(tables):
    c = ls.cohort.build_cohort(tables)
    cif = ls.survival.cumulative_incidence(c.data, duration="duration", event="event", times=[100])
    # by hand: death at day 0 (person 14): S = 9/10; death at day 59 (person 12): S = 9/10 * 8/9 = 8/10;
    # repeat at day 92 (person 1) with 8 at risk: F = 8/10 * 1/8 = 0.1
    assert cif["cif"].iloc[0] == pytest.approx(0.1)


def test_bad_arguments(tables):
    with pytest.raises(ValueError, match="outcome"):
        ls.cohort.build_cohort(tables, outcome="reoperation")
    with pytest.raises(ValueError, match="index_modality"):
        ls.cohort.build_cohort(tables, index_modality="PET")
    with pytest.raises(ValueError, match="exit type"):
        ls.cohort.build_cohort(tables, competing=("death", "prison"))
    with pytest.raises(ValueError, match="period_split"):
        ls.cohort.build_cohort(tables, period_split="not a date")
    with pytest.raises(KeyError, match="exits"):
        ls.cohort.build_cohort({k: v for k, v in tables.items() if k != "exits"})
    bad = dict(tables, examinations=tables["examinations"].drop(columns="payer"))
    with pytest.raises(KeyError, match="payer"):
        ls.cohort.build_cohort(bad)
    with pytest.raises(ValueError, match="region"):
        ls.cohort.build_cohort(tables, region="Atlantis")


def test_synthetic_register(tiny_register):
    c = ls.cohort.build_cohort(tiny_register, outcome="surgery", period_split="2019-01-01")
    d = c.data
    assert len(d) > 0 and d["person_id"].is_unique
    assert (d["duration"] >= 0).all()
    assert d["end_date"].le(pd.Timestamp("2023-12-31")).all()
    assert set(d["event"]) <= {0, 1, 2, 3}
    assert np.array_equal((d["end_date"] - d["index_date"]).dt.days, d["duration"])
    assert c.exclusions["n_remaining"].iloc[-1] == len(d)
