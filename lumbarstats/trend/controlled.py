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

Synthetic control (Abadie, Diamond & Hainmueller 2010): non-negative donor weights summing to one,
either with predictors and optimised V weights (Abadie & Gardeazabal 2003) or matching the
pre-intervention outcome path only (V = identity on outcome lags); inference by the ratio of post- to
pre-intervention RMSPE ranked among placebo runs in space, and placebo runs in time.
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
    fourier_terms,
    linear_combination,
    month_number,
    require_columns,
    time_index,
    time_point,
)
from .models import fit_count_glm_or_reason

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
    units = d[unit].to_numpy()
    must = {"in the treated unit before the intervention": (is_t == 1) & (post == 0),
            "in the treated unit after the intervention": (is_t == 1) & (post == 1),
            **{f"in unit {u!r}": units == u for u in pd.unique(units)}}
    res, method, reason = fit_count_glm_or_reason(y, X, off, family=family, hac_lags=hac_lags, groups=groups,
                                                  must_have_events=must)
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
    return pd.DataFrame({"term": rows, "estimate": est, "se": se, "lower": lo, "upper": hi, "p_value": p,
                         "reason": pd.array([reason] * len(rows), dtype="string")}), method


@dataclass
class ControlledITSResult:
    """``summary``: one row per term; ``placebo``: each unit's estimates as if it were treated."""

    summary: pd.DataFrame
    placebo: pd.DataFrame

    def _repr_html_(self) -> str:
        """The notebook view: the summary rounded (the placebo table stays in ``.placebo``)."""
        from lumbarstats.formatting import result_html

        return result_html("Controlled interrupted time series", self.summary,
                           lines=[f"placebo runs: {self.placebo['unit'].nunique()} units"
                                  if "unit" in self.placebo.columns else ""])

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
    ``placebo_rank``, ``n_controls``, ``conf_level``, ``method``, ``reason`` (why an estimate is NaN: the
    model could not be estimated on these data, e.g. no events in the treated region after the
    intervention, or a placebo run could not — small regions do not stop the analysis). Terms: ``level_change_difference``,
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
        obs = abs(float(sub.loc[sub["is_treated"], "estimate"].iloc[0]))
        if placebo and len(sub) == J + 1 and np.isfinite(obs):
            rank = int((np.abs(sub["estimate"].to_numpy()) >= obs - 1e-12).sum())
            pv.append(rank / (J + 1))
            ranks.append(rank)
        else:
            pv.append(np.nan)
            ranks.append(np.nan)
    # a placebo run that could not be estimated leaves the permutation distribution incomplete
    failed = plc.loc[plc["reason"].notna() & ~plc["is_treated"], "unit"].unique().tolist()
    if failed:
        pv, ranks = [np.nan] * len(pv), [np.nan] * len(ranks)
        note = f"placebo run(s) for {failed} could not be estimated: no placebo p-value"
        out["reason"] = out["reason"].fillna(note)
    out["p_value_placebo"] = pv
    out["placebo_rank"] = ranks
    out["min_attainable_p"] = 1 / (J + 1)
    out["n_controls"] = J
    out["conf_level"] = conf_level
    out["method"] = f"controlled ITS, {method}; placebo-in-space permutation test"
    summary = out[["term", "rate_ratio", "lower", "upper", "p_value", "p_value_placebo", "placebo_rank",
                   "min_attainable_p", "n_controls", "conf_level", "method", "reason"]]
    plc = plc[["unit", "is_treated", "term", "estimate", "se", "rate_ratio", "p_value", "reason"]]
    return ControlledITSResult(summary=summary, placebo=plc)


