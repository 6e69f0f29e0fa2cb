"""Staggered adoption: Callaway & Sant'Anna (2021) group-time ATTs and an event study built on them.

Callaway, B. and Sant'Anna, P. H. C. (2021). Difference-in-differences with multiple time periods.
*Journal of Econometrics* 225(2), 200-230. doi:10.1016/j.jeconom.2020.12.001. The R package ``did``
(Callaway & Sant'Anna) is the reference implementation; the aggregations, the weight influence
function (``wif``), the pre-test and the multiplier bootstrap below follow its ``compute.aggte``,
``conditional_did_pretest``/``att_gt`` and ``mboot``.

Why our own code and not a Python port: ``csdid`` 0.4.3 (PyPI) reproduces ``did`` on ``mpdta`` (we use it
as a cross-check in the tests when it is installed), but it declares release tooling (``twine``, and
through it ``keyring``/``cryptography``) and ``plotnine`` as run-time dependencies and returns printed
tables; ``differences`` 0.3.0 and ``pyfixest`` 0.60 do not offer this estimator with influence functions
we can reuse. Without covariates the outcome-regression, IPW and doubly robust 2x2 estimators all reduce
to a difference of mean changes (treated group minus comparison group), so the estimator is a few lines
of NumPy; its influence functions give the analytic standard errors, the aggregations and the
pre-trend Wald test exactly as in ``did``.

Small numbers of units: the standard errors are asymptotic in the number of *units*. With the five
Danish regions (one region per adoption group) they understate the uncertainty badly (the treated
group's own variance cannot be estimated from one unit); use :mod:`lumbarstats.trend.inference`
(randomization inference, wild cluster bootstrap) for honest p-values there. The ``note`` column says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["staggered_did", "StaggeredDiDResult", "AggregateResult", "event_study", "EventStudyResult",
           "prepare_panel", "simulate_staggered_panel", "SMALL_N_UNITS"]

#: below this many units the asymptotic (influence-function) inference is flagged as unreliable
SMALL_N_UNITS = 30

_CONTROL_GROUPS = ("notyettreated", "nevertreated")
_KINDS = ("simple", "group", "dynamic")


# ----------------------------------------------------------------------------------------------
# data preparation
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Panel:
    """A balanced panel as arrays: ``Y[i, t]``, group ``G[i]`` (position of the first treated period,
    0 = never treated within the data), the unit labels and the time labels."""

    Y: np.ndarray
    G: np.ndarray
    units: np.ndarray
    times: np.ndarray
    dropped_always_treated: tuple = ()


def _never_mask(ft: pd.Series) -> np.ndarray:
    never = ft.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(ft):
        never |= (ft.fillna(0).to_numpy() == 0)
    return never


def prepare_panel(panel: pd.DataFrame, *, unit: str, time: str, outcome: str, first_treated: str) -> Panel:
    """Check and reshape a long panel (one row per unit and time) into arrays.

    ``first_treated`` is the first treated period in the units of ``time`` (0 or missing = never treated
    within the data); a start after the last period counts as never treated within the data and units
    treated from the first period on are dropped with a warning (they have no pre-period, as in ``did``).
    Raises one ``ValueError`` naming the column, rule and rows on bad input."""
    missing = [c for c in (unit, time, outcome, first_treated) if c not in panel.columns]
    if missing:
        raise ValueError(f"panel: missing column(s) {missing}; columns are {list(panel.columns)}")
    df = panel[[unit, time, outcome, first_treated]]
    dup = df.duplicated([unit, time], keep=False)
    if dup.any():
        raise ValueError(f"panel: more than one row per ({unit}, {time}) in rows "
                         f"{list(df.index[dup][:10])}")
    bad = df[outcome].isna() | ~np.isfinite(pd.to_numeric(df[outcome], errors="coerce").fillna(np.nan))
    if bad.any():
        raise ValueError(f"panel: column {outcome!r} is missing or not finite in rows {list(df.index[bad][:10])}")
    per_unit = df.groupby(unit, sort=True)[first_treated].nunique(dropna=False)
    if (per_unit > 1).any():
        raise ValueError(f"panel: column {first_treated!r} must be constant within a unit; it varies for "
                         f"{list(per_unit.index[per_unit > 1][:10])}")
    wide = df.pivot(index=unit, columns=time, values=outcome).sort_index(axis=0).sort_index(axis=1)
    if wide.isna().any().any():
        gaps = wide.index[wide.isna().any(axis=1)]
        raise ValueError(f"panel: not balanced; units {list(gaps[:10])} lack some {time!r} values")
    times = wide.columns.to_numpy()
    if len(times) < 2:
        raise ValueError(f"panel: column {time!r} needs at least two periods")
    ft = df.groupby(unit, sort=True)[first_treated].first().reindex(wide.index)
    never = _never_mask(ft)
    G = np.zeros(len(ft), dtype=int)
    treated_vals = ft[~never].to_numpy()
    if len(treated_vals):
        pos = np.searchsorted(times, treated_vals, side="left")
        G[~never] = np.where(pos >= len(times), 0, pos)
    always = (~never) & (np.searchsorted(times, ft.where(~never).fillna(times[-1]).to_numpy(), "left") == 0)
    Y = wide.to_numpy(dtype=float)
    units = wide.index.to_numpy()
    dropped = ()
    if always.any():
        dropped = tuple(units[always])
        warnings.warn(f"panel: units {list(dropped)} are treated from the first period on and are dropped "
                      "(no pre-treatment period)", stacklevel=3)
        Y, G, units = Y[~always], G[~always], units[~always]
    if not (G > 0).any():
        raise ValueError(f"panel: no unit is treated within the data (column {first_treated!r})")
    return Panel(Y=Y, G=G, units=units, times=times, dropped_always_treated=dropped)


# ----------------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------------

def _att_gt(p: Panel, *, control_group: str, anticipation: int, base_period: str):
    """ATT(g, t) and their influence functions (n x K), one column per (g, t)."""
    Y, G = p.Y, p.G
    n, T = Y.shape
    rows, infs = [], []
    for g in np.unique(G[G > 0]):
        post_base = g - 1 - anticipation
        if post_base < 0:
            continue
        tlist = range(1, T) if base_period == "varying" else range(T)
        for t in tlist:
            if base_period == "varying":
                base = t - 1 if t < g - anticipation else post_base
            else:
                base = post_base
                if t == base:
                    continue
            if control_group == "nevertreated":
                ctrl = G == 0
            else:
                ctrl = (G == 0) | ((G > max(t, base) + anticipation) & (G != g))
            treat = G == g
            dy = Y[:, t] - Y[:, base]
            n_t, n_c = int(treat.sum()), int(ctrl.sum())
            if n_c == 0:
                rows.append((g, t, base, np.nan, n_t, 0))
                infs.append(np.full(n, np.nan))
                continue
            m_t, m_c = dy[treat].mean(), dy[ctrl].mean()
            inf = (treat * (dy - m_t) / (n_t / n)) - (ctrl * (dy - m_c) / (n_c / n))
            rows.append((g, t, base, m_t - m_c, n_t, n_c))
            infs.append(inf)
    tab = pd.DataFrame(rows, columns=["g", "t", "base", "estimate", "n_treated", "n_control"])
    return tab, np.column_stack(infs) if infs else np.zeros((n, 0))


def _se(inf: np.ndarray) -> np.ndarray:
    """``did``'s analytic standard error: sqrt(mean(IF^2) / n) per column."""
    n = inf.shape[0]
    return np.sqrt(np.mean(inf ** 2, axis=0) / n)


