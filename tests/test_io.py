"""Loading and validation: every bad-input case gives one clear error naming file, column, rule and rows."""

from __future__ import annotations

import pandas as pd
import pytest

import lumbarstats as ls
from lumbarstats.io import RegisterValidationError


def _population(n=6) -> pd.DataFrame:
    return pd.DataFrame({
        "person_id": range(1, n + 1), "year": [2020] * n, "region": [1081, 1082, 1083, 1084, 1085, 1083][:n],
        "sex": ["M", "F"] * (n // 2), "age": [18, 30, 45, 60, 75, 90][:n],
        "education": ["primary", "upper_secondary", "short_medium_higher", "long_higher", "unknown", "primary"][:n],
        "employment": ["employed", "unemployed", "sickness_benefit", "disability", "pension", "other"][:n],
        "industry": ["01", None, None, None, None, None][:n], "cci": [0, 1, 2, 3, 5, 7][:n],
    })


def _exams() -> pd.DataFrame:
    return pd.DataFrame({
        "person_id": [1, 2, 3], "date": ["2020-03-01", "2021-05-02", "2023-12-31"],
        "modality": ["MR", "XRAY", "MR"], "procedure_code": ["UXME30", "UXRE30", "UXME30"],
        "payer": ["public", "private", "public"],
    })


def _write(tmp_path, df, name="population.csv", **kw):
    p = tmp_path / name
    df.to_csv(p, index=False, **kw)
    return p


def test_valid_population_and_exams_load(tmp_path):
    pop = ls.io.load_register_table(_write(tmp_path, _population()), "population")
    assert pop["age"].dtype.kind == "i" and len(pop) == 6
    ex = ls.io.load_register_table(_write(tmp_path, _exams(), "ex.csv"), "examinations")
    assert str(ex["date"].dtype).startswith("datetime64")


def _expect(path, table, column, rule_part, row=None):
    with pytest.raises(RegisterValidationError) as err:
        ls.io.load_register_table(path, table)
    e = err.value
    assert str(path) in str(e)
    assert e.column == column, str(e)
    assert rule_part in e.rule, str(e)
    if row is not None:
        assert row in list(e.rows.index), str(e)
    return e


def test_missing_column(tmp_path):
    _expect(_write(tmp_path, _population().drop(columns="sex")), "population", "sex", "missing")


def test_unknown_region_code(tmp_path):
    df = _population()
    df.loc[2, "region"] = 1090
    e = _expect(_write(tmp_path, df), "population", "region", "code list region", row=3)
    assert "1090" in str(e)


@pytest.mark.parametrize("age", [-1, 121])
def test_age_out_of_range(tmp_path, age):
    df = _population()
    df.loc[4, "age"] = age
    _expect(_write(tmp_path, df), "population", "age", "between 0 and 120", row=5)


def test_duplicate_person_year(tmp_path):
    df = pd.concat([_population(), _population().iloc[[1]]], ignore_index=True)
    e = _expect(_write(tmp_path, df), "population", "person_id, year", "duplicate")
    assert set(e.rows.index) == {2, 7}


def test_exam_date_outside_study_years(tmp_path):
    df = _exams()
    df.loc[1, "date"] = "2013-12-31"
    _expect(_write(tmp_path, df, "ex.csv"), "examinations", "date", "within the study years", row=2)


def test_unknown_procedure_code(tmp_path):
    df = _exams()
    df.loc[0, "procedure_code"] = "UXME3"  # a prefix of a real code is not a code
    _expect(_write(tmp_path, df, "ex.csv"), "examinations", "procedure_code", "code list", row=1)


def test_text_in_numeric_column(tmp_path):
    df = _population().astype({"age": object})
    df.loc[3, "age"] = "sixty"
    e = _expect(_write(tmp_path, df), "population", "age", "number", row=4)
    assert "sixty" in str(e)


def test_wrong_encoding(tmp_path):
    df = _population()
    df["education"] = df["education"].astype(object)
    p = tmp_path / "latin1.csv"
    text = df.to_csv(index=False).replace("primary", "grundsk\u00f8le", 1)
    p.write_bytes(text.encode("latin-1"))
    with pytest.raises(RegisterValidationError) as err:
        ls.io.read_table(p)
    assert "not valid utf-8" in str(err.value) and "latin-1" in str(err.value) and str(p) in str(err.value)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    with pytest.raises(RegisterValidationError, match="empty"):
        ls.io.load_register_table(p, "population")
    p2 = tmp_path / "header_only.csv"
    p2.write_text("person_id,year,region,sex,age,education,employment,industry,cci\n", encoding="utf-8")
    with pytest.raises(RegisterValidationError, match="no data rows"):
        ls.io.load_register_table(p2, "population")


def test_error_lists_at_most_five_rows(tmp_path):
    df = pd.concat([_population()] * 4, ignore_index=True)
    df["person_id"] = range(len(df))
    df["age"] = 200
    e = _expect(_write(tmp_path, df), "population", "age", "between")
    assert len(e.rows) == 5 and e.n_failed == len(df)


def test_sas_xport_round_trip(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    df = _population().drop(columns="industry")
    df["industry"] = ""
    p = tmp_path / "bef.xpt"
    pyreadstat.write_xport(df, str(p))
    back = ls.io.read_table(p)
    assert list(back["age"]) == list(df["age"])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with ls.io.atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_validate_register_on_synthetic(small_register):
    counts = ls.io.validate_register(small_register)
    assert counts["population"] > 400_000 and counts["examinations"] > 10_000


def test_paths_with_quotes_work_in_queries(tmp_path, small_register):
    import shutil

    odd = tmp_path / "o'brien" / "reg"
    shutil.copytree(small_register, odd)
    assert ls.io.validate_register(odd, tables=("population",))["population"] > 0
    assert "person-years" in ls.synth.summarize(odd)
    assert ls.aggregate.strata_counts(odd, by=["year"])["events"].sum() > 0


def test_error_row_numbers_count_from_the_file_start(tmp_path):
    df = pd.concat([_population()] * 50, ignore_index=True)
    df["person_id"] = range(len(df))
    df.loc[150, "age"] = 200
    p = tmp_path / "population.parquet"
    df.to_parquet(p)
    with pytest.raises(RegisterValidationError) as err:
        ls.io.validate_register(tmp_path, tables=("population",), batch_rows=100)
    assert list(err.value.rows.index) == [151]


def test_atomic_outputs_are_readable_like_normal_files(tmp_path):
    import os
    import stat

    target = tmp_path / "t.csv"
    ls.io.write_csv(pd.DataFrame({"a": [1]}), target)
    normal = tmp_path / "n.csv"
    normal.write_text("a\n1\n", encoding="utf-8")
    if os.name == "posix":
        assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(normal.stat().st_mode)
