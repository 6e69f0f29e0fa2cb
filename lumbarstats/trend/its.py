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

:func:`its_multi` (or ``its(..., interventions=[...])``) fits several interventions at once, each with a
level and a slope change and an optional linear phase-in, and handles COVID-19 explicitly
(:data:`COVID_PERIODS`: indicator terms for the lockdown and catch-up months by default, or the months left
out as the sensitivity analysis); results as per-cent level changes with intervals
(:class:`MultiITSResult`). Its 95 % intervals cover the truth 94-97 % of the time in a seeded simulation of
400 monthly series (tests/test_interventions.py).
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

__all__ = ["its", "ITSResult", "MIN_POINTS_POWERED", "its_multi", "MultiITSResult", "COVID_PERIODS",
           "COVID_HANDLING", "covid_design"]

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



def _checked_series(data, time, events, population, seasonality, conf_level):
    """The checks every ITS fit makes on its series; the series sorted by time, its time index and unit."""
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
    return conf_level, season, period_col, d, t, unit


def _seasonal_and_covid_terms(X, d, time, season, period_col, datelike, covid_X, in_fit) -> pd.DataFrame:
    """The design ``X`` with the Fourier seasonality terms and the COVID-19 terms added; the fit must have
    more points than parameters."""
    if season:
        harmonics = int(season.get("harmonics", 2))
        period_length = float(season.get("period_length", 12))
        if period_col is not None:
            pv = pd.to_numeric(d[period_col], errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(pv).all():
                raise ValueError(f"seasonality period column {period_col!r} must be numeric (e.g. month 1-12)")
        elif datelike:
            pv = month_number(d[time])
        else:
            raise ValueError("seasonality needs 'period_column' when time is not a date column")
        X = pd.concat([X, fourier_terms(pv, harmonics, period_length)], axis=1)
    if covid_X.shape[1]:
        X = pd.concat([X, covid_X], axis=1)
    if in_fit.sum() <= X.shape[1]:
        raise ValueError(f"{int(in_fit.sum())} time points cannot support {X.shape[1]} model parameters")
    return X

def its(
    data: pd.DataFrame,
    *,
    time: str,
    events: str,
    population: str | None = None,
    intervention_start=None,
    slope_change: bool = True,
    seasonality: dict | None = None,
    family: str = "quasipoisson",
    hac_lags: int | None = None,
    transition: int | None = None,
    conf_level: float = 0.95,
    per: float = 1000.0,
    covid: str | None = None,
    interventions=None,
):
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
    covid : None (default here, as before), ``"indicators"`` (one indicator per period of
        :data:`COVID_PERIODS`) or ``"exclude"`` (those months left out of the fit); monthly series only.
    interventions : several interventions (see :func:`its_multi`); then ``intervention_start`` must be
        omitted and a :class:`MultiITSResult` is returned (``covid`` defaults to ``"indicators"`` there).

    A series on which the model cannot be estimated (no events before or after the intervention, a fit
    that fails or does not converge — usual for small regions) gives an :class:`ITSResult` with
    ``reason`` set: its tables have NaN estimates and a ``reason`` column, its interpretation says why.
    Bad input (columns, times, too few time points) still raises.

    Returns an :class:`ITSResult`. Reference: Lopez Bernal, Cummins & Gasparrini (2017),
    Int J Epidemiol 46:348-355.
    """
    if interventions is not None:
        if intervention_start is not None:
            raise ValueError("give either intervention_start (one intervention) or interventions (several), not both")
        if transition is not None:
            raise ValueError("with several interventions give each its own 'phase_in' instead of transition")
        return its_multi(data, time=time, events=events, population=population, interventions=interventions,
                         slope_change=slope_change, seasonality=seasonality, family=family, hac_lags=hac_lags,
                         conf_level=conf_level, per=per, covid="indicators" if covid is None else covid)
    if intervention_start is None:
        raise TypeError("its() needs intervention_start (or interventions=[...] for several)")
    conf_level, season, period_col, d, t, unit = _checked_series(data, time, events, population, seasonality,
                                                                 conf_level)
    covid_X, covid_out = covid_design(t, unit=unit, handling=covid)
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
    in_fit = ~((t >= t0) & (t < t_eff)) & ~covid_out
    n_pre = int(((t < t0) & in_fit).sum())
    n_post = int(((t >= t_eff) & in_fit).sum())
    if n_pre < MIN_POINTS_REQUIRED or n_post < (MIN_POINTS_REQUIRED if slope_change else 1):
        raise ValueError(
            f"too few time points: {n_pre} before and {n_post} after the intervention; an ITS needs at "
            f"least {MIN_POINTS_REQUIRED} on each side"
        )
    X = pd.DataFrame({"const": 1.0, "time": t - t[0], "level_change": (t >= t_eff).astype(float)})
    if slope_change:
        X["slope_change"] = np.clip(t - t_eff, 0, None)
    X = _seasonal_and_covid_terms(X, d, time, season, period_col, unit == "month", covid_X, in_fit)
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


# -- COVID-19 ---------------------------------------------------------------------------------------
#: COVID-19 periods in Denmark as monthly indicator terms: the first lockdown (11 March 2020, reopening
#: from mid-April to May), the catch-up of postponed activity the following summer, the second lockdown
#: (December 2020 to February 2021) and its catch-up in spring 2021. Elective imaging fell in the
#: lockdowns and partly caught up afterwards (Danish Health Data Authority activity reports 2020-21).
COVID_PERIODS: dict[str, tuple[str, str]] = {
    "covid_lockdown_1": ("2020-03", "2020-05"),
    "covid_catch_up_1": ("2020-06", "2020-08"),
    "covid_lockdown_2": ("2020-12", "2021-02"),
    "covid_catch_up_2": ("2021-03", "2021-05"),
}
#: ``"indicators"`` (default of :func:`its_multi`): one indicator (own level) per period of
#: :data:`COVID_PERIODS`, so the pandemic months neither pull the trend nor count as intervention
#: effect; ``"exclude"``: those months are left out of the fit (the sensitivity analysis); ``"none"``.
COVID_HANDLING = ("indicators", "exclude", "none")


def _month_point(value, *, datelike: bool) -> float:
    """:func:`time_point` with a fast path for ``"YYYY-MM"`` strings (simulations fit thousands of models)."""
    if datelike and isinstance(value, str) and len(value) == 7 and value[4] == "-" and value[:4].isdigit() \
            and value[5:].isdigit() and 1 <= int(value[5:]) <= 12:
        return float(int(value[:4]) * 12 + int(value[5:]) - 1)
    return time_point(value, datelike=datelike)


def covid_design(t: np.ndarray, *, unit: str, handling: str | None, periods: dict | None = None):
    """COVID-19 terms for numeric month times ``t`` (see :func:`lumbarstats.trend._common.time_index`).

    Returns ``(X, excluded)``: a DataFrame with one indicator column per period present in the series
    (``handling="indicators"``) and a boolean array of months to leave out of the fit
    (``handling="exclude"``); ``None``/``"none"`` gives no columns and nothing excluded.
    """
    t = np.asarray(t, dtype=float)
    excluded = np.zeros(len(t), dtype=bool)
    if handling is None or handling == "none":
        return pd.DataFrame(index=range(len(t))), excluded
    if handling not in COVID_HANDLING:
        raise ValueError(f"covid must be one of {COVID_HANDLING} (or None), got {handling!r}")
    if unit != "month":
        raise ValueError("COVID-19 terms need a monthly series (a date or 'YYYY-MM' time column)")
    cols = {}
    for name, (first, last) in (periods or COVID_PERIODS).items():
        lo, hi = _month_point(first, datelike=True), _month_point(last, datelike=True)
        if hi < lo:
            raise ValueError(f"COVID period {name!r}: {first} is after {last}")
        hit = (t >= lo) & (t <= hi)
        if not hit.any():
            continue
        if handling == "indicators":
            cols[name] = hit.astype(float)
        else:
            excluded |= hit
    return pd.DataFrame(cols, index=range(len(t))), excluded


# -- several interventions ---------------------------------------------------------------------------
def _intervention_specs(interventions, *, slope_change: bool, datelike: bool) -> list[dict]:
    """Normalise ``interventions`` to ``[{name, start, t_start, phase_in, slope_change}]`` sorted by start."""
    if isinstance(interventions, dict):
        items = [{"name": k, "start": v} for k, v in interventions.items()]
    elif isinstance(interventions, str | int | float | pd.Timestamp | pd.Period):
        items = [{"name": "intervention", "start": interventions}]
    else:
        items = []
        for i, it in enumerate(interventions):
            if isinstance(it, dict):
                items.append(dict(it))
            elif isinstance(it, tuple) and len(it) == 2:
                items.append({"name": it[0], "start": it[1]})
            else:
                items.append({"name": f"intervention_{i + 1}", "start": it})
    if not items:
        raise ValueError("interventions is empty; give at least one {'name': ..., 'start': ...}")
    allowed = {"name", "start", "phase_in", "slope_change"}
    out, seen = [], set()
    for i, it in enumerate(items):
        unknown = set(it) - allowed
        if unknown:
            raise ValueError(f"intervention {i + 1}: unknown key(s) {sorted(unknown)}; use {sorted(allowed)}")
        if "start" not in it:
            raise ValueError(f"intervention {i + 1} ({it.get('name', '?')}) has no 'start'")
        name = str(it.get("name", f"intervention_{i + 1}"))
        if name in seen:
            raise ValueError(f"intervention name {name!r} is given twice; names must be unique")
        seen.add(name)
        phase_in = it.get("phase_in", 0) or 0
        if isinstance(phase_in, bool) or not float(phase_in).is_integer() or int(phase_in) < 0:
            raise ValueError(f"intervention {name!r}: phase_in must be a whole number of time points >= 0, "
                             f"got {phase_in!r}")
        out.append({"name": name, "start": it["start"], "t_start": _month_point(it["start"], datelike=datelike),
                    "phase_in": int(phase_in), "slope_change": bool(it.get("slope_change", slope_change))})
    return sorted(out, key=lambda s: s["t_start"])


def _level_column(t: np.ndarray, spec: dict) -> np.ndarray:
    """0 before the start, rising linearly to 1 over ``phase_in`` points (1 from start + phase_in on)."""
    return np.clip((t - spec["t_start"] + 1) / (spec["phase_in"] + 1), 0.0, 1.0)


def _slope_column(t: np.ndarray, spec: dict) -> np.ndarray:
    """Time since the full effect is reached (start + phase_in), 0 before."""
    return np.clip(t - (spec["t_start"] + spec["phase_in"]), 0.0, None)


def level_term(name: str) -> str:
    return f"level_change[{name}]"


def slope_term(name: str) -> str:
    return f"slope_change[{name}]"


def _first_dependent_column(X: pd.DataFrame) -> str | None:
    """Name of the first column that is a linear combination of the columns before it (or None)."""
    A = X.to_numpy(dtype=float)
    scale = np.maximum(np.abs(A).max(axis=0), 1e-12)
    A = A / scale
    rank = 0
    for j in range(A.shape[1]):
        r = np.linalg.matrix_rank(A[:, : j + 1], tol=1e-8 * max(A.shape))
        if r == rank:
            return X.columns[j]
        rank = r
    return None


class MultiITSResult:
    """Result of :func:`its_multi` (several interventions, phase-in, COVID-19 terms).

    ``.summary`` is indexed by term (``level_change[NAME]``, ``slope_change[NAME]``, ``pre_trend``, the
    COVID indicators) with ``intervention, term_kind, rate_ratio, lower, upper, p_value, change_pct,
    change_lower_pct, change_upper_pct`` (per cent: ``100 (rate ratio - 1)``), ``conf_level, method, covid, reason``.
    """

    def __init__(self, *, res, X, offset, frame, specs, unit, method, conf_level, per, covid, n_pre, n_post,
                 time_name, datelike, reason=None):
        self.result = res
        self.reason = reason
        self.X = X
        self._offset = offset
        self.frame = frame
        self.specs = specs
        self.unit = unit
        self.method = method
        self.conf_level = conf_level
        self.per = per
        self.covid = covid
        self.n_pre = n_pre
        self.n_post = n_post
        self.time_name = time_name
        self._datelike = datelike
        self.underpowered = {s["name"]: min(n_pre[s["name"]], n_post[s["name"]]) < MIN_POINTS_POWERED
                             for s in specs}
        weak = [n for n, u in self.underpowered.items() if u]
        self.warning = (
            "Underpowered: fewer than {m} time points on a side of {names}; estimates are imprecise and depend "
            "heavily on the assumed linear trend.".format(m=MIN_POINTS_POWERED, names=", ".join(weak))
            if weak else "")

    @property
    def names(self) -> list[str]:
        return [s["name"] for s in self.specs]

    def _spec(self, name) -> dict:
        for s in self.specs:
            if s["name"] == name:
                return s
        raise KeyError(f"no intervention {name!r}; interventions are {self.names}")

    # -- tables ------------------------------------------------------------------------------------
    @property
    def summary(self) -> pd.DataFrame:
        cols = list(self.X.columns)
        rows = []
        for s in self.specs:
            rows.append((level_term(s["name"]), s["name"], "level_change"))
            if s["slope_change"]:
                rows.append((slope_term(s["name"]), s["name"], "slope_change"))
        rows.append(("time", "", "pre_trend"))
        rows += [(c, "", "covid") for c in cols if c.startswith("covid_")]
        L = np.zeros((len(rows), len(cols)))
        for i, (col, _n, _k) in enumerate(rows):
            L[i, cols.index(col)] = 1.0
        est, _se, lo, hi, p = linear_combination(self.result, L, self.conf_level)
        with np.errstate(over="ignore"):  # a term the data cannot estimate (a near-empty series): inf, not noise
            out = self._summary_frame(rows, est, lo, hi, p)
        out.attrs["warning"] = self.warning
        out.attrs["time_unit"] = self.unit
        return out

    def _summary_frame(self, rows, est, lo, hi, p) -> pd.DataFrame:
        return pd.DataFrame({
            "intervention": [r[1] for r in rows],
            "term_kind": [r[2] for r in rows],
            "rate_ratio": np.exp(est), "lower": np.exp(lo), "upper": np.exp(hi), "p_value": p,
            "change_pct": 100 * np.expm1(est), "change_lower_pct": 100 * np.expm1(lo), "change_upper_pct": 100 * np.expm1(hi),
            "conf_level": self.conf_level, "method": self.method, "covid": self.covid,
            "reason": pd.array([self.reason] * len(rows), dtype="string"),
        }, index=pd.Index(["pre_trend" if r[0] == "time" else r[0] for r in rows], name="term"))

    def level_change(self, name: str | None = None) -> pd.Series:
        """The relative level change of one intervention (default: the first) as a row of :attr:`summary`."""
        name = self.names[0] if name is None else self._spec(name)["name"]
        return self.summary.loc[level_term(name)]

    def _predict(self, Xa: np.ndarray) -> pd.DataFrame:
        est, _se, lo, hi, _p = linear_combination(self.result, Xa, self.conf_level)
        off = self._offset
        pop = self.frame["population"].to_numpy()
        out = pd.DataFrame({"time": self.frame["time"].to_numpy(), "observed_events": self.frame["events"].to_numpy(),
                            "population": pop, "events": np.exp(est + off), "events_lower": np.exp(lo + off),
                            "events_upper": np.exp(hi + off)})
        out["observed_rate"] = out["observed_events"] / pop * self.per
        out["rate"] = out["events"] / pop * self.per
        out["lower"] = out["events_lower"] / pop * self.per
        out["upper"] = out["events_upper"] / pop * self.per
        out["in_fit"] = self.frame["in_fit"].to_numpy()
        return out

    def _intervention_columns(self, without=None) -> list[str]:
        names = self.names if without is None else [self._spec(n)["name"] for n in
                                                     ([without] if isinstance(without, str) else without)]
        cols = []
        for n in names:
            cols.append(level_term(n))
            if slope_term(n) in self.X.columns:
                cols.append(slope_term(n))
        return cols

    def _counterfactual_X(self, without=None) -> np.ndarray:
        Xc = self.X.copy()
        for c in self._intervention_columns(without):
            Xc[c] = 0.0
        return Xc.to_numpy()

    def predict(self) -> pd.DataFrame:
        """Fitted expected events and rates with interval (COVID terms and interventions included)."""
        return self._predict(self.X.to_numpy())

    def counterfactual(self, without=None) -> pd.DataFrame:
        """The prediction without the interventions (``without``: a name or names; default all); the
        COVID terms and the offset stay, so the counterfactual has the pandemic months too."""
        return self._predict(self._counterfactual_X(without))

    def effects(self, without=None) -> pd.DataFrame:
        """Per time point from the first start of ``without`` (default all): fitted / counterfactual
        (the combined intervention effect) with interval; ``relative_change`` = rate ratio - 1."""
        cols = self._intervention_columns(without)
        names = list(self.X.columns)
        t_first = min(self._spec(c[c.index("[") + 1:-1])["t_start"] for c in cols)
        post = self.frame["t_num"].to_numpy() >= t_first
        L = np.zeros((post.sum(), len(names)))
        for c in cols:
            L[:, names.index(c)] = self.X[c].to_numpy()[post]
        est, _se, lo, hi, p = linear_combination(self.result, L, self.conf_level)
        return pd.DataFrame({"time": self.frame["time"].to_numpy()[post], "rate_ratio": np.exp(est),
                             "lower": np.exp(lo), "upper": np.exp(hi), "p_value": p,
                             "relative_change": np.expm1(est), "relative_change_lower": np.expm1(lo),
                             "relative_change_upper": np.expm1(hi),
                             "in_fit": self.frame["in_fit"].to_numpy()[post]})

    def cumulative_effect(self, without=None, *, end=None) -> pd.DataFrame:
        """Observed vs counterfactual total over the fitted months from the first start of ``without``
        (default every intervention) to ``end`` (default the series end); delta-method interval for the
        counterfactual total, relative change = observed / counterfactual - 1 (observed counts fixed), as
        :meth:`ITSResult.cumulative_effect`."""
        cols = self._intervention_columns(without)
        t_first = min(self._spec(c[c.index("[") + 1:-1])["t_start"] for c in cols)
        tn = self.frame["t_num"].to_numpy()
        post = (tn >= t_first) & self.frame["in_fit"].to_numpy()
        if end is not None:
            post &= tn <= time_point(end, datelike=self._datelike)
        if not post.any():
            raise ValueError("no fitted time points in the requested post period")
        Xc = self._counterfactual_X(without)[post]
        mu = np.exp(Xc @ np.asarray(self.result.params, dtype=float) + self._offset[post])
        total = mu.sum()
        g = (mu[:, None] * Xc).sum(axis=0)
        se_log = float(np.sqrt(g @ np.asarray(self.result.cov_params(), dtype=float) @ g)) / total
        z = z_value(self.conf_level)
        cf_lo, cf_hi = total * np.exp(-z * se_log), total * np.exp(z * se_log)
        obs = float(self.frame.loc[post, "events"].sum())
        return pd.DataFrame({"observed_events": [obs], "counterfactual_events": [total],
                             "counterfactual_lower": [cf_lo], "counterfactual_upper": [cf_hi],
                             "difference": [obs - total], "relative_change": [obs / total - 1],
                             "lower": [obs / cf_hi - 1], "upper": [obs / cf_lo - 1],
                             "conf_level": [self.conf_level]})

    # -- text and views ----------------------------------------------------------------------------
    def interpretation(self, lang: str = "en") -> str:
        """Plain-language reading of each intervention's level change (``lang`` "en" or "da")."""
        if lang not in ("en", "da"):
            raise ValueError("lang must be 'en' or 'da'")
        if self.reason is not None:
            return (f"The model could not be estimated on these data: {self.reason}." if lang == "en" else
                    f"Modellen kunne ikke estimeres på disse data: {self.reason}.")
        parts = []
        for s in self.specs:
            r = self.summary.loc[level_term(s["name"])]
            txt = verdict(r["change_pct"], r["change_lower_pct"], r["change_upper_pct"], conf_level=self.conf_level, lang=lang,
                          underpowered=self.underpowered[s["name"]])
            parts.append(f"{s['name']} ({s['start']}): {txt}")
        covid_txt = {"indicators": ("COVID-19 months have their own indicator terms",
                                    "COVID-19-månederne har egne indikatorled"),
                     "exclude": ("COVID-19 months are left out of the fit", "COVID-19-månederne indgår ikke"),
                     "none": ("no COVID-19 terms", "ingen COVID-19-led")}[self.covid][lang == "da"]
        tail = (f" ({covid_txt}; the counterfactual assumes the pre-intervention trend would have continued.)"
                if lang == "en" else
                f" ({covid_txt}; det kontrafaktiske forløb antager, at udviklingen før indsatsen ville være "
                "fortsat.)")
        return " ".join(parts) + tail

    def _repr_html_(self) -> str:
        from lumbarstats.formatting import result_html

        pts = ", ".join(f"{n}: {self.n_pre[n]} before/{self.n_post[n]} after" for n in self.names)
        lines = [f"{pts} ({self.unit}); {self.method}; COVID-19: {self.covid}; {self.conf_level:.0%} intervals",
                 f"not estimated: {self.reason}" if self.reason else ""]
        return result_html("Interrupted time series, several interventions",
                           self.summary[["rate_ratio", "lower", "upper", "p_value"]], lines=lines,
                           warning=self.warning)

    def plot(self, ax=None, *, title: str | None = None, ylabel: str | None = None, lang: str = "da"):
        """Observed (points), fitted (solid), counterfactual without every intervention (dashed, with band),
        a line at each start and the COVID-19 periods shaded."""
        import matplotlib.pyplot as plt

        words = _PLOT_WORDS.get(lang)
        if words is None:
            raise ValueError(f"lang must be 'da' or 'en', got {lang!r}")
        if ax is None:
            _fig, ax = plt.subplots(figsize=(8, 4.5))
        fit, cf = self.predict(), self.counterfactual()
        x = fit["time"]
        post = self.frame["t_num"].to_numpy() >= self.specs[0]["t_start"]
        ax.plot(x, fit["observed_rate"], "o", ms=3.5, color="0.35", label=words["observed"])
        ax.plot(x, fit["rate"], "-", color="C0", lw=1.8, label=words["fitted"])
        ax.fill_between(x[post], cf["lower"][post], cf["upper"][post], color="C3", alpha=0.15, lw=0)
        ax.plot(x[post], cf["rate"][post], "--", color="C3", lw=1.8, label=words["counterfactual"])
        for i, s in enumerate(self.specs):
            at = self.frame.loc[self.frame["t_num"] >= s["t_start"], "time"]
            if len(at):
                ax.axvline(at.iloc[0], color="0.2", ls=":", lw=1.2, label=words["intervention"] if i == 0 else None)
        if self._datelike and self.covid != "none":
            for first, last in COVID_PERIODS.values():
                a, b = pd.Timestamp(first), pd.Timestamp(last) + pd.offsets.MonthEnd(1)
                ax.axvspan(a, b, color="0.85", alpha=0.5, lw=0)
        per = f"{self.per:,g}".replace(",", ".") if lang == "da" else f"{self.per:,g}"
        ax.set_ylabel(ylabel or words["ylabel"].format(per=per))
        if title:
            ax.set_title(title)
        ax.legend(frameon=False, fontsize=8)
        return ax


def verdict(pct, lower, upper, *, conf_level: float = 0.95, lang: str = "en", underpowered: bool = False,
            min_p_value: float | None = None, alpha: float | None = None) -> str:
    """Plain-language reading of a relative change in per cent with its interval.

    Says "the design cannot tell an effect from noise" when the smallest p-value the design can reach
    (``min_p_value``, e.g. 1/(J+1) for a permutation over J+1 units) is above ``alpha`` (default
    ``1 - conf_level``) or when the series is underpowered; otherwise whether the interval excludes no
    change.
    """
    alpha = 1 - conf_level if alpha is None else alpha
    if not np.isfinite(pct):
        return "not estimated" if lang == "en" else "ikke estimeret"
    cl = int(round(100 * conf_level))

    def f(v):
        s = f"{v:+.1f}"
        return s if lang == "en" else s.replace(".", ",")

    est = (f"{f(pct)} % ({cl} % CI {f(lower)} to {f(upper)} %)" if lang == "en" else
           f"{f(pct)} % ({cl} % KI {f(lower)} til {f(upper)} %)")
    if min_p_value is not None and min_p_value > alpha:
        return (f"{est}: the design cannot tell an effect from noise (its smallest attainable p-value, "
                f"{min_p_value:.2g}, is above {alpha:g})" if lang == "en" else
                f"{est}: designet kan ikke skelne en effekt fra tilfældig variation (mindste opnåelige "
                f"p-værdi {min_p_value:.2g} er over {alpha:g})".replace(".", ","))
    if underpowered:
        return (f"{est}: too few time points on a side; the design cannot tell an effect from noise"
                if lang == "en" else
                f"{est}: for få tidspunkter på en af siderne; designet kan ikke skelne en effekt fra "
                "tilfældig variation")
    if upper < 0:
        return f"{est}: a reduction" if lang == "en" else f"{est}: et fald"
    if lower > 0:
        return f"{est}: an increase" if lang == "en" else f"{est}: en stigning"
    return (f"{est}: no clear change (the interval includes no change)" if lang == "en" else
            f"{est}: ingen klar ændring (intervallet omfatter ingen ændring)")


def its_multi(
    data: pd.DataFrame,
    *,
    time: str,
    events: str,
    population: str | None = None,
    interventions,
    slope_change: bool = True,
    covid: str = "indicators",
    seasonality: dict | None = None,
    family: str = "quasipoisson",
    hac_lags: int | None = None,
    conf_level: float = 0.95,
    per: float = 1000.0,
) -> MultiITSResult:
    """Interrupted time series with several interventions, each with a level and a slope change and an
    optional linear phase-in, and COVID-19 handled explicitly:

        log E[y_t] = log(pop_t) + b0 + b1 t + sum_k [ c_k r_k(t) + d_k (t - s_k - L_k)+ ]
                     + [Fourier seasonality] + [COVID-19 indicators]

    with ``r_k(t) = clip((t - s_k + 1) / (L_k + 1), 0, 1)`` (0 before the start ``s_k``, rising linearly
    to 1 over the phase-in of ``L_k`` points; a step when ``L_k = 0``). ``exp(c_k) - 1`` is the relative
    level change of intervention ``k`` once fully phased in, ``exp(d_k) - 1`` the change in trend per time
    unit after it. Segmented regression with several change points and phase-in periods as in Wagner et
    al. (2002, J Clin Pharm Ther 27:299-309) and Lopez Bernal, Cummins & Gasparrini (2017, Int J Epidemiol
    46:348-355); with one intervention, no phase-in and ``covid="none"`` the estimates are those of
    :func:`its`.

    Parameters
    ----------
    interventions : list of ``{"name", "start", "phase_in" (points, default 0), "slope_change" (default
        ``slope_change``)}``, ``(name, start)`` pairs or starts, or a mapping ``{name: start}``.
    covid : ``"indicators"`` (default; :data:`COVID_PERIODS`), ``"exclude"`` or ``"none"`` — see
        :data:`COVID_HANDLING`. With ``"exclude"`` and ``hac_lags`` the HAC weights treat the fitted months
        as consecutive.
    seasonality, family, hac_lags, conf_level, per : as :func:`its`.

    Interventions whose terms cannot be told apart on the data (same start, or a start with no fitted
    point between it and the next) raise a ValueError naming them. A series on which the model cannot be
    estimated gives a result with ``reason`` set (NaN estimates), as :func:`its`.
    """
    conf_level, season, period_col, d, t, unit = _checked_series(data, time, events, population, seasonality,
                                                                 conf_level)
    datelike = unit == "month"
    covid = "none" if covid is None else covid
    covid_X, covid_out = covid_design(t, unit=unit, handling=covid)
    specs = _intervention_specs(interventions, slope_change=slope_change, datelike=datelike)
    for s in specs:
        if not (t.min() < s["t_start"] <= t.max()):
            raise ValueError(f"intervention {s['name']!r} starts at {s['start']!r}, outside the series "
                             f"({d[time].iloc[0]} to {d[time].iloc[-1]})")
    y = check_counts(d[events], events)
    pop = check_positive(d[population], population) if population else np.ones(len(d))
    in_fit = ~covid_out
    n_pre = {s["name"]: int(((t < s["t_start"]) & in_fit).sum()) for s in specs}
    n_post = {s["name"]: int(((t >= s["t_start"] + s["phase_in"]) & in_fit).sum()) for s in specs}
    first = specs[0]["name"]
    if n_pre[first] < MIN_POINTS_REQUIRED:
        raise ValueError(f"too few time points: {n_pre[first]} before the first intervention ({first}); an ITS "
                         f"needs at least {MIN_POINTS_REQUIRED}")
    for s in specs:
        need = MIN_POINTS_REQUIRED if s["slope_change"] else 1
        if n_post[s["name"]] < need:
            raise ValueError(f"too few time points: {n_post[s['name']]} after intervention {s['name']!r} is fully "
                             f"phased in; at least {need} needed")
    X = pd.DataFrame({"const": 1.0, "time": t - t[0]})
    for s in specs:
        X[level_term(s["name"])] = _level_column(t, s)
        if s["slope_change"]:
            X[slope_term(s["name"])] = _slope_column(t, s)
    X = _seasonal_and_covid_terms(X, d, time, season, period_col, datelike, covid_X, in_fit)
    dep = _first_dependent_column(X[in_fit])
    if dep is not None:
        raise ValueError(f"the term {dep!r} cannot be told apart from the terms before it on these data "
                         f"(interventions {[s['name'] + ' ' + str(s['start']) for s in specs]}); give the "
                         "interventions distinct starts with fitted time points between them, or combine them")
    off = np.log(pop)
    res, method, reason = fit_count_glm_or_reason(
        y[in_fit], X[in_fit], off[in_fit], family=family, hac_lags=hac_lags,
        must_have_events={"before the first intervention": (t < specs[0]["t_start"])[in_fit],
                          "after the interventions": (t >= specs[0]["t_start"])[in_fit]},
    )
    frame = pd.DataFrame({"time": d[time].to_numpy(), "t_num": t, "events": y, "population": pop,
                          "in_fit": in_fit})
    return MultiITSResult(res=res, X=X, offset=off, frame=frame, specs=specs, unit=unit, method=method,
                          conf_level=conf_level, per=per if population else 1.0, covid=covid, n_pre=n_pre,
                          n_post=n_post, time_name=time, datelike=datelike, reason=reason)