def _mboot(inf: np.ndarray, *, iterations: int, alpha: float, seed) -> tuple[np.ndarray, float]:
    """Multiplier bootstrap of ``did::mboot`` (Mammen weights): standard errors from the interquartile
    range of the bootstrap draws and the critical value of the simultaneous (sup-t) band."""
    rng = np.random.default_rng(seed)
    n = inf.shape[0]
    s5 = np.sqrt(5.0)
    k1, k2 = (1 - s5) / 2, (1 + s5) / 2
    v = np.where(rng.random((iterations, n)) < (s5 + 1) / (2 * s5), k1, k2)
    bres = np.sqrt(n) * (v @ inf) / n
    q75, q25 = np.quantile(bres, 0.75, axis=0, method="inverted_cdf"), np.quantile(bres, 0.25, axis=0,
                                                                                    method="inverted_cdf")
    sigma = (q75 - q25) / (stats.norm.ppf(0.75) - stats.norm.ppf(0.25))
    ok = sigma > np.sqrt(np.finfo(float).eps) * 10
    bT = np.max(np.abs(bres[:, ok] / sigma[ok]), axis=1) if ok.any() else np.array([np.nan])
    crit = float(np.quantile(bT, 1 - alpha, method="inverted_cdf"))
    se = np.where(ok, sigma / np.sqrt(n), np.nan)
    return se, crit


