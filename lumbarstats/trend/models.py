"""Log-linear trend models on counts: Poisson, quasi-Poisson and negative binomial with a population offset.

The annual percent change (APC) of a log-linear trend ``log E[y_t] = log(pop_t) + a + b t`` is
``100 (exp(b) - 1)`` (Kim, Fay, Feuer & Midthune 2000, Stat Med 19:335-351; NCI Joinpoint help,
"Annual Percent Change"). Here ``b`` is estimated from the counts by a GLM (McCullagh & Nelder 1989,
Generalized Linear Models, 2nd ed.) rather than by least squares on log rates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import (
    FAMILIES,
    check_conf_level,
    check_counts,
    check_positive,
    fit_count_glm,
    linear_combination,
    require_columns,
    time_index,
)

__all__ = ["apc", "fit_trend", "TrendFit", "fit_count_glm_or_reason"]


class NotEstimated:
    """Stands in for the statsmodels results of a model that could not be estimated: every parameter
    and covariance is NaN, so each estimate derived from it is NaN (never an exception, never a number)."""

    def __init__(self, names):
        self.params = pd.Series(np.nan, index=list(names), dtype=float)
        self.bse = self.params.copy()
        self.converged = False

    def cov_params(self) -> pd.DataFrame:
        return pd.DataFrame(np.nan, index=self.params.index, columns=self.params.index)


def fit_count_glm_or_reason(y, X: pd.DataFrame, offset, *, family: str, hac_lags: int | None = None,
                            groups=None, must_have_events: dict | None = None):
    """:func:`fit_count_glm` for data that may be too small: returns ``(results, method, reason)``.

    ``reason`` is None when the model was estimated; otherwise it says why not (no events at all, no
    events in one of the ``must_have_events`` row sets — e.g. ``{"before the intervention": mask}`` — where
    a log-linear term would run off to -infinity, a fit that fails or does not converge) and
    ``results`` is a :class:`NotEstimated`. Errors of the arguments (family, hac_lags) still raise.
    """
    import warnings

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if hac_lags is not None and int(hac_lags) < 0:
        raise ValueError("hac_lags must be a non-negative integer")
    y = np.asarray(y, dtype=float)
    reason = None
    if y.sum() == 0:
        reason = "no events: the model cannot be estimated"
    for label, mask in (must_have_events or {}).items():
        if reason is None and y[np.asarray(mask, dtype=bool)].sum() == 0:
            reason = f"no events {label}: the model cannot be estimated (its estimate would be -infinity)"
    if reason is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res, method = fit_count_glm(y, X, offset, family=family, hac_lags=hac_lags, groups=groups)
            except (ValueError, np.linalg.LinAlgError, ZeroDivisionError) as err:
                reason = f"the {family} fit failed on these data ({str(err).strip().splitlines()[0]})"
            else:
                ok = getattr(res, "converged", True) and np.isfinite(np.asarray(res.params, dtype=float)).all()
                cov = np.asarray(res.cov_params(), dtype=float) if ok else np.array([np.nan])
                if not ok or not np.isfinite(cov).all():
                    reason = f"the {family} fit did not converge on these data"
                else:
                    return res, method, None
    return NotEstimated(X.columns), f"not estimated: {reason}", reason


class TrendFit:
    """A fitted log-linear count trend for one series (see :func:`fit_trend`)."""

    def __init__(self, result, *, time_values, t0, unit, method, population_name, conf_level, reason=None):
        self.result = result
        self.reason = reason  # why the trend could not be estimated (NaN estimates), or None
        self.time_values = time_values
        self._t0 = t0
        self.unit = unit
        self.method = method
        self.population_name = population_name
        self.conf_level = conf_level

    @property
    def slope(self) -> float:
        return float(self.result.params["time"])

    def _repr_html_(self) -> str:
        """The notebook view: the annual percent change rounded."""
        from lumbarstats.formatting import result_html

        return result_html("Log-linear trend", self.apc(), decimals=2, index=False,
                           lines=[self.method, f"not estimated: {self.reason}" if self.reason else ""])

    def apc(self) -> pd.DataFrame:
        """APC with interval and p-value (one row)."""
        L = np.zeros((1, len(self.result.params)))
        L[0, list(self.result.params.index).index("time")] = 1.0
        est, _se, lo, hi, p = linear_combination(self.result, L, self.conf_level)
        return pd.DataFrame(
            {
                "apc": 100 * np.expm1(est),
                "lower": 100 * np.expm1(lo),
                "upper": 100 * np.expm1(hi),
                "p_value": p,
                "conf_level": self.conf_level,
                "method": self.method,
                "reason": pd.array([self.reason], dtype="string"),
            }
        )

    def predict(self, time, population=None) -> pd.DataFrame:
        """Expected counts (and rates if ``population`` given) with interval at new time values.

        ``population`` is required when the model has an offset — statsmodels' ``predict`` would
        otherwise silently drop it, so here the offset is always built explicitly.
        """
        t = np.atleast_1d(np.asarray(time, dtype=float)) - self._t0
        X = np.column_stack([np.ones_like(t), t])
        if self.population_name is not None:
            if population is None:
                raise ValueError("this model has a population offset; pass population= for the new times")
            pop = np.broadcast_to(np.asarray(population, dtype=float), t.shape)
            off = np.log(pop)
        else:
            pop = None
            off = np.zeros_like(t)
        est, _se, lo, hi, _p = linear_combination(self.result, X, self.conf_level)
        out = pd.DataFrame(
            {
                "time": np.asarray(time, dtype=float).ravel(),
                "expected_events": np.exp(est + off),
                "lower": np.exp(lo + off),
                "upper": np.exp(hi + off),
            }
        )
        if pop is not None:
            out["population"] = pop
        return out


def fit_trend(
    data: pd.DataFrame,
    *,
    time: str,
    events: str,
    population: str | None = None,
    family: str = "quasipoisson",
    conf_level: float = 0.95,
) -> TrendFit:
    """Fit ``log E[events] = log(population) + a + b * time`` by a count GLM (one series).

    Reference: McCullagh & Nelder (1989); quasi-Poisson dispersion as in R's ``quasipoisson``
    (Pearson X2 / residual df); negative binomial NB2 (Hilbe 2011, Negative Binomial Regression).

    A series that cannot be fitted (no events, a failed or non-converged fit) gives a :class:`TrendFit`
    with ``reason`` set and NaN estimates instead of raising.
    """
    conf_level = check_conf_level(conf_level)
    require_columns(data, [time, events, population])
    if len(data) < 3:
        raise ValueError(f"a trend needs at least 3 time points, got {len(data)}")
    y = check_counts(data[events], events)
    t, unit = time_index(data[time])
    if len(np.unique(t)) != len(t):
        raise ValueError(
            f"column {time!r} has repeated values; give one row per time point (use by= for groups)"
        )
    off = np.log(check_positive(data[population], population)) if population else np.zeros(len(t))
    t0 = float(np.min(t))
    X = pd.DataFrame({"const": 1.0, "time": t - t0})
    res, method, reason = fit_count_glm_or_reason(y, X, off, family=family)
    return TrendFit(
        res, time_values=t, t0=t0, unit=unit, method=method, population_name=population, conf_level=conf_level,
        reason=reason,
    )


def apc(
    data: pd.DataFrame,
    *,
    time: str,
    events: str,
    population: str | None = None,
    by: str | list[str] | None = None,
    family: str = "quasipoisson",
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Annual (per time unit) percent change from a log-linear count GLM, optionally by group.

    ``APC = 100 (exp(b) - 1)`` with ``b`` the log-linear slope (Kim et al. 2000, Stat Med 19:335-351),
    interval ``100 (exp(b -/+ z se) - 1)``; ``se`` from the GLM (quasi-Poisson: scaled by the Pearson
    dispersion). For monthly Timestamp time the slope is per month; the APC column is then
    ``100 (exp(12 b) - 1)``, i.e. still per year.

    Returns columns ``[by...,] apc, lower, upper, p_value, conf_level, method, reason`` (``reason`` says
    why a group's trend could not be estimated; its estimates are then NaN).
    """
    conf_level = check_conf_level(conf_level)
    by_cols = [by] if isinstance(by, str) else list(by or [])
    require_columns(data, [time, events, population, *by_cols])
    groups = data.groupby(by_cols, sort=True, dropna=False) if by_cols else [((), data)]
    rows = []
    for key, sub in groups:
        fit = fit_trend(sub, time=time, events=events, population=population, family=family,
                        conf_level=conf_level)
        row = fit.apc()
        if fit.unit == "month":
            # per-month slope -> annual percent change
            L = np.zeros((1, len(fit.result.params)))
            L[0, 1] = 12.0
            est, _se, lo, hi, p = linear_combination(fit.result, L, conf_level)
            row["apc"], row["lower"], row["upper"] = 100 * np.expm1(est), 100 * np.expm1(lo), 100 * np.expm1(hi)
        key = key if isinstance(key, tuple) else (key,)
        for col, val in zip(by_cols, key, strict=True):
            row.insert(by_cols.index(col), col, val)
        rows.append(row)
    return pd.concat(rows, ignore_index=True)
