"""Randomization inference and the wild cluster bootstrap with five regions (lumbarstats.trend.inference).

Reference for the wild cluster bootstrap: ``tests/reference/wcb_webb_enumerated.R`` (base R, the observed
CR1 t-statistic checked against ``sandwich::vcovCL(type = "HC1")``), all 6^5 = 7776 Webb weight vectors
enumerated, so the p-value is exact and seed-free. Its output (R 4.2.2, sandwich 3.0-2):

    effect=0.8 coef=0.7094626469 t=18.7202703143 t_sandwich=18.7202703143 p=0.0321502058 draws=7776
    effect=0.0 coef=-0.0905373531 t=-2.3889682283 t_sandwich=-2.3889682283 p=0.3731995885 draws=7776
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lumbarstats.trend import randomization_inference, staggered_did, wild_cluster_bootstrap
from lumbarstats.trend.inference import did_statistic, webb_weights
from lumbarstats.trend.staggered import simulate_staggered_panel

R_SCRIPT = Path(__file__).parent / "reference" / "wcb_webb_enumerated.R"
R_EXPECTED = {0.8: (0.7094626469, 18.7202703143, 0.0321502058), 0.0: (-0.0905373531, -2.3889682283, 0.3731995885)}


def deterministic_panel(effect: float) -> pd.DataFrame:
    """The R script's data: y = 10 + 0.5 i + 0.1 t + sin(1.7 (i+1)(t+1)) + effect [i = 0, t >= 12]."""
    i, t = np.meshgrid(np.arange(5), np.arange(24), indexing="ij")
    y = 10 + 0.5 * i + 0.1 * t + np.sin(1.7 * (i + 1) * (t + 1)) + effect * ((i == 0) & (t >= 12))
    return pd.DataFrame({"region": i.ravel(), "month": t.ravel(), "y": y.ravel()})


@pytest.mark.parametrize("effect", [0.8, 0.0])
def test_wcb_matches_r_enumeration(effect):
    coef, t, p = R_EXPECTED[effect]
    r = wild_cluster_bootstrap(deterministic_panel(effect), unit="region", time="month", outcome="y",
                               treated_unit=0, start=12)
    assert r.enumerated and r.n_draws == 6 ** 5
    assert r.estimate == pytest.approx(coef, abs=1e-9)
    assert r.t_stat == pytest.approx(t, abs=1e-8)
    assert r.p_value == pytest.approx(p, abs=1e-9)
    assert r.min_p_value == pytest.approx(2 / 7776)
    s = r.summary
    assert {"estimate", "p_value", "min_p_value", "note"} <= set(s.columns)


def test_wcb_same_from_a_statsmodels_model_and_first_treated():
    import statsmodels.formula.api as smf

    d = deterministic_panel(0.8)
    d["D"] = ((d["region"] == 0) & (d["month"] >= 12)).astype(float)
    fit = smf.ols("y ~ D + C(region) + C(month)", data=d).fit()
    r = wild_cluster_bootstrap(fit, param="D", cluster=d["region"])
    assert r.p_value == pytest.approx(R_EXPECTED[0.8][2], abs=1e-9)
    d["ft"] = np.where(d["region"] == 0, 12, 0)
    r2 = wild_cluster_bootstrap(d, unit="region", time="month", outcome="y", first_treated="ft")
    assert r2.p_value == pytest.approx(R_EXPECTED[0.8][2], abs=1e-9)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R not installed")
def test_r_script_still_gives_the_expected_values():
    out = subprocess.run(["Rscript", str(R_SCRIPT)], capture_output=True, text=True, timeout=300, check=True).stdout
    assert "effect=0.8 coef=0.7094626469 t=18.7202703143" in out and "p=0.0321502058" in out
    assert "p=0.3731995885" in out


def test_wcb_weights_min_p_and_the_plain_sentence():
    w = webb_weights()
    assert np.isclose(w.mean(), 0) and np.isclose((w ** 2).mean(), 1)
    d = deterministic_panel(0.8)
    rad = wild_cluster_bootstrap(d, unit="region", time="month", outcome="y", treated_unit=0, start=12,
                                 weights="rademacher")
    assert rad.n_draws == 32 and rad.min_p_value == pytest.approx(0.0625)
    assert rad.p_value == pytest.approx(0.0625)  # the data and their mirror are the most extreme of 32
    assert "cannot tell an effect from noise" in rad.note
    webb = wild_cluster_bootstrap(d, unit="region", time="month", outcome="y", treated_unit=0, start=12)
    assert "cannot tell" not in webb.note
    assert "Wild cluster bootstrap" in webb._repr_html_()
    drawn = wild_cluster_bootstrap(d, unit="region", time="month", outcome="y", treated_unit=0, start=12,
                                   B=999, seed=3, enumerate_all=False)
    again = wild_cluster_bootstrap(d, unit="region", time="month", outcome="y", treated_unit=0, start=12,
                                   B=999, seed=3, enumerate_all=False)
    assert not drawn.enumerated and drawn.min_p_value == pytest.approx(1 / 999)
    assert drawn.p_value == again.p_value
    assert drawn.p_value == pytest.approx(webb.p_value, abs=0.02)


