"""Streaming synthetic register (issue 17, item 3) and built-in intervention effects (issue 16, item 6).

- the same seed gives the same rows in every table whatever the layout (one file per table, or
  ``<table>.parquet/`` folders partitioned by region x birth-cohort band of any width);
- register folders may be partitioned datasets (``<table>.parquet/``, ``<table>/``, hive ``key=value/``
  folders with Spark's ``_SUCCESS`` / ``.crc`` files) and every consumer reads them alike;
- an intervention effect is built in exactly where it is declared (thinning of the region's public
  examinations of the modality after the start) and is written to ``metadata.json``.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import lumbarstats as ls

TABLES = ("population", "examinations", "surgery", "exits")


def _rows(folder, name) -> pd.DataFrame:
    """A table's rows (any layout) in a canonical order, codes as text."""
    df = pd.read_parquet(folder / f"{name}.parquet")
    df = df.astype({c: str for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])})
    return df.sort_values(list(df.columns), kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory):
    """The conftest's small register (scale 0.01, seed 7) again, in two partitioned layouts."""
    root = tmp_path_factory.mktemp("stream")
    a = ls.synth.generate(root / "band5", scale=0.01, seed=7, layout="folder", cohort_band=5, verbose=False)
    b = ls.synth.generate(root / "band20", scale=0.01, seed=7, layout="folder", cohort_band=20, verbose=False)
    return a, b


def test_same_seed_same_rows_at_any_partitioning(small_register, partitioned):
    a, b = partitioned
    assert (small_register / "population.parquet").is_file()  # small scales: one file per table
    parts_a = sorted(p.name for p in (a / "examinations.parquet").iterdir())
    parts_b = sorted(p.name for p in (b / "examinations.parquet").iterdir())
    assert len(parts_a) > len(parts_b) > 5 and "part-1083-1950.parquet" in parts_a
    for name in TABLES:
        one = _rows(small_register, name)
        assert len(one) > 0
        pd.testing.assert_frame_equal(one, _rows(a, name))
        pd.testing.assert_frame_equal(one, _rows(b, name))
    meta = json.loads((a / "metadata.json").read_text(encoding="utf-8"))
    assert meta["layout"] == "folder" and meta["partitioning"]["cohort_band"] == 5
    assert meta["counts"] == json.loads((small_register / "metadata.json").read_text(encoding="utf-8"))["counts"]


def test_partitioned_register_reads_like_one_file(small_register, partitioned):
    by = ["region", "year", "sex", "age_band"]
    one = ls.aggregate.strata_counts(ls.Register(small_register), by=by)
    parted = ls.aggregate.strata_counts(ls.Register(partitioned[1]), by=by)
    pd.testing.assert_frame_equal(one, parted, check_dtype=False)
    # the generator's own readers (independent expectation, summary) read the folders too
    e = ls.synth.expected_standardized_rates(partitioned[1])
    assert np.allclose(e["expected_rate"], e["published_rate"], rtol=0, atol=1e-9)
    assert "person-years" in ls.synth.summarize(partitioned[1])


def test_spark_style_hive_folders(small_register, partitioned, tmp_path):
    """``<table>/`` folders with ``key=value/`` partitions, ``_SUCCESS`` and ``.crc`` files, as Spark writes them."""
    reg = tmp_path / "spark"
    shutil.copytree(partitioned[1], reg)
    shutil.rmtree(reg / ".lumbarstats", ignore_errors=True)
    for name, key in (("examinations", "payer"), ("population", "year")):
        table = pads.dataset(reg / f"{name}.parquet").to_table()
        shutil.rmtree(reg / f"{name}.parquet")
        pads.write_dataset(table.cast(table.schema), reg / name, format="parquet", partitioning=[key],
                           partitioning_flavor="hive", basename_template="part-00000-{i}.snappy.parquet")
        (reg / name / "_SUCCESS").write_bytes(b"")
        first = next((reg / name).rglob("*.parquet"))
        (first.parent / f".{first.name}.crc").write_bytes(b"crc")
    assert (reg / "examinations" / "payer=public").is_dir() and (reg / "population" / "year=2016").is_dir()
    by = ["region", "year", "month"]
    one = ls.aggregate.strata_counts(ls.Register(small_register), by=by)
    spark = ls.aggregate.strata_counts(ls.Register(reg), by=by)
    pd.testing.assert_frame_equal(one, spark, check_dtype=False)


EFFECTS = (
    {"region": 1083, "modality": "MR", "start": "2019-01-01", "effect": 0.7},
    ls.synth.InterventionEffect(region=1081, modality="XRAY", start="2020-01-01", end="2023-01-01",
                                phase_in_months=6, effect=1.5),
)


@pytest.fixture(scope="module")
def with_effects(tmp_path_factory):
    return ls.synth.generate(tmp_path_factory.mktemp("effects") / "r", scale=0.01, seed=7,
                             intervention_effects=EFFECTS, verbose=False)


def _monthly(reg, modality):
    c = ls.aggregate.strata_counts(ls.Register(reg), by=["region", "year", "month"], modality=modality)
    return c.set_index(["region", "year", "month"])["events"]


