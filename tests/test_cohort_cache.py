"""The national cohort built once for a batch: a region's slice equals building it for the region, and the
disk cache gives back the same cohort and never a stale one."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

import lumbarstats as ls

ARGS = dict(index_modality="any", washout_days=365, outcome="surgery", period_split="2019-01-01")


@pytest.fixture(scope="module")
def register(tmp_path_factory):
    path = tmp_path_factory.mktemp("cohort_cache") / "reg"
    ls.synth.generate(path, scale=0.002, seed=4, verbose=False)
    return path


@pytest.mark.parametrize("region", ["Nordjylland", "Syddanmark", "hovedstaden", 1085])
def test_region_slice_equals_region_build(register, region):
    national = ls.cohort.build_cohort(register, **ARGS)
    direct = ls.cohort.build_cohort(register, region=region, **ARGS)
    sliced = ls.cohort.restrict_to_region(national, region)
    pd.testing.assert_frame_equal(sliced.data.reset_index(drop=True), direct.data.reset_index(drop=True))
    pd.testing.assert_frame_equal(sliced.exclusions.reset_index(drop=True),
                                  direct.exclusions.reset_index(drop=True))
    assert sliced.event_codes == direct.event_codes
    assert sliced.parameters == direct.parameters


def test_whole_country_slice_is_the_cohort(register):
    national = ls.cohort.build_cohort(register, **ARGS)
    assert ls.cohort.restrict_to_region(national, "Landsplan") is national


def test_slice_refuses_a_region_cohort_and_prior_surgery(register):
    with pytest.raises(ValueError, match="whole country"):
        ls.cohort.restrict_to_region(ls.cohort.build_cohort(register, region="Nordjylland", **ARGS), "Sjælland")
    with pytest.raises(ValueError, match="exclude_prior_surgery"):
        ls.cohort.restrict_to_region(ls.cohort.build_cohort(register, exclude_prior_surgery=True, **ARGS),
                                     "Sjælland")


def test_cached_cohort_equals_fresh_and_is_reused(register, tmp_path):
    fresh = ls.cohort.build_cohort(register, **ARGS)
    first = ls.cohort.cached_cohort(register, **ARGS)
    entries = list((register / ".lumbarstats" / "cache" / "cohort").iterdir())
    assert len(entries) == 1 and (entries[0] / "cohort.json").exists()
    second = ls.cohort.cached_cohort(register, **ARGS)
    for c in (first, second):
        pd.testing.assert_frame_equal(c.data, fresh.data)
        pd.testing.assert_frame_equal(c.exclusions, fresh.exclusions)
        assert c.event_codes == fresh.event_codes
    # other arguments: another entry, not the remembered one
    other = ls.cohort.cached_cohort(register, **{**ARGS, "washout_days": 180})
    assert len(list((register / ".lumbarstats" / "cache" / "cohort").iterdir())) == 2
    assert not other.exclusions.equals(fresh.exclusions)


def test_cached_cohort_never_returns_a_stale_cohort(register, tmp_path):
    copy = tmp_path / "reg"
    shutil.copytree(register, copy, ignore=shutil.ignore_patterns(".lumbarstats"))
    before = ls.cohort.cached_cohort(copy, **ARGS)
    # drop one person's examinations: the register's content changes, so the cohort must be rebuilt
    ex = pd.read_parquet(copy / "examinations.parquet")
    first_person = before.data["person_id"].iloc[0]
    ex[ex["person_id"] != first_person].to_parquet(copy / "examinations.parquet", index=False)
    after = ls.cohort.cached_cohort(copy, **ARGS)
    assert first_person not in set(after.data["person_id"])
    assert len(after.data) == len(before.data) - 1
