"""survival.fine_gray against R's cmprsk::crr / predict.crr on survival::mgus2 (progression vs death).

Expected values: tests/reference/cox_finegray.R (R 4.2.2, cmprsk 2.2-11, crr(gtol = 1e-10)); data
exported by tests/reference/export_datasets.R. Fine & Gray (1999), JASA 94:496-509.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lumbarstats import survival as sv

REF = Path(__file__).parent / "data" / "reference"


def _mgus2():
    m = pd.read_csv(REF / "mgus2.csv")
    m = m[m["mspike"].notna()].copy()
    m["etime"] = np.where(m["pstat"] == 0, m["futime"], m["ptime"])
    m["ev"] = np.where(m["pstat"] == 0, 2 * m["death"], 1)
    return m


@pytest.mark.parametrize("cause", [1, 2])
def test_fine_gray_matches_crr_coefficients_and_se(cause):
    fg = sv.fine_gray(_mgus2(), duration="etime", event="ev", covariates=["age", "sex", "mspike"],
                      event_of_interest=cause)
    s = fg.summary.set_index("term")
    exp = pd.read_csv(REF / "finegray_mgus2_expected.csv").query("cause == @cause").set_index("term")
    assert list(s.index) == list(exp.index) == ["age", "sex[M]", "mspike"]
    np.testing.assert_allclose(s["coef"], exp["coef"], rtol=1e-6)
    np.testing.assert_allclose(s["se"], exp["se"], rtol=1e-6)
    # the column contract of cox
    cox_cols = list(sv.cox(_mgus2(), duration="etime", event="ev", covariates=["age"]).summary.columns)
    assert list(fg.summary.columns) == cox_cols
    np.testing.assert_allclose(s["hr"], np.exp(exp["coef"]), rtol=1e-6)
    assert s["reason"].isna().all() and (s.loc["sex[M]", "reference"] == "F")


@pytest.mark.parametrize("cause", [1, 2])
def test_fine_gray_predicted_cif_matches_predict_crr(cause):
    fg = sv.fine_gray(_mgus2(), duration="etime", event="ev", covariates=["age", "sex", "mspike"],
                      event_of_interest=cause)
    exp = pd.read_csv(REF / "finegray_mgus2_cif_expected.csv").query("cause == @cause")
    profiles = exp.drop_duplicates("profile")[["age", "sex", "mspike"]]
    got = fg.predict_cif(profiles, times=sorted(exp["time"].unique()))
    np.testing.assert_allclose(got["cif"], exp["cif"], rtol=1e-6)
    assert list(got["profile"].unique()) == [0, 1, 2]


def test_fine_gray_html_repr_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    fg = sv.fine_gray(_mgus2(), duration="etime", event="ev", covariates=["age", "sex"])
    html = fg._repr_html_()
    assert "Fine" in html and "sex[M]" in html
    assert fg.plot() is not None


def test_fine_gray_that_cannot_be_estimated_gives_rows_with_a_reason():
    data = pd.read_csv(Path(__file__).parent / "data" / "survival" / "cohort_nordjylland_scale0002_seed4.csv")
    fg = sv.fine_gray(data, duration="duration", event="event",
                      covariates=["sex", "age_band", "education", "employment", "cci", "period"],
                      reference={"period": "before"})
    s = fg.summary
    assert len(s) > 0 and s["coef"].isna().all() and s["reason"].notna().all()
    cif = fg.predict_cif(data.head(2), times=[30, 365])
    assert cif["cif"].isna().all() and cif["reason"].notna().all()
    none = sv.fine_gray(data, duration="duration", event="event", covariates=["sex"], event_of_interest=9)
    assert "no events" in none.reason


def test_fine_gray_rejects_bad_input():
    m = _mgus2()
    with pytest.raises(KeyError, match="nosuch"):
        sv.fine_gray(m, duration="etime", event="ev", covariates=["nosuch"])
    with pytest.raises(ValueError, match="event_of_interest"):
        sv.fine_gray(m, duration="etime", event="ev", covariates=["age"], event_of_interest=0)
    with pytest.raises(ValueError, match="missing"):
        sv.fine_gray(m.assign(age=np.where(m.index == m.index[0], np.nan, m["age"])), duration="etime",
                     event="ev", covariates=["age"])


@pytest.mark.parametrize("cause", [1, 2])
def test_aalen_johansen_and_its_se_agree_with_r_survfit(cause):
    """The docstring once said the delta-method variance is not survfit's; on mgus2 they agree to 1e-12."""
    m = pd.read_csv(REF / "mgus2.csv")
    m["etime"] = np.where(m["pstat"] == 0, m["futime"], m["ptime"])
    m["ev"] = np.where(m["pstat"] == 0, 2 * m["death"], 1)
    exp = pd.read_csv(REF / "aalen_johansen_mgus2_expected.csv")
    got = sv.cumulative_incidence(m, duration="etime", event="ev", event_of_interest=cause, times=exp["time"])
    np.testing.assert_allclose(got["cif"], exp[f"cif_{cause}"], rtol=1e-10)
    np.testing.assert_allclose(got["se"], exp[f"se_{cause}"], rtol=1e-10)