def test_effect_thins_the_region_after_the_start(small_register, with_effects):
    base, eff = _monthly(small_register, "MR"), _monthly(with_effects, "MR")
    r = base.index.get_level_values("region")
    after = base.index.get_level_values("year") >= 2019
    # before the start and in every other region: the same register
    assert (eff[(r != 1083) | ~after] == base[(r != 1083) | ~after]).all()
    # after: each counted examination kept with probability 0.7 (binomial thinning)
    n = base[(r == 1083) & after].sum()
    ratio = eff[(r == 1083) & after].sum() / n
    before = base[(r == 1083) & ~after].sum()
    assert eff[(r == 1083) & ~after].sum() == before
    assert n > 500 and abs(ratio - 0.7) < 4 * np.sqrt(0.7 * 0.3 / n), ratio
    # the monthly after/before ratio against the register without the effect
    m_eff = eff[(r == 1083) & after].mean() / eff[(r == 1083) & ~after].mean()
    m_base = base[(r == 1083) & after].mean() / base[(r == 1083) & ~after].mean()
    assert abs(m_eff / m_base - 0.7) < 4 * np.sqrt(0.7 * 0.3 / n)


def test_effect_above_one_with_phase_in_and_end(small_register, with_effects):
    base, eff = _monthly(small_register, "XRAY"), _monthly(with_effects, "XRAY")
    r = base.index.get_level_values("region")
    y = base.index.get_level_values("year")
    m = base.index.get_level_values("month")
    full = (r == 1081) & (((y == 2020) & (m >= 8)) | (y.isin([2021, 2022])))
    n = base[full].sum()
    ratio = eff[full].sum() / n
    assert abs(ratio - 1.5) < 4 * np.sqrt(0.5 / n) + 0.01, ratio  # Poisson(0.5) extras per examination
    assert (eff[(r != 1081) | (y < 2020) | (y == 2023)] == base[(r != 1081) | (y < 2020) | (y == 2023)]).all()
    early = (r == 1081) & (y == 2020) & (m <= 2)  # the phase-in: far less than the full effect
    assert 1.0 <= eff[early].sum() / base[early].sum() < 1.3


def test_effects_written_to_metadata_and_deterministic(small_register, with_effects, tmp_path):
    meta = json.loads((with_effects / "metadata.json").read_text(encoding="utf-8"))
    assert meta["intervention_effects"] == [
        {"region": 1083, "modality": "MR", "start": "2019-01-01", "end": None, "phase_in_months": 0.0, "effect": 0.7},
        {"region": 1081, "modality": "XRAY", "start": "2020-01-01", "end": "2023-01-01", "phase_in_months": 6.0,
         "effect": 1.5}]
    assert "already contain" in meta["intervention_note"]
    base_meta = json.loads((small_register / "metadata.json").read_text(encoding="utf-8"))
    assert base_meta["intervention_effects"] == [] and base_meta["config"]["intervention_effects"] == []
    # population, surgery and exits do not change with the effects
    for name in ("population", "surgery", "exits"):
        assert pq.read_table(with_effects / f"{name}.parquet").equals(pq.read_table(small_register / f"{name}.parquet"))
    # thinned examinations are a subset of the register without the effect
    ex_b, ex_e = _rows(small_register, "examinations"), _rows(with_effects, "examinations")
    pop = pd.read_parquet(small_register / "population.parquet", columns=["person_id", "region"]).drop_duplicates()
    in_1083 = ex_e.merge(pop, on="person_id")["region"].eq(1083).to_numpy()
    kept = ex_e[in_1083].merge(ex_b, how="left", indicator=True)
    assert (kept["_merge"] == "both").all()
    # same seed and effects: identical files
    again = ls.synth.generate(tmp_path / "again", scale=0.01, seed=7, intervention_effects=EFFECTS, verbose=False)
    assert (again / "examinations.parquet").read_bytes() == (with_effects / "examinations.parquet").read_bytes()


def test_effect_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="modality"):
        ls.synth.generate(tmp_path / "x", scale=0.002, intervention_effects=[
            {"region": 1083, "modality": "CT", "start": "2019-01-01", "effect": 0.7}])
    with pytest.raises(ValueError, match="not a date"):
        ls.synth.normalize_effects([{"region": 1083, "modality": "MR", "start": "2019-13-01", "effect": 0.7}])
    with pytest.raises(ValueError, match="unknown field"):
        ls.synth.normalize_effects([{"region": 1083, "modality": "MR", "start": "2019-01-01", "factor": 0.7}])
    with pytest.raises(ValueError, match="cohort_band"):
        ls.synth.generate(tmp_path / "y", scale=0.002, layout="folder", cohort_band=7)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_layout_switch_in_place(tmp_path):
    """Regenerating a file-layout register as folders (and back) in the same folder replaces the toolkit's files."""
    out = ls.synth.generate(tmp_path / "r", scale=0.002, seed=3, verbose=False)
    notes = out / "notes.txt"
    notes.write_text("keep me", encoding="utf-8")
    ls.synth.generate(out, scale=0.002, seed=3, layout="folder", force=True, verbose=False)
    assert (out / "population.parquet").is_dir() and notes.read_text(encoding="utf-8") == "keep me"
    ls.Register(out)
    ls.synth.generate(out, scale=0.002, seed=3, layout="file", force=True, verbose=False)
    assert (out / "population.parquet").is_file()
    ls.Register(out)
