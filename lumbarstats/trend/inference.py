"""Honest inference with few regions: randomization inference and the wild cluster bootstrap.

With five regions, asymptotic (cluster-robust or influence-function) standard errors are far too small
(MacKinnon & Webb 2017, J. Appl. Econometrics 32:233-254; Conley & Taber 2011). Both functions here
report, beside the p-value, the **smallest p-value the design can reach** and say in plain words when
that is above 0.05 - then no data, however extreme, could show an effect at the 5 % level.

- :func:`randomization_inference`: Fisher-style permutation of the treatment over regions and
  admissible start dates (exact enumeration; Abadie, Diamond & Hainmueller 2010 use the same placebo
  logic across units; Young 2019, QJE 134:557-598).
- :func:`wild_cluster_bootstrap`: the restricted wild cluster bootstrap (WCR) with Webb's six-point
  weights (Webb 2023, Can. J. Econ. 56:839-858), the null imposed, cluster = region, CR1 t-statistic,
  as in Roodman, MacKinnon, Nielsen & Webb (2019), "Fast and wild: bootstrap inference in Stata using
  boottest", Stata Journal 19(1):4-60. With 6^G <= B all 6^G weight vectors are enumerated (exact,
  seed-free). Own code (NumPy): the test needs only one hat-matrix row, and ``wildboottest`` (PyPI) is
  used as a cross-check in the tests where it is installed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["randomization_inference", "RandomizationResult", "wild_cluster_bootstrap", "WildBootstrapResult",
           "webb_weights", "did_statistic", "cannot_tell_note"]

_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])


def webb_weights() -> np.ndarray:
    """Webb's six-point distribution: +-sqrt(1/2), +-1, +-sqrt(3/2), each with probability 1/6."""
    return _WEBB.copy()


def cannot_tell_note(min_p: float, alpha: float = 0.05) -> str:
    """The plain-language sentence about what the design can show."""
    if min_p > alpha:
        return (f"The design cannot tell an effect from noise: even the most extreme result would give "
                f"p = {min_p:.3g}, above {alpha:g}.")
    return f"The design can reach p = {min_p:.3g}, so an effect can in principle be told from noise at {alpha:g}."


# ----------------------------------------------------------------------------------------------
# randomization inference
# ----------------------------------------------------------------------------------------------

def did_statistic(panel: pd.DataFrame, *, unit: str, time: str, outcome: str, treated: Sequence, start) -> float:
    """Default statistic: the 2x2 difference in differences of the mean outcome after (time >= start)
    minus before, treated units minus all other units."""
    post = panel[time] >= start
    is_t = panel[unit].isin(list(treated))
    if not post.any() or post.all():
        return np.nan
    m = panel.groupby([is_t, post])[outcome].mean()
    return float((m[(True, True)] - m[(True, False)]) - (m[(False, True)] - m[(False, False)]))


def _did_distribution(panel, *, unit, time, outcome, units, treated, start, starts, combos):
    """:func:`did_statistic` for every assignment at once (balanced panel: the 2x2 DiD of observation
    means equals the difference of unit-level post-minus-pre changes)."""
    wide = panel.pivot_table(index=unit, columns=time, values=outcome, aggfunc="mean").reindex(units)
    if wide.isna().any().any() or panel.duplicated([unit, time]).any():
        def stat(t_, s_):
            return did_statistic(panel, unit=unit, time=time, outcome=outcome, treated=t_, start=s_)
        observed = stat(treated, start)
        rows = [{"treated": c, "start": s_, "statistic": stat(list(c), s_)} for c in combos for s_ in starts]
        return observed, pd.DataFrame(rows)
    Y = wide.to_numpy(float)
    tcols = wide.columns.to_numpy()
    index = {u: k for k, u in enumerate(units)}
    onehot = np.zeros((len(combos), len(units)))
    for r, c in enumerate(combos):
        onehot[r, [index[u] for u in c]] = 1.0
    k = len(treated)
    rows, observed = [], np.nan
    for s_ in starts:
        post = tcols >= s_
        if post.all() or not post.any():
            change = np.full(len(units), np.nan)
        else:
            change = Y[:, post].mean(axis=1) - Y[:, ~post].mean(axis=1)
        stat = onehot @ change / k - (1 - onehot) @ change / (len(units) - k)
        rows += [{"treated": c, "start": s_, "statistic": float(v)} for c, v in zip(combos, stat, strict=True)]
        if s_ == start:
            t_hot = np.isin(np.asarray(units, dtype=object), np.asarray(treated, dtype=object)).astype(float)
            observed = float(t_hot @ change / k - (1 - t_hot) @ change / (len(units) - k))
    return observed, pd.DataFrame(rows)


