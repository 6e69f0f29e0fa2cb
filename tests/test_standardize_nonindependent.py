"""Directly standardized rates for non-independent events (``direct(..., event_frequency=...)``).

Reference: PHEindicatormethods (UKHSA, R), ``calculate_dsr(data, x, n, stdpop, independent_events =
FALSE, eventfreq, ageband)``, https://github.com/ukhsa-collaboration/PHEindicatormethods. ``x`` is
the number of persons with ``eventfreq`` events; the package computes, per frequency ``f``, the DSR
variance ``1 / sum(stdpop)^2 * sum(x (stdpop / n)^2)``, multiplies it by ``f^2``, sums over
frequencies (``custom_vardsr``) and uses that in the Dobson interval of the total event count.

The expected numbers below come from that R code run on ``tests/data/standardize/
phe_nonindependent_persons.csv`` (provenance and the reason they are not read from the package's
binary test workbook: ``tests/data/standardize/README_nonindependent.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lumbarstats.standardize as sd

HERE = Path(__file__).parent / "data" / "standardize"
VALIDATION = Path(__file__).parent / "data" / "validation"
RTOL = 1e-9

# PHEindicatormethods calculate_dsr(persons, pop, stdpop = esp2013, multiplier = 100000,
# independent_events = FALSE, eventfreq = eventfreq, ageband = ageband), grouped by area, R 4.2.2:
# (area, confidence): (total_count, total_pop, value, lowercl, uppercl, vardsr [per person^2])
PHE_NONIND = {
    ("big", 0.95): (895, 8970, 10430.2479914694, 9609.713974659629, 11292.41564582196, 1.81100307269558e-05),
    ("big4", 0.95): (895, 8970, 10430.2479914694, 9412.380804252907, 11499.76143913469, 2.78681561490295e-05),
    ("small", 0.95): (91, 8970, 1103.2120253001, 876.511546261557, 1368.19187992646, 1.48699602650056e-06),
    ("big", 0.998): (895, 8970, 10430.2479914694, 9155.512820384398, 11801.00964428355, 1.81100307269558e-05),
    ("big4", 0.998): (895, 8970, 10430.2479914694, 8848.947184364615, 12130.66903351089, 2.78681561490295e-05),
    ("small", 0.998): (91, 8970, 1103.2120253001, 762.221790740001, 1531.81806503272, 1.48699602650056e-06),
}
# Same R code, independent events, on the collapsed event counts (area big; equals PHE_DSR count_big
# in tests/test_standardize.py): value, lowercl, uppercl at 95%.
PHE_IND_BIG = (10430.2479914694, 9717.709067985685, 11178.94091547925)


def _persons() -> tuple[pd.DataFrame, pd.DataFrame]:
    d = pd.read_csv(HERE / "phe_nonindependent_persons.csv")
    std = d[["ageband", "esp2013"]].drop_duplicates().rename(columns={"esp2013": "weight"})
    return d, std


def _nonind(d, std, **kw):
    args = dict(strata="ageband", standard=std, events="persons", population="pop", by="area",
                per=100000, method="dobson", event_frequency="eventfreq")
    args.update(kw)
    return sd.direct(d, **args).set_index("area")


# ----------------------------------------------------------------------------------------------
# the reference data set and PHEindicatormethods' numbers
# ----------------------------------------------------------------------------------------------

def test_input_file_is_the_documented_split_of_phe_test_counts():
    src = pd.read_csv(VALIDATION / "phe_dsr_testdata.csv")
    d, _ = _persons()
    for area, col, split in (("big", "count_big", ((3, 0.1), (2, 0.2))),
                             ("small", "count_small", ((3, 0.1), (2, 0.2))),
                             ("big4", "count_big", ((4, 0.3), (2, 0.3)))):
        obs = src[col].to_numpy(float)
        sub = d[d["area"] == area]
        rest = obs.copy()
        for f, share in split:
            n_f = np.floor(obs * share / f)
            got = sub[sub["eventfreq"] == f].set_index("ageband").loc[src["ageband"], "persons"].to_numpy()
            np.testing.assert_array_equal(got, n_f)
            rest -= f * n_f
        got1 = sub[sub["eventfreq"] == 1].set_index("ageband").loc[src["ageband"], "persons"].to_numpy()
        np.testing.assert_array_equal(got1, rest)
        # events per age band are the PHE test counts
        ev = (sub["eventfreq"] * sub["persons"]).groupby(sub["ageband"]).sum().loc[src["ageband"]].to_numpy()
        np.testing.assert_array_equal(ev, obs)


@pytest.mark.parametrize("key", sorted(PHE_NONIND))
def test_matches_phe_calculate_dsr_nonindependent(key):
    area, conf = key
    d, std = _persons()
    out = _nonind(d, std, conf_level=conf).loc[area]
    count, pop, value, lower, upper, vardsr = PHE_NONIND[key]
    assert out["events"] == count
    assert out["population"] == pop
    np.testing.assert_allclose(out[["rate", "lower", "upper"]].to_numpy(float), [value, lower, upper], rtol=RTOL)
    np.testing.assert_allclose(out["variance"], vardsr * 100000**2, rtol=RTOL)
    assert out["conf_level"] == conf
    assert out["method"] == "dobson, with variance adjusted for non-independent events"
    assert pd.isna(out["reason"])


def test_rate_unchanged_interval_wider_than_independent():
    """PHE vignette: 'output DSR values match those calculated earlier ... but confidence intervals are wider'."""
    d, std = _persons()
    ni = _nonind(d, std)
    collapsed = (d.assign(events=d["eventfreq"] * d["persons"])
                 .groupby(["area", "ageband"], as_index=False).agg(events=("events", "sum"), pop=("pop", "first")))
    ind = sd.direct(collapsed, strata="ageband", standard=std, population="pop", by="area", per=100000,
                    method="dobson").set_index("area")
    np.testing.assert_allclose(ind.loc["big", ["rate", "lower", "upper"]].to_numpy(float), PHE_IND_BIG, rtol=RTOL)
    pd.testing.assert_series_equal(ni["rate"], ind["rate"])
    pd.testing.assert_series_equal(ni["events"], ind["events"])
    pd.testing.assert_series_equal(ni["crude_rate"], ind["crude_rate"])
    assert (ni["variance"] > ind["variance"]).all()
    assert (ni["lower"] < ind["lower"]).all() and (ni["upper"] > ind["upper"]).all()


# ----------------------------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------------------------

def _random_cells(rng, n_groups=4, n_strata=6):
    rows = []
    for g in range(n_groups):
        for s in range(n_strata):
            rows.append(dict(region=f"R{g}", sex="F" if s % 2 else "M", age_band=f"{20 + 10 * (s // 2)}-{29 + 10 * (s // 2)}",
                             events=int(rng.poisson(15)), population=int(rng.integers(500, 5000))))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("method", ["dobson", "normal", "lognormal"])
@pytest.mark.parametrize("standard", ["default", "esp2013"])
def test_all_frequencies_one_equals_independent_exactly(method, standard):
    rng = np.random.default_rng(20240517)
    d = _random_cells(rng)
    d.loc[3, "events"] = 0
    kw = dict(strata=["sex", "age_band"], by="region", method=method, standard=standard)
    ind = sd.direct(d, **kw)
    ni = sd.direct(d.assign(freq=1), event_frequency="freq", **kw)
    assert (ni["method"] == f"{method}, with variance adjusted for non-independent events").all()
    pd.testing.assert_frame_equal(ni.drop(columns="method"), ind.drop(columns="method"), check_exact=True)


def test_default_standard_counts_each_cell_population_once():
    """The long layout repeats the population on every frequency row; the pooled standard must not."""
    rng = np.random.default_rng(7)
    d = _random_cells(rng)
    # frequency-2 rows only for women: pooling the long rows naively would double the women's weight
    women = d[d["sex"] == "F"]
    long = pd.concat([d.assign(freq=1), women.assign(freq=2, events=women["events"] // 4)])
    pooled = d.groupby(["sex", "age_band"], as_index=False)["population"].sum().rename(columns={"population": "weight"})
    kw = dict(strata=["sex", "age_band"], by="region", event_frequency="freq", method="dobson")
    a = sd.direct(long, standard="default", **kw)
    b = sd.direct(long, standard=pooled, **kw)
    pd.testing.assert_frame_equal(a, b)


def test_absent_frequency_rows_equal_zero_person_rows():
    d, std = _persons()
    sparse = d[d["persons"] > 0]
    assert len(sparse) < len(d)
    pd.testing.assert_frame_equal(_nonind(sparse, std), _nonind(d, std))


def test_variance_matches_simulated_variance_of_the_dsr():
    """With persons P_fs ~ Poisson(mu_fs), var(DSR) = sum_s (w_s/N_s)^2 sum_f f^2 mu_fs.

    ``direct`` evaluated at P = mu must return that variance; a Monte Carlo of the DSR estimator
    agrees with it and not with the independent-events variance.
    """
    w = np.array([0.2, 0.5, 0.3])
    N = np.array([800.0, 2000.0, 600.0])
    freqs = np.array([1, 2, 5])
    mu = np.array([[30.0, 50.0, 20.0], [6.0, 10.0, 8.0], [1.0, 3.0, 2.0]])  # freq x stratum
    d = pd.DataFrame([dict(stratum=s, f=int(freqs[i]), persons=mu[i, s], population=N[s])
                      for i in range(3) for s in range(3)])
    std = pd.DataFrame({"stratum": [0, 1, 2], "weight": w})
    out = sd.direct(d, strata="stratum", standard=std, events="persons", event_frequency="f", per=1,
                    method="normal").iloc[0]
    rng = np.random.default_rng(11)
    P = rng.poisson(mu, size=(200_000, 3, 3))
    dsr = np.einsum("rfs,f,s->r", P, freqs.astype(float), w / N)
    emp = dsr.var()
    se_emp = emp * np.sqrt(2.0 / (len(dsr) - 1))  # approximate standard error of a sample variance
    assert abs(out["variance"] - emp) < 4 * se_emp
    ind_var = np.sum((w / N) ** 2 * (freqs[:, None] * mu).sum(axis=0))
    assert abs(ind_var - emp) > 20 * se_emp
    np.testing.assert_allclose(out["rate"], np.sum(w / N * (freqs[:, None] * mu).sum(axis=0)), rtol=1e-12)


def test_min_events_counts_events_not_persons():
    d = pd.DataFrame({"g": ["a", "b"], "stratum": ["x", "x"], "freq": [3, 3], "persons": [4, 3],
                      "population": [100, 100]})
    out = sd.direct(d, strata="stratum", by="g", events="persons", event_frequency="freq",
                    method="dobson").set_index("g")
    assert out.loc["a", "events"] == 12 and np.isfinite(out.loc["a", "rate"])
    assert out.loc["b", "events"] == 9 and np.isnan(out.loc["b", "rate"])
    assert "fewer than 10 events" in out.loc["b", "reason"]


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["gamma", "tiwari"])
def test_gamma_methods_refused(method):
    d, std = _persons()
    with pytest.raises(ValueError, match="implemented for methods"):
        _nonind(d, std, method=method)


@pytest.mark.parametrize("bad, match", [(np.nan, "missing or infinite"), (0, "whole numbers >= 1"),
                                        (1.5, "whole numbers >= 1"), ("two", "must be numeric")])
def test_bad_event_frequency_values(bad, match):
    d, std = _persons()
    d["eventfreq"] = d["eventfreq"].astype(object)
    d.loc[5, "eventfreq"] = bad
    with pytest.raises(ValueError, match=match):
        _nonind(d, std)


def test_population_must_be_repeated_identically():
    d, std = _persons()
    d.loc[1, "pop"] += 1
    with pytest.raises(ValueError, match="differs between the event-frequency rows"):
        _nonind(d, std)


def test_duplicate_frequency_rows_refused():
    d, std = _persons()
    with pytest.raises(ValueError, match="more than one row for the same group x stratum x event frequency"):
        _nonind(pd.concat([d, d.iloc[[0]]]), std)


def test_missing_or_misplaced_frequency_column():
    d, std = _persons()
    with pytest.raises(KeyError, match="nofreq"):
        _nonind(d, std, event_frequency="nofreq")
    with pytest.raises(ValueError, match="must not be in by or strata"):
        _nonind(d, std, event_frequency="ageband")


def test_negative_persons_refused():
    d, std = _persons()
    d.loc[2, "persons"] = -1
    with pytest.raises(ValueError, match="negative values"):
        _nonind(d, std)
