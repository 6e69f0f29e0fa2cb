"""The synthetic register knows the truth (issue 16, item 6): an intervention effect built into the register
(``synth.generate(intervention_effects=...)``) is recovered by the ITS the overview runs, from the register's
own monthly standardized series. The register is calibrated to the published annual rates, which have level
and slope changes of their own; so the built-in effect is the difference between the ITS of the register with
the effect and of the same register (same seed) without it. Coverage of the intervals is checked by the fast
seeded simulations in tests/test_interventions.py and tests/test_staggered.py; this test closes the loop
through a real register."""

import json

import numpy as np
import pytest

from lumbarstats import monthly, synth
from lumbarstats.trend import its_multi

EFFECT = 0.6  # -40 % on publicly financed MR in Nordjylland from January 2019


@pytest.fixture(scope="module")
def registers(tmp_path_factory):
    root = tmp_path_factory.mktemp("effect")
    effect = {"region": 1081, "modality": "MR", "start": "2019-01-01", "effect": EFFECT}
    with_effect = synth.generate(root / "with", scale=0.03, seed=11, intervention_effects=[effect], verbose=False)
    without = synth.generate(root / "without", scale=0.03, seed=11, verbose=False)
    return with_effect, without


def _level_change(reg, region: str) -> tuple[float, float]:
    """The ITS level change at January 2019 on the log scale, and its standard error."""
    s = monthly.monthly_standardized_series(reg, modality="MR", regions=[region])
    res = its_multi(s, time="month", events="events", population="expected_events",
                    interventions=[{"name": "built_in", "start": "2019-01", "slope_change": False}],
                    covid="indicators", seasonality={"harmonics": 2}, family="quasipoisson")
    row = res.summary.loc[[i for i in res.summary.index if i.startswith("level")][0]]
    est = np.log(row["rate_ratio"])
    se = (np.log(row["upper"]) - np.log(row["lower"])) / (2 * 1.959964)
    return est, se


def test_metadata_records_the_built_in_effect(registers):
    meta = json.loads((registers[0] / "metadata.json").read_text(encoding="utf-8"))
    (eff,) = meta["intervention_effects"]
    assert eff["region"] == 1081 and eff["modality"] == "MR" and eff["effect"] == pytest.approx(EFFECT)


def test_its_recovers_the_built_in_effect(registers):
    (e1, se1), (e0, _) = (_level_change(r, "Nordjylland") for r in registers)
    # same seed: the registers differ only by the thinned examinations after the start
    assert abs((e1 - e0) - np.log(EFFECT)) < 2 * se1, (np.exp(e1 - e0), se1)
    assert np.exp(e1) < 0.75  # and the effect is plain in the register that has it


def test_a_region_without_effect_is_untouched(registers):
    # its examinations are identical (its standardized series moves a little: the reference rates of the
    # expected events are pooled over all regions, Nordjylland's thinned months included)
    a, b = (monthly.monthly_standardized_series(r, modality="MR", regions=["Midtjylland"]) for r in registers)
    assert a["events"].tolist() == b["events"].tolist() and a["events"].sum() > 1000