def test_wildboottest_agrees_if_installed():
    wbt = pytest.importorskip("wildboottest.wildboottest")  # optional (not a declared dependency)
    import statsmodels.formula.api as smf

    d = deterministic_panel(0.8)
    d["D"] = ((d["region"] == 0) & (d["month"] >= 12)).astype(float)
    model = smf.ols("y ~ D + C(region) + C(month)", data=d)
    theirs = wbt.wildboottest(model, param="D", cluster=pd.Series(d["region"].to_numpy()), B=9999,
                          weights_type="webb", seed=1, impose_null=True, show=False)
    p_theirs = float(np.asarray(theirs["p-value"]).ravel()[0])
    assert p_theirs == pytest.approx(R_EXPECTED[0.8][2], abs=0.006)


def test_randomization_inference_enumerates_regions_and_starts():
    d = deterministic_panel(0.8)
    one = randomization_inference(d, unit="region", time="month", outcome="y", treated_unit=0, start=12)
    assert one.n_assignments == 5 and one.min_p_value == pytest.approx(0.2)
    assert one.p_value == pytest.approx(0.2)  # the treated region has the largest DiD of the five
    assert "cannot tell an effect from noise" in one.note
    many = randomization_inference(d, unit="region", time="month", outcome="y", treated_unit=0, start=12,
                                   admissible_starts=range(6, 19))
    assert many.n_assignments == 65 and many.min_p_value == pytest.approx(1 / 65)
    assert "cannot tell" not in many.note
    assert "Randomization inference" in many._repr_html_()
    # the vectorised default equals the plain statistic applied to every assignment
    def stat(panel, treated, start):
        return did_statistic(panel, unit="region", time="month", outcome="y", treated=treated, start=start)
    plain = randomization_inference(d, unit="region", time="month", outcome="y", treated_unit=0, start=12,
                                    admissible_starts=range(6, 19), statistic=stat)
    assert plain.estimate == pytest.approx(many.estimate)
    assert plain.p_value == pytest.approx(many.p_value)
    np.testing.assert_allclose(plain.distribution["statistic"], many.distribution["statistic"])
    assert many.estimate == pytest.approx(did_statistic(d, unit="region", time="month", outcome="y",
                                                        treated=[0], start=12))
    two = randomization_inference(d, unit="region", time="month", outcome="y", treated_unit=[0, 1], start=12)
    assert two.n_assignments == 10


def test_bad_input_is_named():
    d = deterministic_panel(0.0)
    with pytest.raises(ValueError, match="not in column 'region'"):
        randomization_inference(d, unit="region", time="month", outcome="y", treated_unit=9, start=12)
    with pytest.raises(ValueError, match="missing column"):
        randomization_inference(d, unit="region", time="month", outcome="rate", treated_unit=0, start=12)
    with pytest.raises(ValueError, match="weights"):
        wild_cluster_bootstrap(d, unit="region", time="month", outcome="y", treated_unit=0, start=12, weights="x")
    with pytest.raises(ValueError, match="treated_unit and start"):
        wild_cluster_bootstrap(d, unit="region", time="month", outcome="y")


def test_honest_with_five_regions_where_asymptotic_inference_is_not():
    """Seeded simulation, five regions (one treated from month 24, four never), 36 months of Poisson
    counts around a seasonal baseline. Under no effect (100 replications) the asymptotic CS p-value
    rejects far more often than 5 %, randomization inference (13 admissible starts x 5 regions = 65
    assignments) and the wild cluster bootstrap (Webb, 999 draws) do not; under a -20 % effect
    (40 replications) both still detect it."""
    rng = np.random.default_rng(16)
    kw = dict(unit="unit", time="month", outcome="log_rate")

    def run(effect, reps):
        rej = {"cs": 0, "ri": 0, "wcb": 0}
        for r in range(reps):
            d = simulate_staggered_panel(rng, starts=(24,), n_never=4, months=36, effect=effect)
            cs = staggered_did(d, first_treated="first_treated", **kw).aggregate("simple").overall
            ri = randomization_inference(d, treated_unit=0, start=24, admissible_starts=range(18, 31), **kw)
            wcb = wild_cluster_bootstrap(d, treated_unit=0, start=24, B=999, seed=r, **kw)
            rej["cs"] += cs["p_value"] <= 0.05
            rej["ri"] += ri.p_value <= 0.05
            rej["wcb"] += wcb.p_value <= 0.05
        return {k: v / reps for k, v in rej.items()}

    null = run(1.0, 100)  # this run: cs 0.48, ri 0.04, wcb 0.00
    assert null["cs"] > 0.15, null
    assert null["ri"] <= 0.08 and null["wcb"] <= 0.08, null
    alt = run(0.8, 40)  # this run: cs 1.00, ri 0.90, wcb 0.80 (WCR with one treated cluster is conservative)
    assert alt["ri"] >= 0.6 and alt["wcb"] >= 0.6, alt
