"""Tests of lumbarstats.standardize against independent reference results.

Sources of the reference numbers (each test cites its own):

* PHEindicatormethods (UKHSA, R), https://github.com/ukhsa-collaboration/PHEindicatormethods —
  test inputs tests/data/validation/phe_dsr_testdata.csv (copied from shared/validation) and phe_isr_refdata.csv (workbook
  tests/testthat/testdata_DSR_ISR.xlsx). The expected sheets of that workbook are binary and could not
  be read from here, so the expected numbers below were produced by running the package's own
  formulas (R/DSR.R ``phe_dsr`` at commit 1fffcf5, R/Byars.R, R/ISRatio.R and R/ISRate.R at commit
  093fd28, transcribed verbatim into an R 4.2.2 script) on those inputs. The package's testthat suite
  (tests/testthat/testpheDSRs.R, testISRs.R) asserts that these functions reproduce the workbook.
* PHEindicatormethods R/isr_sheet.csv (commit 39a8c9f): published worked sheet of reference rates
  ``li`` and expected counts ``Ei`` by age band for the same study counts.
* epitools 0.5-10.1 (R, Aragon), ``ageadjust.direct`` — Fay & Feuer gamma interval, run in R 4.2.2
  (Debian package r-cran-epitools) on the inputs below.
* SAS/STAT PROC STDRATE documentation Example "Comparing Directly Standardized Rates" (sample
  program SRATEX1, https://support.sas.com/documentation/onlinedoc/stat/ex_code/141/sratex1.html):
  the inputs (Alaska and Florida deaths and person-years, US 2000 standard), in
  tests/data/standardize/. Rates and ratios on them were computed with epitools and with
  RateRatioCI.R (P. Blanche 2018, lognormal and Fay 1999 F intervals).
* Fay & Feuer (1997) Table II data (Down's syndrome births, Michigan 1950–64, birth order 5+), as
  shipped in the examples of asht::wspoissonTest and dsrTest.
* R ``poisson.test`` (exact Poisson interval) for crude rates.

Agreement is required to 1e-6 relative unless the reference is printed with fewer digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lumbarstats.standardize as sd

VALIDATION = Path(__file__).parent / "data" / "validation"  # copied from shared/validation (README there)
HERE = Path(__file__).parent / "data" / "standardize"
RTOL = 1e-6


def _phe_long() -> tuple[pd.DataFrame, pd.DataFrame]:
    d = pd.read_csv(VALIDATION / "phe_dsr_testdata.csv")
    std = d[["ageband", "esp2013"]].rename(columns={"esp2013": "weight"})
    long = d.melt(id_vars=["ageband", "pop"], value_vars=["count_big", "count_small", "count_tiny"],
                  var_name="area", value_name="events")
    return long, std




# ----------------------------------------------------------------------------------------------
# PHEindicatormethods: DSR (Dobson) and ISR
# ----------------------------------------------------------------------------------------------

# phe_dsr(count, pop, stdpop = esp2013, multiplier = 100000), see module docstring for provenance.
PHE_DSR = {
    # area: (conf, total_count, total_pop, value, lowercl, uppercl)
    ("count_big", 0.95): (895, 8970, 10430.2479914694, 9717.70906798568, 11178.9409154793),
    ("count_big", 0.998): (895, 8970, 10430.2479914694, 9323.2878802199, 11620.5959995221),
    ("count_small", 0.95): (91, 8970, 1103.2120253001, 877.455767536709, 1367.08822272518),
    ("count_small", 0.998): (91, 8970, 1103.2120253001, 763.642035793988, 1530.03289482448),
}


@pytest.mark.parametrize("key", list(PHE_DSR))
def test_dobson_matches_phe_dsr(key):
    long, std = _phe_long()
    long = long.fillna({"events": 0})  # PHE's na.zero(): a missing count is treated as 0
    area, conf = key
    out = sd.direct(long, strata="ageband", standard=std, population="pop", by="area", per=100_000,
                    method="dobson", conf_level=conf)
    row = out.set_index("area").loc[area]
    count, pop, value, lo, hi = PHE_DSR[key]
    assert row["events"] == count and row["population"] == pop
    np.testing.assert_allclose([row["rate"], row["lower"], row["upper"]], [value, lo, hi], rtol=RTOL)
    assert row["method"] == "dobson" and pd.isna(row["reason"])


def test_dobson_small_count_suppressed_as_phe():
    # PHE: "dsr NA for total count < 10" -> count_tiny (9 events) has no value, with a reason;
    # the other groups in the same table are unaffected.
    long, std = _phe_long()
    out = sd.direct(long.fillna({"events": 0}), strata="ageband", standard=std, population="pop",
                    by="area", per=100_000, method="dobson").set_index("area")
    tiny = out.loc["count_tiny"]
    assert np.isnan(tiny["rate"]) and np.isnan(tiny["lower"]) and np.isnan(tiny["upper"])
    assert "fewer than 10 events" in tiny["reason"]
    assert np.isfinite(out.loc["count_big", "rate"])
    # with the PHE rule switched off the formula still matches PHE's unsuppressed value
    # (value 92.9122567587423, lowercl 38.3243074410304, uppercl 183.117818775186 from R/DSR.R)
    out0 = sd.direct(long.fillna({"events": 0}), strata="ageband", standard=std, population="pop",
                     by="area", per=100_000, method="dobson", min_events=0).set_index("area")
    np.testing.assert_allclose(out0.loc["count_tiny", ["rate", "lower", "upper"]].to_numpy(float),
                               [92.9122567587423, 38.3243074410304, 183.117818775186], rtol=RTOL)


def test_missing_count_is_an_error_not_a_zero():
    long, std = _phe_long()  # count_tiny has NA in band 10-14
    with pytest.raises(ValueError, match="'events'.*missing"):
        sd.direct(long, strata="ageband", standard=std, population="pop", by="area")


# calculate_ISRatio / calculate_ISRate (multiplier 100000) with refdata refcount/refpop.
PHE_ISR = {
    # (area, conf): (observed, expected, ratio, lower, upper, rate, rate_lower, rate_upper)
    ("count_big", 0.95): (895, 835.88356123117421, 1.07072329390203, 1.00171477125540, 1.14323328724990,
                          10011.13762209105698, 9365.91600297888544, 10689.09758291061735),
    ("count_big", 0.998): (895, 835.88356123117421, 1.07072329390203, 0.963515561961444, 1.18600704158763,
                           10011.1376220911, 9008.75786186550, 11089.0271853834),
    ("count_small", 0.95): (91, 835.88356123117421, 0.108866837704005, 0.0876504010182941,
                            0.133665763284189, 1017.89220515116, 819.521002506463, 1249.75926013832),
    ("count_small", 0.998): (91, 835.88356123117421, 0.108866837704005, 0.0769542552839211,
                             0.148979205104667, 1017.89220515116, 719.513290352824, 1392.93815089917),
    # 9 events: PHE switches to the exact Poisson interval below 10
    ("count_tiny", 0.95): (9, 835.88356123117421, 0.0107670498828137, 0.00492338082509577,
                           0.0204392145554997, 100.670657652312, 46.0330351330789, 191.104266590540),
    ("count_tiny", 0.998): (9, 835.88356123117421, 0.0107670498828137, 0.00293393065506827,
                            0.0271058965146902, 100.670657652312, 27.4319086255424, 253.436963521924),
}


@pytest.mark.parametrize("key", list(PHE_ISR))
def test_indirect_matches_phe_isratio_israte(key):
    long, _ = _phe_long()
    long = long.fillna({"events": 0})
    ref = pd.read_csv(VALIDATION / "phe_isr_refdata.csv").rename(columns={"refcount": "events", "refpop": "pop"})
    area, conf = key
    out = sd.indirect(long, ref, strata="ageband", population="pop", by="area", per=100_000,
                      method="byar", conf_level=conf).set_index("area").loc[area]
    exp = PHE_ISR[key]
    got = out[["observed", "expected", "ratio", "lower", "upper", "rate", "rate_lower", "rate_upper"]]
    np.testing.assert_allclose(got.to_numpy(float), exp, rtol=RTOL)


def test_indirect_expected_counts_match_phe_isr_sheet():
    # PHEindicatormethods R/isr_sheet.csv (commit 39a8c9f): obs, pop, refcount, refpop, li (= refcount/refpop)
    # and Ei (= li * pop), published to 9-10 significant digits.
    sheet = pd.DataFrame({
        "obs": [127, 25, 18, 21, 12, 27, 48, 27, 29, 32, 32, 34, 45, 65, 38, 68, 74, 82, 91],
        "pop": [636, 558, 609, 543, 384, 594, 669, 843, 660, 576, 606, 522, 426, 273, 300, 288, 153, 123, 207],
        "refcount": [10303, 2824, 3225, 3615, 3641, 3490, 3789, 3213, 3031, 2771, 3089, 3490, 3595, 4745,
                     5514, 7125, 5694, 6210, 5757],
        "refpop": [50520, 57173, 60213, 54659, 44345, 50128, 62163, 67423, 62899, 55463, 60479, 49974, 44140,
                   40888, 37239, 30819, 18136, 15325, 13918],
        "Ei": [129.7052257, 27.56182114, 32.61795626, 35.91256701, 31.52878566, 41.35533035, 40.77732735,
               40.17262655, 31.80432121, 28.7776716, 30.95180145, 36.45455637, 34.69574082, 31.68130014,
               44.42117135, 66.58230312, 48.03606087, 49.84208809, 85.62286248],
    })
    sheet["band"] = range(len(sheet))
    data = sheet.assign(cell=sheet["band"])[["cell", "band", "obs", "pop"]]
    ref = sheet[["band", "refcount", "refpop"]].rename(columns={"refcount": "obs", "refpop": "pop"})
    per_band = sd.indirect(data, ref, strata="band", events="obs", population="pop", by="cell")
    np.testing.assert_allclose(per_band["expected"], sheet["Ei"], rtol=2e-9)
    total = sd.indirect(data.drop(columns="cell"), ref, strata="band", events="obs", population="pop")
    np.testing.assert_allclose(total["expected"].iloc[0], sheet["Ei"].sum(), rtol=1e-8)
    assert total["observed"].iloc[0] == sheet["obs"].sum()


# ----------------------------------------------------------------------------------------------
# Fay–Feuer gamma interval: epitools::ageadjust.direct
# ----------------------------------------------------------------------------------------------

def test_gamma_matches_epitools_on_phe_data():
    # epitools 0.5-10.1: ageadjust.direct(count, pop, stdpop = esp2013) * 1e5
    expected = {
        "count_big": (9977.70345596433, 10430.24799146942, 9718.42596113853, 11188.10535122181),
        "count_small": (1014.492753623188, 1103.212025300104, 878.106349090636, 1377.130029362018),
    }
    long, std = _phe_long()
    long = long[long["area"] != "count_tiny"]
    out = sd.direct(long, strata="ageband", standard=std, population="pop", by="area", per=100_000,
                    method="gamma").set_index("area")
    for area, vals in expected.items():
        got = out.loc[area, ["crude_rate", "rate", "lower", "upper"]].to_numpy(float)
        np.testing.assert_allclose(got, vals, rtol=RTOL)


def test_gamma_matches_epitools_fay_feuer_table2():
    # Fay & Feuer (1997) Table II data; epitools ageadjust.direct(xfive, nfive, stdpop = ntotal) * 1e5
    # -> crude 167.1141864136166, adj 75.5290074452568, lci 67.7021204176466, uci 188.3001727277758
    df = pd.DataFrame({
        "age": ["<20", "20-24", "25-29", "30-34", "35-39", "40+"],
        "events": [0, 8, 63, 112, 262, 295],
        "population": [327, 30666, 123419, 149919, 104088, 34392],
    })
    std = pd.DataFrame({"age": df["age"], "weight": [319933, 931318, 786511, 488235, 237863, 61313]})
    out = sd.direct(df, strata="age", standard=std, per=1e5)
    np.testing.assert_allclose(out.loc[0, ["crude_rate", "rate", "lower", "upper"]].to_numpy(float),
                               [167.1141864136166, 75.5290074452568, 67.7021204176466, 188.3001727277758],
                               rtol=RTOL)


def _sas_example():
    data = pd.read_csv(HERE / "sas_stdrate_example1.csv")
    us = pd.read_csv(HERE / "sas_stdrate_us2000.csv")
    return data, us


def test_gamma_matches_epitools_sas_alaska_florida():
    # epitools ageadjust.direct(deaths, pyears, stdpop = US 2000) * 1000
    data, us = _sas_example()
    out = sd.direct(data, strata=["sex", "age"], standard=us, events="deaths", population="pyears",
                    by="state", per=1000).set_index("state")
    np.testing.assert_allclose(out.loc["Alaska", ["crude_rate", "rate", "lower", "upper"]].to_numpy(float),
                               [4.66398269668800, 8.06928437791577, 7.75040681829926, 8.39948324708984],
                               rtol=RTOL)
    np.testing.assert_allclose(out.loc["Florida", ["crude_rate", "rate", "lower", "upper"]].to_numpy(float),
                               [10.39676964744863, 7.73418612556330, 7.69594501915730, 7.77259482930191],
                               rtol=RTOL)


# ----------------------------------------------------------------------------------------------
# rate ratios: lognormal (delta method) and Fay (1999) F interval
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, lo, hi", [
    # RateRatioCI.R (P. Blanche): log.Wald.CI.DSR.Ratio and F.dist.CI.DSR.Ratio, Alaska vs Florida
    ("lognormal", 1.00219946340902, 1.08614207527095),
    ("fay", 1.00178749900986, 1.08635931102791),
])
def test_rate_ratio_sas_alaska_vs_florida(method, lo, hi):
    data, us = _sas_example()
    out = sd.rate_ratio(data, strata=["sex", "age"], group="state", reference="Florida", standard=us,
                        events="deaths", population="pyears", method=method)
    assert len(out) == 1 and out.loc[0, "state"] == "Alaska"
    np.testing.assert_allclose(out.loc[0, ["ratio", "lower", "upper"]].to_numpy(float),
                               [1.04332689269591, lo, hi], rtol=RTOL)
    np.testing.assert_allclose(out.loc[0, "rate"], 8.06928437791577, rtol=RTOL)
    np.testing.assert_allclose(out.loc[0, "reference_rate"], 7.73418612556330, rtol=RTOL)
    np.testing.assert_allclose(out.loc[0, "pct_change"], 100 * (1.04332689269591 - 1), rtol=1e-5)


@pytest.mark.parametrize("method, lo, hi", [
    ("lognormal", 0.470155860820216, 1.898789701731985),
    ("fay", 0.422487668769359, 1.983107564587765),
])
def test_rate_ratio_sparse_counts_match_ratecatioci(method, lo, hi):
    # sparse counts with a zero stratum; reference values from RateRatioCI.R (P. Blanche) in R 4.2.2
    df = pd.DataFrame({
        "age": list("abcde") * 2,
        "area": ["x"] * 5 + ["y"] * 5,
        "events": [1, 0, 3, 5, 2, 4, 2, 6, 9, 8],
        "population": [1200, 900, 800, 600, 300, 2500, 2100, 1700, 1500, 900],
    })
    std = pd.DataFrame({"age": list("abcde"), "weight": [3000, 2800, 2500, 2100, 1200]})
    out = sd.rate_ratio(df, strata="age", group="area", reference="y", standard=std, method=method)
    np.testing.assert_allclose(out.loc[0, ["ratio", "lower", "upper"]].to_numpy(float),
                               [0.944842371369089, lo, hi], rtol=RTOL)


def test_rate_ratio_overlap_refused_or_adjusted():
    data, us = _sas_example()
    total = (data.groupby(["sex", "age"], as_index=False)[["deaths", "pyears"]].sum().assign(state="Both"))
    both = pd.concat([data, total], ignore_index=True)
    kw = dict(strata=["sex", "age"], group="state", reference="Both", standard=us, events="deaths",
              population="pyears")
    with pytest.raises(ValueError, match="not independent"):
        sd.rate_ratio(both, reference_contains_group=True, **kw)
    indep = sd.rate_ratio(both, **kw).set_index("state")
    adj = sd.rate_ratio(both, reference_contains_group=True, overlap="adjust", **kw).set_index("state")
    # a subgroup is positively correlated with the total: the adjusted interval is narrower
    for st in ("Alaska", "Florida"):
        assert adj.loc[st, "upper"] - adj.loc[st, "lower"] < indep.loc[st, "upper"] - indep.loc[st, "lower"]
        assert adj.loc[st, "ratio"] == pytest.approx(indep.loc[st, "ratio"])
    # direct check of the covariance formula for Alaska vs Both
    w = us.set_index(["sex", "age"])["weight"]
    a = data[data.state == "Alaska"].set_index(["sex", "age"]).reindex(w.index)
    t = total.set_index(["sex", "age"]).reindex(w.index)
    wn = w / w.sum()
    y1, y0 = (wn * a.deaths / a.pyears).sum(), (wn * t.deaths / t.pyears).sum()
    v1, v0 = (wn**2 * a.deaths / a.pyears**2).sum(), (wn**2 * t.deaths / t.pyears**2).sum()
    cov = (wn**2 * a.deaths / (a.pyears * t.pyears)).sum()
    se = np.sqrt(v1 / y1**2 + v0 / y0**2 - 2 * cov / (y1 * y0))
    np.testing.assert_allclose(adj.loc["Alaska", "upper"], y1 / y0 * np.exp(1.959963984540054 * se), rtol=1e-9)
    with pytest.raises(ValueError, match="lognormal"):
        sd.rate_ratio(both, reference_contains_group=True, overlap="adjust", method="fay", **kw)


def test_rate_ratio_with_by_and_missing_reference_level():
    df = pd.DataFrame({
        "region": ["A"] * 4 + ["B"] * 2,
        "period": ["p0", "p0", "p1", "p1", "p1", "p1"],
        "age": ["y", "o"] * 3,
        "events": [10, 20, 15, 25, 5, 9],
        "population": [1000, 800, 1000, 820, 400, 300],
    })
    out = sd.rate_ratio(df, strata="age", group="period", reference="p0", by="region")
    a = out.set_index("region").loc["A"]
    assert a["period"] == "p1" and np.isfinite(a["ratio"])
    b = out.set_index("region").loc["B"]
    assert np.isnan(b["ratio"]) and "absent" in b["reason"]


# ----------------------------------------------------------------------------------------------
# crude rates
# ----------------------------------------------------------------------------------------------

def test_crude_rate_exact_and_byar():
    df = pd.DataFrame({"g": ["small", "big"], "events": [9, 895], "population": [8970, 8970]})
    out = sd.crude_rate(df, by="g", per=1000).set_index("g")
    # R: poisson.test(9, 8970)$conf.int * 1000 (exact, PHE uses it below 10 events)
    np.testing.assert_allclose(out.loc["small", ["lower", "upper"]].to_numpy(float),
                               [0.45879298744463, 1.90466036247705], rtol=RTOL)
    # Byar's limits (Breslow & Day 1987) for 895 events, computed in R with PHE's byars_lower/upper
    np.testing.assert_allclose(out.loc["big", ["lower", "upper"]].to_numpy(float),
                               [93.3463668154776, 106.5339923594720], rtol=RTOL)
    ex = sd.crude_rate(df, by="g", per=1000, method="exact").set_index("g")
    # R: poisson.test(895, 8970)$conf.int * 1000
    np.testing.assert_allclose(ex.loc["big", ["lower", "upper"]].to_numpy(float),
                               [93.3464283010976, 106.5339401463408], rtol=RTOL)
    assert list(out.columns) == ["events", "population", "rate", "lower", "upper", "conf_level",
                                 "method", "reason"]


# ----------------------------------------------------------------------------------------------
# Tiwari modified gamma, other methods
# ----------------------------------------------------------------------------------------------

def test_tiwari_same_lower_shorter_upper_and_equal_when_weights_equal():
    data, us = _sas_example()
    kw = dict(strata=["sex", "age"], standard=us, events="deaths", population="pyears", by="state")
    g = sd.direct(data, method="gamma", **kw)
    t = sd.direct(data, method="tiwari", **kw)
    np.testing.assert_allclose(t["lower"], g["lower"], rtol=1e-12)
    assert (t["upper"] < g["upper"]).all()
    # population proportional to the standard: every w_s / N_s is equal, so mean == max
    df = pd.DataFrame({"age": ["a", "b", "c"], "events": [3, 0, 7], "population": [200, 400, 600]})
    std = pd.DataFrame({"age": ["a", "b", "c"], "weight": [1, 2, 3]})
    g1 = sd.direct(df, strata="age", standard=std, method="gamma")
    t1 = sd.direct(df, strata="age", standard=std, method="tiwari")
    np.testing.assert_allclose(t1[["lower", "upper"]], g1[["lower", "upper"]], rtol=1e-12)


def test_lognormal_and_normal_formulas():
    data, us = _sas_example()
    kw = dict(strata=["sex", "age"], standard=us, events="deaths", population="pyears", by="state")
    ln = sd.direct(data, method="lognormal", **kw)
    nm = sd.direct(data, method="normal", **kw)
    se = np.sqrt(ln["variance"])
    z = 1.959963984540054
    np.testing.assert_allclose(ln["lower"], ln["rate"] * np.exp(-z * se / ln["rate"]), rtol=1e-12)
    np.testing.assert_allclose(nm["upper"], nm["rate"] + z * se, rtol=1e-12)


def test_zero_events_gamma_upper_is_finite():
    df = pd.DataFrame({"age": ["a", "b"], "events": [0, 0], "population": [100, 300]})
    std = pd.DataFrame({"age": ["a", "b"], "weight": [1, 1]})
    out = sd.direct(df, strata="age", standard=std, per=1)
    # y = 0: lower 0, upper = Gamma(1, scale = w_M) quantile = -w_M log(alpha/2), w_M = 0.5/100
    assert out.loc[0, "rate"] == 0 and out.loc[0, "lower"] == 0
    np.testing.assert_allclose(out.loc[0, "upper"], -0.005 * np.log(0.025), rtol=1e-10)
    ln = sd.direct(df, strata="age", standard=std, method="lognormal")
    assert np.isnan(ln.loc[0, "upper"]) and "no events" in ln.loc[0, "reason"]


# ----------------------------------------------------------------------------------------------
# standards: default, ESP2013 helper
# ----------------------------------------------------------------------------------------------

def test_esp2013_weights_report_bands():
    bands = ["18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+"]
    w = sd.esp2013_weights(bands).set_index("age_band")["weight"]
    # ESP2013 (Eurostat 2013): 18-29 = 2/5 * 5500 + 6000 + 6000; 80+ = 2500 + 1500 + 1000
    assert w["18-29"] == pytest.approx(14200)
    assert w["30-39"] == pytest.approx(13500)
    assert w["80+"] == pytest.approx(5000)
    assert w.sum() == pytest.approx(100_000 - 5000 - 5500 - 5500 - 3 * 1100)
    ws = sd.esp2013_weights(bands, sexes=["M", "F"])
    assert len(ws) == 14 and ws["weight"].sum() == pytest.approx(w.sum())
    assert ws.set_index(["sex", "age_band"]).loc[("F", "18-29"), "weight"] == pytest.approx(7100)
    full = sd.esp2013_weights(sd.ESP2013["age_band"])
    np.testing.assert_allclose(full["weight"], sd.ESP2013["weight"])
    with pytest.raises(ValueError, match="90\\+"):
        sd.esp2013_weights(["80-94"])
    with pytest.raises(ValueError, match="overlap"):
        sd.esp2013_weights(["18-29", "25-39"])
    with pytest.raises(ValueError, match="parse"):
        sd.esp2013_weights(["young"])


def test_direct_esp2013_by_name_equals_explicit_standard():
    rng = np.random.default_rng(1)
    bands = ["18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+"]
    df = pd.DataFrame([(s, b, r) for r in ["A", "B"] for s in ["F", "M"] for b in bands],
                      columns=["sex", "age_band", "region"])
    df["population"] = rng.integers(1000, 5000, len(df))
    df["events"] = rng.integers(0, 60, len(df))
    a = sd.direct(df, strata=["sex", "age_band"], standard="esp2013", by="region")
    b = sd.direct(df, strata=["sex", "age_band"], standard=sd.esp2013_weights(bands, sexes=["F", "M"]),
                  by="region")
    pd.testing.assert_frame_equal(a, b)


def test_default_standard_is_pooled_population():
    df = pd.DataFrame({"g": ["a", "a", "b", "b"], "age": ["y", "o"] * 2, "events": [5, 30, 8, 20],
                       "population": [1000, 500, 3000, 200]})
    a = sd.direct(df, strata="age", by="g")
    std = pd.DataFrame({"age": ["o", "y"], "weight": [700, 4000]})
    b = sd.direct(df, strata="age", by="g", standard=std)
    pd.testing.assert_frame_equal(a, b)
    # the pooled population standard reproduces the crude rate of the pooled data
    total = sd.direct(df.assign(g="all").groupby(["g", "age"], as_index=False)[["events", "population"]].sum(),
                      strata="age", by="g")
    np.testing.assert_allclose(total["rate"], total["crude_rate"], rtol=1e-12)
    assert total.loc[0, "events"] == 63
    with pytest.raises(ValueError, match="more than one row"):
        sd.direct(df, strata="age")  # two groups but no by: duplicate strata


# ----------------------------------------------------------------------------------------------
# input errors and per-group NaN
# ----------------------------------------------------------------------------------------------

def _small():
    return pd.DataFrame({"g": ["a", "a", "b", "b"], "age": ["y", "o", "y", "o"],
                         "events": [1, 2, 3, 4], "population": [10, 20, 30, 40]})


def test_errors_name_the_problem():
    std = pd.DataFrame({"age": ["y", "o"], "weight": [1, 1]})
    df = _small()
    with pytest.raises(ValueError, match="negative.*\\[1\\]"):
        sd.direct(df.assign(events=[1, -2, 3, 4]), strata="age", by="g", standard=std)
    with pytest.raises(ValueError, match="events > 0 with population 0.*\\[2\\]"):
        sd.direct(df.assign(population=[10, 20, 0, 40]), strata="age", by="g", standard=std)
    with pytest.raises(ValueError, match="unknown to the standard"):
        sd.direct(df.assign(age=["y", "old", "y", "o"]), strata="age", by="g", standard=std)
    with pytest.raises(ValueError, match="more than one row for the same stratum.*\\[0, 1\\]"):
        sd.direct(df.assign(age=["y", "y", "y", "o"]), strata="age", by="g", standard=std)
    with pytest.raises(ValueError, match="'population'.*missing"):
        sd.direct(df.assign(population=[10, np.nan, 30, 40]), strata="age", by="g", standard=std)
    with pytest.raises(ValueError, match="all standard weights are zero"):
        sd.direct(df, strata="age", by="g", standard=std.assign(weight=0))
    with pytest.raises(KeyError, match="weight"):
        sd.direct(df, strata="age", by="g", standard=std.rename(columns={"weight": "w"}))
    with pytest.raises(ValueError, match="method"):
        sd.direct(df, strata="age", by="g", standard=std, method="wald")
    with pytest.raises(ValueError, match="conf_level"):
        sd.direct(df, strata="age", by="g", standard=std, conf_level=95)
    with pytest.raises(KeyError, match="lacks column"):
        sd.direct(df, strata="sex", by="g", standard=std)


def test_zero_population_stratum_gives_nan_for_that_group_only():
    std = pd.DataFrame({"age": ["y", "o", "x"], "weight": [1, 1, 0]})
    df = _small()
    df = df[~((df.g == "b") & (df.age == "o"))]  # group b lacks stratum "o" -> zero population there
    out = sd.direct(df, strata="age", by="g", standard=std).set_index("g")
    assert np.isfinite(out.loc["a", "rate"]) and pd.isna(out.loc["a", "reason"])
    assert np.isnan(out.loc["b", ["rate", "lower", "upper"]].to_numpy(float)).all()
    assert "zero population" in out.loc["b", "reason"] and "age=o" in out.loc["b", "reason"]
    # stratum "x" has weight 0 and no data at all: it does not matter
    np.testing.assert_allclose(out.loc["a", "rate"], (0.5 * 1 / 10 + 0.5 * 2 / 20) * 1000)


def test_output_columns_contract():
    std = pd.DataFrame({"age": ["y", "o"], "weight": [1, 1]})
    out = sd.direct(_small(), strata="age", by="g", standard=std)
    assert list(out.columns) == ["g", "events", "population", "crude_rate", "rate", "lower", "upper",
                                 "variance", "conf_level", "method", "reason"]
    ref = pd.DataFrame({"age": ["y", "o"], "events": [10, 30], "population": [100, 100]})
    ind = sd.indirect(_small(), ref, strata="age", by="g")
    for c in ["g", "observed", "expected", "ratio", "lower", "upper", "rate", "rate_lower", "rate_upper",
              "conf_level", "method"]:
        assert c in ind.columns
    rr = sd.rate_ratio(_small(), strata="age", group="g", reference="a", standard=std)
    for c in ["g", "rate", "reference_rate", "ratio", "lower", "upper", "pct_change", "pct_lower",
              "pct_upper", "method"]:
        assert c in rr.columns


def test_indirect_reference_as_rates_and_exact_method():
    ref_counts = pd.DataFrame({"age": ["y", "o"], "events": [10, 30], "population": [100, 100]})
    ref_rates = pd.DataFrame({"age": ["y", "o"], "rate": [0.1, 0.3], "population": [100, 100]})
    a = sd.indirect(_small(), ref_counts, strata="age", by="g")
    b = sd.indirect(_small(), ref_rates, strata="age", by="g")
    pd.testing.assert_frame_equal(a, b)
    # group a: observed 3, expected 10*0.1 + 20*0.3 = 7; exact limits chi2(0.025, 6)/2 / 7
    ex = sd.indirect(_small(), ref_counts, strata="age", by="g", method="exact").set_index("g")
    assert ex.loc["a", "expected"] == pytest.approx(7.0)
    from scipy import stats
    assert ex.loc["a", "lower"] == pytest.approx(stats.chi2.ppf(0.025, 6) / 2 / 7, rel=1e-12)
    assert ex.loc["a", "upper"] == pytest.approx(stats.chi2.ppf(0.975, 8) / 2 / 7, rel=1e-12)
    no_pop = sd.indirect(_small(), ref_rates.drop(columns="population"), strata="age", by="g")
    assert no_pop["rate"].isna().all() and no_pop["ratio"].notna().all()
    with pytest.raises(ValueError, match="unknown to the reference"):
        sd.indirect(_small(), ref_counts[ref_counts.age == "y"], strata="age", by="g")
