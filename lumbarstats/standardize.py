"""Rate standardization: directly and indirectly standardized rates, rate ratios and crude rates.

Why this module exists
----------------------
No maintained Python package computes directly standardized rates (DSRs) with the confidence
interval methods used in official health statistics. R has PHEindicatormethods (UKHSA), epitools,
dsrTest and dsr; SAS has PROC STDRATE; NCI has SEER*Stat; Stata has ``distrate``. This module
implements the same methods on tidy pandas tables, vectorised over groups (one numpy pass over a
``groups x strata`` matrix, not a Python loop per group), and is validated in
``tests/test_standardize.py`` against published results of those tools and in ``tests/test_tiwari.py``
against R scripts (``tests/reference/*.R``).

Functions (all return one tidy DataFrame, PHEindicatormethods style:
``rate, lower, upper, conf_level, method``):

- :func:`direct` — directly standardized rates (DSR), methods ``gamma`` (Fay & Feuer 1997),
  ``tiwari`` (Tiwari, Clegg & Zou 2006), ``dobson`` (Dobson et al. 1991 with Byar's limits, as
  PHEindicatormethods::calculate_dsr, or with the paper's exact Poisson limits), ``lognormal`` and ``normal``; with ``event_frequency`` the
  variance allows for several events per person (PHEindicatormethods' non-independent events).
- :func:`indirect` — standardized (morbidity) ratios (SMR) and indirectly standardized rates
  (as PHEindicatormethods::calculate_ISRatio / calculate_ISRate), methods ``byar`` and ``exact``.
- :func:`rate_ratio` — ratio of DSRs between levels of a column, methods ``lognormal`` (delta
  method) and ``fay`` (Fay 1999 F interval), with an explicit treatment of overlapping groups.
- :func:`crude_rate` — crude rates with Byar's / exact Poisson limits (as PHEindicatormethods::phe_rate).
- :func:`esp2013_weights` — European Standard Population 2013 weights aggregated onto arbitrary age bands.

Units: rates are reported per ``per`` persons (or person-years), default ``per=1000``. The
``variance`` column of :func:`direct` is the variance of ``rate`` on that scale (per²).

Standard population for the report: the lead passes the Danish adult population pooled over
2014–2023 by sex x age band as a DataFrame (``ls.aggregate.default_standard``); ``standard="default"``
instead pools the population of ``data`` itself over all ``by`` groups, which is the same thing when
``data`` holds the whole country for all study years.

References
----------
- Fay MP, Feuer EJ (1997). Confidence intervals for directly standardized rates: a method based on
  the gamma distribution. Stat Med 16:791–801.
- Tiwari RC, Clegg LX, Zou Z (2006). Efficient interval estimation for age-adjusted cancer rates.
  Stat Methods Med Res 15:547–569.
- Dobson AJ, Kuulasmaa K, Eberle E, Scherer J (1991). Confidence intervals for weighted sums of
  Poisson parameters. Stat Med 10:457–462.
- Breslow NE, Day NE (1987). Statistical Methods in Cancer Research, vol. II: The Design and Analysis
  of Cohort Studies. IARC Sci Publ 82 (Byar's approximation to the Poisson limits, p. 69).
- Fay MP (1999). Approximate confidence intervals for rate ratios from directly standardized rates
  with sparse data. Commun Stat Theory Methods 28:2141–2160.
- Office for Health Improvement and Disparities. Fingertips Public Health Technical Guidance,
  chapter on directly standardised rates (confidence intervals for non-independent events), as
  implemented in PHEindicatormethods::calculate_dsr (``independent_events = FALSE``).
- Eurostat (2013). Revision of the European Standard Population. Report of Eurostat's task force.
  Methodologies and Working papers, KS-RA-13-028-EN-N.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "ESP2013",
    "direct",
    "indirect",
    "rate_ratio",
    "crude_rate",
    "esp2013_weights",
    "parse_age_band",
]

DIRECT_METHODS = ("gamma", "tiwari", "dobson", "lognormal", "normal")
INDIRECT_METHODS = ("byar", "exact")
RATIO_METHODS = ("lognormal", "fay")
CRUDE_METHODS = ("byar", "exact")
COUNT_LIMITS = ("byar", "exact")  # Poisson limits of the total count in Dobson's method

#: European Standard Population 2013 (Eurostat 2013), 19 five-year bands, total 100,000.
ESP2013 = pd.DataFrame(
    {
        "age_band": [
            "0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39", "40-44", "45-49",
            "50-54", "55-59", "60-64", "65-69", "70-74", "75-79", "80-84", "85-89", "90+",
        ],
        "weight": [
            5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000,
            7000, 6500, 6000, 5500, 5000, 4000, 2500, 1500, 1000,
        ],
    }
)

_OPEN_END = 10_000  # stands for "no upper limit" in parsed open age bands ("90+")


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _as_list(x) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def _check_conf_level(conf_level: float) -> float:
    c = float(conf_level)
    if not 0.0 < c < 1.0:
        raise ValueError(f"conf_level must be strictly between 0 and 1 (e.g. 0.95), got {conf_level!r}")
    return c


def _check_method(method: str, allowed: Sequence[str], fn: str) -> str:
    if method not in allowed:
        raise ValueError(f"{fn}: method must be one of {list(allowed)}, got {method!r}")
    return method


def _check_per(per) -> float:
    p = float(per)
    if not np.isfinite(p) or p <= 0:
        raise ValueError(f"per must be a positive number (e.g. 1000 for rates per 1,000), got {per!r}")
    return p


def _require_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def _row_labels(df: pd.DataFrame, mask: np.ndarray, limit: int = 5) -> str:
    idx = list(df.index[np.asarray(mask)][:limit])
    more = int(np.sum(mask)) - len(idx)
    return f"{idx}" + (f" and {more} more" if more > 0 else "")


def _counts(df: pd.DataFrame, col: str, what: str) -> np.ndarray:
    """Numeric, finite, non-negative count column as float array; raise naming the rows otherwise."""
    try:
        x = pd.to_numeric(df[col], errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: column {col!r} must be numeric ({e})") from None
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(
            f"{what}: column {col!r} has missing or infinite values in rows {_row_labels(df, bad)}; "
            "fill them (e.g. 0 for no events) or drop the rows"
        )
    neg = x < 0
    if neg.any():
        raise ValueError(f"{what}: column {col!r} has negative values in rows {_row_labels(df, neg)}")
    return x


def _z(conf_level: float) -> float:
    return float(stats.norm.ppf(1.0 - (1.0 - conf_level) / 2.0))


def byars_limits(observed, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Byar's approximation to the exact Poisson limits of a count (Breslow & Day 1987, p. 69).

    ``lower = obs (1 - 1/(9 obs) - z / (3 sqrt obs))^3``, ``upper = (obs+1) (1 - 1/(9 (obs+1)) + z / (3 sqrt(obs+1)))^3``;
    the lower limit of a zero count is 0.
    """
    o = np.asarray(observed, dtype=float)
    z = _z(conf_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = o * (1.0 - 1.0 / (9.0 * o) - z / (3.0 * np.sqrt(o))) ** 3
        o1 = o + 1.0
        hi = o1 * (1.0 - 1.0 / (9.0 * o1) + z / (3.0 * np.sqrt(o1))) ** 3
    lo = np.where(o > 0, lo, 0.0)
    return lo, hi


def exact_poisson_limits(observed, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood, chi-square) limits of a Poisson count: ``chi2(a/2, 2O)/2``, ``chi2(1-a/2, 2O+2)/2``."""
    o = np.asarray(observed, dtype=float)
    a = 1.0 - conf_level
    lo = np.where(o > 0, stats.chi2.ppf(a / 2.0, 2.0 * np.maximum(o, 1e-300)) / 2.0, 0.0)
    hi = stats.chi2.ppf(1.0 - a / 2.0, 2.0 * o + 2.0) / 2.0
    return lo, hi


def _phe_poisson_limits(observed, conf_level: float) -> tuple[np.ndarray, np.ndarray]:
    """PHEindicatormethods' rule: exact limits for counts < 10, Byar's limits from 10 on."""
    o = np.asarray(observed, dtype=float)
    bl, bu = byars_limits(o, conf_level)
    el, eu = exact_poisson_limits(o, conf_level)
    small = o < 10
    return np.where(small, el, bl), np.where(small, eu, bu)


# --------------------------------------------------------------------------------------------
# age bands and ESP2013
# --------------------------------------------------------------------------------------------

_BAND_RE = re.compile(r"^\s*(\d+)\s*(?:-|–|to)\s*(\d+)\s*$")
_OPEN_RE = re.compile(r"^\s*(\d+)\s*\+\s*$")


def parse_age_band(band: str) -> tuple[int, int]:
    """Parse ``"18-29"`` -> (18, 29) (inclusive, whole years) and ``"80+"`` -> (80, open)."""
    s = str(band)
    m = _BAND_RE.match(s)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi < lo:
            raise ValueError(f"age band {band!r}: upper age below lower age")
        return lo, hi
    m = _OPEN_RE.match(s)
    if m:
        return int(m.group(1)), _OPEN_END
    raise ValueError(f"cannot parse age band {band!r}; expected 'a-b' (e.g. '18-29') or 'a+' (e.g. '80+')")


def esp2013_weights(age_bands: Sequence[str], *, sexes: Sequence[str] | None = None,
                    age_col: str = "age_band", sex_col: str = "sex") -> pd.DataFrame:
    """European Standard Population 2013 weights aggregated onto arbitrary age bands.

    ``age_bands`` are strings such as ``"18-29", "30-39", ..., "80+"`` (whole years, inclusive; an
    open band ``"a+"`` runs to the end of life). Each ESP2013 five-year band contributes to a target
    band in proportion to the number of its single years of age that fall inside the target band
    (so "18-29" takes 2/5 of "15-19", i.e. 2,200, plus 6,000 + 6,000 = 14,200). The open ESP band
    "90+" cannot be split: a target band must either contain all of it (e.g. "80+", "85+", "90+")
    or none of it. Bands may leave gaps (e.g. adults only) but must not overlap.

    With ``sexes`` (e.g. ``["F", "M"]``) each band's weight is split evenly between the sexes and the
    result has a ``sex_col`` column. Returns ``[sex_col,] age_col, weight`` (weights on the ESP scale
    of 100,000 persons, not rescaled: only relative weights matter for a DSR).

    Source: Eurostat (2013), Revision of the European Standard Population, Table 4.
    """
    bands = list(dict.fromkeys(str(b) for b in age_bands))
    if not bands:
        raise ValueError("esp2013_weights: no age bands given")
    parsed = {b: parse_age_band(b) for b in bands}
    order = sorted(bands, key=lambda b: parsed[b][0])
    for b1, b2 in zip(order, order[1:], strict=False):
        if parsed[b2][0] <= parsed[b1][1]:
            raise ValueError(f"esp2013_weights: age bands {b1!r} and {b2!r} overlap")
    esp = [(parse_age_band(b), w) for b, w in zip(ESP2013["age_band"], ESP2013["weight"], strict=True)]
    out = []
    for b in bands:
        lo, hi = parsed[b]
        total = 0.0
        for (elo, ehi), w in esp:
            if ehi == _OPEN_END:  # open 90+ band: all or nothing
                if lo <= elo and hi == _OPEN_END:
                    total += w
                elif hi >= elo and not (lo <= elo and hi == _OPEN_END):
                    raise ValueError(
                        f"esp2013_weights: age band {b!r} cuts into the open ESP2013 band '90+', "
                        "which cannot be split; use an open band such as '80+' or '90+'"
                    )
                continue
            overlap = min(hi, ehi) - max(lo, elo) + 1
            if overlap > 0:
                total += w * overlap / (ehi - elo + 1)
        out.append(total)
    res = pd.DataFrame({age_col: bands, "weight": out})
    if sexes is not None:
        sx = list(dict.fromkeys(sexes))
        if not sx:
            raise ValueError("esp2013_weights: sexes is empty")
        res = pd.concat(
            [res.assign(**{sex_col: s, "weight": res["weight"] / len(sx)}) for s in sx], ignore_index=True
        )[[sex_col, age_col, "weight"]]
    return res


# --------------------------------------------------------------------------------------------
# the groups x strata core
# --------------------------------------------------------------------------------------------

class _Cells:
    """Events and population as ``groups x strata`` matrices aligned to a list of strata."""

    def __init__(self, keys: pd.DataFrame, strata_frame: pd.DataFrame, E: np.ndarray, N: np.ndarray):
        self.keys = keys                  # one row per group (by columns), may have 0 columns
        self.strata_frame = strata_frame  # one row per stratum
        self.E = E
        self.N = N


def _stratum_index(frame: pd.DataFrame, strata: list[str]) -> pd.Index:
    if len(strata) == 1:
        return pd.Index(frame[strata[0]])
    return pd.MultiIndex.from_frame(frame[strata])


def _build_cells(data: pd.DataFrame, strata_frame: pd.DataFrame, *, strata: list[str], by: list[str],
                 events: str, population: str, fn: str, standard_name: str = "standard") -> _Cells:
    _require_columns(data, [*by, *strata, events, population], f"{fn}: data")
    if not strata:
        raise ValueError(f"{fn}: strata must name at least one column (e.g. ['sex', 'age_band'])")
    overlap = set(by) & set(strata)
    if overlap:
        raise ValueError(f"{fn}: columns {sorted(overlap)} are in both by and strata")
    ev = _counts(data, events, f"{fn}: data")
    pop = _counts(data, population, f"{fn}: data")
    bad = (ev > 0) & (pop == 0)
    if bad.any():
        raise ValueError(
            f"{fn}: data has events > 0 with population 0 (column {events!r} vs {population!r}) "
            f"in rows {_row_labels(data, bad)}"
        )
    for c in strata:
        if data[c].isna().any():
            raise ValueError(f"{fn}: stratum column {c!r} has missing values in rows "
                             f"{_row_labels(data, data[c].isna().to_numpy())}")
    sidx = _stratum_index(strata_frame, strata)
    pos = sidx.get_indexer(_stratum_index(data, strata))
    unknown = pos < 0
    if unknown.any():
        examples = data.loc[unknown, strata].drop_duplicates().head(5).to_dict("records")
        raise ValueError(
            f"{fn}: data has strata unknown to the {standard_name} (columns {strata}) in rows "
            f"{_row_labels(data, unknown)}, e.g. {examples}; the {standard_name} has e.g. "
            f"{strata_frame[strata].head(5).to_dict('records')} (check spelling and dtypes)"
        )
    S = len(strata_frame)
    if by:
        g = data.groupby(by, sort=True, observed=True, dropna=False)
        codes = g.ngroup().to_numpy()
        keys = g.size().index.to_frame(index=False)
        keys.columns = by
    else:
        codes = np.zeros(len(data), dtype=np.int64)
        keys = pd.DataFrame(index=range(1 if len(data) else 0))
        if len(data) == 0:
            raise ValueError(f"{fn}: data has no rows")
    G = len(keys)
    lin = codes.astype(np.int64) * S + pos
    order = np.argsort(lin, kind="stable")
    sl = lin[order]
    dup_sorted = np.zeros(len(sl), dtype=bool)
    dup_sorted[1:] = sl[1:] == sl[:-1]
    if dup_sorted.any():
        dup_lin = np.unique(sl[dup_sorted])
        mask = np.isin(lin, dup_lin)
        raise ValueError(
            f"{fn}: data has more than one row for the same stratum ({strata}) within a group ({by}) "
            f"in rows {_row_labels(data, mask, 10)}; aggregate them first (e.g. groupby(...).sum())"
        )
    E = np.zeros(G * S)
    N = np.zeros(G * S)
    E[lin] = ev
    N[lin] = pop
    return _Cells(keys.reset_index(drop=True), strata_frame.reset_index(drop=True),
                  E.reshape(G, S), N.reshape(G, S))


def _detect_age_col(data: pd.DataFrame, strata: list[str]) -> str:
    if "age_band" in strata:
        return "age_band"
    cands = []
    for c in strata:
        try:
            [parse_age_band(v) for v in pd.unique(data[c])]
            cands.append(c)
        except ValueError:
            pass
    if len(cands) != 1:
        raise ValueError(
            "standard='esp2013' needs exactly one stratum column of age bands like '18-29', '80+' "
            f"(found {cands or 'none'} among strata {strata}); name it 'age_band' or pass a standard DataFrame"
        )
    return cands[0]


def _resolve_standard(standard, data: pd.DataFrame, strata: list[str], population: str,
                      fn: str) -> pd.DataFrame:
    """Return the standard as a DataFrame ``strata + weight`` with validated weights."""
    if isinstance(standard, str):
        if standard == "default":
            _require_columns(data, [*strata, population], f"{fn}: data")
            pop = _counts(data, population, f"{fn}: data")
            std = (data[strata].assign(weight=pop)
                   .groupby(strata, sort=True, observed=True).agg(weight=("weight", "sum")).reset_index())
        elif standard.lower() == "esp2013":
            _require_columns(data, strata, f"{fn}: data")
            age_col = _detect_age_col(data, strata)
            others = [c for c in strata if c != age_col]
            if others not in ([], ["sex"]):
                raise ValueError(
                    f"standard='esp2013' supports strata age (+ 'sex'); got extra strata {others}. "
                    "Pass a standard DataFrame with a weight for every stratum instead"
                )
            bands = sorted(pd.unique(data[age_col]).tolist(), key=lambda b: parse_age_band(b)[0])
            sexes = sorted(pd.unique(data["sex"]).tolist()) if others else None
            std = esp2013_weights(bands, sexes=sexes, age_col=age_col, sex_col="sex")
            # keep the caller's dtypes so that lookups match
            for c in strata:
                std[c] = std[c].astype(data[c].dtype) if data[c].dtype != object else std[c]
        else:
            raise ValueError(f"{fn}: standard must be 'default', 'esp2013' or a DataFrame with columns "
                             f"{strata} + ['weight'], got {standard!r}")
    else:
        _require_columns(standard, [*strata, "weight"], f"{fn}: standard")
        std = standard[[*strata, "weight"]].copy()
        w = _counts(std, "weight", f"{fn}: standard")
        std["weight"] = w
        for c in strata:
            if std[c].isna().any():
                raise ValueError(f"{fn}: standard column {c!r} has missing values")
        dup = std.duplicated(strata, keep=False).to_numpy()
        if dup.any():
            raise ValueError(f"{fn}: standard has more than one weight for the same stratum in rows "
                             f"{_row_labels(std, dup, 10)}")
    if not (std["weight"] > 0).any():
        raise ValueError(f"{fn}: all standard weights are zero; the standard must have positive weights")
    return std.reset_index(drop=True)


def _stratum_text(strata_frame: pd.DataFrame, cols: np.ndarray) -> str:
    recs = strata_frame.iloc[cols].to_dict("records")
    return "; ".join(", ".join(f"{k}={v}" for k, v in r.items()) for r in recs)


def _dsr_core(cells: _Cells, w_raw: np.ndarray):
    """Per-person DSR y, its variance v, the per-person weights, and a reason array."""
    w = w_raw / w_raw.sum()
    E, N = cells.E, cells.N
    pos_w = w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        wi = np.where(N > 0, w[None, :] / N, 0.0)           # weight per person, w_s / N_gs
        y = np.sum(wi * E, axis=1)
        v = np.sum(wi * wi * E, axis=1)
    missing = (N <= 0) & pos_w[None, :]
    reason = np.full(len(y), None, dtype=object)
    bad = np.flatnonzero(missing.any(axis=1))
    for g in bad:
        cols = np.flatnonzero(missing[g])
        txt = _stratum_text(cells.strata_frame, cols[:3]) + (f" (+{len(cols) - 3} more)" if len(cols) > 3 else "")
        reason[g] = f"zero population in {len(cols)} stratum/strata with positive standard weight: {txt}"
    return y, v, wi, w, missing.any(axis=1), reason


def _gamma_limits(y, v, wbound, conf_level, wvar=None):
    """Fay–Feuer style gamma limits: the upper limit is the gamma quantile with mean ``y + wbound`` and
    variance ``v + wvar`` (``wvar = wbound**2`` by default: Fay & Feuer with the largest weight; Tiwari
    et al. pass the mean weight and the mean squared weight)."""
    a = 1.0 - conf_level
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(
            y > 0,
            stats.gamma.ppf(a / 2.0, np.where(y > 0, y * y / np.where(v > 0, v, 1.0), 1.0),
                            scale=np.where(y > 0, v / np.where(y > 0, y, 1.0), 1.0)),
            0.0,
        )
        vu = v + (wbound * wbound if wvar is None else wvar)
        yu = y + wbound
        upper = stats.gamma.ppf(1.0 - a / 2.0, np.where(vu > 0, yu * yu / vu, 1.0),
                                scale=np.where(yu > 0, vu / yu, 1.0))
    upper = np.where(yu > 0, upper, np.nan)
    return lower, upper


# --------------------------------------------------------------------------------------------
# direct standardization
# --------------------------------------------------------------------------------------------

def direct(data: pd.DataFrame, *, strata, standard="default", events: str = "events",
           population: str = "population", by=None, per: float = 1000, method: str = "gamma",
           conf_level: float = 0.95, min_events: int | None = None,
           event_frequency: str | None = None, count_limits: str = "byar") -> pd.DataFrame:
    """Directly standardized rates (DSR) with confidence intervals, one row per ``by`` group.

    The DSR of a group is ``sum_s w_s E_s / N_s`` with standard weights ``w_s`` (normalised to sum 1),
    events ``E_s`` and population (person-years) ``N_s`` in stratum ``s``; its variance under
    independent Poisson counts is ``sum_s w_s^2 E_s / N_s^2`` (Breslow & Day 1987).

    Parameters
    ----------
    data : one row per stratum and ``by`` group, with ``events`` and ``population`` columns.
    strata : column(s) defining the standardization cells, e.g. ``["sex", "age_band"]``.
    standard : a DataFrame with the ``strata`` columns and a ``weight`` column (any scale), or
        ``"default"`` — the population of ``data`` pooled over all ``by`` groups, by strata (for the
        report the caller passes the Danish adult population pooled over 2014–2023 by sex x age band,
        see ``ls.aggregate.default_standard``), or
        ``"esp2013"`` — the European Standard Population 2013 aggregated onto the age bands found in
        ``data`` (see :func:`esp2013_weights`; split evenly between sexes when ``"sex"`` is a stratum).
        A stratum of the standard absent from a group counts as zero events and zero population.
    by : column(s) identifying groups (region, year, ...); ``None`` for one overall rate.
    per : rates per ``per`` persons (default 1000).
    method :
        ``"gamma"`` (default) — Fay & Feuer (1997): lower limit the ``a/2`` quantile of a gamma with
        mean ``y`` and variance ``v``; upper limit the ``1-a/2`` quantile of a gamma with mean
        ``y + w_M`` and variance ``v + w_M^2``, ``w_M = max_s w_s / N_s`` (as epitools::ageadjust.direct
        and SAS PROC STDRATE ``CL=GAMMA``). Conservative, valid for zero or sparse counts.
        ``"tiwari"`` — Tiwari, Clegg & Zou (2006) modified gamma: the upper limit is the quantile of a
        gamma with mean ``y + mean(w_i)`` and variance ``v + mean(w_i^2)``, ``w_i = w_s / N_s``, the means
        over the strata with positive standard weight (SEER*Stat's default; asht::wspoissonTest
        ``wmtype="tcz"``; SAS PROC STDRATE). Checked against an R implementation of the paper
        (``tests/reference/tiwari.R``) to 1e-10.
        ``"dobson"`` — Dobson et al. (1991): ``y + sqrt(v / obs) (obs_lower - obs)`` and likewise for the
        upper limit, from limits for the total count ``obs`` chosen by ``count_limits``: ``"byar"``
        (default; Byar's approximation, exactly as PHEindicatormethods::calculate_dsr, including its
        rule that DSRs from fewer than 10 events are not reported, ``min_events``) or ``"exact"`` (the
        exact (Garwood) Poisson limits of the 1991 paper, ``qchisq(a/2, 2 obs)/2`` and
        ``qchisq(1-a/2, 2 obs + 2)/2``; checked against ``tests/reference/dobson_exact.R``).
        ``"lognormal"`` — ``y exp(+-z sqrt(v) / y)``; ``"normal"`` — ``y +- z sqrt(v)``.
    conf_level : two-sided confidence level in (0, 1).
    min_events : groups with fewer events get NaN rate/limits and a reason. Default: 10 for
        ``dobson`` (PHEindicatormethods' rule), 0 otherwise.
    count_limits : ``"byar"`` or ``"exact"``, the Poisson limits of the total count for
        ``method="dobson"`` (ignored by the other methods).
    event_frequency : name of a column of events per person, for non-independent events (a person
        with several examinations in a stratum). ``None`` (default): events are independent Poisson
        counts. When given, ``data`` has one row per ``by`` group x stratum x event frequency ``f``
        (integers >= 1; frequencies nobody had may be left out), ``events`` is the number of
        *persons* with exactly ``f`` events in that cell (not the number of events), and
        ``population`` is repeated, identical, on every frequency row of a cell. This is the layout
        of PHEindicatormethods::calculate_dsr(..., independent_events = FALSE, eventfreq, ageband).
        The events of a cell are ``E_s = sum_f f P_fs`` (so ``rate``, ``events`` and ``crude_rate``
        equal those of the independent analysis of the collapsed counts) and, with the person counts
        ``P_fs`` independent Poisson, the variance is ``v = sum_s (w_s / N_s)^2 sum_f f^2 P_fs``
        instead of ``sum_s (w_s / N_s)^2 E_s`` — identical when every frequency is 1, larger when
        events cluster in persons. This is PHEindicatormethods' ``custom_vardsr`` (the per-frequency
        DSR variances times ``f^2``, summed over frequencies; Fingertips Public Health Technical
        Guidance, DSR chapter). Methods: ``"dobson"`` (as calculate_dsr: Byar's limits of the total
        event count, scaled by ``sqrt(v / obs)``), and ``"normal"`` / ``"lognormal"``, which use only
        ``v`` and so take it unchanged (an extension beyond PHEindicatormethods). ``"gamma"`` and
        ``"tiwari"`` are refused: their upper limit adds the weight ``w_M`` of one extra Poisson
        variable, which for person-frequency cells (weights ``f w_s / N_s``) depends on which
        frequencies are possible, and no published source settles that. One difference from
        calculate_dsr: it normalises the standard within each (group, frequency) subset of rows,
        so it agrees with this function only when every frequency has a row for every stratum
        (fill absent ones with 0 persons); here weights are always normalised over the whole
        standard. ``method`` in the output reads e.g. ``"dobson, with variance adjusted for
        non-independent events"``.

    Returns
    -------
    DataFrame with ``by`` columns and ``events, population, crude_rate, rate, lower, upper,
    variance, conf_level, method, reason``. ``variance`` is the variance of ``rate`` (per² units).
    ``reason`` is NA normally and says why when ``rate`` or a limit is NaN (zero population in a
    stratum of positive weight, too few events, no events for a method that needs some). A group
    with such a problem never raises for the whole table.

    Raises
    ------
    ValueError / KeyError for negative or missing counts, events with zero population, strata in
    ``data`` unknown to the standard, duplicate stratum rows within a group, or all-zero weights.
    """
    fn = "direct"
    strata, by = _as_list(strata), _as_list(by)
    _check_method(method, DIRECT_METHODS, fn)
    conf_level = _check_conf_level(conf_level)
    per = _check_per(per)
    if count_limits not in COUNT_LIMITS:
        raise ValueError(f"{fn}: count_limits must be one of {COUNT_LIMITS}, got {count_limits!r}")
    if event_frequency is not None:
        return _direct_nonindependent(data, strata=strata, standard=standard, events=events,
                                      population=population, by=by, per=per, method=method,
                                      conf_level=conf_level, min_events=min_events,
                                      event_frequency=event_frequency, count_limits=count_limits)
    std = _resolve_standard(standard, data, strata, population, fn)
    cells = _build_cells(data, std[strata], strata=strata, by=by, events=events, population=population, fn=fn)
    res = _direct_from_cells(cells, std["weight"].to_numpy(dtype=float), per=per, method=method,
                             conf_level=conf_level, min_events=min_events, count_limits=count_limits)
    return pd.concat([cells.keys, res], axis=1)


NONINDEPENDENT_METHODS = ("dobson", "normal", "lognormal")


def _collapse_event_frequency(data: pd.DataFrame, *, strata: list[str], by: list[str], events: str,
                              population: str, event_frequency: str, sq_col: str,
                              fn: str) -> pd.DataFrame:
    """Person-frequency rows -> one row per group x stratum with total events and sum f^2 persons."""
    _require_columns(data, [*by, *strata, events, population, event_frequency], f"{fn}: data")
    if event_frequency in by or event_frequency in strata:
        raise ValueError(f"{fn}: event_frequency column {event_frequency!r} must not be in by or strata")
    if event_frequency in (events, population):
        raise ValueError(f"{fn}: event_frequency column {event_frequency!r} must differ from the events "
                         f"({events!r}) and population ({population!r}) columns")
    try:
        freq = pd.to_numeric(data[event_frequency], errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{fn}: event_frequency column {event_frequency!r} must be numeric ({e})") from None
    bad = ~np.isfinite(freq)
    if bad.any():
        raise ValueError(f"{fn}: event_frequency column {event_frequency!r} has missing or infinite values "
                         f"in rows {_row_labels(data, bad)}")
    bad = (freq < 1) | (freq != np.round(freq))
    if bad.any():
        raise ValueError(
            f"{fn}: event_frequency column {event_frequency!r} must hold whole numbers >= 1 (events per "
            f"person); rows {_row_labels(data, bad)} do not"
        )
    persons = _counts(data, events, f"{fn}: data")
    pop = _counts(data, population, f"{fn}: data")
    keys = [*by, *strata]
    dup = data.duplicated([*keys, event_frequency], keep=False).to_numpy()
    if dup.any():
        raise ValueError(
            f"{fn}: data has more than one row for the same group x stratum x event frequency "
            f"({[*keys, event_frequency]}) in rows {_row_labels(data, dup, 10)}; aggregate them first"
        )
    tmp = data[keys].copy()
    tmp["_pop"] = pop
    g = tmp.groupby(keys, sort=False, observed=True, dropna=False)["_pop"]
    differ = (g.transform("max") != g.transform("min")).to_numpy()
    if differ.any():
        raise ValueError(
            f"{fn}: column {population!r} differs between the event-frequency rows of the same group x "
            f"stratum ({keys}) in rows {_row_labels(data, differ, 10)}; with event_frequency the "
            "population of a cell must be repeated, identical, on each of its frequency rows"
        )
    tmp["_events"] = freq * persons
    tmp["_sq"] = freq * freq * persons
    out = (tmp.groupby(keys, sort=False, observed=True, dropna=False)
           .agg(_events=("_events", "sum"), _pop=("_pop", "first"), _sq=("_sq", "sum"))
           .reset_index())
    return out.rename(columns={"_events": events, "_pop": population, "_sq": sq_col})


def _direct_nonindependent(data: pd.DataFrame, *, strata: list[str], standard, events: str,
                           population: str, by: list[str], per: float, method: str, conf_level: float,
                           min_events: int | None, event_frequency: str,
                           count_limits: str = "byar") -> pd.DataFrame:
    """:func:`direct` for person-frequency data (PHEindicatormethods' non-independent events)."""
    fn = "direct"
    if method not in NONINDEPENDENT_METHODS:
        raise ValueError(
            f"{fn}: event_frequency (non-independent events) is implemented for methods "
            f"{list(NONINDEPENDENT_METHODS)}, got method={method!r}. The gamma-type intervals add the "
            "weight of one extra Poisson variable, which is not defined for person-frequency cells; use "
            "method='dobson' (as PHEindicatormethods::calculate_dsr)"
        )
    sq_col = "__sum_f2_persons__"
    while sq_col in data.columns:
        sq_col += "_"
    collapsed = _collapse_event_frequency(data, strata=strata, by=by, events=events, population=population,
                                          event_frequency=event_frequency, sq_col=sq_col, fn=fn)
    std = _resolve_standard(standard, collapsed, strata, population, fn)
    cells = _build_cells(collapsed, std[strata], strata=strata, by=by, events=events,
                         population=population, fn=fn)
    sq = _build_cells(collapsed, std[strata], strata=strata, by=by, events=sq_col,
                      population=population, fn=fn).E
    res = _direct_from_cells(cells, std["weight"].to_numpy(dtype=float), per=per, method=method,
                             conf_level=conf_level, min_events=min_events, sq_events=sq,
                             count_limits=count_limits)
    res["method"] = f"{method}, with variance adjusted for non-independent events"
    return pd.concat([cells.keys, res], axis=1)


def _direct_from_cells(cells: _Cells, w_raw: np.ndarray, *, per: float, method: str, conf_level: float,
                       min_events: int | None, extra: bool = False, sq_events: np.ndarray | None = None,
                       count_limits: str = "byar"):
    y, v, wi, w, bad, reason = _dsr_core(cells, w_raw)
    if sq_events is not None:  # non-independent events: v = sum_s (w_s/N_s)^2 sum_f f^2 P_fs
        v = np.sum(wi * wi * sq_events, axis=1)
    obs = cells.E.sum(axis=1)
    Npop = cells.N.sum(axis=1)
    z = _z(conf_level)
    pos_w = w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "gamma":
            wb = np.max(np.where(pos_w[None, :], wi, 0.0), axis=1)
            lower, upper = _gamma_limits(y, v, wb, conf_level)
        elif method == "tiwari":
            # Tiwari, Clegg & Zou (2006): mean y + mean(w_i), variance v + mean(w_i^2), means over the
            # strata of the standard (asht::wspoissonTest(wmtype = "tcz"), SAS PROC STDRATE)
            wpos = np.where(pos_w[None, :], wi, 0.0)
            wb = np.sum(wpos, axis=1) / pos_w.sum()
            lower, upper = _gamma_limits(y, v, wb, conf_level, wvar=np.sum(wpos * wpos, axis=1) / pos_w.sum())
        elif method == "dobson":
            count_ci = byars_limits if count_limits == "byar" else exact_poisson_limits
            lo_o, hi_o = count_ci(obs, conf_level)
            f = np.sqrt(v / obs)
            lower = y + f * (lo_o - obs)
            upper = y + f * (hi_o - obs)
        elif method == "lognormal":
            se = np.sqrt(v)
            lower = y * np.exp(-z * se / y)
            upper = y * np.exp(z * se / y)
        else:  # normal
            se = np.sqrt(v)
            lower = y - z * se
            upper = y + z * se
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    if min_events is None:
        min_events = 10 if method == "dobson" else 0
    rate = y.copy()
    few = (obs < min_events) & ~bad
    for g in np.flatnonzero(few):
        reason[g] = f"fewer than {min_events} events ({obs[g]:g}): rate not reported (min_events={min_events})"
    nodata = (obs == 0) & ~bad & ~few & (method in ("dobson", "lognormal", "normal"))
    for g in np.flatnonzero(nodata):
        reason[g] = f"no events: the {method} interval is undefined for a zero count"
    kill = bad | few
    rate[kill] = np.nan
    lower[kill | nodata] = np.nan
    upper[kill | nodata] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        crude = np.where(Npop > 0, obs / Npop, np.nan) * per
    var_out = np.where(bad, np.nan, v * per * per)
    out = pd.DataFrame({
        "events": obs,
        "population": Npop,
        "crude_rate": crude,
        "rate": rate * per,
        "lower": lower * per,
        "upper": upper * per,
        "variance": var_out,
        "conf_level": conf_level,
        "method": "dobson (exact Poisson limits)" if (method, count_limits) == ("dobson", "exact") else method,
        "reason": pd.array(reason, dtype="string"),
    })
    if extra:
        return out, dict(y=y, v=v, wi=wi, w=w, bad=bad | few)
    return out


# --------------------------------------------------------------------------------------------
# indirect standardization
# --------------------------------------------------------------------------------------------

def indirect(data: pd.DataFrame, reference: pd.DataFrame, *, strata, events: str = "events",
             population: str = "population", by=None, per: float = 1000, method: str = "byar",
             conf_level: float = 0.95, reference_rate: float | None = None) -> pd.DataFrame:
    """Standardized (morbidity/mortality) ratios and indirectly standardized rates.

    Expected events of a group: ``E = sum_s N_s r_s`` with reference stratum rates ``r_s``; the ratio
    is ``obs / E`` with ``obs`` the observed events. The indirectly standardized rate is the ratio times
    the reference crude rate (``sum`` reference events / ``sum`` reference population over all
    reference strata), as PHEindicatormethods::calculate_ISRate.

    Parameters
    ----------
    reference : the ``strata`` columns plus either ``events`` and ``population`` columns (reference
        counts; rates ``events / population``) or a ``rate`` column (events per person, i.e. per 1,
        not per ``per``). With only ``rate`` the indirectly standardized rate needs the reference
        crude rate: give a ``population`` column too, or ``reference_rate`` (per person).
    method : ``"byar"`` — as PHEindicatormethods (calculate_ISRatio): exact Poisson limits for the
        observed count when ``obs < 10``, Byar's approximation (Breslow & Day 1987) from 10 on, divided
        by ``E``. ``"exact"`` — exact (chi-square) Poisson limits for all counts (Garwood 1936;
        Breslow & Day 1987).

    Returns
    -------
    DataFrame with ``by`` columns and ``observed, expected, population, ratio, lower, upper, rate,
    rate_lower, rate_upper, conf_level, method, reason``.
    """
    fn = "indirect"
    strata, by = _as_list(strata), _as_list(by)
    _check_method(method, INDIRECT_METHODS, fn)
    conf_level = _check_conf_level(conf_level)
    per = _check_per(per)
    _require_columns(reference, strata, f"{fn}: reference")
    ref = reference.copy()
    dup = ref.duplicated(strata, keep=False).to_numpy()
    if dup.any():
        raise ValueError(f"{fn}: reference has more than one row for the same stratum in rows "
                         f"{_row_labels(ref, dup, 10)}")
    if events in ref.columns and population in ref.columns:
        rev = _counts(ref, events, f"{fn}: reference")
        rpop = _counts(ref, population, f"{fn}: reference")
        badr = (rpop == 0) & (rev > 0)
        if badr.any():
            raise ValueError(f"{fn}: reference has events > 0 with population 0 in rows {_row_labels(ref, badr)}")
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(rpop > 0, rev / rpop, np.nan)
        crude_ref = rev.sum() / rpop.sum() if rpop.sum() > 0 else np.nan
    elif "rate" in ref.columns:
        r = _counts(ref, "rate", f"{fn}: reference")
        if population in ref.columns:
            rpop = _counts(ref, population, f"{fn}: reference")
            crude_ref = float(np.sum(r * rpop) / rpop.sum()) if rpop.sum() > 0 else np.nan
        else:
            crude_ref = np.nan
    else:
        raise KeyError(f"{fn}: reference needs columns {events!r} and {population!r} (reference counts) "
                       f"or a 'rate' column; it has {list(ref.columns)}")
    if reference_rate is not None:
        crude_ref = float(reference_rate)
    ref_strata = ref[strata].reset_index(drop=True)
    cells = _build_cells(data, ref_strata, strata=strata, by=by, events=events, population=population,
                         fn=fn, standard_name="reference")
    undefined = np.isnan(r)
    need = (cells.N[:, undefined] > 0).any(axis=0) if undefined.any() else np.array([], dtype=bool)
    if undefined.any() and need.any():
        cols = np.flatnonzero(undefined)[need]
        raise ValueError(f"{fn}: reference has population 0 in strata where data has population: "
                         f"{_stratum_text(ref_strata, cols[:5])}")
    r0 = np.where(undefined, 0.0, r)
    expected = cells.N @ r0
    obs = cells.E.sum(axis=1)
    if method == "byar":
        lo_o, hi_o = _phe_poisson_limits(obs, conf_level)
    else:
        lo_o, hi_o = exact_poisson_limits(obs, conf_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(expected > 0, obs / expected, np.nan)
        lower = np.where(expected > 0, lo_o / expected, np.nan)
        upper = np.where(expected > 0, hi_o / expected, np.nan)
    reason = np.full(len(obs), None, dtype=object)
    reason[expected <= 0] = "expected count is zero (no population in strata with a positive reference rate)"
    if not np.isfinite(crude_ref):
        for g in range(len(obs)):
            if reason[g] is None:
                reason[g] = "rate not computed: reference crude rate unknown (give population or reference_rate)"
    out = pd.DataFrame({
        "observed": obs,
        "expected": expected,
        "population": cells.N.sum(axis=1),
        "ratio": ratio,
        "lower": lower,
        "upper": upper,
        "rate": ratio * crude_ref * per,
        "rate_lower": lower * crude_ref * per,
        "rate_upper": upper * crude_ref * per,
        "conf_level": conf_level,
        "method": method,
        "reason": pd.array(reason, dtype="string"),
    })
    return pd.concat([cells.keys, out], axis=1)


# --------------------------------------------------------------------------------------------
# rate ratios of DSRs
# --------------------------------------------------------------------------------------------

def rate_ratio(data: pd.DataFrame, *, strata, group: str, reference, standard="default",
               events: str = "events", population: str = "population", by=None, per: float = 1000,
               method: str = "lognormal", conf_level: float = 0.95, reference_contains_group: bool = False,
               overlap: str = "error") -> pd.DataFrame:
    """Ratio of directly standardized rates of each level of ``group`` to its ``reference`` level.

    For example period ``"2021-2023"`` vs ``"2014-2016"``, or a region vs another region. All levels
    are standardized to the same ``standard`` (see :func:`direct`), within each ``by`` group.

    Methods
    -------
    ``"lognormal"`` — delta method on log DSRs of independent groups:
    ``var(log R) = v1/y1^2 + v0/y0^2``; limits ``R exp(+-z sqrt(var))`` (SAS PROC STDRATE
    ``EFFECT=RATIO``).
    ``"fay"`` — Fay (1999) F interval (used by SEER*Stat): with ``nu = 2 y^2 / v`` and
    ``nu* = 2 (y + w_M)^2 / (v + w_M^2)`` (``w_M = max_s w_s / N_s`` as in Fay & Feuer 1997),
    ``lower = y1 / (y0 + w_M0) F^{-1}(a/2; nu1, nu0*)`` and
    ``upper = (y1 + w_M1) / y0 F^{-1}(1 - a/2; nu1*, nu0)``.

    Overlapping groups
    ------------------
    Both methods assume independent groups. A region compared with the whole country is *not*
    independent of it. The caller says so with ``reference_contains_group=True`` (the reference
    level's counts include those of every other level, e.g. the country vs its regions). Then
    ``overlap="error"`` (default) refuses, and ``overlap="adjust"`` (``lognormal`` only) subtracts the
    covariance: with the group's events counted within the total, ``cov(y1, y0) = sum_s w_s^2 E1_s /
    (N1_s N0_s)`` (Poisson counts: ``cov(E1_s / N1_s, E0_s / N0_s) = var(E1_s) / (N1_s N0_s)``), and by
    the delta method ``var(log R) = v1/y1^2 + v0/y0^2 - 2 cov / (y1 y0)``. This is the standard
    delta-method treatment of a subgroup vs the total (e.g. Breslow & Day 1987, ch. 2; the same
    covariance underlies the comparison of an area with its parent area in PHE's technical guidance).

    Returns
    -------
    DataFrame with ``by`` columns, the ``group`` column and ``rate, reference_rate, ratio, lower,
    upper, pct_change, pct_lower, pct_upper, conf_level, method, reason`` (one row per non-reference
    level within each ``by`` group; ``pct_* = 100 (ratio - 1)``).
    """
    fn = "rate_ratio"
    strata, by = _as_list(strata), _as_list(by)
    _check_ratio_args(data, group=group, reference=reference, strata=strata, by=by, method=method,
                      reference_contains_group=reference_contains_group, overlap=overlap, fn=fn)
    conf_level = _check_conf_level(conf_level)
    per = _check_per(per)
    std = _resolve_standard(standard, data, strata, population, fn)
    cells = _build_cells(data, std[strata], strata=strata, by=[*by, group], events=events,
                         population=population, fn=fn)
    w_raw = std["weight"].to_numpy(dtype=float)
    dsr, inner = _direct_from_cells(cells, w_raw, per=per, method="gamma", conf_level=conf_level,
                                    min_events=0, extra=True)
    y, v, bad = inner["y"], inner["v"], inner["bad"]
    sel, rpi, has_ref = _reference_rows(cells.keys, group=group, reference=reference, by=by)
    y1, v1, y0, v0 = y[sel], v[sel], y[rpi], v[rpi]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = y1 / y0
        if method == "lognormal":
            cov = (_overlap_covariance(cells, sel, rpi, inner["w"], fn) if reference_contains_group
                   else np.zeros(len(sel)))
            lower, upper = _lognormal_ratio_limits(y1, v1, y0, v0, cov, conf_level)
        else:
            wm = np.max(np.where((inner["w"] > 0)[None, :], inner["wi"], 0.0), axis=1)
            lower, upper = _fay_ratio_limits(y1, v1, y0, v0, wm[sel], wm[rpi], conf_level)
    reason = _ratio_reasons(dsr["reason"], bad, sel, rpi, has_ref, y1, y0, reference=reference, method=method)
    kill = ~has_ref | bad[sel] | bad[rpi]
    for arr in (ratio, lower, upper):
        arr[kill] = np.nan
    if method == "lognormal":
        zero1 = (y1 == 0) & ~kill
        lower[zero1] = np.nan
        upper[zero1] = np.nan
    out = pd.DataFrame({
        "rate": np.where(bad[sel], np.nan, y1) * per,
        "reference_rate": np.where(bad[rpi] | ~has_ref, np.nan, np.where(has_ref, y0, np.nan)) * per,
        "ratio": ratio,
        "lower": lower,
        "upper": upper,
        "pct_change": 100.0 * (ratio - 1.0),
        "pct_lower": 100.0 * (lower - 1.0),
        "pct_upper": 100.0 * (upper - 1.0),
        "conf_level": conf_level,
        "method": method,
        "reason": pd.array(reason, dtype="string"),
    })
    return pd.concat([cells.keys.iloc[sel].reset_index(drop=True), out], axis=1)


def _check_ratio_args(data, *, group, reference, strata, by, method, reference_contains_group, overlap, fn):
    """Refuse what :func:`rate_ratio` cannot do correctly (one error naming the problem)."""
    _check_method(method, RATIO_METHODS, fn)
    if overlap not in ("error", "adjust"):
        raise ValueError(f"{fn}: overlap must be 'error' or 'adjust', got {overlap!r}")
    _require_columns(data, [group], f"{fn}: data")
    if group in by or group in strata:
        raise ValueError(f"{fn}: group column {group!r} must not be in by or strata")
    if reference_contains_group:
        if overlap == "error":
            raise ValueError(
                f"{fn}: the reference level {reference!r} of {group!r} contains the other groups "
                "(reference_contains_group=True), so the rates are not independent and the interval "
                "would be wrong. Compare with the rest (total minus the group) instead, or pass "
                "overlap='adjust' (lognormal method) for the covariance-adjusted interval"
            )
        if method != "lognormal":
            raise ValueError(f"{fn}: overlap='adjust' is implemented for method='lognormal' only")
    if reference not in set(data[group].dropna().tolist()):
        raise ValueError(f"{fn}: reference level {reference!r} not found in column {group!r}")


def _reference_rows(keys: pd.DataFrame, *, group, reference, by):
    """Rows of the non-reference levels (``sel``), the row of their reference level within the same
    ``by`` group (``rpi``, 0 where absent) and whether it exists (``has_ref``)."""
    is_ref = (keys[group] == reference).to_numpy()
    if by:
        bykey = pd.MultiIndex.from_frame(keys[by]) if len(by) > 1 else pd.Index(keys[by[0]])
        ref_rows = pd.Series(np.flatnonzero(is_ref), index=bykey[is_ref])
        ref_pos = ref_rows.reindex(bykey).to_numpy()
    else:
        ref_pos = np.full(len(keys), np.flatnonzero(is_ref)[0], dtype=float)
    sel = np.flatnonzero(~is_ref)
    rp = ref_pos[sel]
    has_ref = ~np.isnan(rp)
    return sel, np.where(has_ref, rp, 0).astype(int), has_ref


def _overlap_covariance(cells: _Cells, sel, rpi, w, fn) -> np.ndarray:
    """cov(y1, y0) = sum_s w_s^2 E1_s / (N1_s N0_s) for a group counted within its reference level."""
    E1, N1 = cells.E[sel], cells.N[sel]
    E0, N0 = cells.E[rpi], cells.N[rpi]
    if ((N1 > N0) | (E1 > E0)).any():
        rows = cells.keys.iloc[sel[((N1 > N0) | (E1 > E0)).any(axis=1)][:5]].to_dict("records")
        raise ValueError(
            f"{fn}: reference_contains_group=True but the reference level has fewer events or "
            f"less population than a group in some stratum, e.g. {rows}"
        )
    return np.sum(np.where((N1 > 0) & (N0 > 0), (w**2)[None, :] * E1 / (N1 * N0), 0.0), axis=1)


def _lognormal_ratio_limits(y1, v1, y0, v0, cov, conf_level):
    """Delta method on log R: var = v1/y1^2 + v0/y0^2 - 2 cov/(y1 y0) (cov 0 for independent groups)."""
    z = _z(conf_level)
    var_log = np.maximum(v1 / y1**2 + v0 / y0**2 - 2.0 * cov / (y1 * y0), 0.0)
    se = np.sqrt(var_log)
    ratio = y1 / y0
    return ratio * np.exp(-z * se), ratio * np.exp(z * se)


def _fay_ratio_limits(y1, v1, y0, v0, wm1, wm0, conf_level):
    """Fay's (1999) F interval with the Fay–Feuer bound weights ``wm`` of each group."""
    a = 1.0 - conf_level
    nu1 = 2.0 * y1**2 / v1
    nu0 = 2.0 * y0**2 / v0
    nu1s = 2.0 * (y1 + wm1) ** 2 / (v1 + wm1**2)
    nu0s = 2.0 * (y0 + wm0) ** 2 / (v0 + wm0**2)
    lower = np.where(y1 > 0, y1 / (y0 + wm0) * stats.f.ppf(a / 2.0, np.where(y1 > 0, nu1, 1.0), nu0s), 0.0)
    upper = (y1 + wm1) / y0 * stats.f.ppf(1.0 - a / 2.0, nu1s, np.where(y0 > 0, nu0, 1.0))
    return lower, np.where(y0 > 0, upper, np.nan)


def _ratio_reasons(dsr_reason, bad, sel, rpi, has_ref, y1, y0, *, reference, method) -> np.ndarray:
    """Why a ratio or its limits are NaN, one entry per compared level (None when they are not)."""
    reason = np.full(len(sel), None, dtype=object)
    for i, g in enumerate(sel):
        if not has_ref[i]:
            reason[i] = f"reference level {reference!r} absent in this by-group"
        elif bad[g] or bad[rpi[i]]:
            reason[i] = "rate not computable: " + str(dsr_reason.iloc[g] if bad[g] else dsr_reason.iloc[rpi[i]])
        elif y0[i] == 0:
            reason[i] = "reference rate is zero: ratio undefined"
        elif y1[i] == 0 and method == "lognormal":
            reason[i] = "rate is zero: lognormal interval undefined"
    return reason


# --------------------------------------------------------------------------------------------
# crude rates
# --------------------------------------------------------------------------------------------

def crude_rate(data: pd.DataFrame, *, events: str = "events", population: str = "population", by=None,
               per: float = 1000, method: str = "byar", conf_level: float = 0.95) -> pd.DataFrame:
    """Crude rates with Poisson confidence limits (PHEindicatormethods::phe_rate style).

    Rows are summed within ``by`` groups (all rows when ``by`` is None). ``method="byar"`` follows
    PHEindicatormethods: exact limits for fewer than 10 events, Byar's approximation (Breslow & Day
    1987) otherwise; ``"exact"`` uses exact (chi-square) limits for all counts.

    Returns ``by`` columns and ``events, population, rate, lower, upper, conf_level, method, reason``.
    """
    fn = "crude_rate"
    by = _as_list(by)
    _check_method(method, CRUDE_METHODS, fn)
    conf_level = _check_conf_level(conf_level)
    per = _check_per(per)
    _require_columns(data, [*by, events, population], f"{fn}: data")
    ev = _counts(data, events, f"{fn}: data")
    pop = _counts(data, population, f"{fn}: data")
    tmp = pd.DataFrame({"_e": ev, "_n": pop}, index=data.index)
    if by:
        agg = pd.concat([data[by], tmp], axis=1).groupby(by, sort=True, observed=True, dropna=False).sum()
        keys = agg.index.to_frame(index=False)
        keys.columns = by
        obs, N = agg["_e"].to_numpy(), agg["_n"].to_numpy()
    else:
        keys = pd.DataFrame(index=range(1))
        obs, N = np.array([ev.sum()]), np.array([pop.sum()])
    bad = (obs > 0) & (N == 0)
    if bad.any():
        raise ValueError(f"{fn}: groups {keys[bad].to_dict('records')[:5]} have events but population 0")
    if method == "byar":
        lo, hi = _phe_poisson_limits(obs, conf_level)
    else:
        lo, hi = exact_poisson_limits(obs, conf_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(N > 0, obs / N, np.nan) * per
        lower = np.where(N > 0, lo / N, np.nan) * per
        upper = np.where(N > 0, hi / N, np.nan) * per
    reason = np.where(N > 0, None, "population is zero")
    out = pd.DataFrame({
        "events": obs, "population": N, "rate": rate, "lower": lower, "upper": upper,
        "conf_level": conf_level, "method": method, "reason": pd.array(reason, dtype="string"),
    })
    return pd.concat([keys.reset_index(drop=True), out], axis=1)
