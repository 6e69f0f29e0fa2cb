"""Bad registers: each mutation of a small valid register gives ONE clear error naming the file, the column,
the rule and the offending rows (row numbers in the file) — and nothing is written (the register folder is
unchanged; no remembered validation)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls
from lumbarstats.io import RegisterValidationError


@pytest.fixture(scope="session")
def valid_register(tmp_path_factory) -> Path:
    """A 0.2 % synthetic register (seed 4), validated once."""
    out = tmp_path_factory.mktemp("valid") / "reg"
    ls.synth.generate(out, scale=0.002, seed=4, verbose=False)
    ls.Register(out, cache_dir=tmp_path_factory.mktemp("cache"))
    shutil.rmtree(out / ls.register.STATE_DIR, ignore_errors=True)
    return out


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.blake2b(p.read_bytes(), digest_size=8).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# each mutation: (table, function(df) -> (df, row index changed or None), column, rule fragment)
def _set(col, value, row=7):
    def f(df):
        df = df.copy()
        if isinstance(df[col].dtype, pd.CategoricalDtype):
            df[col] = df[col].astype(object)
        if isinstance(value, float) and df[col].dtype.kind in "iu":
            df[col] = df[col].astype("float64")
        elif isinstance(value, str) and df[col].dtype.kind in "iuf":
            df[col] = df[col].astype(str).astype(object)
        elif value is None and df[col].dtype.kind in "iu":
            df[col] = df[col].astype("float64")
        df.loc[row, col] = value
        return df, row
    return f


def _drop(col):
    def f(df):
        return df.drop(columns=col), None
    return f


def _duplicate_nordjylland_2021(df):
    rows = df[(df["region"] == 1081) & (df["year"] == 2021)]
    return pd.concat([df, rows], ignore_index=True), int(rows.index[0])


def _modality_mismatch(df):
    df = df.copy()
    row = int(np.flatnonzero(df["procedure_code"].to_numpy() == "UXRE30")[0])
    df.loc[row, "modality"] = "MR"
    return df, row


def _text_dates(fmt):
    def f(df):
        df = df.copy()
        df["date"] = pd.to_datetime(df["date"]).dt.strftime(fmt)
        return df, 0
    return f


def _date(value, row=5):
    def f(df):
        df = df.copy()
        df["date"] = pd.to_datetime(df["date"])
        df.loc[row, "date"] = pd.Timestamp(value) if value is not None else pd.NaT
        df["date"] = df["date"].dt.date
        return df, row
    return f


def _empty(df):
    return df.iloc[0:0], None


CASES = {
    "duplicate person-year (Nordjylland 2021)": ("population", _duplicate_nordjylland_2021, "person_id, year",
                                                 "duplicate"),
    "unknown region code 1086": ("population", _set("region", 1086), "region", "code list region"),
    "fractional region": ("population", _set("region", 1081.5), "region", "whole number"),
    "text region": ("population", _set("region", "Nord"), "region", "found text"),
    "child (age 10)": ("population", _set("age", 10), "age", "adult"),
    "age 130": ("population", _set("age", 130), "age", "between 0 and 120"),
    "negative age": ("population", _set("age", -1), "age", "between 0 and 120"),
    "fractional age": ("population", _set("age", 45.5), "age", "whole number"),
    "fractional cci": ("population", _set("cci", 1.5), "cci", "whole number"),
    "cci 41": ("population", _set("cci", 41), "cci", "between 0 and 40"),
    "fractional person_id": ("population", _set("person_id", 1000003.5), "person_id", "whole number"),
    "negative person_id": ("population", _set("person_id", -4), "person_id", ">= 0"),
    "missing person_id": ("population", _set("person_id", None), "person_id", "not missing"),
    "population year 2030": ("population", _set("year", 2030), "year", "study years"),
    "population year 2013": ("population", _set("year", 2013), "year", "study years"),
    "text year": ("population", _set("year", "2021x"), "year", "found text"),
    "sex K": ("population", _set("sex", "K"), "sex", "code list sex"),
    "missing sex": ("population", _set("sex", None), "sex", "not missing"),
    "unknown education": ("population", _set("education", "phd"), "education", "code list education"),
    "missing employment": ("population", _set("employment", None), "employment", "not missing"),
    "industry 99": ("population", _set("industry", "99"), "industry", "code list industry"),
    "population without sex column": ("population", _drop("sex"), "sex", "required column is missing"),
    "empty population": ("population", _empty, None, "no data rows"),
    "examination dated 2030": ("examinations", _date("2030-06-01"), "date", "study years"),
    "examination dated 2013": ("examinations", _date("2013-12-31"), "date", "study years"),
    "missing examination date": ("examinations", _date(None), "date", "not missing"),
    "dd-mm-yyyy text dates": ("examinations", _text_dates("%d-%m-%Y"), "date", "ISO date"),
    "modality does not match procedure code": ("examinations", _modality_mismatch, "modality",
                                               "matches the procedure code"),
    "procedure code prefix UXME3": ("examinations", _set("procedure_code", "UXME3"), "procedure_code",
                                    "code list sks_spine_imaging_codes"),
    "lower-case procedure code": ("examinations", _set("procedure_code", "uxme30"), "procedure_code",
                                  "code list sks_spine_imaging_codes"),
    "payer offentlig": ("examinations", _set("payer", "offentlig"), "payer", "code list payer"),
    "modality PET": ("examinations", _set("modality", "PET"), "modality", "code list modality"),
    "missing examination person_id": ("examinations", _set("person_id", None), "person_id", "not missing"),
    "examinations without payer column": ("examinations", _drop("payer"), "payer", "required column is missing"),
    "unknown surgery code": ("surgery", _set("procedure_code", "KXYZ99", row=3), "procedure_code",
                             "code list sks_spine_surgery_codes"),
    "surgery dated 2030": ("surgery", _date("2030-01-02", row=3), "date", "study years"),
    "unknown exit type": ("exits", _set("exit_type", "moved"), "exit_type", "code list exit_type"),
    "missing exit date": ("exits", _date(None), "date", "not missing"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_register_is_refused_with_one_clear_error(case, valid_register, tmp_path, monkeypatch):
    monkeypatch.setenv("LUMBARSTATS_CACHE_DIR", str(tmp_path / "cache"))
    table, mutate, column, rule = CASES[case]
    reg = tmp_path / "reg"
    shutil.copytree(valid_register, reg)
    path = reg / f"{table}.parquet"
    df, row = mutate(pd.read_parquet(path))
    df.to_parquet(path, index=False)
    before = _snapshot(reg)
    with pytest.raises(RegisterValidationError) as err:
        ls.aggregate.strata_counts(reg, by=["region", "year"])
    e = err.value
    assert e.file == str(path) and str(path) in str(e)
    assert e.column == column, str(e)
    assert rule in e.rule, str(e)
    if row is not None:
        assert len(e.rows) >= 1 and row + 1 in list(e.rows.index), str(e)  # row numbers are 1-based in the file
        assert len(e.rows) <= 5 and e.n_failed >= 1
    assert _snapshot(reg) == before                      # nothing written into the register folder
    assert not (reg / ls.register.STATE_DIR).exists()    # a failed register is never remembered as valid
    assert not (tmp_path / "cache").exists()


def test_at_least_thirty_distinct_bad_inputs():
    assert len(CASES) >= 30


@pytest.mark.parametrize("missing", ["population", "examinations"])
def test_register_without_a_required_table(missing, valid_register, tmp_path):
    reg = tmp_path / "reg"
    shutil.copytree(valid_register, reg)
    (reg / f"{missing}.parquet").unlink()
    before = _snapshot(reg)
    with pytest.raises(FileNotFoundError, match=f"no {missing}.parquet.*lumbarstats synth"):
        ls.Register(reg)
    assert _snapshot(reg) == before


def test_missing_register_folder_is_not_created(tmp_path):
    target = tmp_path / "typo" / "synthetic"
    with pytest.raises(FileNotFoundError, match="does not exist.*lumbarstats synth"):
        ls.Register(target)
    with pytest.raises(FileNotFoundError):
        ls.aggregate.strata_counts(target, by=["year"])
    assert not (tmp_path / "typo").exists()


def test_a_file_is_not_a_register(tmp_path):
    f = tmp_path / "register.parquet"
    f.write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="is a file"):
        ls.Register(f)