@pytest.mark.parametrize("cause", [1, 2])
def test_running_sums_engine_equals_the_counting_process_fit(cause):
    """Beyond max_rows the counting-process expansion is skipped; the same likelihood is maximised from
    running sums. Both agree with each other and with crr."""
    kw = dict(duration="etime", event="ev", covariates=["age", "sex", "mspike"], event_of_interest=cause)
    cp = sv.fine_gray(_mgus2(), **kw)
    rs = sv.fine_gray(_mgus2(), max_rows=0, **kw)
    assert cp.engine == "statsmodels PHReg" and rs.engine == "running sums"
    np.testing.assert_allclose(rs.summary["coef"], cp.summary["coef"], rtol=1e-9)
    np.testing.assert_allclose(rs.summary["se"], cp.summary["se"], rtol=1e-9)
    exp = pd.read_csv(REF / "finegray_mgus2_expected.csv").query("cause == @cause")
    np.testing.assert_allclose(rs.summary["coef"], exp["coef"], rtol=1e-6)
    assert "running sums" in rs.summary["method"].iloc[0]


def test_fine_gray_on_a_large_cohort_stays_in_memory():
    """200,000 persons followed in days, 10 % competing events: the expansion would be tens of millions of
    rows; the default max_rows switches to running sums."""
    rng = np.random.default_rng(7)
    n = 200_000
    x = rng.integers(0, 2, n)
    t = rng.integers(1, 3650, n).astype(float)
    ev = rng.choice([0, 1, 2], size=n, p=[0.8, 0.1, 0.1])
    d = pd.DataFrame({"t": t, "ev": ev, "x": x})
    fg = sv.fine_gray(d, duration="t", event="ev", covariates=["x"])
    assert fg.reason is None and fg.engine == "running sums"
    assert abs(fg.summary["coef"].iloc[0]) < 0.1  # no effect was simulated


def test_fine_gray_falls_back_to_running_sums_when_statsmodels_refuses_the_rows(monkeypatch):
    """On a national cohort's sample, statsmodels refused the counting-process rows ("entry times may not
    occur after event or censoring times") and the whole region's run failed; the same partial likelihood
    is then maximised from running sums, and the estimates are crr's."""
    def refuse(rows):
        raise ValueError("entry times may not occur after event or censoring times")

    monkeypatch.setattr(sv, "_fit_fine_gray_rows", refuse)
    fg = sv.fine_gray(_mgus2(), duration="etime", event="ev", covariates=["age", "sex", "mspike"],
                      event_of_interest=1)
    assert fg.engine == "running sums" and fg.reason is None
    exp = pd.read_csv(REF / "finegray_mgus2_expected.csv").query("cause == 1").set_index("term")
    got = fg.summary.set_index("term")
    for term in exp.index:
        assert got.loc[term, "coef"] == pytest.approx(exp.loc[term, "coef"], rel=1e-6)
