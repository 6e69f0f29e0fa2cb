"""Joinpoint regression in the manner of the NCI Joinpoint Regression Program.

A k-joinpoint model for ``y = log(rate)`` is a continuous piecewise-linear function of time,

    y_i = b0 + b1 x_i + d1 (x_i - tau_1)+ + ... + dk (x_i - tau_k)+ + e_i,

with joinpoints ``tau`` at observed time points, located by grid search (Lerman 1980, Appl Stat 29:77-84)
and the number of joinpoints selected by

- ``"permutation"``: the sequential permutation tests of Kim, Fay, Feuer & Midthune (2000),
  "Permutation tests for joinpoint regression with applications to cancer rates", Stat Med 19:335-351
  (correction 2001;20:655), each at level alpha / (k_max - k_min) (Bonferroni);
- ``"bic"``: ``BIC(k) = ln(SSE_k / n) + (2k + 2) ln(n) / n`` (NCI Joinpoint help, "Bayesian Information
  Criterion"); ``"bic3"``: penalty ``3k + 2``;
- ``"wbic"``: the weighted BIC of Kim, Chen, Midthune et al. (2022), "Data-driven choice of a model
  selection method in joinpoint regression", J Appl Stat 50(9):1992-2013, penalty
  ``(2 + R2_max) k + 2`` with ``R2_max`` the largest partial R^2 of a joinpoint term given the line
  through the two adjacent segments (NCI Joinpoint help, "Weighted BIC (WBIC)").

APC of a segment with log-slope ``b`` is ``100 (exp(b) - 1)``; AAPC over an interval is
``100 (exp(sum w_s b_s / sum w_s) - 1)`` with ``w_s`` the length of segment s inside the interval
(Clegg, Hankey, Tiwari, Feuer & Edwards 2009, Stat Med 28:3670-3682). Intervals are "parametric":
``t`` quantiles with ``n - (2k + 2)`` degrees of freedom (Joinpoint counts the joinpoint locations
among the ``p = 2k + 2`` parameters).

Fitting options: weighted least squares on log(rate) with weights ``1 / var(log rate)``, i.e.
``(rate / se)^2`` (Joinpoint's "heteroscedastic errors: standard error" option), ``1 / var = events``
from Poisson counts, or constant variance; or a Poisson GLM on the counts with a log-population
offset (``fit="poisson"``; grid search on the deviance, quasi-Poisson standard errors).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from ._common import check_conf_level, check_positive, require_columns

__all__ = ["JoinpointFitter", "joinpoint", "default_max_joinpoints"]

SELECTIONS = ("permutation", "bic", "bic3", "wbic")


def default_max_joinpoints(n_points: int) -> int:
    """Joinpoint's default maximum number of joinpoints for ``n_points`` observations.

    NCI Joinpoint help ("Number of Joinpoints", default determined by the number of data points):
    fewer than 7 points: 0; 7-11: 1; 12-16: 2; 17-21: 3; 22-26: 4; 27 or more: 5.
    """
    if n_points < 7:
        return 0
    return int(min(5, 1 + (n_points - 7) // 5))


def _candidates(n: int, k: int, min_end: int, min_between: int) -> list[tuple[int, ...]]:
    """Joinpoint positions (indices into the sorted observations) allowed by the minimum-obs rules.

    ``min_end`` observations must lie strictly before the first joinpoint and strictly after the
    last one; ``min_between`` observations strictly between two joinpoints (Joinpoint's defaults 2, 2).
    """
    if k == 0:
        return [()]
    allowed = range(min_end, n - min_end)
    out = []
    for comb in itertools.combinations(allowed, k):
        if all(b - a - 1 >= min_between for a, b in zip(comb, comb[1:], strict=False)):
            out.append(comb)
    return out


def _design(x: np.ndarray, taus) -> np.ndarray:
    cols = [np.ones_like(x), x] + [np.clip(x - t, 0, None) for t in taus]
    return np.column_stack(cols)


class _LSEngine:
    """Vectorised weighted least squares over all candidate joinpoint sets."""

    def __init__(self, x, y, w, min_end, min_between):
        self.x, self.y, self.w = x, y, w
        self.sw = np.sqrt(w)
        self.min_end, self.min_between = min_end, min_between
        self._q: dict[int, tuple[list, np.ndarray]] = {}

    def qs(self, k):
        if k not in self._q:
            combs = _candidates(len(self.x), k, self.min_end, self.min_between)
            Q = np.stack([np.linalg.qr(self.sw[:, None] * _design(self.x, self.x[list(c)]))[0] for c in combs])
            self._q[k] = (combs, Q)
        return self._q[k]

    def sse_matrix(self, k, Yw):
        """(n_candidates, n_columns) weighted SSE for weighted responses ``Yw`` (n, B)."""
        _combs, Q = self.qs(k)
        proj = np.einsum("cnp,nb->cpb", Q, Yw)
        return (Yw**2).sum(axis=0)[None, :] - (proj**2).sum(axis=1)

    def best(self, k, y=None):
        y = self.y if y is None else y
        combs, _Q = self.qs(k)
        if not combs:
            return None, np.inf
        sse = self.sse_matrix(k, (self.sw * y)[:, None])[:, 0]
        i = int(np.argmin(sse))
        return combs[i], float(sse[i])

    def fit(self, comb):
        X = _design(self.x, self.x[list(comb)])
        Xw = self.sw[:, None] * X
        beta, *_ = np.linalg.lstsq(Xw, self.sw * self.y, rcond=None)
        resid = self.y - X @ beta
        sse = float((self.w * resid**2).sum())
        xtwx_inv = np.linalg.pinv(Xw.T @ Xw)
        return beta, sse, xtwx_inv, X @ beta


@dataclass
class _Fitted:
    k: int
    comb: tuple
    beta: np.ndarray
    cov: np.ndarray
    df: int
    fitted: np.ndarray
    sse: float
    dist: str  # "t" or "normal"


class JoinpointFitter:
    """Joinpoint regression (NCI Joinpoint-style); lifelines-like ``.fit()`` / ``.summary`` / ``.plot()``.

    Parameters
    ----------
    max_joinpoints : maximum number of joinpoints (default: Joinpoint's rule by number of points,
        :func:`default_max_joinpoints`); ``min_joinpoints`` default 0.
    selection : "permutation" (Kim et al. 2000), "bic", "bic3" or "wbic" (Kim et al. 2022).
    min_obs_end, min_obs_between : minimum number of observations from a joinpoint to either end of
        the data, and between two joinpoints (both excluding the joinpoints; Joinpoint defaults 2, 2).
    fit : "ls" (weighted least squares on log rate) or "poisson" (GLM on counts, log-population offset).
    heteroscedastic : for ``fit="ls"``: "se" (weights (rate/se)^2), "poisson" (weights = events) or
        "constant"; default: "se" if ``se`` is given, else "poisson" if events are given, else "constant".
    n_permutations, alpha, seed : permutation test settings (Joinpoint default 4499 permutations,
        overall alpha 0.05).
    """

    def __init__(
        self,
        *,
        max_joinpoints: int | None = None,
        min_joinpoints: int = 0,
        selection: str = "permutation",
        min_obs_end: int = 2,
        min_obs_between: int = 2,
        fit: str = "ls",
        heteroscedastic: str | None = None,
        n_permutations: int = 4499,
        alpha: float = 0.05,
        seed: int | None = 2024,
        conf_level: float = 0.95,
    ):
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        if fit not in ("ls", "poisson"):
            raise ValueError(f"fit must be 'ls' or 'poisson', got {fit!r}")
        if fit == "poisson" and selection == "permutation":
            raise ValueError("the permutation test is implemented for fit='ls'; use selection='bic' or 'wbic'")
        if heteroscedastic not in (None, "se", "poisson", "constant"):
            raise ValueError("heteroscedastic must be 'se', 'poisson', 'constant' or None")
        if min_obs_end < 1 or min_obs_between < 0:
            raise ValueError("min_obs_end must be >= 1 and min_obs_between >= 0")
        self.max_joinpoints = max_joinpoints
        self.min_joinpoints = int(min_joinpoints)
        self.selection = selection
        self.min_obs_end = int(min_obs_end)
        self.min_obs_between = int(min_obs_between)
        self.fit_method = fit
        self.heteroscedastic = heteroscedastic
        self.n_permutations = int(n_permutations)
        self.alpha = float(alpha)
        self.seed = seed
        self.conf_level = check_conf_level(conf_level)
        self._fitted: _Fitted | None = None

    # ------------------------------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame,
        *,
        time: str,
        rate: str | None = None,
        events: str | None = None,
        population: str | None = None,
        se: str | None = None,
        n_joinpoints: int | None = None,
    ) -> JoinpointFitter:
        """Fit to one series. Give ``rate`` (optionally ``se``) or ``events`` + ``population``.

        ``n_joinpoints`` fixes the number of joinpoints (no selection).
        """
        require_columns(data, [time, rate, events, population, se])
        if rate is None and (events is None or population is None):
            raise ValueError("give rate= (a rate column) or both events= and population=")
        d = data.sort_values(time).reset_index(drop=True)
        x = pd.to_numeric(d[time], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(x).all():
            raise ValueError(f"time column {time!r} must be numeric (e.g. year) without missing values")
        if len(np.unique(x)) != len(x):
            raise ValueError(f"time column {time!r} has repeated values; one row per time point")
        n = len(x)
        if n < 3:
            raise ValueError(f"joinpoint regression needs at least 3 time points, got {n}")
        if rate is not None:
            r = check_positive(d[rate], rate)
        else:
            ev = check_positive(d[events], events)
            r = ev / check_positive(d[population], population)
        self.data_ = pd.DataFrame({"time": x, "rate": r})
        kmax = default_max_joinpoints(n) if self.max_joinpoints is None else int(self.max_joinpoints)
        if n_joinpoints is not None:
            kmin = kmax = int(n_joinpoints)
        else:
            kmin = self.min_joinpoints
        while kmax > kmin and not _candidates(n, kmax, self.min_obs_end, self.min_obs_between):
            kmax -= 1
        if not _candidates(n, kmax, self.min_obs_end, self.min_obs_between):
            raise ValueError(
                f"{n} points cannot hold {kmax} joinpoints with min_obs_end={self.min_obs_end} and "
                f"min_obs_between={self.min_obs_between}; lower max_joinpoints"
            )
        self.k_range_ = (kmin, kmax)
        if self.fit_method == "ls":
            self._fit_ls(d, x, r, events, se, kmin, kmax)
        else:
            if events is None or population is None:
                raise ValueError("fit='poisson' needs events= and population=")
            self._fit_poisson(d, x, events, population, kmin, kmax)
        return self

    # -- least squares ---------------------------------------------------------------------------
    def _fit_ls(self, d, x, r, events, se, kmin, kmax):
        het = self.heteroscedastic or ("se" if se else ("poisson" if events else "constant"))
        if het == "se":
            if se is None:
                raise ValueError("heteroscedastic='se' needs se= (standard error of the rate)")
            w = (r / check_positive(d[se], se)) ** 2
        elif het == "poisson":
            if events is None:
                raise ValueError("heteroscedastic='poisson' needs events=")
            w = check_positive(d[events], events)
        else:
            w = np.ones_like(x)
        self.heteroscedastic_ = het
        y = np.log(r)
        eng = _LSEngine(x, y, w, self.min_obs_end, self.min_obs_between)
        n = len(x)
        best = {k: eng.best(k) for k in range(kmin, kmax + 1)}
        table = pd.DataFrame(
            {
                "n_joinpoints": list(best),
                "joinpoints": [tuple(x[list(c)]) if c is not None else None for c, _ in best.values()],
                "sse": [s for _, s in best.values()],
            }
        )
        table["bic"] = np.log(table["sse"] / n) + (2 * table["n_joinpoints"] + 2) * np.log(n) / n
        table["bic3"] = np.log(table["sse"] / n) + (3 * table["n_joinpoints"] + 2) * np.log(n) / n
        r2 = [self._r2max(eng, c) for c, _ in best.values()]
        table["wbic_weight"] = r2
        table["wbic"] = np.log(table["sse"] / n) + (
            (2 + table["wbic_weight"]) * table["n_joinpoints"] + 2
        ) * np.log(n) / n
        self.permutation_tests_ = None
        if kmin == kmax:
            k = kmin
        elif self.selection == "permutation":
            k = self._permutation_select(eng, kmin, kmax)
        else:
            k = int(table.loc[table[self.selection].idxmin(), "n_joinpoints"])
        self.model_selection_ = table
        comb = best[k][0]
        beta, sse, xtwx_inv, fitted = eng.fit(comb)
        p = 2 * k + 2
        df = n - p
        if df <= 0:
            raise ValueError(f"{n} points leave no residual degrees of freedom for {k} joinpoints")
        sigma2 = sse / df
        self._fitted = _Fitted(k, comb, beta, sigma2 * xtwx_inv, df, np.exp(fitted), sse, "t")
        self.method_ = (
            f"joinpoint, WLS on log rate ({het} variance), grid search, selection={self.selection}"
        )

    @staticmethod
    def _r2max(eng: _LSEngine, comb) -> float:
        """Largest partial R^2 of a joinpoint term within its two adjacent segments (WBIC weight)."""
        if not comb:
            return 0.0
        x, y, sw = eng.x, eng.y, eng.sw
        bounds = [0, *comb, len(x) - 1]
        vals = []
        for i in range(1, len(bounds) - 1):
            lo, hi = bounds[i - 1], bounds[i + 1]
            sl = slice(lo if i == 1 else lo + 1, hi + 1)
            xs, ys, ws = x[sl], y[sl] * sw[sl], sw[sl]
            H = np.column_stack([ws, ws * xs])
            z = ws * np.clip(xs - x[bounds[i]], 0, None)
            Q = np.linalg.qr(H)[0]
            ry = ys - Q @ (Q.T @ ys)
            rz = z - Q @ (Q.T @ z)
            den = (ry @ ry) * (rz @ rz)
            vals.append(float((ry @ rz) ** 2 / den) if den > 0 else 0.0)
        return max(vals)

    def _permutation_select(self, eng: _LSEngine, kmin, kmax) -> int:
        """Sequential permutation tests (Kim et al. 2000, section 3): H0 k=ka vs H1 k=kb."""
        rng = np.random.default_rng(self.seed)
        level = self.alpha / (kmax - kmin)
        ka, kb = kmin, kmax
        rows = []
        while ka < kb:
            comb0, sse0 = eng.best(ka)
            _c1, sse1 = eng.best(kb)
            stat = (sse0 - sse1) / sse1
            _b, _s, _v, fitted0 = eng.fit(comb0)
            resid_w = eng.sw * (eng.y - fitted0)
            B = self.n_permutations
            perm = np.argsort(rng.random((B, len(resid_w))), axis=1)
            Yw = (eng.sw * fitted0)[:, None] + resid_w[perm].T
            s0 = eng.sse_matrix(ka, Yw).min(axis=0)
            s1 = eng.sse_matrix(kb, Yw).min(axis=0)
            stat_b = (s0 - s1) / s1
            pval = (1 + np.sum(stat_b >= stat - 1e-12 * abs(stat))) / (B + 1)
            reject = pval < level
            rows.append({"h0_joinpoints": ka, "h1_joinpoints": kb, "statistic": stat, "p_value": pval,
                         "level": level, "reject": bool(reject)})
            if reject:
                ka += 1
            else:
                kb -= 1
        self.permutation_tests_ = pd.DataFrame(rows)
        return ka

    # -- Poisson ---------------------------------------------------------------------------------
    def _fit_poisson(self, d, x, events, population, kmin, kmax):
        y = d[events].to_numpy(dtype=float)
        off = np.log(check_positive(d[population], population))
        n = len(x)

        def glm(comb):
            X = _design(x, x[list(comb)])
            return sm.GLM(y, X, family=sm.families.Poisson(), offset=off).fit(scale="X2")

        best = {}
        for k in range(kmin, kmax + 1):
            fits = [(c, glm(c)) for c in _candidates(n, k, self.min_obs_end, self.min_obs_between)]
            c, res = min(fits, key=lambda cr: cr[1].deviance)
            best[k] = (c, res)
        table = pd.DataFrame(
            {
                "n_joinpoints": list(best),
                "joinpoints": [tuple(x[list(c)]) for c, _ in best.values()],
                "deviance": [r.deviance for _, r in best.values()],
            }
        )
        table["bic"] = np.log(table["deviance"] / n) + (2 * table["n_joinpoints"] + 2) * np.log(n) / n
        table["bic3"] = np.log(table["deviance"] / n) + (3 * table["n_joinpoints"] + 2) * np.log(n) / n
        table["wbic_weight"] = np.nan
        # WBIC weights need the least-squares partial R^2; on the count scale use BIC/BIC3 average
        table["wbic"] = 0.5 * (table["bic"] + table["bic3"])
        self.model_selection_ = table
        self.permutation_tests_ = None
        k = kmin if kmin == kmax else int(table.loc[table[self.selection].idxmin(), "n_joinpoints"])
        comb, res = best[k]
        self.heteroscedastic_ = "poisson (GLM)"
        self._fitted = _Fitted(k, comb, np.asarray(res.params), np.asarray(res.cov_params()),
                               int(res.df_resid), np.exp(np.log(res.fittedvalues) - off), res.deviance,
                               "normal")
        self.method_ = f"joinpoint, quasi-Poisson GLM on counts, grid search, selection={self.selection}"

    # -- results ---------------------------------------------------------------------------------
    def _check(self) -> _Fitted:
        if self._fitted is None:
            raise RuntimeError("call .fit() first")
        return self._fitted

    @property
    def n_joinpoints_(self) -> int:
        return self._check().k

    @property
    def joinpoints_(self) -> list[float]:
        f = self._check()
        return [float(v) for v in self.data_["time"].to_numpy()[list(f.comb)]]

    def _crit(self, f: _Fitted) -> float:
        q = 0.5 + self.conf_level / 2
        return float(stats.t.ppf(q, f.df) if f.dist == "t" else stats.norm.ppf(q))

    def _pvalue(self, f: _Fitted, tstat: np.ndarray) -> np.ndarray:
        if f.dist == "t":
            return 2 * stats.t.sf(np.abs(tstat), f.df)
        return 2 * stats.norm.sf(np.abs(tstat))

    def _repr_html_(self) -> str:
        """The notebook view: the segments' APC rounded (before fitting: the estimator's settings)."""
        from lumbarstats.formatting import result_html

        try:
            s = self.summary
        except Exception:  # not fitted yet: nothing to show but the settings
            return f"<p><b>Joinpoint regression</b> (not fitted)</p><pre>{type(self).__name__}</pre>"
        return result_html("Joinpoint regression", s[[c for c in s.columns if c not in ("conf_level", "method")]],
                           index=False, decimals=2,
                           lines=[f"{self.n_joinpoints_} joinpoint(s); {s['method'].iloc[0] if len(s) else ''}"])

    @property
    def summary(self) -> pd.DataFrame:
        """Segments: ``segment, start, end, apc, lower, upper, p_value, conf_level, method``."""
        f = self._check()
        x = self.data_["time"].to_numpy()
        bounds = [x[0], *x[list(f.comb)], x[-1]]
        rows = []
        for s in range(f.k + 1):
            L = np.zeros(len(f.beta))
            L[1] = 1.0
            L[2 : 2 + s] = 1.0
            b = float(L @ f.beta)
            se = float(np.sqrt(L @ f.cov @ L))
            c = self._crit(f)
            rows.append(
                {
                    "segment": s + 1,
                    "start": bounds[s],
                    "end": bounds[s + 1],
                    "apc": 100 * np.expm1(b),
                    "lower": 100 * np.expm1(b - c * se),
                    "upper": 100 * np.expm1(b + c * se),
                    "p_value": float(self._pvalue(f, np.array([b / se]))[0]) if se > 0 else np.nan,
                }
            )
        out = pd.DataFrame(rows)
        out["conf_level"] = self.conf_level
        out["method"] = self.method_
        return out

    def aapc(self, start: float | None = None, end: float | None = None) -> pd.DataFrame:
        """Average annual percent change over ``[start, end]`` (default whole series).

        Clegg et al. (2009), Stat Med 28:3670-3682: weighted mean of the segment log-slopes, weights
        the segment lengths within the interval; parametric (t) interval.
        """
        f = self._check()
        x = self.data_["time"].to_numpy()
        start = x[0] if start is None else float(start)
        end = x[-1] if end is None else float(end)
        if not (x[0] <= start < end <= x[-1]):
            raise ValueError(f"AAPC interval must satisfy {x[0]} <= start < end <= {x[-1]}; got {start}, {end}")
        bounds = [x[0], *x[list(f.comb)], x[-1]]
        L = np.zeros(len(f.beta))
        for s in range(f.k + 1):
            overlap = max(0.0, min(end, bounds[s + 1]) - max(start, bounds[s]))
            Ls = np.zeros(len(f.beta))
            Ls[1] = 1.0
            Ls[2 : 2 + s] = 1.0
            L += overlap * Ls
        L /= end - start
        b = float(L @ f.beta)
        se = float(np.sqrt(L @ f.cov @ L))
        c = self._crit(f)
        return pd.DataFrame(
            {
                "start": [start],
                "end": [end],
                "aapc": [100 * np.expm1(b)],
                "lower": [100 * np.expm1(b - c * se)],
                "upper": [100 * np.expm1(b + c * se)],
                "p_value": [float(self._pvalue(f, np.array([b / se]))[0]) if se > 0 else np.nan],
                "conf_level": [self.conf_level],
                "method": [self.method_ + "; AAPC parametric"],
            }
        )

    def predict(self, time=None) -> pd.DataFrame:
        """Fitted rate at ``time`` (default: the observed time points)."""
        f = self._check()
        x = self.data_["time"].to_numpy()
        t = x if time is None else np.atleast_1d(np.asarray(time, dtype=float))
        X = _design(t, x[list(f.comb)])
        return pd.DataFrame({"time": t, "fitted_rate": np.exp(X @ f.beta)})

    def plot(self, ax=None, **kwargs):
        """Observed rates (points), fitted joinpoint model (line), joinpoints (vertical dotted lines)."""
        import matplotlib.pyplot as plt

        f = self._check()
        if ax is None:
            _fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(self.data_["time"], self.data_["rate"], "o", color="0.3", label="observed", **kwargs)
        grid = np.linspace(self.data_["time"].min(), self.data_["time"].max(), 200)
        ax.plot(grid, self.predict(grid)["fitted_rate"], "-", color="C0",
                label=f"joinpoint model ({f.k} joinpoint{'s' if f.k != 1 else ''})")
        for jp in self.joinpoints_:
            ax.axvline(jp, color="C0", ls=":", lw=1)
        ax.set_xlabel("time")
        ax.set_ylabel("rate")
        ax.legend(frameon=False)
        return ax


def joinpoint(
    data: pd.DataFrame,
    *,
    time: str,
    rate: str | None = None,
    events: str | None = None,
    population: str | None = None,
    se: str | None = None,
    max_joinpoints: int | None = None,
    selection: str = "permutation",
    n_joinpoints: int | None = None,
    **kwargs,
) -> JoinpointFitter:
    """Fit a Joinpoint model to one series and return the fitted :class:`JoinpointFitter`.

    See :class:`JoinpointFitter` for the options (``min_obs_end``, ``min_obs_between``, ``fit``,
    ``heteroscedastic``, ``n_permutations``, ``alpha``, ``seed``, ``conf_level``). Methods: Kim et al.
    (2000) Stat Med 19:335-351; Kim et al. (2022) J Appl Stat 50:1992-2013; Clegg et al. (2009).
    """
    fitter = JoinpointFitter(max_joinpoints=max_joinpoints, selection=selection, **kwargs)
    return fitter.fit(data, time=time, rate=rate, events=events, population=population, se=se,
                      n_joinpoints=n_joinpoints)
