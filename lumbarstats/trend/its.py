"""Interrupted time series (segmented regression) for count data with a population offset.

Model (Lopez Bernal, Cummins & Gasparrini 2017, "Interrupted time series regression for the
evaluation of public health interventions: a tutorial", Int J Epidemiol 46(1):348-355; Wagner,
Soumerai, Zhang & Ross-Degnan 2002, J Clin Pharm Ther 27:299-309):

    log E[y_t] = log(pop_t) + b0 + b1 t + b2 post_t + b3 (t - t0)+ [+ Fourier seasonality]

with ``post_t = 1(t >= t0)`` (``level_change``, the immediate change at the first post-intervention
time point ``t0``) and ``(t - t0)+ = max(0, t - t0)`` (``slope_change``). Seasonality by Fourier
pairs as ``tsModel::harmonic`` (Bhaskaran et al. 2013, Int J Epidemiol 42:1187-1195). Families:
Poisson, quasi-Poisson (Pearson dispersion, as R), negative binomial (NB2). Optional Newey–West HAC
standard errors (Newey & West 1987, Econometrica 55:703-708).

The counterfactual is the same model with ``b2 = b3 = 0``, evaluated with the observed offset —
built explicitly, never through statsmodels' ``predict`` (which silently drops an offset that is not
passed).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

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
    z_value,
)
from .models import fit_count_glm_or_reason

__all__ = ["its", "ITSResult", "MIN_POINTS_POWERED"]

#: fewer than this many points before or after the intervention -> flagged as underpowered
#: (Cochrane EPOC recommends >= 3 points either side as a minimum; ~8 either side is the number
#: below which power for a level change is usually poor — Zhang, Wagner & Ross-Degnan 2011,
#: J Clin Epidemiol 64:1252-1261).
MIN_POINTS_POWERED = 8
MIN_POINTS_REQUIRED = 3

_TERM_DESCRIPTION = {
    "level_change": "immediate change in level at the intervention (rate ratio)",
    "slope_change": "change in trend per time unit after the intervention (rate ratio per unit)",
    "pre_trend": "pre-intervention trend per time unit (rate ratio per unit)",
}


class ITSResult:
    """Result of :func:`its`. ``.summary`` is indexed by term with ``rate_ratio, lower, upper, p_value``."""

    def __init__(self, *, res, X, offset, frame, t0, unit, method, conf_level, per, n_pre, n_post,
                 n_transition, slope_change, time_name, datelike, reason=None):
        self.result = res
        self.reason = reason  # why the model could not be estimated (then every estimate is NaN), or None
        self._X = X
        self._offset = offset
        self.frame = frame
        self.t0 = t0
        self.unit = unit
        self.method = method
        self.conf_level = conf_level
        self.per = per
        self.n_pre = n_pre
        self.n_post = n_post
        self.n_transition = n_transition
        self.slope_change = slope_change
        self.time_name = time_name
        self._datelike = datelike
        self.underpowered = n_pre < MIN_POINTS_POWERED or n_post < MIN_POINTS_POWERED
        self.warning = (
            f"Underpowered: {n_pre} time points before and {n_post} after the intervention "
            f"(fewer than {MIN_POINTS_POWERED} on a side); estimates are imprecise and depend heavily "
            "on the assumed linear trend."
            if self.underpowered
            else ""
        )

    def _repr_html_(self) -> str:
        """The notebook view: rate ratios rounded, with the design (points before/after, method)."""
        from lumbarstats.formatting import result_html

        lines = [f"{self.n_pre} time points before and {self.n_post} after the intervention ({self.unit}); "
                 f"{self.method}; {self.conf_level:.0%} intervals",
                 f"not estimated: {self.reason}" if self.reason else ""]
        return result_html("Interrupted time series", self.summary[["rate_ratio", "lower", "upper", "p_value"]],
                           lines=lines, warning=self.warning)

    # -- tables ----------------------------------------------------------------------------------
    @property
    def summary(self) -> pd.DataFrame:
        """Rate ratios by term: ``level_change``, ``slope_change`` (if modelled), ``pre_trend``."""
        terms = ["level_change"] + (["slope_change"] if self.slope_change else []) + ["pre_trend"]
        names = list(self._X.columns)
        L = np.zeros((len(terms), len(names)))
        for i, term in enumerate(terms):
            L[i, names.index(term if term != "pre_trend" else "time")] = 1.0
        est, _se, lo, hi, p = linear_combination(self.result, L, self.conf_level)
        out = pd.DataFrame(
            {
                "rate_ratio": np.exp(est),
                "lower": np.exp(lo),
                "upper": np.exp(hi),
                "p_value": p,
                "conf_level": self.conf_level,
                "method": self.method,
                "underpowered": self.underpowered,
                "reason": pd.array([self.reason] * len(terms), dtype="string"),
            },
            index=pd.Index(terms, name="term"),
        )
        out.attrs["warning"] = self.warning
        out.attrs["time_unit"] = self.unit
        return out

    def _predict(self, X: np.ndarray) -> pd.DataFrame:
        est, _se, lo, hi, _p = linear_combination(self.result, X, self.conf_level)
        off = self._offset
        pop = self.frame["population"].to_numpy()
        out = pd.DataFrame(
            {
                "time": self.frame["time"].to_numpy(),
                "observed_events": self.frame["events"].to_numpy(),
                "population": pop,
                "events": np.exp(est + off),
                "events_lower": np.exp(lo + off),
                "events_upper": np.exp(hi + off),
            }
        )
        out["observed_rate"] = out["observed_events"] / pop * self.per
        out["rate"] = out["events"] / pop * self.per
        out["lower"] = out["events_lower"] / pop * self.per
        out["upper"] = out["events_upper"] / pop * self.per
        out["in_fit"] = self.frame["in_fit"].to_numpy()
        return out

    def predict(self) -> pd.DataFrame:
        """Fitted expected events and rates (per ``per`` person-time) with confidence interval."""
        return self._predict(self._X.to_numpy())

    def _counterfactual_X(self) -> np.ndarray:
        Xc = self._X.copy()
        Xc["level_change"] = 0.0
        if "slope_change" in Xc:
            Xc["slope_change"] = 0.0
        return Xc.to_numpy()

    def counterfactual(self) -> pd.DataFrame:
        """No-intervention prediction (level and slope terms set to 0), offset carried, with interval."""
        return self._predict(self._counterfactual_X())

    def effects(self) -> pd.DataFrame:
        """Per post-intervention time point: observed vs counterfactual and the model rate ratio.

        ``rate_ratio`` = fitted / counterfactual = exp(level + slope (t - t0)), with interval;
        ``relative_change`` = rate_ratio - 1.
        """
        post = self.frame["post"].to_numpy() == 1
        names = list(self._X.columns)
        L = np.zeros((post.sum(), len(names)))
        L[:, names.index("level_change")] = 1.0
        if "slope_change" in names:
            L[:, names.index("slope_change")] = self._X["slope_change"].to_numpy()[post]
        est, _se, lo, hi, p = linear_combination(self.result, L, self.conf_level)
        cf = self.counterfactual()[post]
        return pd.DataFrame(
            {
                "time": self.frame["time"].to_numpy()[post],
                "observed_events": cf["observed_events"].to_numpy(),
                "counterfactual_events": cf["events"].to_numpy(),
                "counterfactual_lower": cf["events_lower"].to_numpy(),
                "counterfactual_upper": cf["events_upper"].to_numpy(),
                "rate_ratio": np.exp(est),
                "lower": np.exp(lo),
                "upper": np.exp(hi),
                "p_value": p,
                "relative_change": np.expm1(est),
                "relative_change_lower": np.expm1(lo),
                "relative_change_upper": np.expm1(hi),
            }
        )

    def effect_at(self, time) -> pd.Series:
        """The row of :meth:`effects` for one post-intervention time point."""
        t = time_point(time, datelike=self._datelike)
        eff = self.effects()
        num = self.frame.loc[self.frame["post"] == 1, "t_num"].to_numpy()
        hit = np.flatnonzero(np.isclose(num, t))
        if hit.size == 0:
            raise ValueError(f"{time!r} is not a post-intervention time point of the series")
        return eff.iloc[int(hit[0])]

    def cumulative_effect(self) -> pd.DataFrame:
        """Whole post period: observed total vs counterfactual total, relative change with interval.

        Interval for the counterfactual total by the delta method on ``sum_t exp(x_t' b + offset_t)``;
        relative change = observed / counterfactual - 1 (observed counts treated as fixed).
        """
        post = (self.frame["post"].to_numpy() == 1) & self.frame["in_fit"].to_numpy()
        Xc = self._counterfactual_X()[post]
        mu = np.exp(Xc @ np.asarray(self.result.params) + self._offset[post])
        total = mu.sum()
        g = (mu[:, None] * Xc).sum(axis=0)
        se_log = float(np.sqrt(g @ np.asarray(self.result.cov_params()) @ g)) / total
        z = z_value(self.conf_level)
        cf_lo, cf_hi = total * np.exp(-z * se_log), total * np.exp(z * se_log)
        obs = float(self.frame.loc[post, "events"].sum())
        return pd.DataFrame(
            {
                "observed_events": [obs],
                "counterfactual_events": [total],
                "counterfactual_lower": [cf_lo],
                "counterfactual_upper": [cf_hi],
                "difference": [obs - total],
                "relative_change": [obs / total - 1],
                "lower": [obs / cf_hi - 1],
                "upper": [obs / cf_lo - 1],
                "conf_level": [self.conf_level],
            }
        )

    # -- text ------------------------------------------------------------------------------------
    def interpretation(self, lang: str = "en", *, events_label: tuple[str, str] = ("examinations", "undersøgelser")) -> str:
        """Plain-language reading of the estimates, generated from the numbers (``lang`` "en" or "da").

        ``events_label``: what the counts are, in English and Danish.
        """
        if lang not in ("en", "da"):
            raise ValueError("lang must be 'en' or 'da'")
        if self.reason is not None:
            return (f"The model could not be estimated on these data: {self.reason}." if lang == "en" else
                    f"Modellen kunne ikke estimeres på disse data: {self.reason}.")
        s = self.summary
        lv = s.loc["level_change"]
        cum = self.cumulative_effect().iloc[0]
        pct = 100 * (lv["rate_ratio"] - 1)
        lo, hi = 100 * (lv["lower"] - 1), 100 * (lv["upper"] - 1)
        cl = int(round(100 * self.conf_level))
        cpct, clo, chi = 100 * cum["relative_change"], 100 * cum["lower"], 100 * cum["upper"]
        unit_en = "month" if self.unit == "month" else "time unit"
        unit_da = "måned" if self.unit == "month" else "tidsenhed"

        def f(v):
            return f"{v:+.1f}"

        if lang == "en":
            txt = (
                f"Right after the intervention the rate changed by {f(pct)}% ({cl}% CI {f(lo)}% to {f(hi)}%) "
                "compared with what the pre-intervention trend predicts."
            )
            if self.slope_change:
                sc = s.loc["slope_change"]
                txt += (
                    f" After that, the trend changed by {f(100 * (sc['rate_ratio'] - 1))}% per {unit_en} "
                    f"({cl}% CI {f(100 * (sc['lower'] - 1))}% to {f(100 * (sc['upper'] - 1))}%)."
                )
            txt += (
                f" Over the whole post-intervention period, {cum['observed_events']:,.0f} {events_label[0]} were "
                f"observed against {cum['counterfactual_events']:,.0f} expected without the intervention: "
                f"{f(cpct)}% ({cl}% CI {f(clo)}% to {f(chi)}%)."
                " The counterfactual assumes the pre-intervention trend would have continued unchanged;"
                " this is an assumption, not an observation."
            )
            if self.underpowered:
                txt += " " + self.warning
        else:
            def d(v):
                return f(v).replace(".", ",")

            txt = (
                f"Umiddelbart efter indsatsen ændrede raten sig med {d(pct)} % ({cl} % KI {d(lo)} % til "
                f"{d(hi)} %) i forhold til det, som udviklingen før indsatsen forudsiger."
            )
            if self.slope_change:
                sc = s.loc["slope_change"]
                txt += (
                    f" Derefter ændrede udviklingen sig med {d(100 * (sc['rate_ratio'] - 1))} % pr. {unit_da} "
                    f"({cl} % KI {d(100 * (sc['lower'] - 1))} % til {d(100 * (sc['upper'] - 1))} %)."
                )
            obs = f"{cum['observed_events']:,.0f}".replace(",", ".")
            exp = f"{cum['counterfactual_events']:,.0f}".replace(",", ".")
            txt += (
                f" I hele perioden efter indsatsen blev der observeret {obs} {events_label[1]} mod {exp} "
                f"forventet uden indsatsen: {d(cpct)} % ({cl} % KI {d(clo)} % til {d(chi)} %)."
                " Det kontrafaktiske forløb antager, at udviklingen før indsatsen ville være fortsat uændret;"
                " det er en antagelse, ikke en observation."
            )
            if self.underpowered:
                txt += (
                    f" Bemærk: kun {self.n_pre} tidspunkter før og {self.n_post} efter indsatsen (færre end "
                    f"{MIN_POINTS_POWERED}); estimaterne er usikre."
                )
        return txt

    # -- plot ------------------------------------------------------------------------------------
    def plot(self, ax=None, *, title: str | None = None, ylabel: str | None = None, lang: str = "da"):
        """Observed rates (points), fitted (solid), counterfactual (dashed) with band, intervention line.
        Labels in Danish by default, ``lang="en"`` for English."""
        import matplotlib.pyplot as plt

        words = _PLOT_WORDS.get(lang)
        if words is None:
            raise ValueError(f"lang must be 'da' or 'en', got {lang!r}")

        if ax is None:
            _fig, ax = plt.subplots(figsize=(8, 4.5))
        fit = self.predict()
        cf = self.counterfactual()
        x = fit["time"]
        post = self.frame["post"].to_numpy() == 1
        ax.plot(x, fit["observed_rate"], "o", ms=3.5, color="0.35", label=words["observed"])
        ax.plot(x, fit["rate"], "-", color="C0", lw=1.8, label=words["fitted"])
        ax.fill_between(x[post], cf["lower"][post], cf["upper"][post], color="C3", alpha=0.15, lw=0)
        ax.plot(x[post], cf["rate"][post], "--", color="C3", lw=1.8, label=words["counterfactual"])
        t0_label = self.frame.loc[self.frame["t_num"] >= self.t0, "time"].iloc[0]
        ax.axvline(t0_label, color="0.2", ls=":", lw=1.2, label=words["intervention"])
        per = f"{self.per:,g}".replace(",", ".") if lang == "da" else f"{self.per:,g}"
        ax.set_ylabel(ylabel or words["ylabel"].format(per=per))
        if title:
            ax.set_title(title)
        ax.legend(frameon=False, fontsize=8)
        return ax


_PLOT_WORDS = {
    "da": {"observed": "observeret", "fitted": "modelleret", "counterfactual": "kontrafaktisk (uden indsatsen)",
           "intervention": "indsatsen starter", "ylabel": "rate pr. {per} personår"},
    "en": {"observed": "observed", "fitted": "fitted", "counterfactual": "counterfactual (no intervention)",
           "intervention": "intervention", "ylabel": "rate per {per} person-years"},
}


def its(
    data: pd.DataFrame,
    *,
    time: str,
    events: str,
    population: str | None = None,
    intervention_start,
    slope_change: bool = True,
    seasonality: dict | None = None,
    family: str = "quasipoisson",
    hac_lags: int | None = None,
    transition: int | None = None,
    conf_level: float = 0.95,
    per: float = 1000.0,
) -> ITSResult:
    """Interrupted time series (segmented) regression on counts with a log-population offset.

    Parameters
    ----------
    time : integer (e.g. year, month number) or date/monthly-period column. Dates are converted to a
        month count, so trends and slope changes are per month.
    events, population : count column and the column whose log is the offset (person-time or
        expected counts; omit for no offset).
    intervention_start : first post-intervention value of ``time`` (e.g. ``2019`` or ``"2018-01"``).
    slope_change : include the slope-change term ``max(0, t - t0)``.
    seasonality : e.g. ``{"period_column": "month", "harmonics": 2, "period_length": 12}``; for date
        time ``period_column`` may be omitted (calendar month is used).
    family : "poisson", "quasipoisson" or "negbin".
    hac_lags : Newey–West HAC standard errors with this many lags.
    transition : number of time points from ``intervention_start`` treated as a phase-in: they are
        excluded from the fit, and the level/slope changes are measured from the first point after it.
    per : rates are reported per ``per`` units of the offset (default 1,000 person-years).

    A series on which the model cannot be estimated (no events before or after the intervention, a fit
    that fails or does not converge — usual for small regions) gives an :class:`ITSResult` with
    ``reason`` set: its tables have NaN estimates and a ``reason`` column, its interpretation says why.
    Bad input (columns, times, too few time points) still raises.

    Returns an :class:`ITSResult`. Reference: Lopez Bernal, Cummins & Gasparrini (2017),
    Int J Epidemiol 46:348-355.
    """
    conf_level = check_conf_level(conf_level)
    season = dict(seasonality or {})
    period_col = season.get("period_column")
    require_columns(data, [time, events, population, period_col])
    if len(data) == 0:
        raise ValueError("data has no rows")
    d = data.sort_values(time).reset_index(drop=True)
    t, unit = time_index(d[time])
    if len(np.unique(t)) != len(t):
        raise ValueError(f"column {time!r} has repeated values; give one row per time point")
    t0 = time_point(intervention_start, datelike=unit == "month")
    if not (t.min() < t0 <= t.max()):
        raise ValueError(
            f"intervention_start={intervention_start!r} is outside the series "
            f"({d[time].iloc[0]} to {d[time].iloc[-1]}); it must be after the first and at most the last time point"
        )
    y = check_counts(d[events], events)
    pop = check_positive(d[population], population) if population else np.ones(len(d))
    n_trans = int(transition or 0)
    if n_trans < 0:
        raise ValueError("transition must be a non-negative number of time points")
    post_times = np.sort(t[t >= t0])
    if n_trans >= len(post_times):
        raise ValueError(f"transition={n_trans} leaves no post-intervention points to fit")
    t_eff = post_times[n_trans] if n_trans else t0
    in_fit = ~((t >= t0) & (t < t_eff))
    n_pre = int((t < t0).sum())
    n_post = int((t >= t_eff).sum())
    if n_pre < MIN_POINTS_REQUIRED or n_post < (MIN_POINTS_REQUIRED if slope_change else 1):
        raise ValueError(
            f"too few time points: {n_pre} before and {n_post} after the intervention; an ITS needs at "
            f"least {MIN_POINTS_REQUIRED} on each side"
        )
    X = pd.DataFrame({"const": 1.0, "time": t - t[0], "level_change": (t >= t_eff).astype(float)})
    if slope_change:
        X["slope_change"] = np.clip(t - t_eff, 0, None)
    if season:
        harmonics = int(season.get("harmonics", 2))
        period_length = float(season.get("period_length", 12))
        if period_col is not None:
            pv = pd.to_numeric(d[period_col], errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(pv).all():
                raise ValueError(f"seasonality period column {period_col!r} must be numeric (e.g. month 1-12)")
        elif unit == "month":
            pv = month_number(d[time])
        else:
            raise ValueError("seasonality needs 'period_column' when time is not a date column")
        X = pd.concat([X, fourier_terms(pv, harmonics, period_length)], axis=1)
    if in_fit.sum() <= X.shape[1]:
        raise ValueError(f"{int(in_fit.sum())} time points cannot support {X.shape[1]} model parameters")
    off = np.log(pop)
    res, method, reason = fit_count_glm_or_reason(
        y[in_fit], X[in_fit], off[in_fit], family=family, hac_lags=hac_lags,
        must_have_events={"before the intervention": (t < t0)[in_fit], "after the intervention": (t >= t_eff)[in_fit]},
    )
    frame = pd.DataFrame(
        {
            "time": d[time].to_numpy(),
            "t_num": t,
            "events": y,
            "population": pop,
            "post": (t >= t0).astype(int),
            "in_fit": in_fit,
        }
    )
    result = ITSResult(
        res=res, X=X, offset=off, frame=frame, t0=t_eff, unit=unit, method=method, conf_level=conf_level,
        per=per if population else 1.0, n_pre=n_pre, n_post=n_post, n_transition=n_trans,
        slope_change=slope_change, time_name=time, datelike=unit == "month", reason=reason,
    )
    if result.underpowered:
        warnings.warn(result.warning, UserWarning, stacklevel=2)
    return result