@dataclass
class RandomizationResult:
    """``summary``: estimate (observed statistic), p_value (two-sided: share of assignments with
    |statistic| >= observed, the observed one included), min_p_value (1 / number of admissible
    assignments), n_assignments, note. ``distribution``: the statistic under every assignment."""

    estimate: float
    p_value: float
    min_p_value: float
    n_assignments: int
    distribution: pd.DataFrame = field(repr=False)
    note: str = ""

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{"estimate": self.estimate, "p_value": self.p_value, "min_p_value": self.min_p_value,
                              "n_assignments": self.n_assignments, "method": "randomization inference",
                              "note": self.note}])

    def _repr_html_(self) -> str:
        from lumbarstats.formatting import result_html

        return result_html("Randomization inference", self.summary.drop(columns="note"), warning=self.note,
                           index=False)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(self.distribution["statistic"].dropna(), bins=min(30, max(5, self.n_assignments // 2)), color="grey")
        ax.axvline(self.estimate, color="tab:red")
        ax.set_xlabel("statistic under placebo assignments")
        return ax


def randomization_inference(panel: pd.DataFrame, *, unit: str, time: str, outcome: str, treated_unit,
                            start, admissible_starts: Sequence | None = None,
                            statistic: Callable | str = "did", alpha: float = 0.05) -> RandomizationResult:
    """Randomization (permutation) inference for one treated region (or a set of them) and a start date.

    The treatment is reassigned to every set of ``len(treated_unit)`` units and every admissible start
    (``admissible_starts``, default only ``start``), all enumerated; the p-value is the share of
    assignments whose |statistic| is at least the observed one (the observed assignment counts), so the
    smallest reachable p-value is 1 / (number of assignments): with five regions and one start, 0.2.
    ``statistic``: ``"did"`` (:func:`did_statistic`) or ``f(panel, treated=[...], start=...) -> float``.
    Caveat: placebo assignments may overlap real interventions of other regions; pass a panel without
    those periods or regions if they matter.
    """
    for c in (unit, time, outcome):
        if c not in panel.columns:
            raise ValueError(f"randomization_inference: missing column {c!r}; columns are {list(panel.columns)}")
    treated = [treated_unit] if np.ndim(treated_unit) == 0 else list(treated_unit)
    units = list(pd.unique(panel[unit]))
    absent = [u for u in treated if u not in units]
    if absent:
        raise ValueError(f"randomization_inference: treated unit(s) {absent} not in column {unit!r}")
    starts = [start] if admissible_starts is None else list(admissible_starts)
    if start not in starts:
        starts = [start] + starts
    combos = list(itertools.combinations(units, len(treated)))
    if statistic == "did":
        observed, dist = _did_distribution(panel, unit=unit, time=time, outcome=outcome, units=units,
                                           treated=treated, start=start, starts=starts, combos=combos)
    elif callable(statistic):
        observed = float(statistic(panel, treated=treated, start=start))
        dist = pd.DataFrame([{"treated": combo, "start": s_, "statistic": float(statistic(panel, treated=list(combo),
                                                                                          start=s_))}
                             for s_ in starts for combo in combos])
    else:
        raise ValueError(f"randomization_inference: statistic must be 'did' or a function, got {statistic!r}")
    vals = dist["statistic"].dropna().to_numpy()
    n = len(vals)
    tol = 1e-12 * max(1.0, abs(observed))
    p = float(np.mean(np.abs(vals) >= abs(observed) - tol))
    min_p = 1.0 / n
    note = (f"{n} admissible assignments ({len(units)} units, {len(starts)} start(s)). " + cannot_tell_note(min_p, alpha))
    return RandomizationResult(estimate=observed, p_value=p, min_p_value=min_p, n_assignments=n,
                               distribution=dist, note=note)


# ----------------------------------------------------------------------------------------------
# wild cluster bootstrap
# ----------------------------------------------------------------------------------------------

@dataclass
class WildBootstrapResult:
    """``summary``: estimate (OLS coefficient), t_stat (CR1), p_value (two-sided, symmetric:
    share of bootstrap |t*| >= |t|), min_p_value, n_draws, enumerated, distinct_abs_t, weights, note."""

    estimate: float
    t_stat: float
    p_value: float
    min_p_value: float
    n_draws: int
    enumerated: bool
    weights: str
    n_clusters: int
    distinct_abs_t: int
    t_star: np.ndarray = field(repr=False)
    note: str = ""

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{"estimate": self.estimate, "t_stat": self.t_stat, "p_value": self.p_value,
                              "min_p_value": self.min_p_value, "n_draws": self.n_draws, "enumerated": self.enumerated,
                              "n_clusters": self.n_clusters, "distinct_abs_t": self.distinct_abs_t,
                              "method": f"wild cluster bootstrap (WCR, {self.weights})", "note": self.note}])

    def _repr_html_(self) -> str:
        from lumbarstats.formatting import result_html

        return result_html("Wild cluster bootstrap", self.summary.drop(columns="note"), warning=self.note, index=False)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(self.t_star, bins=60, color="grey")
        ax.axvline(self.t_stat, color="tab:red")
        ax.axvline(-self.t_stat, color="tab:red", ls=":")
        ax.set_xlabel("bootstrap t*")
        return ax


def _pinv(X: np.ndarray) -> tuple[np.ndarray, int]:
    """(X'X)^-1 X' through the small K x K normal equations when X has full column rank (fast and
    numerically fine for dummy designs), else the SVD pseudo-inverse; with the rank."""
    XtX = X.T @ X
    try:
        L = np.linalg.cholesky(XtX)
        if np.min(np.abs(np.diag(L))) > 1e-7 * np.max(np.abs(np.diag(L))):
            return np.linalg.solve(XtX, X.T), X.shape[1]
    except np.linalg.LinAlgError:
        pass
    return np.linalg.pinv(X), int(np.linalg.matrix_rank(X))


def _twfe_design(panel, *, unit, time, outcome, treated_unit, start, first_treated):
    """y ~ unit FE + time FE + D (D = 1 for treated units from their start on); clusters = units."""
    df = panel.reset_index(drop=True)
    if first_treated is not None:
        ft = df[first_treated]
        never = ft.isna().to_numpy()
        if pd.api.types.is_numeric_dtype(ft):
            never |= ft.fillna(0).to_numpy() == 0
        D = (~never) & (df[time].to_numpy() >= ft.where(~never, df[time]).to_numpy())
        D &= ~never
    else:
        if treated_unit is None or start is None:
            raise ValueError("wild_cluster_bootstrap: give first_treated, or treated_unit and start, with a panel")
        treated = [treated_unit] if np.ndim(treated_unit) == 0 else list(treated_unit)
        D = df[unit].isin(treated).to_numpy() & (df[time] >= start).to_numpy()
    X = pd.concat([pd.Series(D.astype(float), name="treatment"),
                   pd.get_dummies(df[unit], prefix="u", dtype=float),
                   pd.get_dummies(df[time], prefix="t", drop_first=True, dtype=float)], axis=1)
    return df[outcome].to_numpy(float), X, df[unit].to_numpy(), "treatment"


def wild_cluster_bootstrap(model_or_panel, *, unit: str | None = None, time: str | None = None,
                           outcome: str | None = None, treated_unit=None, start=None, first_treated: str | None = None,
                           param: str | None = None, cluster=None, weights: str = "webb", B: int = 9999,
                           seed=None, enumerate_all: bool | None = None, alpha: float = 0.05) -> WildBootstrapResult:
    """Restricted wild cluster bootstrap (WCR) test of H0: beta[param] = 0 (Roodman et al. 2019).

    ``model_or_panel``: a long panel (then the model is the two-way fixed-effects DiD
    ``outcome ~ unit + time + treatment`` with treatment from ``first_treated`` or from
    ``treated_unit``/``start``; clusters = ``unit``) or a fitted statsmodels OLS result (then give
    ``param`` and ``cluster``, one cluster label per observation).

    Algorithm: fit the model with the null imposed (column dropped), draw cluster weights v_g (Webb six-point,
    or Rademacher), y* = X_r b_r + v_g u_r, refit, t* = b*/se_CR1(b*), p = share of |t*| >= |t|. CR1 uses
    G/(G-1) (N-1)/(N-K). When 6^G (2^G) <= ``B`` all weight vectors are enumerated (``enumerate_all=None``);
    then the draw v = 1 reproduces the data and v = -1 its mirror image, so the smallest reachable p-value
    is 2 / 6^G (= 0.00026 for five regions; with Rademacher weights 2/2^G = 0.0625). With random draws it
    is 1 / B. ``distinct_abs_t`` counts the distinct |t*| values: with one treated cluster they collapse
    (MacKinnon & Webb 2017) and the test is then uninformative whatever the nominal min p.
    """
    if weights not in ("webb", "rademacher"):
        raise ValueError(f"wild_cluster_bootstrap: weights must be 'webb' or 'rademacher', got {weights!r}")
    if isinstance(model_or_panel, pd.DataFrame):
        for c in (unit, time, outcome):
            if c is None or c not in model_or_panel.columns:
                raise ValueError(f"wild_cluster_bootstrap: panel needs columns unit, time, outcome; {c!r} missing")
        y, Xdf, clusters, param = _twfe_design(model_or_panel, unit=unit, time=time, outcome=outcome,
                                               treated_unit=treated_unit, start=start, first_treated=first_treated)
    else:
        model = getattr(model_or_panel, "model", model_or_panel)
        if param is None or cluster is None:
            raise ValueError("wild_cluster_bootstrap: with a fitted model give param= and cluster=")
        Xdf = pd.DataFrame(model.exog, columns=model.exog_names)
        y = np.asarray(model.endog, float)
        clusters = np.asarray(cluster)
        if len(clusters) != len(y):
            raise ValueError(f"wild_cluster_bootstrap: cluster has {len(clusters)} labels for {len(y)} observations")
    if param not in Xdf.columns:
        raise ValueError(f"wild_cluster_bootstrap: parameter {param!r} not in the model ({list(Xdf.columns)[:10]}...)")
    X = Xdf.to_numpy(float)
    j = list(Xdf.columns).index(param)
    N, K = X.shape
    codes, labels = pd.factorize(clusters)
    G = len(labels)
    if G < 2:
        raise ValueError("wild_cluster_bootstrap: needs at least two clusters")
    pinv, K_eff = _pinv(X)  # K x N; a = row j, so b_j = a @ y
    a = pinv[j]
    c = G / (G - 1) * (N - 1) / (N - K_eff)
    S = np.zeros((N, G))
    S[np.arange(N), codes] = 1.0
    # cluster scores of b_j: s_g = sum_{i in g} a_i u_i with u = (I - H) y, i.e. s = M y, M = S' diag(a) (I - H)
    M = (S * a[:, None]).T - ((S * a[:, None]).T @ X) @ pinv
    b_hat = float(a @ y)
    t_hat = b_hat / np.sqrt(c * np.sum((M @ y) ** 2))
    Xr = np.delete(X, j, axis=1)
    yr = Xr @ (_pinv(Xr)[0] @ y)
    ur = y - yr
    # y* = yr + ur * v[codes] is linear in v: b* = b0 + B1 v and s* = m0 + C v (C is G x G), so each draw
    # costs O(G^2) (the trick of Roodman et al. 2019)
    b0, B1 = a @ yr, (a * ur) @ S
    m0, C = M @ yr, (M * ur[None, :]) @ S
    support = _WEBB if weights == "webb" else np.array([-1.0, 1.0])
    n_all = len(support) ** G
    if enumerate_all is None:
        enumerate_all = n_all <= B
    if enumerate_all:
        V = np.array(list(itertools.product(support, repeat=G)))
        min_p = 2.0 / n_all
    else:
        rng = np.random.default_rng(seed)
        V = rng.choice(support, size=(int(B), G))
        min_p = 1.0 / B
    t_star = (b0 + V @ B1) / np.sqrt(c * np.sum((m0[None, :] + V @ C.T) ** 2, axis=1))
    tol = 1e-9 * max(1.0, abs(t_hat))
    p = float(np.mean(np.abs(t_star) >= abs(t_hat) - tol))
    distinct = int(len(np.unique(np.round(np.abs(t_star), 8))))
    what = (f"all {n_all} {weights} weight vectors enumerated (min p = 2/{n_all}: the data and their mirror image)"
            if enumerate_all else f"{len(V)} random {weights} draws (min p = 1/{len(V)})")
    note = f"{G} clusters; {what}; {distinct} distinct |t*|. " + cannot_tell_note(min_p, alpha)
    if distinct < 1 / alpha:
        note += (f" Only {distinct} distinct bootstrap |t*| values (few or one treated cluster): the test cannot "
                 f"resolve p-values finer than about 1/{distinct}.")
    return WildBootstrapResult(estimate=b_hat, t_stat=t_hat, p_value=p, min_p_value=min_p, n_draws=len(V),
                               enumerated=bool(enumerate_all), weights=weights, n_clusters=G,
                               distinct_abs_t=distinct, t_star=t_star, note=note)
