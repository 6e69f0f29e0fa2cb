"""Controlled designs with the other regions as controls: controlled ITS (difference-in-differences in
segmented regression form) and synthetic control, each with placebo inference across regions.

With one treated region, model-based standard errors ignore region-level shocks and are usually too
small. The honest test is a permutation (placebo) test: repeat the analysis with each control region in
turn as "treated" (the real treated region left out of the control pool) and rank the treated region's
estimate among all J + 1 estimates; ``p = rank / (J + 1)``. The smallest attainable p-value is
``1 / (J + 1)`` — with 4 control regions, 0.2 (Abadie, Diamond & Hainmueller 2010, J Am Stat Assoc
105:493-505; Conley & Taber 2011, Rev Econ Stat 93:113-125).

Controlled ITS model (Lopez Bernal, Cummins & Gasparrini 2018, "The use of controls in interrupted
time series studies of public health interventions", Int J Epidemiol 47:2082-2093):

    log E[y_ut] = log(pop_ut) + a_u + b t + c T_u t + d P_t + e P_t (t - t0)
                  + f T_u P_t + g T_u P_t (t - t0) [+ seasonality]

with unit fixed effects ``a_u``, treated indicator ``T_u`` and post indicator ``P_t``. ``f`` and ``g``
are the level and slope changes in the treated region over and above those in the controls.

Synthetic control (Abadie, Diamond & Hainmueller 2010): non-negative donor weights summing to one
that minimise the squared pre-intervention distance between the treated outcome path and the weighted
donors (outcome lags as the only predictors, V = identity); inference by the ratio of post- to
pre-intervention RMSPE ranked among placebo runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from ._common import (
    check_conf_level,
    check_counts,
    check_positive,
    fit_count_glm,
    fourier_terms,
    linear_combination,
    month_number,
    require_columns,
    time_index,
    time_point,
)

__all__ = ["controlled_its", "ControlledITSResult", "synthetic_control", "SyntheticControlResult"]

_TERMS = ("level_change_difference", "slope_change_difference", "average_post_difference")


def _units(data, unit, treated, controls):
    units = list(pd.unique(data[unit]))
    if treated not in units:
        raise ValueError(f"treated unit {treated!r} is not in column {unit!r}; units are {units}")
    if controls is None or (isinstance(controls, str) and controls == "all"):
        ctrl = [u for u in units if u != treated]
    else:
        ctrl = list(controls)
        missing = [c for c in ctrl if c not in units]
        if missing:
            raise ValueError(f"control unit(s) {missing} not in column {unit!r}")
        if treated in ctrl:
            raise ValueError("the treated unit cannot also be a control")
    if len(ctrl) < 1:
        raise ValueError("need at least one control unit")
    return ctrl


def _cits_fit(d, *, unit, treated, t, t0, y, off, slope_change, season_X, family, hac_lags, conf_level):
    is_t = (d[unit].to_numpy() == treated).astype(float)
    post = (t >= t0).astype(float)
    tt = t - t.min()
    X = pd.DataFrame({"time": tt, "treated_time": is_t * tt, "post": post}, index=d.index)
    if slope_change:
        X["post_time"] = np.clip(t - t0, 0, None)
    X["level_change_difference"] = is_t * post
    if slope_change:
        X["slope_change_difference"] = is_t * np.clip(t - t0, 0, None)
    fe = pd.get_dummies(d[unit].astype(str), prefix="unit", dtype=float)
    X = pd.concat([fe, X], axis=1)
    if season_X is not None:
        X = pd.concat([X, season_X.set_index(d.index)], axis=1)
    groups = pd.factorize(d[unit])[0] if hac_lags is not None else None
    res, method = fit_count_glm(y, X, off, family=family, hac_lags=hac_lags, groups=groups)
    names = list(X.columns)
    post_t = np.unique(t[t >= t0])
    rows, L = [], []
    l1 = np.zeros(len(names))
    l1[names.index("level_change_difference")] = 1.0
    L.append(l1)
    rows.append("level_change_difference")
    if slope_change:
        l2 = np.zeros(len(names))
        l2[names.index("slope_change_difference")] = 1.0
        L.append(l2)
        rows.append("slope_change_difference")
        l3 = l1.copy()
        l3[names.index("slope_change_difference")] = float(np.mean(post_t - t0))
        L.append(l3)
        rows.append("average_post_difference")
    est, se, lo, hi, p = linear_combination(res, np.array(L), conf_level)
    return pd.DataFrame({"term": rows, "estimate": est, "se": se, "lower": lo, "upper": hi, "p_value": p}), method


@dataclass
class ControlledITSResult:
    """``summary``: one row per term; ``placebo``: each unit's estimates as if it were treated."""

    summary: pd.DataFrame
    placebo: pd.DataFrame

    def plot(self, term: str = "average_post_difference", ax=None):
        """Placebo distribution: the treated unit's rate ratio against each control's."""
        import matplotlib.pyplot as plt

        if ax is None:
            _fig, ax = plt.subplots(figsize=(6, 3.5))
        sub = self.placebo[self.placebo["term"] == term].sort_values("rate_ratio")
        colors = ["C3" if tr else "0.6" for tr in sub["is_treated"]]
        ax.barh(sub["unit"].astype(str), sub["rate_ratio"] - 1, color=colors)
        ax.axvline(0, color="0.2", lw=0.8)
        ax.set_xlabel(f"{term}: rate ratio - 1")
        return ax


