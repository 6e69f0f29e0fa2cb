"""Shared helpers for the trend models: input checks, time handling, GLM families, Fourier terms.

Internal module; the public functions live in :mod:`lumbarstats.trend`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

FAMILIES = ("poisson", "quasipoisson", "negbin")


def require_columns(data: pd.DataFrame, columns: Iterable[str | None], *, what: str = "data") -> None:
    """Raise a KeyError naming every requested column that ``data`` lacks."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(data).__name__}")
    wanted = [c for c in columns if c is not None]
    missing = [c for c in wanted if c not in data.columns]
    if missing:
        raise KeyError(
            f"{what} is missing column(s) {missing}; available columns: {list(data.columns)}"
        )


def check_conf_level(conf_level: float) -> float:
    conf_level = float(conf_level)
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be between 0 and 1 (e.g. 0.95), got {conf_level}")
    return conf_level


def z_value(conf_level: float) -> float:
    return float(stats.norm.ppf(0.5 + conf_level / 2))


def check_counts(values: pd.Series, name: str) -> np.ndarray:
    """Events must be finite and non-negative; return them as float array."""
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        rows = list(values.index[bad][:5])
        raise ValueError(f"column {name!r} must hold non-negative finite counts; bad rows (index): {rows}")
    return arr


def check_positive(values: pd.Series, name: str) -> np.ndarray:
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        rows = list(values.index[bad][:5])
        raise ValueError(f"column {name!r} must be positive and finite; bad rows (index): {rows}")
    return arr


# -- time -----------------------------------------------------------------------------------------
def is_datelike(series: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(series) or isinstance(series.dtype, pd.PeriodDtype)


def to_month_period(values) -> pd.PeriodIndex:
    """Timestamps, Periods or 'YYYY-MM' strings -> monthly PeriodIndex."""
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    idx = pd.Index(values)
    if isinstance(idx, pd.PeriodIndex):
        return idx.asfreq("M")
    return pd.PeriodIndex(pd.to_datetime(idx), freq="M")


def time_index(series: pd.Series) -> tuple[np.ndarray, str]:
    """Numeric time used in the models and its unit.

    Integer/float time is used as it is (unit "time unit", e.g. year). Timestamps/Periods are turned
    into a month count (months since year 0), unit "month".
    """
    if is_datelike(series):
        per = to_month_period(series)
        return (per.year.to_numpy() * 12 + per.month.to_numpy() - 1).astype(float), "month"
    if pd.api.types.is_numeric_dtype(series):
        arr = series.to_numpy(dtype=float)
        if not np.isfinite(arr).all():
            raise ValueError("the time column holds missing or infinite values")
        return arr, "time unit"
    # strings like "2018-01"
    try:
        per = to_month_period(series)
    except (ValueError, TypeError) as err:
        raise ValueError(
            "time column must be numeric (e.g. year) or dates/monthly periods; "
            f"could not read values such as {series.iloc[0]!r}"
        ) from err
    return (per.year.to_numpy() * 12 + per.month.to_numpy() - 1).astype(float), "month"


def time_point(value, *, datelike: bool) -> float:
    """Convert one time value (e.g. ``intervention_start``) to the numeric scale of :func:`time_index`."""
    if datelike:
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
            raise ValueError(
                f"the time column holds dates, so the time point must be a month such as '2018-01', got {value!r}"
            )
        try:
            per = to_month_period([value])[0]
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"cannot read {value!r} as a month; give e.g. '2018-01' or pd.Timestamp('2018-01-01')"
            ) from err
        return float(per.year * 12 + per.month - 1)
    if isinstance(value, str | pd.Timestamp | pd.Period):
        raise ValueError(f"the time column is numeric, so the time point must be a number, got {value!r}")
    return float(value)


def month_number(series: pd.Series) -> np.ndarray:
    """Calendar month 1..12 of a date-like column."""
    return to_month_period(series).month.to_numpy().astype(float)


def fourier_terms(period_values: np.ndarray, harmonics: int, period_length: float) -> pd.DataFrame:
    """Sine/cosine pairs as in ``tsModel::harmonic(x, nfreq, period)`` (Gasparrini's tsModel package)."""
    if harmonics < 1:
        raise ValueError("seasonality harmonics must be >= 1")
    ang = 2 * np.pi * np.asarray(period_values, dtype=float) / float(period_length)
    cols = {}
    for k in range(1, harmonics + 1):
        cols[f"cos{k}"] = np.cos(k * ang)
        cols[f"sin{k}"] = np.sin(k * ang)
    return pd.DataFrame(cols)


