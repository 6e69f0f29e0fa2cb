"""The register object: validation before any analysis (regression tests for issue 12's "silent wrong
numbers"), remembered validation by content hash, the counting rule in one place, structured filters,
regions resolved in one place, explicit date formats."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls
from lumbarstats.io import RegisterValidationError


@pytest.fixture(scope="module")
def reg_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("register") / "reg"
    ls.synth.generate(out, scale=0.002, seed=4, verbose=False)
    return out


@pytest.fixture()
def copy(reg_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LUMBARSTATS_CACHE_DIR", str(tmp_path / "cache"))

    def make(table: str | None = None, mutate=None) -> Path:
        dst = tmp_path / "reg"
        shutil.copytree(reg_dir, dst, ignore=shutil.ignore_patterns(".lumbarstats"))
        if table is not None:
            path = dst / f"{table}.parquet"
            df = pd.read_parquet(path)
            for c in df.columns:
                if isinstance(df[c].dtype, pd.CategoricalDtype):
                    df[c] = df[c].astype(object)
            mutate(df).to_parquet(path, index=False)
        return dst

    return make


# ------------------------------------------------------------------------------------------------------
# regression tests: each of these gave a number (exit 0) on the old code
# ------------------------------------------------------------------------------------------------------
def test_duplicated_person_year_is_an_error_not_double_counts(copy):
    def dup(df):
        return pd.concat([df, df[(df.region == 1081) & (df.year == 2021)]], ignore_index=True)

    reg = copy("population", dup)
    with pytest.raises(RegisterValidationError, match="duplicate") as err:
        ls.rates.annual_rates(reg, modality="MR")
    assert err.value.column == "person_id, year"


def test_unknown_region_code_is_an_error_not_a_vanished_cell(copy):
    def bad(df):
        df.loc[df.index[:10], "region"] = 1086
        return df

    with pytest.raises(RegisterValidationError, match="code list region") as err:
        ls.aggregate.strata_counts(copy("population", bad), by=["region", "year"])
    assert "1086" in str(err.value) and list(err.value.rows.index)[:3] == [1, 2, 3]


def test_examinations_dated_2030_are_an_error_not_dropped(copy):
    def late(df):
        df["date"] = pd.to_datetime(df["date"])
        df.loc[df.index[[3, 4]], "date"] = pd.Timestamp("2030-02-01")
        df["date"] = df["date"].dt.date
        return df

    with pytest.raises(RegisterValidationError, match="study years") as err:
        ls.aggregate.strata_counts(copy("examinations", late), by=["year"])
    assert err.value.column == "date" and list(err.value.rows.index) == [4, 5]


def test_modality_that_does_not_match_its_procedure_code_is_an_error(copy):
    def swap(df):
        rows = df.index[df["procedure_code"] == "UXRE30"][:2]
        df.loc[rows, "modality"] = "MR"
        return df

    with pytest.raises(RegisterValidationError, match="matches the procedure code") as err:
        ls.groups.attributed_examinations(copy("examinations", swap), years=(2014, 2023))
    assert err.value.column == "modality" and err.value.n_failed == 2


@pytest.mark.parametrize("column, value", [("age", 45.5), ("cci", 1.5), ("person_id", 1000003.5)])
def test_fractional_integers_are_an_error_not_truncated(copy, column, value):
    def frac(df):
        df[column] = df[column].astype("float64")
        df.loc[df.index[1], column] = value
        return df

    with pytest.raises(RegisterValidationError, match="whole number") as err:
        ls.aggregate.strata_counts(copy("population", frac), by=["year"])
    assert err.value.column == column and list(err.value.rows.index) == [2]


def test_children_and_year_2030_in_population_are_errors(copy, tmp_path):
    def child(df):
        df.loc[df.index[5], "age"] = 12
        return df

    with pytest.raises(RegisterValidationError, match="adult") as err:
        ls.aggregate.strata_counts(copy("population", child), by=["year"])
    assert err.value.column == "age"
    shutil.rmtree(tmp_path / "reg")

    def future(df):
        df.loc[df.index[5], "year"] = 2030
        return df

    with pytest.raises(RegisterValidationError, match="study years") as err:
        ls.aggregate.strata_counts(copy("population", future), by=["year"])
    assert err.value.column == "year"


def test_day_month_dates_are_never_guessed(tmp_path):
    days = [dt.date(2021, 3, d) for d in range(1, 13)]  # day <= 12: a guess would swap day and month
    df = pd.DataFrame({"person_id": range(12), "date": [d.strftime("%d-%m-%Y") for d in days],
                       "modality": "MR", "procedure_code": "UXME30", "payer": "public"})
    p = tmp_path / "ex.csv"
    df.to_csv(p, index=False)
    with pytest.raises(RegisterValidationError, match="ISO date") as err:
        ls.io.load_register_table(p, "examinations")
    assert err.value.column == "date" and list(err.value.rows.index)[0] == 1
    got = ls.io.load_register_table(p, "examinations", date_format="%d-%m-%Y")
    assert list(got["date"].dt.date) == days
    # a value that does not match the explicit format is an error too
    df.loc[4, "date"] = "2021-03-05"
    df.to_csv(p, index=False)
    with pytest.raises(RegisterValidationError, match="format") as err:
        ls.io.load_register_table(p, "examinations", date_format="%d-%m-%Y")
    assert list(err.value.rows.index) == [5]


def test_unparseable_lpr3_procedure_date_is_not_replaced_by_the_contact_date(tmp_path):
    from test_adapters import make_raw

    d = dt.date(2020, 5, 4)
    raw = make_raw(tmp_path / "raw", lpr3_proc=[(11, 1, d, "UXME30", "offentlig", "offentlig", "LPR3")])
    proc = pd.read_parquet(raw / "lpr3" / "procedurer_andre.parquet")
    proc["DATO_START"] = "2020-13-45"
    proc.to_parquet(raw / "lpr3" / "procedurer_andre.parquet", index=False)
    cfg = {"options": {"years": [2019, 2021]}}
    with pytest.raises(ValueError, match="lpr3_procedurer_andre.*DATO_START.*not dates") as err:
        ls.adapters.ingest(raw, tmp_path / "out", cfg)
    assert "2020-13-45" in str(err.value)
    assert not (tmp_path / "out" / "examinations.parquet").exists()
    # kept as an explicit option: the contact date is used and the rows are counted in the report
    cfg["options"]["unparseable_procedure_dates"] = "contact_date"
    report = ls.adapters.ingest(raw, tmp_path / "out2", cfg)
    notes = report.notes
    assert (notes["note"] == "unparseable_date_contact_date_used").any()
    assert int(notes.loc[notes["note"] == "unparseable_date_contact_date_used", "rows"].sum()) == 1


# ------------------------------------------------------------------------------------------------------
# the Register
# ------------------------------------------------------------------------------------------------------
def test_validation_is_remembered_by_content_hash(copy, tmp_path):
    reg = copy()
    r = ls.Register(reg)
    state = json.loads((reg / ls.register.STATE_DIR / "validated.json").read_text())
    assert state["content_hash"] == r.content_hash and state["rows"]["population"] == r.rows["population"]
    calls = []
    orig = ls.validation.check_table
    try:
        ls.validation.check_table = lambda *a, **k: calls.append(a) or orig(*a, **k)
        ls.Register(reg)
        assert calls == []                         # unchanged register: not validated again
        df = pd.read_parquet(reg / "exits.parquet")
        df["exit_type"] = df["exit_type"].astype(object)
        df.loc[0, "exit_type"] = "moved"           # one changed value -> revalidated -> refused
        df.to_parquet(reg / "exits.parquet", index=False)
        with pytest.raises(RegisterValidationError):
            ls.Register(reg)
        assert calls
    finally:
        ls.validation.check_table = orig
    assert ls.Register(reg, validate=False).content_hash != r.content_hash


def test_read_only_register_remembers_in_the_user_cache(copy, tmp_path, monkeypatch):
    reg = copy()
    real = ls.io.atomic_path

    def refuse_in_register(path, **kw):  # as on a read-only share (root ignores chmod, so simulate it)
        if Path(path).is_relative_to(reg):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, **kw)

    monkeypatch.setattr(ls.io, "atomic_path", refuse_in_register)
    ls.Register(reg)
    assert not (reg / ls.register.STATE_DIR).exists()
    assert len(list((tmp_path / "cache" / "validated").glob("*.json"))) == 1
    calls = []
    orig = ls.validation.check_table
    monkeypatch.setattr(ls.validation, "check_table", lambda *a, **k: calls.append(a) or orig(*a, **k))
    ls.Register(reg)
    assert calls == []


def test_register_is_accepted_everywhere_and_caches(copy):
    r = ls.Register(copy())
    a = ls.aggregate.strata_counts(r, by=["region", "year", "sex", "age_band"])
    b = ls.aggregate.strata_counts(str(r.path), by=["region", "year", "sex", "age_band"])
    pd.testing.assert_frame_equal(a, b)
    n = len(r._memo)
    ls.aggregate.strata_counts(r, by=["region", "year", "sex", "age_band"])
    assert len(r._memo) == n                       # the identical query is served from the cache
    assert r.default_standard() is not r.default_standard()  # copies: a caller cannot spoil the cache
    pd.testing.assert_frame_equal(r.default_standard(), ls.aggregate.default_standard(r))
    rates = ls.rates.annual_rates(r, modality="XRAY")
    assert {"region", "region_code"} <= set(rates.columns)
    assert rates.loc[rates["region"] == "Landsplan", "region_code"].eq(0).all()
    assert len(ls.groups.attributed_examinations(r)) > 0


def test_counting_rule_in_one_place(copy):
    r = ls.Register(copy())
    ex = r.counted_examinations("MR").to_pandas()
    raw = pd.read_parquet(r.path / "examinations.parquet")
    pop = pd.read_parquet(r.path / "population.parquet", columns=["person_id", "year"])
    raw["year"] = pd.to_datetime(raw["date"]).dt.year
    expected = raw[(raw.procedure_code == "UXME30") & (raw.payer == "public")].merge(pop, on=["person_id", "year"])
    assert len(ex) == len(expected)
    counts = ls.aggregate.strata_counts(r, by=["year"], modality="MR")
    assert counts["events"].sum() == len(ex)
    exams = ls.groups.attributed_examinations(r, years=(2014, 2023), modalities=["MR"])
    assert len(exams) == len(ex)


def test_structured_where_and_refused_sql_text(copy):
    r = ls.Register(copy())
    with pytest.raises(TypeError, match=r'where=\{"age": \(18, 64\)'):
        ls.aggregate.strata_counts(r, by=["year"], where="age BETWEEN 18 AND 64")
    with pytest.raises(ValueError, match="unknown column"):
        ls.aggregate.strata_counts(r, by=["year"], where={"colour": "red"})
    w = ls.aggregate.strata_counts(r, by=["sex"], where={"age": (18, 64), "sex": "F",
                                                         "education": ["primary", "long_higher"]})
    pop = pd.read_parquet(r.path / "population.parquet")
    sel = pop[(pop.age.between(18, 64)) & (pop.sex == "F") & pop.education.isin(["primary", "long_higher"])]
    assert list(w["sex"]) == ["F"] and int(w["population"].iloc[0]) == len(sel)
    # a value with a quote is a value, not SQL
    q = ls.aggregate.strata_counts(r, by=["sex"], where={"education": "x' OR '1'='1"})
    assert q.empty
    emp = ls.aggregate.strata_counts(r, by=["industry"], where={"industry": ls.aggregate.NOT_MISSING})
    assert emp["industry"].notna().all() and emp["population"].sum() == pop["industry"].notna().sum()


@pytest.mark.parametrize("value, code", [
    (1085, 1085), ("1085", 1085), ("Sjælland", 1085), ("Sjaelland", 1085), ("sjaelland", 1085),
    ("SJÆLLAND", 1085), ("Region Sjælland", 1085), ("Region Zealand", 1085), ("North Denmark Region", 1081),
    ("Landsplan", 0), ("Hele landet", 0), ("Denmark", 0), (0, 0), (np.int64(1083), 1083),
])
def test_resolve_region(value, code):
    assert ls.dictionary.resolve_region(value) == code


def test_region_names_and_order():
    assert ls.dictionary.region_name(1085) == "Sjælland" and ls.dictionary.region_name(1085, "en") == "Region Zealand"
    assert ls.dictionary.region_name("hele landet") == "Landsplan"
    assert ls.dictionary.region_order() == [1081, 1082, 1083, 1084, 1085, 0]
    with pytest.raises(ValueError, match="unknown region 'Fyn'"):
        ls.dictionary.resolve_region("Fyn")
    with pytest.raises(ValueError, match="whole country"):
        ls.dictionary.load().region_code("Landsplan")


def test_rates_and_cohort_accept_any_region_spelling(copy):
    r = ls.Register(copy())
    a = ls.rates.annual_rates(r, regions=["Sjaelland", "hele landet"])
    assert set(a["region"]) == {"Sjælland", "Landsplan"}
    c = ls.cohort.build_cohort(r, region="sjaelland")
    assert set(c.data["region"]) == {1085} and c.parameters["region"] == "Sjælland"


def test_hive_partitioned_folder_reads_like_one_file(copy):
    reg = copy()
    one = ls.aggregate.strata_counts(ls.Register(reg), by=["region", "year", "sex", "age_band"])
    pop = pd.read_parquet(reg / "population.parquet")
    (reg / "population.parquet").unlink()
    pop.to_parquet(reg / "population.parquet", partition_cols=["year"], index=False)
    assert (reg / "population.parquet" / "year=2021").is_dir()
    parted = ls.aggregate.strata_counts(ls.Register(reg), by=["region", "year", "sex", "age_band"])
    pd.testing.assert_frame_equal(one, parted, check_dtype=False)
    # an error in a partition names the file it is in
    part = next((reg / "population.parquet" / "year=2016").glob("*.parquet"))
    df = pd.read_parquet(part)
    df["region"] = df["region"].astype("int64")
    df.loc[2, "region"] = 1086
    df.to_parquet(part, index=False)
    with pytest.raises(RegisterValidationError, match="code list region") as err:
        ls.Register(reg)
    assert str(part) in str(err.value) and 3 in list(err.value.rows.index)