def controlled_its(
    data: pd.DataFrame,
    *,
    unit: str,
    treated,
    time: str,
    events: str,
    population: str,
    intervention_start,
    controls="all",
    slope_change: bool = True,
    seasonality: dict | None = None,
    family: str = "quasipoisson",
    hac_lags: int | None = None,
    placebo: bool = True,
    conf_level: float = 0.95,
) -> ControlledITSResult:
    """Controlled interrupted time series / difference-in-differences with placebo-in-space inference.

    ``summary`` columns: ``term, rate_ratio, lower, upper, p_value`` (model-based, conditional on the
    model and ignoring region-level shocks), ``p_value_placebo`` (rank of the treated region's
    |log rate ratio| among all J+1 placebo runs divided by J+1), ``min_attainable_p`` (= 1/(J+1)),
    ``placebo_rank``, ``n_controls``, ``conf_level``, ``method``. Terms: ``level_change_difference``,
    ``slope_change_difference`` and ``average_post_difference`` (level + slope x mean post time: the
    average post-period rate ratio of treated vs its controlled counterfactual).

    References: Lopez Bernal et al. (2018) Int J Epidemiol 47:2082-2093; Abadie et al. (2010) JASA
    105:493-505 (placebo inference); Conley & Taber (2011) Rev Econ Stat 93:113-125.
    """
    conf_level = check_conf_level(conf_level)
    season = dict(seasonality or {})
    period_col = season.get("period_column")
    require_columns(data, [unit, time, events, population, period_col])
    ctrl = _units(data, unit, treated, controls)
    d = data[data[unit].isin([treated, *ctrl])]
    t_sort, _u = time_index(d[time])
    d = d.assign(_t=t_sort).sort_values([unit, "_t"]).drop(columns="_t").reset_index(drop=True)
    t, tunit = time_index(d[time])
    t0 = time_point(intervention_start, datelike=tunit == "month")
    if not (t.min() < t0 <= t.max()):
        raise ValueError(f"intervention_start={intervention_start!r} is outside the series")
    dup = pd.DataFrame({"u": d[unit], "t": t}).duplicated()
    if dup.any():
        raise ValueError(f"repeated {unit!r} x {time!r} rows (first at index {int(np.flatnonzero(dup)[0])})")
    n_pre = len(np.unique(t[t < t0]))
    n_post = len(np.unique(t[t >= t0]))
    if n_pre < 3 or n_post < 3:
        raise ValueError(f"too few time points: {n_pre} before and {n_post} after; need at least 3 each")
    y = check_counts(d[events], events)
    off = np.log(check_positive(d[population], population))
    season_X = None
    if season:
        if period_col is not None:
            pv = pd.to_numeric(d[period_col], errors="coerce").to_numpy(dtype=float)
        elif tunit == "month":
            pv = month_number(d[time])
        else:
            raise ValueError("seasonality needs 'period_column' when time is not a date column")
        season_X = fourier_terms(pv, int(season.get("harmonics", 2)), float(season.get("period_length", 12)))

    def run(sub_idx, treated_unit):
        sub = d.loc[sub_idx]
        sx = season_X.loc[sub_idx].reset_index(drop=True) if season_X is not None else None
        return _cits_fit(sub.reset_index(drop=True), unit=unit, treated=treated_unit, t=t[sub_idx],
                         t0=t0, y=y[sub_idx], off=off[sub_idx], slope_change=slope_change, season_X=sx,
                         family=family, hac_lags=hac_lags, conf_level=conf_level)

    all_idx = np.arange(len(d))
    main, method = run(all_idx, treated)
    placebo_rows = [main.assign(unit=treated, is_treated=True)]
    if placebo:
        ctrl_mask = (d[unit] != treated).to_numpy()
        for c in ctrl:
            if len(ctrl) < 2:
                break
            est, _m = run(all_idx[ctrl_mask], c)
            placebo_rows.append(est.assign(unit=c, is_treated=False))
    plc = pd.concat(placebo_rows, ignore_index=True)
    plc["rate_ratio"] = np.exp(plc["estimate"])
    J = len(ctrl)
    out = main.copy()
    out["rate_ratio"] = np.exp(out["estimate"])
    out["lower"] = np.exp(out["lower"])
    out["upper"] = np.exp(out["upper"])
    pv, ranks = [], []
    for term in out["term"]:
        sub = plc[plc["term"] == term]
        if placebo and len(sub) == J + 1:
            obs = abs(float(sub.loc[sub["is_treated"], "estimate"].iloc[0]))
            rank = int((np.abs(sub["estimate"].to_numpy()) >= obs - 1e-12).sum())
            pv.append(rank / (J + 1))
            ranks.append(rank)
        else:
            pv.append(np.nan)
            ranks.append(np.nan)
    out["p_value_placebo"] = pv
    out["placebo_rank"] = ranks
    out["min_attainable_p"] = 1 / (J + 1)
    out["n_controls"] = J
    out["conf_level"] = conf_level
    out["method"] = f"controlled ITS, {method}; placebo-in-space permutation test"
    summary = out[["term", "rate_ratio", "lower", "upper", "p_value", "p_value_placebo", "placebo_rank",
                   "min_attainable_p", "n_controls", "conf_level", "method"]]
    plc = plc[["unit", "is_treated", "term", "estimate", "se", "rate_ratio", "p_value"]]
    return ControlledITSResult(summary=summary, placebo=plc)


