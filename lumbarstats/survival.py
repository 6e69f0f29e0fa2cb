"""Time-to-event estimators for cohorts after the first lumbar imaging.

Plain functions on tidy DataFrames (one row per person, a duration column and an integer event column
coded ``0 = censored, 1, 2, ... = causes``), returning tidy DataFrames:

- :func:`kaplan_meier` — Kaplan–Meier survival (thin wrapper around :class:`lifelines.KaplanMeierFitter`).
- :func:`cumulative_incidence` — Aalen–Johansen cumulative incidence under competing risks, implemented
  here with exact handling of tied times (lifelines' ``AalenJohansenFitter`` breaks ties by random
  jittering, which changes the estimate on register data measured in whole days).
- :func:`rmst`, :func:`rmst_difference` — restricted mean survival time with the variance R prints
  (``print(survfit(...), rmean=tau)``), and differences between groups.
- :func:`cox` / :class:`CoxModel` — cause-specific Cox proportional hazards (lifelines ``CoxPHFitter``,
  Efron ties, optional strata and robust sandwich errors) with a tidy hazard-ratio table, and
  :func:`ph_test` — the Schoenfeld-residual test of proportional hazards as a DataFrame.

Fine–Gray subdistribution hazards regression is **not** provided. As of this writing neither lifelines
(0.30) nor scikit-survival (whose competing-risk support is the non-parametric cumulative incidence
only) implements it, and no maintained Python package offering it is installed in the project
environment (small young PyPI packages such as ``pycmprsk``/``comprisk`` exist but are not dependencies).
Use R's ``cmprsk::crr`` or ``survival::finegray`` + ``coxph`` for subdistribution hazards; within this
package, compare cumulative incidence curves (:func:`cumulative_incidence`) and cause-specific hazards
(:func:`cox`).

Conventions
-----------
Times are the observed durations (for the cohorts of :mod:`lumbarstats.cohort`: days since the index
examination). At a time with both events and censorings, all events are processed together first and the
censored persons are counted at risk at that time (they leave just after it) — the usual convention of
R's ``survival`` package.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "kaplan_meier",
    "cumulative_incidence",
    "rmst",
    "rmst_difference",
    "cox",
    "CoxModel",
    "ph_test",
    "plot_cumulative_incidence",
]


# ------------------------------------------------------------------------------------------------
# input checks and grouping
# ------------------------------------------------------------------------------------------------
def _as_list(by) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def _z(conf_level: float) -> float:
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be between 0 and 1 (e.g. 0.95), got {conf_level!r}")
    return float(stats.norm.ppf(0.5 + conf_level / 2))


def _check_columns(data: pd.DataFrame, columns: Sequence[str], what: str = "data") -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(f"{what} has no column(s) {missing}; available columns: {list(data.columns)}")


def _checked_arrays(data: pd.DataFrame, duration: str, event: str) -> tuple[np.ndarray, np.ndarray]:
    """Durations as float (>= 0, finite) and events as int (>= 0); raise naming the bad rows."""
    t = pd.to_numeric(data[duration], errors="coerce")
    bad = t.isna() | ~np.isfinite(t.to_numpy(dtype=float, na_value=np.nan)) | (t < 0)
    if bad.any():
        rows = list(data.index[bad.to_numpy()][:5])
        raise ValueError(
            f"column {duration!r} must hold finite, non-negative durations; {int(bad.sum())} row(s) do not "
            f"(first index labels: {rows})"
        )
    e = pd.to_numeric(data[event], errors="coerce")
    bad_e = e.isna() | (e < 0) | (e != np.round(e))
    if bad_e.any():
        rows = list(data.index[bad_e.to_numpy()][:5])
        raise ValueError(
            f"column {event!r} must be coded 0 = censored, 1, 2, ... = event types (integers); "
            f"{int(bad_e.sum())} row(s) are not (first index labels: {rows})"
        )
    return t.to_numpy(dtype=float), e.to_numpy(dtype=np.int64)


def _groups(data: pd.DataFrame, by: list[str]):
    """Yield (key dict, sub-DataFrame) for each group (one group with an empty key when ``by`` is empty)."""
    if not by:
        yield {}, data
        return
    if data[by].isna().any().any():
        cols = [c for c in by if data[c].isna().any()]
        raise ValueError(f"grouping column(s) {cols} have missing values; drop or recode them first")
    for key, sub in data.groupby(by, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(by, key, strict=True)), sub


def _with_keys(frame: pd.DataFrame, key: dict) -> pd.DataFrame:
    for i, (col, val) in enumerate(key.items()):
        frame.insert(i, col, val)
    return frame


# ------------------------------------------------------------------------------------------------
# Kaplan–Meier (lifelines)
# ------------------------------------------------------------------------------------------------
def kaplan_meier(
    data: pd.DataFrame,
    *,
    duration: str,
    event: str,
    by: str | Sequence[str] | None = None,
    times: Sequence[float] | None = None,
    conf_level: float = 0.95,
    event_of_interest: int | None = None,
) -> pd.DataFrame:
    """Kaplan–Meier survival curve(s) (Kaplan & Meier 1958, JASA 53:457–481) via lifelines.

    ``event`` is the event column (0 = censored). By default any non-zero code is an event; with
    ``event_of_interest=k`` only code ``k`` is an event and other codes are censored (the
    "1 − KM" of one cause, which overestimates risk under competing risks — use
    :func:`cumulative_incidence` instead).

    Intervals are lifelines' exponential-Greenwood (log(−log)) intervals, the same as R's
    ``survfit(..., conf.type = "log-log")``; ``se`` is Greenwood's standard error of S(t) as R's
    ``summary(survfit(...))`` prints it (``std.err``).

    Returns one row per time (every distinct observed time, or each of ``times``) with columns
    ``by…, time, survival, se, lower, upper, at_risk, conf_level, method``. ``at_risk`` is the number
    still under observation just before ``time``.
    """
    from lifelines import KaplanMeierFitter

    by_cols = _as_list(by)
    _check_columns(data, [duration, event, *by_cols])
    _z(conf_level)
    out = []
    for key, sub in _groups(data, by_cols):
        t, e = _checked_arrays(sub, duration, event)
        observed = (e == event_of_interest) if event_of_interest is not None else (e > 0)
        kmf = KaplanMeierFitter(alpha=1 - conf_level)
        kmf.fit(t, observed)
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_survival_function_
        grid = np.asarray(sorted(set(t.tolist()) | {0.0}), dtype=float) if times is None else np.asarray(times, float)
        # right-continuous step function: value at the last timeline point <= time
        pos = np.searchsorted(sf.index.to_numpy(dtype=float), grid, side="right") - 1
        pos = np.clip(pos, 0, None)
        s = sf.to_numpy()[pos]
        lower = ci.iloc[:, 0].to_numpy()[pos]
        upper = ci.iloc[:, 1].to_numpy()[pos]
        # Greenwood standard error of S(t)
        et = kmf.event_table
        n = et["at_risk"].to_numpy(dtype=float)
        d = et["observed"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(d > 0, d / (n * (n - d)), 0.0)
        cum = np.cumsum(term)
        idx_et = np.searchsorted(et.index.to_numpy(dtype=float), grid, side="right") - 1
        gw = np.where(idx_et >= 0, cum[np.clip(idx_et, 0, None)], 0.0)
        se = s * np.sqrt(gw)
        se = np.where(s > 0, se, np.nan)
        at_risk = _at_risk(t, grid)
        frame = pd.DataFrame(
            {"time": grid, "survival": s, "se": se, "lower": lower, "upper": upper, "at_risk": at_risk}
        )
        frame.loc[frame["time"] == 0, ["lower", "upper"]] = frame.loc[frame["time"] == 0, ["survival", "survival"]].to_numpy()
        frame["conf_level"] = conf_level
        frame["method"] = "Kaplan-Meier (lifelines), log(-log) intervals"
        out.append(_with_keys(frame, key))
    return pd.concat(out, ignore_index=True)


def _at_risk(t: np.ndarray, grid: np.ndarray) -> np.ndarray:
    ts = np.sort(t)
    return len(ts) - np.searchsorted(ts, grid, side="left")


# ------------------------------------------------------------------------------------------------
# Aalen–Johansen cumulative incidence
# ------------------------------------------------------------------------------------------------
@dataclass
class _EventTable:
    time: np.ndarray  # distinct observed times
    at_risk: np.ndarray  # number with duration >= time
    events: np.ndarray  # (n_times, n_causes) events of each cause at the time
    censored: np.ndarray
    causes: np.ndarray  # cause codes (columns of ``events``)


def _event_table(t: np.ndarray, e: np.ndarray) -> _EventTable:
    times, inv = np.unique(t, return_inverse=True)
    causes = np.unique(e[e > 0])
    n_total = np.bincount(inv, minlength=len(times))
    at_risk = len(t) - np.concatenate([[0], np.cumsum(n_total)[:-1]])
    events = np.zeros((len(times), len(causes)), dtype=np.int64)
    for j, c in enumerate(causes):
        events[:, j] = np.bincount(inv[e == c], minlength=len(times))
    censored = np.bincount(inv[e == 0], minlength=len(times))
    return _EventTable(times, at_risk.astype(np.int64), events, censored, causes)


def _aalen_johansen(t: np.ndarray, e: np.ndarray, cause: int):
    """CIF of ``cause`` and its delta-method variance at every distinct observed time."""
    tab = _event_table(t, e)
    n = tab.at_risk.astype(float)
    d_all = tab.events.sum(axis=1).astype(float)
    if cause in tab.causes:
        dk = tab.events[:, np.searchsorted(tab.causes, cause)].astype(float)
    else:
        dk = np.zeros(len(n))
    # all-cause Kaplan–Meier just before each time (events at a time processed together)
    factor = 1.0 - d_all / n
    s_after = np.cumprod(factor)
    s_before = np.concatenate([[1.0], s_after[:-1]])
    jump = s_before * dk / n
    cif = np.cumsum(jump)
    # Delta-method (Greenwood-type) variance of the Aalen–Johansen estimator:
    # Var F(t) = sum_{tj<=t} { [F(t)-F(tj)]^2 dj/(nj(nj-dj)) + S(tj-)^2 dkj(nj-dkj)/nj^3
    #                          - 2 [F(t)-F(tj)] S(tj-) dkj/nj^2 }
    # (Marubini & Valsecchi 1995, sec. 10.2; SAS PROC LIFETEST). Expanded into running sums so that all
    # times are done in O(m). Terms with nj == dj have F(t) - F(tj) = 0 for every t >= tj (nobody is
    # left), so their first term is taken as 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where((d_all > 0) & (n > d_all), d_all / (n * (n - d_all)), 0.0)
        b = s_before**2 * dk * (n - dk) / n**3
        c = s_before * dk / n**2
    A = np.cumsum(a)
    FA = np.cumsum(cif * a)
    F2A = np.cumsum(cif**2 * a)
    B = np.cumsum(b)
    C = np.cumsum(c)
    FC = np.cumsum(cif * c)
    var = cif**2 * A - 2 * cif * FA + F2A + B - 2 * (cif * C - FC)
    # remove rounding residue of the running sums (relative 1e-12) and the exact zeros
    var = np.where(var > 1e-12 * np.maximum(cif**2 * A + B, 1e-300), var, 0.0)
    var[cif == 0] = 0.0
    return tab, cif, var


def cumulative_incidence(
    data: pd.DataFrame,
    *,
    duration: str,
    event: str,
    event_of_interest: int = 1,
    by: str | Sequence[str] | None = None,
    times: Sequence[float] | None = None,
    conf_level: float = 0.95,
    conf_type: str = "log-log",
) -> pd.DataFrame:
    """Cumulative incidence of one cause under competing risks (Aalen–Johansen estimator).

    The Aalen–Johansen estimator (Aalen & Johansen 1978, Scand J Stat 5:141–150; Kalbfleisch &
    Prentice 1980) of the cumulative incidence F_k(t) = sum_{tj<=t} S(tj−) d_kj / n_j, with S the
    all-cause Kaplan–Meier. Tied times are handled exactly: all events at a time (of any cause) are
    processed together and persons censored at that time count as at risk at it.

    Variance: the delta-method ("Greenwood-type") variance of Marubini & Valsecchi (1995, *Analysing
    Survival Data from Clinical Trials and Observational Studies*, sec. 10.2), also used by SAS PROC
    LIFETEST and lifelines. It reduces to Greenwood's variance of 1 − KM when there is a single cause and
    to the binomial variance p(1−p)/n without censoring. It is *not* the infinitesimal-jackknife variance
    of R's ``survfit`` for multi-state data, nor Gray's (1988) variance printed by ``cmprsk::cuminc``;
    the three agree closely in large samples.

    Intervals (``conf_type``): ``"log-log"`` (default) applies the delta method on log(−log F),
    F^exp(±z·se/(F·log F)), which keeps the interval in (0, 1) (as Choudhury 2002, Stat Med
    21:1129–1144, and lifelines); ``"plain"`` is F ± z·se clipped to [0, 1].

    ``event`` is coded 0 = censored, 1, 2, … = causes. Returns one row per distinct observed time (and a
    first row at time 0) or per requested ``times``, with columns ``by…, time, cif, se, lower, upper,
    at_risk, events (cumulative events of the cause), conf_level, method, event_of_interest``.
    """
    by_cols = _as_list(by)
    _check_columns(data, [duration, event, *by_cols])
    z = _z(conf_level)
    if conf_type not in ("log-log", "plain"):
        raise ValueError(f"conf_type must be 'log-log' or 'plain', got {conf_type!r}")
    if int(event_of_interest) <= 0:
        raise ValueError(f"event_of_interest must be a cause code >= 1 (0 means censored), got {event_of_interest!r}")
    out = []
    for key, sub in _groups(data, by_cols):
        t, e = _checked_arrays(sub, duration, event)
        if len(t) == 0:
            continue
        tab, cif, var = _aalen_johansen(t, e, int(event_of_interest))
        k = np.searchsorted(tab.causes, event_of_interest)
        dk = tab.events[:, k] if event_of_interest in tab.causes else np.zeros(len(tab.time), dtype=np.int64)
        cum_events = np.cumsum(dk)
        if times is None:
            grid = tab.time if tab.time[0] == 0 else np.concatenate([[0.0], tab.time])
        else:
            grid = np.asarray(sorted(np.asarray(times, dtype=float)), dtype=float)
            if (grid < 0).any():
                raise ValueError("times must be non-negative")
        pos = np.searchsorted(tab.time, grid, side="right") - 1
        valid = pos >= 0
        pos_c = np.clip(pos, 0, None)
        f = np.where(valid, cif[pos_c], 0.0)
        v = np.where(valid, var[pos_c], 0.0)
        ev = np.where(valid, cum_events[pos_c], 0)
        se = np.sqrt(v)
        lower, upper = _cif_interval(f, se, z, conf_type)
        frame = pd.DataFrame(
            {
                "time": grid,
                "cif": f,
                "se": se,
                "lower": lower,
                "upper": upper,
                "at_risk": _at_risk(t, grid),
                "events": ev,
            }
        )
        frame["conf_level"] = conf_level
        frame["method"] = f"Aalen-Johansen, delta-method variance, {conf_type} intervals"
        frame["event_of_interest"] = int(event_of_interest)
        out.append(_with_keys(frame, key))
    if not out:
        raise ValueError("no rows to estimate from (empty data)")
    return pd.concat(out, ignore_index=True)


def _cif_interval(f: np.ndarray, se: np.ndarray, z: float, conf_type: str):
    if conf_type == "plain":
        return np.clip(f - z * se, 0, 1), np.clip(f + z * se, 0, 1)
    lower = np.full_like(f, np.nan)
    upper = np.full_like(f, np.nan)
    ok = (f > 0) & (f < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = z * se[ok] / (f[ok] * np.abs(np.log(f[ok])))
    lower[ok] = f[ok] ** np.exp(w)
    upper[ok] = f[ok] ** np.exp(-w)
    for value in (0.0, 1.0):
        at = f == value
        lower[at] = value
        upper[at] = value
    return lower, upper


# ------------------------------------------------------------------------------------------------
# restricted mean survival time
# ------------------------------------------------------------------------------------------------
def _km_steps(t: np.ndarray, dead: np.ndarray):
    """Kaplan–Meier at the distinct event times: time, n at risk, deaths, S after the time."""
    times, inv = np.unique(t, return_inverse=True)
    n_total = np.bincount(inv, minlength=len(times))
    n = (len(t) - np.concatenate([[0], np.cumsum(n_total)[:-1]])).astype(float)
    d = np.bincount(inv[dead], minlength=len(times)).astype(float)
    keep = d > 0
    times, n, d = times[keep], n[keep], d[keep]
    s = np.cumprod(1 - d / n)
    return times, n, d, s


def _rmst_one(t: np.ndarray, dead: np.ndarray, tau: float) -> tuple[float, float]:
    times, n, d, s = _km_steps(t, dead)
    inside = times <= tau
    times, n, d, s = times[inside], n[inside], d[inside], s[inside]
    # area under the step function on [0, tau]: pieces [0,t1), [t1,t2), ..., [tm, tau]
    knots = np.concatenate([[0.0], times, [tau]])
    heights = np.concatenate([[1.0], s])
    area = np.diff(knots) * heights
    mean = float(area.sum())
    # Klein & Moeschberger (2003, eq. 4.5.2) / R survival:::survmean: Var = sum_j A_j^2 dj/(nj(nj-dj)),
    # A_j = area under S from tj to tau; terms with nj == dj are 0 (as R does).
    tail = np.cumsum(area[::-1])[::-1][1:]  # A_j for j = 1..m
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(n > d, d / (n * (n - d)), 0.0)
    var = float(np.sum(tail**2 * h))
    return mean, var


def rmst(
    data: pd.DataFrame,
    *,
    duration: str,
    event: str,
    tau: float,
    by: str | Sequence[str] | None = None,
    conf_level: float = 0.95,
    event_of_interest: int | None = None,
    extend: bool = False,
) -> pd.DataFrame:
    """Restricted mean survival time: the area under the Kaplan–Meier curve on [0, tau].

    Irwin (1949); Karrison (1987, Control Clin Trials 8:47–53); Royston & Parmar (2013, BMC Med Res
    Methodol 13:152). The variance is Klein & Moeschberger's (2003, *Survival Analysis*, 2nd ed.,
    eq. 4.5.2) sum_j A_j² d_j / (n_j (n_j − d_j)), with A_j the area under the curve from t_j to tau —
    the standard error R prints as ``se(rmean)`` for ``print(survfit(...), rmean = tau)``. (lifelines'
    ``restricted_mean_survival_time(..., return_variance=True)`` returns a different quantity.)
    Intervals are rmst ± z·se.

    As for :func:`kaplan_meier`, any non-zero ``event`` is an event unless ``event_of_interest`` is given.
    ``tau`` may not exceed the largest observed time of a group (the curve is unknown beyond it) unless
    ``extend=True``, which carries the last value of the curve forward to ``tau`` as R does for
    ``rmean = "common"``.
    Returns columns ``by…, tau, rmst, se, lower, upper, n, events, conf_level, method``.
    """
    by_cols = _as_list(by)
    _check_columns(data, [duration, event, *by_cols])
    z = _z(conf_level)
    tau = float(tau)
    if not np.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a positive time, got {tau!r}")
    rows = []
    for key, sub in _groups(data, by_cols):
        t, e = _checked_arrays(sub, duration, event)
        if len(t) == 0:
            continue
        if tau > t.max() and not extend:
            raise ValueError(
                f"tau={tau:g} is beyond the last observed time ({t.max():g}) of group {key or 'all'}; "
                "choose tau <= the shortest follow-up among the groups (or extend=True to carry the curve forward)"
            )
        dead = (e == event_of_interest) if event_of_interest is not None else (e > 0)
        mean, var = _rmst_one(t, dead, tau)
        se = np.sqrt(var)
        rows.append(
            {**key, "tau": tau, "rmst": mean, "se": se, "lower": mean - z * se, "upper": mean + z * se,
             "n": len(t), "events": int(dead.sum()), "conf_level": conf_level,
             "method": "RMST (area under Kaplan-Meier), Klein-Moeschberger variance"}
        )
    return pd.DataFrame(rows)


def rmst_difference(
    data: pd.DataFrame,
    *,
    duration: str,
    event: str,
    tau: float,
    group: str,
    reference=None,
    conf_level: float = 0.95,
    event_of_interest: int | None = None,
    extend: bool = False,
) -> pd.DataFrame:
    """Difference in restricted mean survival time of each level of ``group`` versus ``reference``.

    Difference of independent RMST estimates (Royston & Parmar 2013, BMC Med Res Methodol 13:152) with
    se = sqrt(se₁² + se₀²), a Wald interval and two-sided p-value. ``reference`` defaults to the first
    level (sorted). Returns columns ``group, level, reference, tau, rmst, rmst_reference, difference, se,
    lower, upper, p_value, conf_level, method``.
    """
    _check_columns(data, [duration, event, group])
    z = _z(conf_level)
    table = rmst(data, duration=duration, event=event, tau=tau, by=group, conf_level=conf_level,
                 event_of_interest=event_of_interest, extend=extend)
    levels = list(table[group])
    if reference is None:
        reference = levels[0]
    if reference not in levels:
        raise ValueError(f"reference {reference!r} is not a level of {group!r}; levels: {levels}")
    ref = table.loc[table[group] == reference].iloc[0]
    rows = []
    for _, r in table.loc[table[group] != reference].iterrows():
        diff = r["rmst"] - ref["rmst"]
        se = float(np.hypot(r["se"], ref["se"]))
        p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else np.nan
        rows.append(
            {"group": group, "level": r[group], "reference": reference, "tau": float(tau),
             "rmst": r["rmst"], "rmst_reference": ref["rmst"], "difference": diff, "se": se,
             "lower": diff - z * se, "upper": diff + z * se, "p_value": p, "conf_level": conf_level,
             "method": "difference of RMST, Wald"}
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------
# Cox proportional hazards (lifelines)
# ------------------------------------------------------------------------------------------------
@dataclass
class CoxModel:
    """A fitted (cause-specific) Cox model: ``.fitter`` is the lifelines ``CoxPHFitter``; ``.summary`` a
    tidy table (``term, variable, level, reference, coef, se, hr, lower, upper, z, p_value, conf_level,
    method``); ``.design`` the numeric data the model was fitted on (for :func:`ph_test`)."""

    fitter: object
    design: pd.DataFrame
    duration: str
    event: str
    covariates: list[str]
    strata: list[str]
    robust: bool
    conf_level: float
    event_of_interest: int | None
    references: dict = field(default_factory=dict)
    term_map: dict = field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame:
        s = self.fitter.summary
        z = _z(self.conf_level)
        coef = s["coef"].to_numpy()
        se = s["se(coef)"].to_numpy()
        terms = list(s.index)
        out = pd.DataFrame(
            {
                "term": terms,
                "variable": [self.term_map.get(t, (t, None))[0] for t in terms],
                "level": [self.term_map.get(t, (t, None))[1] for t in terms],
                "reference": [self.references.get(self.term_map.get(t, (t, None))[0]) for t in terms],
                "coef": coef,
                "se": se,
                "hr": np.exp(coef),
                "lower": np.exp(coef - z * se),
                "upper": np.exp(coef + z * se),
                "z": coef / se,
                "p_value": 2 * stats.norm.sf(np.abs(coef / se)),
            }
        )
        out["conf_level"] = self.conf_level
        out["method"] = "Cox PH (lifelines, Efron ties" + (", robust sandwich SE)" if self.robust else ")")
        return out

    def plot(self, **kwargs):
        """Forest plot of the hazard ratios (lifelines' ``CoxPHFitter.plot(hazard_ratios=True)``)."""
        return self.fitter.plot(hazard_ratios=True, **kwargs)

    def ph_test(self, time_transform: str = "km") -> pd.DataFrame:
        return ph_test(self, time_transform=time_transform)


def _design(data: pd.DataFrame, covariates: list[str], reference: dict | None):
    """Numeric design matrix: numeric/bool columns as they are; others dummy-coded against a reference."""
    cols = {}
    references = {}
    term_map = {}
    reference = reference or {}
    for var in covariates:
        x = data[var]
        if x.isna().any():
            raise ValueError(f"covariate {var!r} has {int(x.isna().sum())} missing value(s); drop or impute them first")
        if pd.api.types.is_bool_dtype(x) or (pd.api.types.is_numeric_dtype(x) and not isinstance(x.dtype, pd.CategoricalDtype)):
            cols[var] = x.astype(float).to_numpy()
            term_map[var] = (var, None)
            continue
        if isinstance(x.dtype, pd.CategoricalDtype):
            levels = [lv for lv in x.cat.categories if (x == lv).any()]
        else:
            levels = sorted(pd.unique(x.astype(str)))
            x = x.astype(str)
        ref = reference.get(var, levels[0])
        if ref not in levels:
            raise ValueError(f"reference level {ref!r} of {var!r} is not in the data; levels: {levels}")
        references[var] = ref
        for lv in levels:
            if lv == ref:
                continue
            name = f"{var}[{lv}]"
            cols[name] = (x == lv).to_numpy(dtype=float)
            term_map[name] = (var, lv)
    return pd.DataFrame(cols, index=data.index), references, term_map


def cox(
    data: pd.DataFrame,
    *,
    duration: str,
    event: str,
    covariates: Sequence[str],
    strata: str | Sequence[str] | None = None,
    robust: bool = False,
    cluster: str | None = None,
    event_of_interest: int | None = 1,
    reference: dict | None = None,
    conf_level: float = 0.95,
    penalizer: float = 0.0,
) -> CoxModel:
    """Fit a (cause-specific) Cox proportional hazards model (Cox 1972, JRSS-B 34:187–220) with lifelines.

    Ties by Efron's method (as R's ``coxph`` default). With ``event_of_interest=k`` (default 1), code ``k``
    is the event and every other code — including competing events — is censored: the cause-specific
    hazard (Prentice et al. 1978). ``event_of_interest=None`` treats any non-zero code as the event.
    Categorical covariates (strings, categories) are dummy-coded against ``reference[var]`` (default: the
    first category / alphabetically first level). ``strata`` fits separate baseline hazards;
    ``robust=True`` gives the Lin & Wei (1989) sandwich variance (clustered on ``cluster`` if given).

    Returns a :class:`CoxModel`; ``.summary`` is the tidy hazard-ratio table.
    """
    from lifelines import CoxPHFitter

    covariates = list(covariates)
    strata_cols = _as_list(strata)
    extra = [cluster] if cluster else []
    _check_columns(data, [duration, event, *covariates, *strata_cols, *extra])
    if not covariates:
        raise ValueError("give at least one covariate")
    t, e = _checked_arrays(data, duration, event)
    X, references, term_map = _design(data, covariates, reference)
    if X.shape[1] == 0:
        raise ValueError("the covariates have no variation (every categorical covariate has a single level)")
    constant = [c for c in X.columns if X[c].nunique() < 2]
    if constant:
        raise ValueError(f"design columns {constant} are constant; drop those covariates or levels")
    design = X.copy()
    design["__duration"] = t
    design["__event"] = (e == event_of_interest) if event_of_interest is not None else (e > 0)
    for s in strata_cols:
        design[s] = data[s].to_numpy()
    if cluster:
        design["__cluster"] = data[cluster].to_numpy()
    cph = CoxPHFitter(alpha=1 - conf_level, penalizer=penalizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        cph.fit(
            design,
            duration_col="__duration",
            event_col="__event",
            strata=strata_cols or None,
            robust=robust or bool(cluster),
            cluster_col="__cluster" if cluster else None,
        )
    return CoxModel(
        fitter=cph, design=design, duration=duration, event=event, covariates=covariates, strata=strata_cols,
        robust=robust or bool(cluster), conf_level=conf_level, event_of_interest=event_of_interest,
        references=references, term_map=term_map,
    )


def ph_test(model: CoxModel, *, time_transform: str = "km", max_n: int | None = 50_000,
            seed: int = 2024) -> pd.DataFrame:
    """Test of proportional hazards from scaled Schoenfeld residuals (Grambsch & Therneau 1994,
    Biometrika 81:515–526), per term, via ``lifelines.statistics.proportional_hazard_test``.

    ``time_transform`` is ``"km"`` (as R's ``cox.zph`` default), ``"rank"``, ``"identity"`` or ``"log"``.
    Returns columns ``term, statistic, df, p_value, time_transform, method, n``. (lifelines does not print
    the global test of R's ``cox.zph``.)

    lifelines' residual computation grows much faster than linearly with the number of persons (five
    minutes for 225,000), so for a cohort larger than ``max_n`` the same model is refitted on a seeded
    random subsample of ``max_n`` persons and tested there (column ``n``); ``max_n=None`` tests all.
    A diagnostic on 50,000 persons still detects departures from proportionality that matter.
    """
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    if not isinstance(model, CoxModel):
        raise TypeError("ph_test needs the CoxModel returned by lumbarstats.survival.cox")
    fitter, design = model.fitter, model.design
    if max_n is not None and len(design) > max_n:
        design = design.sample(n=max_n, random_state=seed)
        fitter = CoxPHFitter(alpha=model.fitter.alpha, penalizer=model.fitter.penalizer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)
            fitter.fit(design, duration_col="__duration", event_col="__event", strata=model.strata or None,
                       robust=model.robust and "__cluster" not in design.columns,
                       cluster_col="__cluster" if "__cluster" in design.columns else None)
    res = proportional_hazard_test(fitter, design, time_transform=time_transform)
    s = res.summary
    terms = [i[-1] if isinstance(i, tuple) else i for i in s.index]
    return pd.DataFrame(
        {
            "term": terms,
            "statistic": s["test_statistic"].to_numpy(),
            "df": 1,
            "p_value": s["p"].to_numpy(),
            "time_transform": time_transform,
            "method": "Grambsch-Therneau scaled Schoenfeld residual test (lifelines)"
            + ("" if len(design) == len(model.design) else f", random subsample of {len(design):,}"),
            "n": len(design),
        }
    )


# ------------------------------------------------------------------------------------------------
# plotting
# ------------------------------------------------------------------------------------------------
def plot_cumulative_incidence(table: pd.DataFrame, *, by: str | Sequence[str] | None = None, ax=None,
                              time_scale: float = 1.0, xlabel: str = "Days since index",
                              ylabel: str = "Cumulative incidence", title: str | None = None,
                              intervals: bool = True):
    """Step plot of a :func:`cumulative_incidence` (or :func:`kaplan_meier`) table, one line per group.

    ``time_scale`` divides the time axis (e.g. 365.25 to show years). Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    value = "cif" if "cif" in table.columns else "survival"
    _check_columns(table, ["time", value, "lower", "upper"], what="table")
    by_cols = _as_list(by)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    for key, sub in _groups(table, by_cols):
        label = ", ".join(str(v) for v in key.values()) or None
        x = sub["time"].to_numpy() / time_scale
        (line,) = ax.step(x, sub[value], where="post", label=label)
        if intervals:
            ax.fill_between(x, sub["lower"], sub["upper"], step="post", alpha=0.15, color=line.get_color(),
                            linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if by_cols:
        ax.legend(title=", ".join(by_cols), fontsize="small")
    ax.set_ylim(bottom=0)
    return ax