def _wif(keep: np.ndarray, pg: np.ndarray, group: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Influence function of the estimated aggregation weights P(G=g)/sum P(G=g) (``did``'s ``wif``)."""
    ind = (G[:, None] == group[keep][None, :]).astype(float)  # n x k
    pk = pg[keep]
    s = pk.sum()
    if1 = (ind - pk) / s
    if2 = (ind - pk).sum(axis=1, keepdims=True) * (pk / s ** 2)[None, :]
    return if1 - if2


def _agg(att, inf, keep, weights, wif=None):
    est = float(att[keep] @ weights)
    f = inf[:, keep] @ weights
    if wif is not None:
        f = f + wif @ att[keep]
    return est, f


def _wald(est: np.ndarray, inf: np.ndarray) -> dict:
    """Joint Wald test that ``est`` are all zero, with the influence-function covariance
    V = IF'IF / n^2 (``did``: W = n att' (IF'IF/n)^-1 att). A singular V (fewer units than leads)
    is inverted by the pseudo-inverse and the degrees of freedom are its rank."""
    n = inf.shape[0]
    k = len(est)
    if k == 0:
        return {"stat": np.nan, "df": 0, "p_value": np.nan, "note": "no pre-treatment estimates"}
    # V = F'F / n^2 with F = inf (n x k): invert through the thin SVD of F (cheap when n or k is small)
    _, s, vt = np.linalg.svd(inf, full_matrices=False)
    keep = s > s.max(initial=0.0) * max(inf.shape) * np.finfo(float).eps
    rank = int(keep.sum())
    W = float(n ** 2 * np.sum(((vt[keep] @ est) / s[keep]) ** 2))
    note = "" if rank == k else f"covariance of the {k} leads has rank {rank} (too few units); df = rank. "
    if n < SMALL_N_UNITS:
        note += (f"With {n} units this asymptotic Wald test over-rejects heavily (in a simulation of five "
                 "regions with parallel trends it rejected at 5 % in most replications): read the leads, "
                 "not the p-value.")
    return {"stat": W, "df": rank, "p_value": float(stats.chi2.sf(W, rank)) if rank else np.nan, "note": note}


def _small_note(n_units: int, n_treated_min: int) -> str:
    if n_units < SMALL_N_UNITS or n_treated_min < 2:
        return (f"asymptotic inference with {n_units} units (smallest adoption group: {n_treated_min}); "
                "intervals are too narrow with so few units - use randomization inference or the "
                "wild cluster bootstrap")
    return "asymptotic (influence-function) inference"


@dataclass
class AggregateResult:
    """An aggregation of ATT(g, t) (``did::aggte``): ``overall`` and the table ``detail`` by group,
    event time or nothing (``simple``)."""

    kind: str
    overall: dict
    detail: pd.DataFrame
    influence: np.ndarray = field(repr=False, default=None)
    detail_influence: np.ndarray = field(repr=False, default=None)

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([self.overall], index=pd.Index([self.kind], name="aggregation"))


@dataclass
class StaggeredDiDResult:
    """Result of :func:`staggered_did`. ``att_gt`` has one row per group (first treated period) and time:
    ``group, time, base_time, post, estimate, se, lower, upper, p_value, n_treated, n_control``;
    ``summary`` the overall simple, group and dynamic aggregations (``estimate, se, lower, upper,
    p_value, min_p_value, note``); ``pretrend_test`` the Wald pre-test of ``did``."""

    att_gt: pd.DataFrame
    panel: Panel = field(repr=False)
    influence: np.ndarray = field(repr=False)
    control_group: str
    anticipation: int
    base_period: str
    conf_level: float
    bootstrap: int
    seed: object = None
    crit_value: float = None

    @property
    def pretrend_test(self) -> dict:
        """``did``'s Wald pre-test that every pre-period ATT(g, t) is zero: stat, df, p_value, note."""
        tab = self.att_gt
        pre = np.flatnonzero(tab["estimate"].notna().to_numpy() & ~tab["post"].to_numpy())
        return _wald(tab["estimate"].to_numpy()[pre], self.influence[:, pre])

    # -- aggregation --------------------------------------------------------------------------
    def aggregate(self, kind: str = "simple") -> AggregateResult:
        """``simple`` (post-period ATT(g,t) weighted by group size), ``group`` (average effect per group,
        then across groups) or ``dynamic`` (by event time e = t - g; overall = mean over e >= 0), as
        ``did::aggte``. Standard errors from the influence functions (plus the weights' ``wif``)."""
        if kind not in _KINDS:
            raise ValueError(f"aggregate: kind must be one of {_KINDS}, got {kind!r}")
        tab = self.att_gt
        ok = tab["estimate"].notna().to_numpy()
        att = np.nan_to_num(tab["estimate"].to_numpy(float))
        inf = np.nan_to_num(self.influence)
        G = self.panel.G
        g_pos = tab["_g"].to_numpy()
        t_pos = tab["_t"].to_numpy()
        pg_by_g = {g: np.mean(G == g) for g in np.unique(g_pos)}
        pg = np.array([pg_by_g[g] for g in g_pos])
        post = (g_pos <= t_pos) & ok
        detail_rows, detail_inf = [], []
        if kind == "simple":
            keep = np.flatnonzero(post)
            est, f = _agg(att, inf, keep, pg[keep] / pg[keep].sum(), _wif(keep, pg, g_pos, G))
        elif kind == "group":
            glist = np.unique(g_pos)
            att_g, inf_g = [], []
            for g in glist:
                keep = np.flatnonzero((g_pos == g) & post)
                e, f = _agg(att, inf, keep, np.full(len(keep), 1 / len(keep)))
                att_g.append(e)
                inf_g.append(f)
                detail_rows.append({"group": self._label_time(g), "estimate": e})
            att_g, inf_g = np.array(att_g), np.column_stack(inf_g)
            pgg = np.array([pg_by_g[g] for g in glist])
            idx = np.arange(len(glist))
            est, f = _agg(att_g, inf_g, idx, pgg / pgg.sum(), _wif(idx, pgg, glist, G))
            detail_inf = inf_g
        else:
            ev = t_pos - g_pos
            eseq = np.unique(ev[ok])
            att_e, inf_e = [], []
            for e in eseq:
                keep = np.flatnonzero((ev == e) & ok)
                a, f = _agg(att, inf, keep, pg[keep] / pg[keep].sum(), _wif(keep, pg, g_pos, G))
                att_e.append(a)
                inf_e.append(f)
                detail_rows.append({"event_time": int(e), "estimate": a})
            att_e, inf_e = np.array(att_e), np.column_stack(inf_e)
            pos = np.flatnonzero(eseq >= 0)
            est, f = _agg(att_e, inf_e, pos, np.full(len(pos), 1 / len(pos)))
            detail_inf = inf_e
        overall = self._inference_row(est, f[:, None])
        detail = pd.DataFrame(detail_rows)
        if len(detail):
            d_inf = np.asarray(detail_inf)
            se = _se(d_inf)
            detail["se"] = se
            z = stats.norm.ppf(0.5 + self.conf_level / 2)
            detail["lower"] = detail["estimate"] - z * se
            detail["upper"] = detail["estimate"] + z * se
            detail["p_value"] = 2 * stats.norm.sf(np.abs(detail["estimate"] / se))
        return AggregateResult(kind=kind, overall=overall, detail=detail, influence=f,
                               detail_influence=np.asarray(detail_inf) if len(detail) else None)

    def _inference_row(self, est: float, inf: np.ndarray) -> dict:
        if self.bootstrap:
            se, _ = _mboot(inf, iterations=self.bootstrap, alpha=1 - self.conf_level, seed=self.seed)
            se = float(se[0])
        else:
            se = float(_se(inf)[0])
        z = stats.norm.ppf(0.5 + self.conf_level / 2)
        n_min = int(self.att_gt["n_treated"].min())
        return {"estimate": est, "se": se, "lower": est - z * se, "upper": est + z * se,
                "p_value": float(2 * stats.norm.sf(abs(est / se))) if se > 0 else np.nan,
                "min_p_value": 0.0, "conf_level": self.conf_level,
                "method": f"Callaway-Sant'Anna, {self.control_group} controls",
                "note": _small_note(len(self.panel.G), n_min)}

    def _label_time(self, pos: int):
        return self.panel.times[int(pos)]

    @property
    def summary(self) -> pd.DataFrame:
        """Overall effect by aggregation (rows ``simple``, ``group``, ``dynamic``)."""
        return pd.concat([self.aggregate(k).summary for k in _KINDS])

    def _repr_html_(self) -> str:
        from lumbarstats.formatting import result_html

        p = self.pretrend_test or {}
        lines = [f"{len(self.panel.G)} units, {len(self.panel.times)} periods; controls: {self.control_group}; "
                 f"{self.conf_level:.0%} intervals",
                 f"pre-trend Wald test: chi2 = {p.get('stat', np.nan):.2f}, df = {p.get('df')}, "
                 f"p = {p.get('p_value', np.nan):.3f}"]
        s = self.summary
        return result_html("Staggered difference-in-differences (Callaway & Sant'Anna 2021)",
                           s.drop(columns=["note", "method"]), lines=lines, warning=s["note"].iloc[0])

    def plot(self, ax=None, *, kind: str = "dynamic", title: str | None = None):
        """Event-time (``dynamic``) or group estimates with pointwise intervals."""
        import matplotlib.pyplot as plt

        agg = self.aggregate(kind)
        d = agg.detail
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        x = d.columns[0]
        ax.errorbar(d[x], d["estimate"], yerr=[d["estimate"] - d["lower"], d["upper"] - d["estimate"]],
                    fmt="o", capsize=3)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel("ATT")
        ax.set_title(title or f"Callaway & Sant'Anna ({kind})")
        return ax


def staggered_did(panel: pd.DataFrame, *, unit: str, time: str, outcome: str, first_treated: str,
                  control_group: str = "notyettreated", anticipation: int = 0, base_period: str = "varying",
                  conf_level: float = 0.95, bootstrap: int = 0, seed=None) -> StaggeredDiDResult:
    """Heterogeneity-robust staggered difference-in-differences of Callaway & Sant'Anna (2021).

    ATT(g, t) for every adoption group g (first treated period) and period t: the mean change of
    ``outcome`` from the base period to t in group g minus that in the comparison group -
    ``"notyettreated"`` (never treated units and units not yet treated by max(t, base) + anticipation;
    the default) or ``"nevertreated"``. ``base_period="varying"`` (``did``'s default) uses t-1 for
    pre-periods and g-1-anticipation for post-periods; ``"universal"`` uses g-1-anticipation throughout.
    Inference: analytic influence-function standard errors (``bootstrap=0``) or ``did``'s multiplier
    bootstrap with ``bootstrap`` draws (Mammen weights; also the simultaneous-band critical value).
    ``pretrend_test`` is ``did``'s Wald pre-test of all pre-period ATT(g, t) being zero.
    ``summary``: ``min_p_value`` is 0 (a normal approximation can reach any p-value); the ``note`` says
    when the number of units is too small for that approximation (then see :mod:`.inference`).

    ``panel``: one row per unit and period (balanced); ``first_treated``: first treated period in the
    units of ``time`` (0 or missing = never treated within the data). Period positions are used for
    event time, so monthly or quarterly series should have no gaps.

    Reference: Callaway, B. & Sant'Anna, P. H. C. (2021), J. Econometrics 225(2):200-230; R ``did``.
    """
    if control_group not in _CONTROL_GROUPS:
        raise ValueError(f"control_group must be one of {_CONTROL_GROUPS}, got {control_group!r}")
    if base_period not in ("varying", "universal"):
        raise ValueError(f"base_period must be 'varying' or 'universal', got {base_period!r}")
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level}")
    p = prepare_panel(panel, unit=unit, time=time, outcome=outcome, first_treated=first_treated)
    tab, inf = _att_gt(p, control_group=control_group, anticipation=int(anticipation), base_period=base_period)
    if tab.empty or tab["estimate"].notna().sum() == 0:
        raise ValueError("staggered_did: no group-time effect can be estimated (no comparison units)")
    if tab["estimate"].isna().any():
        warnings.warn(f"staggered_did: {int(tab['estimate'].isna().sum())} ATT(g,t) have no comparison units "
                      "and are left out", stacklevel=2)
    ok = tab["estimate"].notna().to_numpy()
    z = stats.norm.ppf(0.5 + conf_level / 2)
    crit = None
    if bootstrap:
        se = np.full(len(tab), np.nan)
        se[ok], crit = _mboot(inf[:, ok], iterations=int(bootstrap), alpha=1 - conf_level, seed=seed)
    else:
        se = np.where(ok, _se(np.nan_to_num(inf)), np.nan)
    times = p.times
    out = pd.DataFrame({
        "group": times[tab["g"]], "time": times[tab["t"]], "base_time": times[tab["base"]],
        "event_time": (tab["t"] - tab["g"]).to_numpy(), "post": (tab["t"] >= tab["g"]).to_numpy(),
        "estimate": tab["estimate"], "se": se,
    })
    out["lower"] = out["estimate"] - z * out["se"]
    out["upper"] = out["estimate"] + z * out["se"]
    out["p_value"] = 2 * stats.norm.sf(np.abs(out["estimate"] / out["se"]))
    out["n_treated"] = tab["n_treated"]
    out["n_control"] = tab["n_control"]
    out["_g"], out["_t"] = tab["g"].to_numpy(), tab["t"].to_numpy()
    return StaggeredDiDResult(att_gt=out, panel=p, influence=inf, control_group=control_group,
                              anticipation=int(anticipation), base_period=base_period, conf_level=conf_level,
                              bootstrap=int(bootstrap), seed=seed, crit_value=crit)


# ----------------------------------------------------------------------------------------------
# event study
# ----------------------------------------------------------------------------------------------

@dataclass
class EventStudyResult:
    """Result of :func:`event_study`: ``summary`` (rel_time, estimate, se, lower, upper, p_value,
    min_p_value, n_groups; the reference period -1-anticipation is 0 by construction),
    ``pretrend_test`` (stat, df, p_value: joint Wald test of the leads), ``did`` the underlying
    :class:`StaggeredDiDResult`."""

    summary: pd.DataFrame
    pretrend_test: dict
    did: StaggeredDiDResult = field(repr=False)
    leads: int
    lags: int
    note: str

    def _repr_html_(self) -> str:
        from lumbarstats.formatting import result_html

        p = self.pretrend_test
        lines = [f"event study, {self.leads} leads and {self.lags} lags; controls: {self.did.control_group}",
                 f"pre-trend (leads jointly zero): chi2 = {p['stat']:.2f}, df = {p['df']}, p = {p['p_value']:.3f}"]
        return result_html("Event study (Callaway & Sant'Anna 2021, universal base period)", self.summary,
                           lines=lines, warning=self.note, index=False)

    def plot(self, ax=None, *, title: str | None = None, xlabel: str = "periods since start",
             ylabel: str = "effect"):
        import matplotlib.pyplot as plt

        d = self.summary
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        pre = d["rel_time"] < 0
        for mask, colour in ((pre, "tab:red"), (~pre, "tab:blue")):
            s = d[mask]
            ax.errorbar(s["rel_time"], s["estimate"], yerr=[s["estimate"] - s["lower"], s["upper"] - s["estimate"]],
                        fmt="o", capsize=3, color=colour)
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(-0.5, color="grey", ls=":", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        return ax


def event_study(panel: pd.DataFrame, *, unit: str, time: str, outcome: str, first_treated: str,
                leads: int = 6, lags: int = 12, control_group: str = "notyettreated", anticipation: int = 0,
                conf_level: float = 0.95) -> EventStudyResult:
    """Event study with leads and lags, heterogeneity-robust: the dynamic aggregation of Callaway &
    Sant'Anna (2021) ATT(g, g+e) with a *universal* base period (e = -1 - anticipation is the reference,
    0 by construction), for e = -leads .. lags. Unlike a two-way fixed-effects regression with relative-time
    dummies it does not use already-treated units as controls (Sun & Abraham 2021, J. Econometrics
    225(2):175-199; Goodman-Bacon 2021). ``pretrend_test``: joint Wald test that all leads are zero
    (influence-function covariance; with fewer units than leads the covariance is singular and the
    degrees of freedom are its rank).
    """
    if leads < 0 or lags < 0:
        raise ValueError(f"event_study: leads and lags must be >= 0, got {leads}, {lags}")
    res = staggered_did(panel, unit=unit, time=time, outcome=outcome, first_treated=first_treated,
                        control_group=control_group, anticipation=anticipation, base_period="universal",
                        conf_level=conf_level)
    agg = res.aggregate("dynamic")
    d = agg.detail.rename(columns={"event_time": "rel_time"})
    ref = -1 - int(anticipation)
    window = (d["rel_time"] >= -leads) & (d["rel_time"] <= lags)
    d = d[window].reset_index(drop=True)
    ev = res.att_gt["event_time"]
    d["n_groups"] = [int(((ev == e) & res.att_gt["estimate"].notna()).sum()) for e in d["rel_time"]]
    d["min_p_value"] = 0.0
    if -leads <= ref <= lags:
        refrow = pd.DataFrame([{"rel_time": ref, "estimate": 0.0, "se": 0.0, "lower": 0.0, "upper": 0.0,
                                "p_value": np.nan, "n_groups": int(res.att_gt["group"].nunique()),
                                "min_p_value": np.nan}])
        d = pd.concat([d, refrow], ignore_index=True).sort_values("rel_time").reset_index(drop=True)
    lead_mask = (agg.detail["event_time"] < ref).to_numpy() & window.to_numpy()
    pretest = _wald(agg.detail["estimate"].to_numpy()[lead_mask], agg.detail_influence[:, lead_mask])
    cols = ["rel_time", "estimate", "se", "lower", "upper", "p_value", "min_p_value", "n_groups"]
    note = _small_note(len(res.panel.G), int(res.att_gt["n_treated"].min()))
    return EventStudyResult(summary=d[cols], pretrend_test=pretest, did=res, leads=leads, lags=lags, note=note)


# ----------------------------------------------------------------------------------------------
# simulation (for coverage checks and documentation)
# ----------------------------------------------------------------------------------------------

def simulate_staggered_panel(seed=None, *, starts=(18, 24, 30), units_per_start=1, n_never: int = 2,
                             months: int = 48, effect: float = 0.8, population: float = 100_000,
                             monthly_rate: float = 2e-3, seasonal: float = 0.15, trend: float = 0.003,
                             unit_sd: float = 0.1) -> pd.DataFrame:
    """A seeded panel of monthly Poisson counts with staggered starts and a known effect.

    Each unit has a level exp(N(0, unit_sd^2)), a common seasonal cycle (amplitude ``seasonal`` on the log
    scale), a common log-linear trend, and from its start month on the rate multiplied by ``effect`` (a rate
    ratio; the true ATT of ``log_rate`` is log(effect)). Columns: ``unit, month, events, population,
    log_rate`` (log events per 1,000 per month) and ``first_treated`` (start month, 0 = never).
    With the defaults: five regions, three staggered starts and two never-treated regions.
    """
    rng = np.random.default_rng(seed)
    per = [units_per_start] * len(starts) if np.ndim(units_per_start) == 0 else list(units_per_start)
    t = np.arange(months)
    frames, u = [], 0
    for s, k in list(zip(starts, per, strict=True)) + [(0, n_never)]:
        for _ in range(int(k)):
            mu = population * monthly_rate * np.exp(rng.normal(0, unit_sd) + seasonal * np.sin(2 * np.pi * t / 12)
                                                    + trend * t + (np.log(effect) * (t >= s) if s else 0.0))
            events = rng.poisson(mu)
            frames.append(pd.DataFrame({"unit": u, "month": t, "events": events, "population": population,
                                        "log_rate": np.log(np.maximum(events, 0.5) / population * 1000),
                                        "first_treated": s}))
            u += 1
    return pd.concat(frames, ignore_index=True)