# -- synthetic control ----------------------------------------------------------------------------
def _simplex_weights(y1: np.ndarray, Y0: np.ndarray) -> np.ndarray:
    """argmin ||y1 - Y0 w||^2 s.t. w >= 0, sum w = 1 (SLSQP)."""
    J = Y0.shape[1]
    if J == 1:
        return np.ones(1)
    scale = max(float(np.abs(y1).max()), 1e-12)
    a, B = y1 / scale, Y0 / scale

    def obj(w):
        r = a - B @ w
        return float(r @ r)

    def grad(w):
        return -2 * B.T @ (a - B @ w)

    w0 = np.full(J, 1.0 / J)
    res = optimize.minimize(obj, w0, jac=grad, method="SLSQP", bounds=[(0.0, 1.0)] * J,
                            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0,
                                          "jac": lambda w: np.ones_like(w)}],
                            options={"ftol": 1e-12, "maxiter": 500})
    w = np.clip(res.x, 0, None)
    return w / w.sum()


@dataclass
class SyntheticControlResult:
    """``weights`` (donor, weight), ``path`` (time, treated, synthetic, gap), ``summary`` (one row),
    ``placebo`` (one row per unit: rmspe_pre, rmspe_post, ratio)."""

    weights: pd.DataFrame
    path: pd.DataFrame
    summary: pd.DataFrame
    placebo: pd.DataFrame
    intervention_time: object

    def plot(self, ax=None, ylabel: str = "rate"):
        import matplotlib.pyplot as plt

        if ax is None:
            _fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(self.path["time"], self.path["treated"], "-", color="C0", label="treated")
        ax.plot(self.path["time"], self.path["synthetic"], "--", color="C3", label="synthetic control")
        ax.axvline(self.intervention_time, color="0.2", ls=":", lw=1.2)
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False)
        return ax