# -- synthetic control ----------------------------------------------------------------------------
def _simplex_weights(y1: np.ndarray, Y0: np.ndarray) -> np.ndarray:
    """argmin ||y1 - Y0 w||^2 s.t. w >= 0, sum w = 1, solved exactly.

    NNLS (scipy) with the sum-to-one constraint as a heavily weighted extra row finds the support; the
    exact solution on that support comes from the KKT equations, and active-set steps repair it until the
    KKT conditions hold (a general-purpose SLSQP run stopped 2e-11 to 3e-9 short of the optimum, which
    moved placebo RMSPE ratios by up to 3e-5)."""
    J = Y0.shape[1]
    if J == 1:
        return np.ones(1)
    scale = max(float(np.abs(Y0).max()), float(np.abs(y1).max()), 1e-300)
    a, B = y1 / scale, Y0 / scale
    big = 1e3 * max(1.0, float(np.linalg.norm(B, 2)))
    w, _ = optimize.nnls(np.vstack([B, np.full((1, J), big)]), np.r_[a, big])
    support = [int(j) for j in np.flatnonzero(w > 0)] or [int(np.argmin(((a[:, None] - B) ** 2).sum(axis=0)))]
    for _ in range(4 * J):
        Bs = B[:, support]
        k = len(support)
        kkt = np.block([[2 * Bs.T @ Bs, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
        sol = np.linalg.lstsq(kkt, np.r_[2 * Bs.T @ a, 1.0], rcond=None)[0]
        ws, mu = sol[:k], sol[k]
        if (ws < 0).any():
            support.pop(int(np.argmin(ws)))
            continue
        w = np.zeros(J)
        w[support] = ws
        slack = -2 * B.T @ (a - B @ w) + mu  # >= 0 off the support at the optimum
        violated = [j for j in range(J) if j not in support and slack[j] < -1e-12 * max(1.0, abs(mu))]
        if not violated:
            break
        support.append(min(violated, key=lambda j: slack[j]))
    w = np.clip(w, 0, None)
    return w / w.sum()


@dataclass
class SyntheticControlResult:
    """``weights`` (donor, weight), ``path`` (time, treated, synthetic, gap), ``summary`` (one row),
    ``placebo`` (one row per unit: rmspe_pre, rmspe_post, ratio); with predictors also ``v_weights``
    (predictor, v) and ``balance`` (predictor, treated, synthetic, donor_mean); ``placebo_in_time`` (one
    row per fake intervention time) when asked for."""

    weights: pd.DataFrame
    path: pd.DataFrame
    summary: pd.DataFrame
    placebo: pd.DataFrame
    intervention_time: object
    v_weights: pd.DataFrame | None = None
    balance: pd.DataFrame | None = None
    placebo_in_time: pd.DataFrame | None = None

    def _repr_html_(self) -> str:
        """The notebook view: the summary and the donor weights, rounded."""
        from lumbarstats.formatting import result_html

        weights = self.weights[self.weights["weight"] > 0.0005] if "weight" in self.weights.columns else self.weights
        return (result_html("Synthetic control", self.summary, index=False,
                            lines=[f"intervention at {self.intervention_time}"])
                + result_html("Donor weights (above 0.0005)", weights, index=False))

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


@dataclass
class _PredictorSpec:
    """Abadie–Diamond–Hainmueller predictors: columns averaged over ``periods``; special predictors
    (column, periods, op); the periods whose outcome the V weights are chosen to fit."""

    predictors: list
    periods: list
    op: str
    special: list
    optimize_periods: list
    v_methods: tuple

    def shifted(self, shift: float) -> _PredictorSpec:
        return _PredictorSpec(self.predictors, [p + shift for p in self.periods], self.op,
                              [(c, [p + shift for p in ps], op) for c, ps, op in self.special],
                              [p + shift for p in self.optimize_periods], self.v_methods)


def _predictor_matrices(data, spec: _PredictorSpec, *, unit, time, outcome, treated, pool):
    """X1, X0 (predictors x units) and Z1, Z0 (optimisation periods x units) with pysyncon's Dataprep."""
    from pysyncon import Dataprep

    dp = Dataprep(foo=data, predictors=spec.predictors, predictors_op=spec.op,
                  time_predictors_prior=spec.periods or spec.optimize_periods, special_predictors=spec.special or None,
                  dependent=outcome, unit_variable=unit, time_variable=time, treatment_identifier=treated,
                  controls_identifier=list(pool), time_optimize_ssr=spec.optimize_periods)
    X0, X1 = dp.make_covariate_mats()
    Z0, Z1 = dp.make_outcome_mats()
    if X0.isna().any().any() or X1.isna().any() or Z0.isna().any().any() or Z1.isna().any():
        bad = sorted(set(X0.index[X0.isna().any(axis=1)]) | set(X1.index[X1.isna()]))
        raise ValueError(f"predictor(s) {bad or [outcome]} have no values in the chosen periods for some units "
                         f"(treated {treated!r} or donors {list(pool)})")
    return X0[list(pool)], X1, Z0[list(pool)], Z1


#: options of the optimisers of V (scipy.optimize.minimize); adaptive Nelder–Mead for the 10–20 dimensions
_V_OPTIONS = {"Nelder-Mead": {"maxiter": 20_000, "xatol": 1e-10, "fatol": 1e-14, "adaptive": True},
              "BFGS": {"maxiter": 2000}}


def _nested_weights(X0, X1, Z0, Z1, v_methods):
    """W(V) = argmin (X1 - X0 W)' V (X1 - X0 W) on the simplex, V = argmin of the outcome fit over the
    optimisation periods (Abadie & Gardeazabal 2003; Abadie, Diamond & Hainmueller 2010), as R's Synth:
    predictors scaled by their standard deviation across units, V started from equal weights and
    optimised by each of ``v_methods`` (Synth's default Nelder-Mead and BFGS), the best kept."""
    X = pd.concat([X0, X1], axis=1)
    sd = X.std(axis=1).replace(0, 1.0)
    x0 = X0.divide(sd, axis=0).to_numpy(dtype=float)
    x1 = X1.divide(sd).to_numpy(dtype=float)
    z0, z1 = Z0.to_numpy(dtype=float), Z1.to_numpy(dtype=float)

    def w_of(v):
        root = np.sqrt(v)
        return _simplex_weights(root * x1, root[:, None] * x0)

    def loss(par):
        v = np.abs(par) / max(np.abs(par).sum(), 1e-300)
        r = z1 - z0 @ w_of(v)
        return float(r @ r) / len(r)

    k = x0.shape[0]
    start = np.full(k, 1.0 / k)
    best = (loss(start), start)
    for method in v_methods:
        res = optimize.minimize(loss, start, method=method, options=_V_OPTIONS.get(method, {}))
        if res.fun < best[0]:
            best = (float(res.fun), res.x)
    # a second run from the best point, so that the result does not hinge on where one optimiser stopped
    # (the order of donors and predictors changes the optimisers' paths)
    for method in v_methods:
        res = optimize.minimize(loss, best[1], method=method, options=_V_OPTIONS.get(method, {}))
        if res.fun < best[0]:
            best = (float(res.fun), res.x)
    v = np.abs(best[1]) / np.abs(best[1]).sum()
    return w_of(v), v


def _rmspe(gap, pre):
    return float(np.sqrt(np.mean(gap[pre] ** 2))), float(np.sqrt(np.mean(gap[~pre] ** 2)))


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
    predictors: list[str] | None = None,
    predictor_periods=None,
    predictors_op: str = "mean",
    special_predictors: list | None = None,
    optimize_periods=None,
    placebo_times=None,
    v_methods: tuple = ("Nelder-Mead", "BFGS"),
) -> SyntheticControlResult:
    """Synthetic control (Abadie, Diamond & Hainmueller 2010, JASA 105:493-505).

    **With predictors** (``predictors`` and/or ``special_predictors`` given): the method of Abadie &
    Gardeazabal (2003, AER 93:113-132) and Abadie et al. (2010). ``predictors`` are columns averaged
    (``predictors_op``) over ``predictor_periods``; ``special_predictors`` are ``(column, periods, op)``
    triples, e.g. ``("gdpcap", range(1960, 1970), "mean")``. Donor weights W minimise the V-weighted
    distance between the treated unit's and the donors' predictors (each scaled by its standard
    deviation across units); the diagonal V is chosen to minimise the mean squared outcome gap over
    ``optimize_periods`` (default: every pre-intervention time) — the nested optimisation of R's Synth,
    with its default optimisers (``v_methods``: Nelder–Mead and BFGS from equal V, the better kept).
    On the Basque data of Abadie & Gardeazabal with the specification of Synth's ``basque`` example this
    gives Cataluña 0.8508 and Madrid 0.1492, the published weights (``tests/test_synthetic_control_predictors.py``).
    The V problem has local optima (Powell's method finds a V with a smaller loss and other weights on
    those data); like Synth, the result is the better of the two optimisers from equal V.
    The predictor matrices are built with pysyncon's ``Dataprep``. pysyncon's own ``Synth.fit`` is not
    used: its inner quadratic programme (SLSQP at default tolerance) is too imprecise for the outer
    Nelder–Mead, which stops at a V loss four times Synth's on the Basque data (weights Cataluña 0.917,
    Cantabria 0.053, Madrid 0.030); here the inner problem is solved exactly (:func:`_simplex_weights`).
    Its ``PlaceboTest`` starts a process pool and counts the intervention time in both the pre- and the
    post-period of its p-value, so the placebo runs are done here.

    **Outcome path only** (no predictors; the earlier behaviour of this function): weights match the
    treated unit's pre-intervention outcome values, every pre-period equally weighted (V = identity on
    outcome lags). ``demean=True`` (this variant only) removes each unit's pre-intervention mean first
    (Ferman & Pinto 2021, Quant Econ 12:1197-1221): use it when the treated unit lies outside the range
    of the donors (e.g. the region with the highest rate), where a convex combination cannot match its
    level.

    Inference: placebo-in-space — each donor refitted as treated with the remaining donors and the same
    specification; the p-value is the rank of the treated unit's post/pre RMSPE ratio among all J + 1
    ratios divided by J + 1; the smallest attainable p-value is 1 / (J + 1) (column
    ``min_attainable_p``). Placebo-in-time (``placebo_times``, numeric time only; Abadie, Diamond &
    Hainmueller 2015, AJPS 59:495-510): the analysis is rerun on the data before the real intervention
    with a fake intervention at each given time and every period of the specification moved back by
    the same amount; ``placebo_in_time`` has one row per fake time (``rmspe_pre, rmspe_post,
    rmspe_ratio, average_gap_post``).

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
    spec = None
    if predictors or special_predictors:
        if demean:
            raise ValueError("demean=True is available for the outcome-path-only variant (no predictors)")
        if predictors and predictor_periods is None:
            raise ValueError("predictors need predictor_periods (the times over which they are averaged)")
        require_columns(data, [*(predictors or []), *(c for c, _p, _o in (special_predictors or []))])
        spec = _PredictorSpec(list(predictors or []), list(predictor_periods or []), predictors_op,
                              [(c, list(p), op) for c, p, op in (special_predictors or [])],
                              list(wide.index[pre] if optimize_periods is None else optimize_periods),
                              tuple(v_methods))

    def fit(tr, pool, frame=d, sub_wide=wide, sub_pre=pre, sub_spec=spec):
        y1, Y0 = sub_wide[tr].to_numpy(), sub_wide[pool].to_numpy()
        v = None
        if sub_spec is not None:
            X0, X1, Z0, Z1 = _predictor_matrices(frame, sub_spec, unit=unit, time=time, outcome=outcome,
                                                 treated=tr, pool=pool)
            w, v = _nested_weights(X0, X1, Z0, Z1, sub_spec.v_methods)
            y1_shift, Y0_shift = 0.0, np.zeros(Y0.shape[1])
        else:
            if demean:
                y1_shift, Y0_shift = y1[sub_pre].mean(), Y0[sub_pre].mean(axis=0)
            else:
                y1_shift, Y0_shift = 0.0, np.zeros(Y0.shape[1])
            w = _simplex_weights(y1[sub_pre] - y1_shift, Y0[sub_pre] - Y0_shift)
        synth = (Y0 - Y0_shift) @ w + y1_shift
        gap = y1 - synth
        r_pre, r_post = _rmspe(gap, sub_pre)
        return w, synth, gap, r_pre, r_post, v

    # placebo-in-time first: a specification whose moved periods have no data fails before the long fits
    in_time = None
    if placebo_times is not None:
        in_time = _placebo_in_time(d, wide, tnum, t0, tunit, placebo_times, spec, fit, treated, ctrl, time)
    w, synth, gap, r_pre, r_post, v = fit(treated, ctrl)
    rows = [{"unit": treated, "is_treated": True, "rmspe_pre": r_pre, "rmspe_post": r_post}]
    if placebo and len(ctrl) >= 2:
        for c in ctrl:
            pool = [u for u in ctrl if u != c]
            *_rest, rp, rq, _v = fit(c, pool)
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
    variant = ("synthetic control with predictors (nested V and W, Abadie-Diamond-Hainmueller)" if spec is not None
               else ("demeaned " if demean else "") + "synthetic control (convex weights on pre-period outcomes)")
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
            "method": [variant + ", placebo RMSPE-ratio test"],
        }
    )
    weights = pd.DataFrame({"donor": ctrl, "weight": w})
    path = pd.DataFrame({"time": wide.index, "treated": wide[treated].to_numpy(), "synthetic": synth,
                         "gap": gap, "post": ~pre})
    t_label = wide.index[np.flatnonzero(~pre)[0]]
    v_weights = balance = None
    if spec is not None:
        X0, X1, _z0, _z1 = _predictor_matrices(d, spec, unit=unit, time=time, outcome=outcome, treated=treated,
                                               pool=ctrl)
        v_weights = pd.DataFrame({"predictor": list(X1.index), "v": v})
        balance = pd.DataFrame({"predictor": list(X1.index), "treated": X1.to_numpy(),
                                "synthetic": X0.to_numpy() @ w, "donor_mean": X0.mean(axis=1).to_numpy()})
    return SyntheticControlResult(weights=weights, path=path, summary=summary, placebo=plc,
                                  intervention_time=t_label, v_weights=v_weights, balance=balance,
                                  placebo_in_time=in_time)


def _placebo_in_time(d, wide, tnum, t0, tunit, placebo_times, spec, fit, treated, ctrl, time):
    """Refit on the data before the real intervention with a fake intervention at each time, the
    specification's periods moved back by the same amount."""
    if tunit == "month":
        raise ValueError("placebo_times needs a numeric time column (e.g. year)")
    rows = []
    for fake in placebo_times:
        fake = float(fake)
        keep = tnum < t0
        sub_t = tnum[keep]
        sub_pre = sub_t < fake
        if sub_pre.sum() < 2 or (~sub_pre).sum() < 1:
            raise ValueError(f"placebo time {fake:g} leaves fewer than 2 pre- or 1 post-time point before "
                             f"the intervention ({t0:g})")
        sub_spec = spec.shifted(fake - t0) if spec is not None else None
        if sub_spec is not None:
            sub_spec.optimize_periods = [p for p in sub_spec.optimize_periods if p < fake]
        frame = d[d[time].isin(wide.index[keep])]
        _w, _s, gap, rp, rq, _v = fit(treated, ctrl, frame=frame, sub_wide=wide.loc[keep], sub_pre=sub_pre,
                                      sub_spec=sub_spec)
        rows.append({"placebo_time": fake, "rmspe_pre": rp, "rmspe_post": rq,
                     "rmspe_ratio": rq / rp if rp > 0 else np.inf, "average_gap_post": float(gap[~sub_pre].mean())})
    return pd.DataFrame(rows)