# -- GLM fitting ----------------------------------------------------------------------------------
def fit_count_glm(y, X: pd.DataFrame, offset, *, family: str, hac_lags: int | None = None, groups=None):
    """Fit a log-link count GLM. Returns (statsmodels results, description of the method).

    - ``poisson``: maximum likelihood, scale 1.
    - ``quasipoisson``: Poisson estimating equations, dispersion = Pearson X2/df (as R's quasipoisson).
    - ``negbin``: negative binomial (NB2); alpha estimated by ML (statsmodels discrete NegativeBinomial),
      then the GLM is refitted with that alpha so prediction/covariance code is shared.
    ``hac_lags``: Newey–West (Bartlett kernel) HAC covariance with that many lags (Newey & West 1987);
    with ``groups`` (panel data sorted by group then time) the panel version ("hac-panel").
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    y = np.asarray(y, dtype=float)
    offset = np.asarray(offset, dtype=float)
    if family == "negbin":
        alpha = _negbin_alpha(y, X, offset)
        fam = sm.families.NegativeBinomial(alpha=max(alpha, 1e-8))
        method = f"negative binomial GLM (NB2, alpha={alpha:.4g})"
    else:
        fam = sm.families.Poisson()
        method = "Poisson GLM" if family == "poisson" else "quasi-Poisson GLM (Pearson dispersion)"
    model = sm.GLM(y, X, family=fam, offset=offset)
    if hac_lags is not None:
        if int(hac_lags) < 0:
            raise ValueError("hac_lags must be a non-negative integer")
        if groups is None:
            res = model.fit(cov_type="HAC", cov_kwds={"maxlags": int(hac_lags)})
        else:
            res = model.fit(cov_type="hac-panel", cov_kwds={"groups": np.asarray(groups),
                                                           "maxlags": int(hac_lags)})
        if family == "quasipoisson":
            # sandwich covariance is already robust to overdispersion; report the dispersion anyway
            method = "quasi-Poisson GLM"
        method += f", Newey-West HAC SE ({int(hac_lags)} lags)"
    elif family == "quasipoisson":
        res = model.fit(scale="X2")
    else:
        res = model.fit()
    return res, method


def _negbin_alpha(y, X, offset) -> float:
    """ML estimate of the NB2 dispersion alpha, started from the Poisson fit; raises if it fails."""
    import warnings

    pois = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit()
    start = np.r_[np.asarray(pois.params), 0.05]
    nbmod = sm.NegativeBinomial(y, X, offset=offset, loglike_method="nb2")
    for method in ("newton", "bfgs", "nm"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                nb = nbmod.fit(start_params=start, method=method, maxiter=2000, disp=0)
            except (np.linalg.LinAlgError, ValueError):
                continue
        if nb.mle_retvals.get("converged", False) and np.isfinite(nb.params).all():
            return float(nb.params.iloc[-1] if hasattr(nb.params, "iloc") else nb.params[-1])
    raise ValueError(
        "negative binomial fit did not converge (the counts may show no overdispersion); "
        "use family='quasipoisson' or 'poisson'"
    )


def linear_combination(res, L: np.ndarray, conf_level: float):
    """Estimate, SE, lower, upper, p (normal) for rows of L @ beta."""
    beta = np.asarray(res.params, dtype=float)
    V = np.asarray(res.cov_params(), dtype=float)
    L = np.atleast_2d(L)
    est = L @ beta
    se = np.sqrt(np.einsum("ij,jk,ik->i", L, V, L))
    z = z_value(conf_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * stats.norm.sf(np.abs(est / se))
    return est, se, est - z * se, est + z * se, p


def atomic_write_csv(df: pd.DataFrame, path: str | os.PathLike, **kwargs) -> Path:
    """Write a CSV atomically (:func:`lumbarstats.io.write_csv`; the index is written unless ``index=False``,
    as ``DataFrame.to_csv``)."""
    from lumbarstats import io as _io

    return _io.write_csv(df, path, **{"index": True, **kwargs})


def atomic_savefig(fig, path: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure atomically (:func:`lumbarstats.io.save_figure`; matplotlib's own defaults
    unless told)."""
    from lumbarstats import io as _io

    return _io.save_figure(fig, path, **{"dpi": "figure", "bbox_inches": None, **kwargs})