def synthetic_control(
    data: pd.DataFrame,
    *,
    unit: str,
    treated,
    time: str,
    outcome: str,
    intervention_start,
    donors="all",
    placebo: bool = True,
    demean: bool = False,
) -> SyntheticControlResult:
    """Synthetic control (Abadie, Diamond & Hainmueller 2010, JASA 105:493-505) on an outcome path.

    Weights: convex combination of donors matching the treated unit's pre-intervention outcome values.
    Inference: ratio of post/pre RMSPE; placebo p-value = rank of the treated unit's ratio among the
    treated and all donors (each refitted as treated with the remaining donors) divided by J + 1;
    smallest attainable p = 1 / (J + 1).

    ``demean=True`` removes each unit's pre-intervention mean before matching (the "demeaned"
    synthetic control of Ferman & Pinto 2021, Quant Econ 12:1197-1221): use it when the treated unit
    lies outside the range of the donors (e.g. the region with the highest rate), where a convex
    combination cannot match its level.

    ``summary`` columns: ``rmspe_pre, rmspe_post, rmspe_ratio, average_gap_post,
    relative_gap_post`` (mean post gap / mean synthetic post outcome), ``p_value, placebo_rank,
    min_attainable_p, n_donors, method``.
    """
    require_columns(data, [unit, time, outcome])
    ctrl = _units(data, unit, treated, donors)
    d = data[data[unit].isin([treated, *ctrl])]
    wide = d.pivot_table(index=time, columns=unit, values=outcome, aggfunc="first").sort_index()
    if wide.isna().any().any():
        bad = wide.columns[wide.isna().any()].tolist()
        raise ValueError(f"outcome {outcome!r} is missing for some time points in unit(s) {bad}")
    tnum, tunit = time_index(pd.Series(wide.index))
    t0 = time_point(intervention_start, datelike=tunit == "month")
    pre = tnum < t0
    if pre.sum() < 2 or (~pre).sum() < 1:
        raise ValueError("synthetic control needs at least 2 pre- and 1 post-intervention time points")

    def fit(tr, pool):
        y1, Y0 = wide[tr].to_numpy(), wide[pool].to_numpy()
        if demean:
            y1_shift, Y0_shift = y1[pre].mean(), Y0[pre].mean(axis=0)
        else:
            y1_shift, Y0_shift = 0.0, np.zeros(Y0.shape[1])
        w = _simplex_weights(y1[pre] - y1_shift, Y0[pre] - Y0_shift)
        synth = (Y0 - Y0_shift) @ w + y1_shift
        gap = wide[tr].to_numpy() - synth
        r_pre = float(np.sqrt(np.mean(gap[pre] ** 2)))
        r_post = float(np.sqrt(np.mean(gap[~pre] ** 2)))
        return w, synth, gap, r_pre, r_post

    w, synth, gap, r_pre, r_post = fit(treated, ctrl)
    rows = [{"unit": treated, "is_treated": True, "rmspe_pre": r_pre, "rmspe_post": r_post}]
    if placebo and len(ctrl) >= 2:
        for c in ctrl:
            pool = [u for u in ctrl if u != c]
            _w, _s, _g, rp, rq = fit(c, pool)
            rows.append({"unit": c, "is_treated": False, "rmspe_pre": rp, "rmspe_post": rq})
    plc = pd.DataFrame(rows)
    plc["rmspe_ratio"] = plc["rmspe_post"] / plc["rmspe_pre"].where(plc["rmspe_pre"] > 0)
    J = len(ctrl)
    ratio = r_post / r_pre if r_pre > 0 else np.inf
    if placebo and len(plc) == J + 1:
        rank = int((plc["rmspe_ratio"].fillna(np.inf).to_numpy() >= ratio - 1e-12).sum())
        p = rank / (J + 1)
    else:
        rank, p = np.nan, np.nan
    post_syn = synth[~pre].mean()
    summary = pd.DataFrame(
        {
            "rmspe_pre": [r_pre],
            "rmspe_post": [r_post],
            "rmspe_ratio": [ratio],
            "average_gap_post": [float(gap[~pre].mean())],
            "relative_gap_post": [float(gap[~pre].mean() / post_syn) if post_syn else np.nan],
            "p_value": [p],
            "placebo_rank": [rank],
            "min_attainable_p": [1 / (J + 1)],
            "n_donors": [J],
            "method": [("demeaned " if demean else "") + "synthetic control (convex weights on pre-period "
                       "outcomes), placebo RMSPE-ratio test"],
        }
    )
    weights = pd.DataFrame({"donor": ctrl, "weight": w})
    path = pd.DataFrame({"time": wide.index, "treated": wide[treated].to_numpy(), "synthetic": synth,
                         "gap": gap, "post": ~pre})
    t_label = wide.index[np.flatnonzero(~pre)[0]]
    return SyntheticControlResult(weights=weights, path=path, summary=summary, placebo=plc,
                                  intervention_time=t_label)
