"""Log-linear count trend models and APC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls


def _series(rng=None, apc=5.0, n=10, pop=1e5, rate0=0.01):
    t = np.arange(2014, 2014 + n)
    mu = rate0 * pop * (1 + apc / 100) ** (t - t[0])
    ev = mu if rng is None else rng.poisson(mu)
    return pd.DataFrame({"year": t, "events": ev, "pop": np.full(n, pop)})


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.PerfectSeparationWarning")
def test_apc_exact_on_noise_free_data():
    out = ls.trend.apc(_series(apc=5.0), time="year", events="events", population="pop", family="poisson")
    assert out["apc"].iloc[0] == pytest.approx(5.0, rel=1e-8)
    assert out["lower"].iloc[0] < 5 < out["upper"].iloc[0]
    assert list(out.columns) == ["apc", "lower", "upper", "p_value", "conf_level", "method", "reason"]
    assert out["reason"].isna().all()


def test_apc_by_group_and_quasipoisson_scaling():
    rng = np.random.default_rng(1)
    a = _series(rng, apc=-4).assign(region="A")
    b = _series(rng, apc=3).assign(region="B")
    df = pd.concat([a, b])
    qp = ls.trend.apc(df, time="year", events="events", population="pop", by="region")
    po = ls.trend.apc(df, time="year", events="events", population="pop", by="region", family="poisson")
    assert list(qp["region"]) == ["A", "B"]
    assert qp["apc"].iloc[0] == pytest.approx(-4, abs=1.0) and qp["apc"].iloc[1] == pytest.approx(3, abs=1.0)
    np.testing.assert_allclose(qp["apc"], po["apc"])  # same point estimate
    # quasi-Poisson interval = Poisson interval widened by sqrt(Pearson dispersion) on the log scale
    fit = ls.trend.fit_trend(a, time="year", events="events", population="pop", family="quasipoisson")
    disp = fit.result.scale
    w_qp = np.log1p(qp["upper"].iloc[0] / 100) - np.log1p(qp["lower"].iloc[0] / 100)
    w_po = np.log1p(po["upper"].iloc[0] / 100) - np.log1p(po["lower"].iloc[0] / 100)
    assert w_qp == pytest.approx(w_po * np.sqrt(disp), rel=1e-8)


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.PerfectSeparationWarning")
def test_monthly_dates_give_annual_percent_change():
    months = pd.date_range("2015-01-01", periods=48, freq="MS")
    k = np.arange(48)
    df = pd.DataFrame({"month": months, "events": 1000 * 1.06 ** (k / 12), "pop": 1e5})
    out = ls.trend.apc(df, time="month", events="events", population="pop", family="poisson")
    assert out["apc"].iloc[0] == pytest.approx(6.0, rel=1e-6)


def test_negbin_runs():
    rng = np.random.default_rng(5)
    df = _series(rng, apc=2, n=15)
    out = ls.trend.apc(df, time="year", events="events", population="pop", family="negbin")
    assert "negative binomial" in out["method"].iloc[0]
    assert out["apc"].iloc[0] == pytest.approx(2, abs=1.5)


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.PerfectSeparationWarning")
def test_prediction_carries_offset():
    """Predictions at new times must use the new population (statsmodels drops an offset not passed)."""
    df = _series(apc=0.0, pop=1e5)
    fit = ls.trend.fit_trend(df, time="year", events="events", population="pop", family="poisson")
    p1 = fit.predict([2030], population=[1e5])
    p2 = fit.predict([2030], population=[3e5])
    assert p1["expected_events"].iloc[0] == pytest.approx(1000, rel=1e-6)
    assert p2["expected_events"].iloc[0] == pytest.approx(3000, rel=1e-6)
    with pytest.raises(ValueError, match="population"):
        fit.predict([2030])


def test_bad_input():
    df = _series()
    with pytest.raises(KeyError, match="popx"):
        ls.trend.apc(df, time="year", events="events", population="popx")
    with pytest.raises(ValueError, match="family"):
        ls.trend.apc(df, time="year", events="events", population="pop", family="binomial")
    with pytest.raises(ValueError, match="at least 3"):
        ls.trend.apc(df.head(2), time="year", events="events", population="pop")
    with pytest.raises(ValueError, match="repeated"):
        ls.trend.apc(pd.concat([df, df]), time="year", events="events", population="pop")
    with pytest.raises(ValueError, match="conf_level"):
        ls.trend.apc(df, time="year", events="events", population="pop", conf_level=95)
