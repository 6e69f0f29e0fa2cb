"""Regional interventions as data, and their evaluation region by region.

The table ``data_dictionary/interventions.csv`` lists the regions' interventions against unnecessary
imaging of the lower back: chapter 6 / table 6.1 of the Benchmarking Unit's report (May 2024; each
intervention has a *duration band*, "less than one year", "one to two years", "more than three years",
counted back from May 2024 into a *start window*) and the Danish Health Authority's analysis (Region
Syddanmark's referral guideline of 2018-19, its information material and hotline, the care programme of
January 2024). Columns:

``region`` (DST code or name), ``intervention_id`` (unique), ``intervention``, ``target``
(``citizens_patients`` | ``clinicians``), ``kind``, ``start`` (ISO month or date) *or*
``start_window_from`` / ``start_window_to``, ``end`` (optional), ``modality_targeted`` (``MR|XRAY``),
``source`` (seed file and section), ``note``.

Users add their own interventions (or correct a start) in a YAML or CSV file given as ``extra=`` or named in
``lumbarstats.toml``::

    [tool.lumbarstats]
    interventions = "my_interventions.yaml"     # relative to lumbarstats.toml

A row of ``extra`` with the ``intervention_id`` of a built-in row replaces it. An uncertain start is a
window; the evaluation runs over a grid of starts in the window (:func:`start_grid`) and shows how the
estimate moves across it.

:func:`interventions_step` evaluates every intervention of one region with every design available —
interrupted time series with all the region's interventions and explicit COVID-19 terms
(:func:`lumbarstats.trend.its.its_multi`), and, when :mod:`lumbarstats.trend.staggered` is installed, the
event study and the staggered difference-in-differences against the admissible control regions
(:func:`admissible_controls`: regions whose own interventions do not start in the window) — and writes
``tables/interventions/overview_{region}.csv`` and ``figures/interventions/event_study_{region}.{png,svg}``
through the export path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["TARGETS", "COLUMNS", "InterventionTableError", "load_interventions", "start_grid",
           "admissible_controls", "primary_start", "comparative_window", "interventions_all_regions", "evaluate_its", "interventions_step", "OVERVIEW_COLUMNS", "GROUP_DIMENSIONS"]

TARGETS = ("citizens_patients", "clinicians")
COLUMNS = ("region", "intervention_id", "intervention", "target", "kind", "start", "start_window_from",
           "start_window_to", "end", "modality_targeted", "source", "note")
_REQUIRED = ("region", "intervention_id", "intervention", "target")
_MODALITIES = ("MR", "XRAY", "CT")
#: population groups for the effect-by-group analyses (population variables of the register)
GROUP_DIMENSIONS = ("sex", "age_group_profile", "education_profile", "employment_profile")

OVERVIEW_COLUMNS = [
    "region", "intervention_id", "intervention", "target", "design", "modality", "payer", "population_group",
    "outcome_role", "start", "start_window", "start_in_window", "covid", "estimand", "estimate", "lower", "upper",
    "p_value", "min_p_value", "conf_level", "cumulative", "cumulative_lower", "cumulative_upper", "points_pre",
    "points_post", "design_note", "verdict",
]


class InterventionTableError(ValueError):
    """A row of an interventions table breaks a rule; the message names the file, column and row."""


# ------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------
def _default_path() -> Path:
    from lumbarstats import dictionary

    return dictionary.dictionary_path() / "interventions.csv"


def _read_table(source, *, what: str) -> pd.DataFrame:
    """A DataFrame from a CSV/YAML path, a DataFrame, or a list of mappings (inline TOML tables)."""
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, Sequence) and not isinstance(source, str | bytes | Path):
        return pd.DataFrame([dict(r) for r in source])
    path = Path(source)
    if not path.is_file():
        raise InterventionTableError(f"{what}: no such file {path}")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, Mapping):
            data = data.get("interventions", data)
        if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
            raise InterventionTableError(f"{path}: expected a list of interventions (mappings), optionally under "
                                         "the key 'interventions'")
        return pd.DataFrame(data)
    if path.suffix.lower() in (".csv", ".txt"):
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    raise InterventionTableError(f"{path}: interventions must be a .csv or .yaml file")


def _month(value, *, where: str) -> pd.Period | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return None
    try:
        return pd.Period(pd.Timestamp(str(value).strip()), freq="M")
    except (ValueError, TypeError):
        raise InterventionTableError(f"{where}: {value!r} is not an ISO date or month (e.g. 2019-01 or "
                                     "2019-01-15)") from None


def _validate(df: pd.DataFrame, *, what: str) -> pd.DataFrame:
    """Check the rules and return the normalised table (one clear error naming file, column and row)."""
    from lumbarstats import dictionary

    unknown = [c for c in df.columns if c not in COLUMNS]
    if unknown:
        raise InterventionTableError(f"{what}: unknown column(s) {unknown}; the columns are {list(COLUMNS)}")
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise InterventionTableError(f"{what}: missing column(s) {missing}")
    df = df.reindex(columns=list(COLUMNS)).astype(object).where(lambda x: x.notna(), None)
    dd = dictionary.load()
    rows = []
    for i, r in df.iterrows():
        line = i + 2  # header is line 1 of a CSV
        where = f"{what}, row {line}"
        for c in _REQUIRED:
            if r[c] is None or str(r[c]).strip() == "":
                raise InterventionTableError(f"{where}, column {c!r}: empty")
        try:
            code = dd.resolve_region(r["region"])
        except (KeyError, ValueError) as err:
            raise InterventionTableError(f"{where}, column 'region': {err}") from None
        if code == dd.whole_country_code:
            raise InterventionTableError(f"{where}, column 'region': an intervention belongs to one region, "
                                         f"not {r['region']!r}")
        target = str(r["target"]).strip()
        if target not in TARGETS:
            raise InterventionTableError(f"{where}, column 'target': {target!r}; use one of {list(TARGETS)}")
        start = _month(r["start"], where=f"{where}, column 'start'")
        w_from = _month(r["start_window_from"], where=f"{where}, column 'start_window_from'")
        w_to = _month(r["start_window_to"], where=f"{where}, column 'start_window_to'")
        if start is not None and (w_from is not None or w_to is not None):
            raise InterventionTableError(f"{where}: give either 'start' or 'start_window_from'/'start_window_to', "
                                         "not both")
        if start is None:
            if w_from is None or w_to is None:
                raise InterventionTableError(f"{where}, column 'start': no start; give 'start' or both "
                                             "'start_window_from' and 'start_window_to'")
            if w_to < w_from:
                raise InterventionTableError(f"{where}, column 'start_window_to': {w_to} is before "
                                             f"start_window_from {w_from}")
        else:
            w_from = w_to = start
        end = _month(r["end"], where=f"{where}, column 'end'")
        if end is not None and end < w_from:
            raise InterventionTableError(f"{where}, column 'end': {end} is before the start {w_from}")
        mods = [m.strip().upper() for m in str(r["modality_targeted"] or "MR|XRAY").replace(",", "|").split("|")
                if m.strip()]
        bad = [m for m in mods if m not in _MODALITIES]
        if bad or not mods:
            raise InterventionTableError(f"{where}, column 'modality_targeted': {bad or r['modality_targeted']!r}; "
                                         f"use codes from {list(_MODALITIES)} separated by '|'")
        rows.append({"region": dd.region_name(code), "region_code": code,
                     "intervention_id": str(r["intervention_id"]).strip(),
                     "intervention": str(r["intervention"]).strip(), "target": target,
                     "kind": str(r["kind"] or "").strip(), "start_from": w_from, "start_to": w_to, "end": end,
                     "modality_targeted": "|".join(mods), "source": str(r["source"] or "").strip(),
                     "note": str(r["note"] or "").strip()})
    out = pd.DataFrame(rows, columns=["region", "region_code", "intervention_id", "intervention", "target", "kind",
                                      "start_from", "start_to", "end", "modality_targeted", "source", "note"])
    dup = out["intervention_id"][out["intervention_id"].duplicated()]
    if len(dup):
        lines = [int(i) + 2 for i in out.index[out["intervention_id"].isin(dup)]]
        raise InterventionTableError(f"{what}, column 'intervention_id': {sorted(set(dup))} given more than "
                                     f"once (rows {lines})")
    return out


def _configured_extra(start=None):
    """``[tool.lumbarstats] interventions`` of ``lumbarstats.toml`` (a path relative to it, or inline tables)."""
    import tomllib

    from lumbarstats import project

    cfg = project.project_root(start) / project.CONFIG_NAME
    if not cfg.is_file():
        return None, None
    try:
        spec = tomllib.loads(cfg.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InterventionTableError(f"{cfg}: not valid TOML ({exc})") from None
    value = spec.get("tool", {}).get("lumbarstats", {}).get("interventions")
    if value is None:
        return None, None
    if isinstance(value, str):
        path = Path(value).expanduser()
        return (path if path.is_absolute() else cfg.parent / path), str(cfg)
    if isinstance(value, list):
        return value, f"{cfg} [tool.lumbarstats] interventions"
    raise InterventionTableError(f"{cfg}: [tool.lumbarstats] interventions must be a file name or a list of "
                                 "tables")


def load_interventions(path=None, *, extra=None, use_config: bool = True) -> pd.DataFrame:
    """The interventions table, validated.

    Parameters
    ----------
    path : the main table (default ``data_dictionary/interventions.csv``).
    extra : the user's own interventions: a CSV or YAML file (a list of mappings, optionally under
        ``interventions:``), a DataFrame or a list of mappings, with the columns of the main table.
        Default: ``[tool.lumbarstats] interventions`` of ``lumbarstats.toml`` when ``use_config``.
        A row whose ``intervention_id`` is in the main table replaces that row.

    Returns
    -------
    DataFrame with ``region`` (short name), ``region_code``, ``intervention_id``, ``intervention``,
    ``target``, ``kind``, ``start_from``, ``start_to`` (monthly Periods; equal for a known start), ``end``,
    ``modality_targeted`` (``"MR|XRAY"``), ``source``, ``note``, ``origin`` (the file each row came from).
    Raises :class:`InterventionTableError` naming the file, column and row of the first broken rule.
    """
    main_path = Path(path) if path is not None else _default_path()
    table = _validate(_read_table(main_path, what=str(main_path)), what=str(main_path))
    table["origin"] = str(main_path)
    what = None
    if extra is None and use_config:
        extra, what = _configured_extra()
    if extra is not None:
        what = what or (str(extra) if isinstance(extra, str | Path) else "extra interventions")
        more = _validate(_read_table(extra, what=what), what=what)
        more["origin"] = what
        table = pd.concat([table[~table["intervention_id"].isin(more["intervention_id"])], more],
                          ignore_index=True)
    from lumbarstats import dictionary

    order = {c: i for i, c in enumerate(dictionary.region_order(whole_country=False))}
    table = table.sort_values(["region_code", "start_from", "intervention_id"],
                              key=lambda s: s.map(order) if s.name == "region_code" else s)
    return table.reset_index(drop=True)


def start_grid(row, *, step_months: int = 6) -> list[pd.Period]:
    """Starts to evaluate for one intervention: the window's first month, every ``step_months`` after it,
    and the window's last month (one month for a known start)."""
    lo, hi = row["start_from"], row["start_to"]
    if step_months < 1:
        raise ValueError("step_months must be >= 1")
    grid = list(pd.period_range(lo, hi, freq="M"))[::step_months]
    if grid[-1] != hi:
        grid.append(hi)
    return grid


def _as_period(value) -> pd.Period:
    return value if isinstance(value, pd.Period) else pd.Period(pd.Timestamp(str(value)), freq="M")


def admissible_controls(interventions: pd.DataFrame, region, window) -> list[str]:
    """Regions that may serve as controls for ``region`` in ``window`` (``(first, last)`` month): every other
    region none of whose interventions can start inside the window (an intervention's start window
    overlapping it). Returns short region names in the standard order."""
    from lumbarstats import dictionary

    dd = dictionary.load()
    code = dd.resolve_region(region)
    lo, hi = (_as_period(w) for w in window)
    if hi < lo:
        raise ValueError(f"window {window!r}: the last month is before the first")
    busy = interventions[(interventions["start_from"] <= hi) & (interventions["start_to"] >= lo)]
    busy_codes = set(busy["region_code"])
    return [dd.region_name(c) for c in dd.region_order(whole_country=False) if c != code and c not in busy_codes]


# ------------------------------------------------------------------------------------------------
# series
# ------------------------------------------------------------------------------------------------
def _group_counts(reg, *, modality: str, payer: str, dimensions: Sequence[str]) -> pd.DataFrame:
    """Monthly counts by region, sex x age band and every population-group dimension, in one query."""
    from lumbarstats import aggregate

    extra = [d for d in dimensions if d not in ("sex", "age_band")]
    return aggregate.strata_counts(reg, by=["region", "region_name", "year", "month", "sex", "age_band", *extra],
                                   modality=modality, payer=payer)


def _group_series(counts: pd.DataFrame, *, dimension: str) -> pd.DataFrame:
    """Monthly observed and expected examinations by region and population group (``dimension``) from
    :func:`_group_counts`.

    The expected count is indirect standardization by sex x age band within the group (reference: the
    group's pooled stratum rates over all regions and months), the offset of the ITS, as
    :func:`lumbarstats.monthly.monthly_standardized_series` does for the whole population (which has no
    group argument, hence the counts here come straight from :func:`lumbarstats.aggregate.strata_counts`).
    """
    strata = ["sex", "age_band"]
    keys = list(dict.fromkeys([dimension, *strata]))
    c = counts[counts[dimension].notna()]
    c = c.groupby(["region_name", "year", "month", *keys], observed=True)[["events", "population"]].sum().reset_index()
    ref = c.groupby(keys, observed=True)[["events", "population"]].sum()
    rate = (ref["events"] / ref["population"]).rename("_r").reset_index()
    c = c.merge(rate, on=keys, how="left")
    c["expected_events"] = c["_r"].fillna(0.0) * c["population"]
    out = c.groupby(["region_name", dimension, "year", "month"], observed=True)[
        ["events", "expected_events", "population"]].sum().reset_index()
    out["month"] = pd.to_datetime(pd.DataFrame({"year": out["year"].astype(int), "month": out["month"].astype(int),
                                                "day": 1}))
    return out.rename(columns={"region_name": "region", dimension: "group"})


def primary_start(interventions: pd.DataFrame, region, months, *, min_pre: int = 12, min_post: int = 3,
                  step_months: int = 6):
    """The region's first evaluable intervention start: the earliest start of any intervention's grid
    (:func:`start_grid`) with at least ``min_pre`` months of the series before it and ``min_post`` from it.
    Returns ``(intervention_id, "YYYY-MM")`` or None (no intervention of the region can be evaluated)."""
    from lumbarstats import dictionary

    name = dictionary.region_name(dictionary.resolve_region(region))
    months = pd.PeriodIndex(pd.to_datetime(pd.Series(months)), freq="M")
    best = None
    for _, row in interventions[interventions["region"] == name].iterrows():
        for s in start_grid(row, step_months=step_months):
            if (months < s).sum() >= min_pre and (months >= s).sum() >= min_post:
                if best is None or s < best[1]:
                    best = (row["intervention_id"], s)
                break
    return None if best is None else (best[0], str(best[1]))


# ------------------------------------------------------------------------------------------------
# interrupted time series
# ------------------------------------------------------------------------------------------------
def _month_str(p) -> str:
    return str(_as_period(p))


def _overlapping(interventions: pd.DataFrame, row) -> pd.DataFrame:
    same = interventions[(interventions["region_code"] == row["region_code"])
                         & (interventions["intervention_id"] != row["intervention_id"])]
    return same[(same["start_from"] <= row["start_to"]) & (same["start_to"] >= row["start_from"])]


def _nuisance(interventions: pd.DataFrame, row, months: pd.PeriodIndex) -> list[dict]:
    """The region's other interventions whose windows do not overlap ``row``'s, as ITS terms: overlapping
    ones among them form one cluster (they cannot be told apart either), entered once at the middle of the
    cluster's common months (or of its whole span when the windows share none), when that month is inside
    the series with at least 3 months after it."""
    same = interventions[(interventions["region_code"] == row["region_code"])
                         & (interventions["intervention_id"] != row["intervention_id"])]
    same = same[~same["intervention_id"].isin(_overlapping(interventions, row)["intervention_id"])]
    clusters: list[list] = []
    for _, r in same.sort_values("start_from").iterrows():
        if clusters and r["start_from"] <= max(x["start_to"] for x in clusters[-1]):
            clusters[-1].append(r)
        else:
            clusters.append([r])
    out = []
    for cl in clusters:
        lo, hi = max(x["start_from"] for x in cl), min(x["start_to"] for x in cl)
        if hi < lo:
            lo, hi = min(x["start_from"] for x in cl), max(x["start_to"] for x in cl)
        mid = lo + (hi - lo).n // 2
        if months[0] < mid <= months[-3]:
            out.append({"name": _bundle([x["intervention_id"] for x in cl]), "start": str(mid)})
    return out


def _bundle(ids: list[str]) -> str:
    return "+".join(ids)


def evaluate_its(series: pd.DataFrame, row, *, interventions: pd.DataFrame, start, covid: str = "indicators",
                 seasonality: dict | None = None, family: str = "quasipoisson", hac_lags: int | None = None,
                 conf_level: float = 0.95, lang: str = "en"):
    """One ITS for intervention ``row`` (a row of :func:`load_interventions`) starting at ``start`` on one
    region's monthly series (``month, events, expected_events``). The region's interventions whose start
    windows overlap ``row``'s cannot be told apart from it: they are reported together (``design_note``);
    its other interventions enter the model as their own level and slope terms. Returns ``(dict, result)``:
    the overview fields and the :class:`~lumbarstats.trend.its.MultiITSResult` (None if not evaluable)."""
    from lumbarstats.trend.its import its_multi, level_term, verdict

    months = pd.PeriodIndex(pd.to_datetime(series["month"]), freq="M").sort_values()
    overlap = list(_overlapping(interventions, row)["intervention_id"])
    note = []
    if overlap:
        note.append("not separable from " + ", ".join(overlap) + " (overlapping start windows): the estimate is "
                    "their joint effect")
    name = row["intervention_id"]
    terms = [{"name": name, "start": str(_as_period(start))}, *_nuisance(interventions, row, months)]
    others = [t["name"] for t in terms[1:]]
    if others:
        note.append("adjusted for " + ", ".join(f"{t['name']} ({t['start']})" for t in terms[1:]))
    fields = {"design": "its", "estimand": "level change (%)", "min_p_value": 0.0, "conf_level": conf_level}
    try:
        res = its_multi(series, time="month", events="events", population="expected_events", interventions=terms,
                        covid=covid, seasonality=seasonality if seasonality is not None else {"harmonics": 2},
                        family=family, hac_lags=hac_lags, conf_level=conf_level)
    except ValueError as err:
        fields.update(estimate=np.nan, lower=np.nan, upper=np.nan, p_value=np.nan, points_pre=np.nan,
                      points_post=np.nan, design_note="; ".join([*note, f"not evaluable: {err}"]),
                      verdict="not evaluable" if lang == "en" else "kan ikke evalueres")
        return fields, None
    lv = res.summary.loc[level_term(name)]
    cum = {"cumulative": np.nan, "cumulative_lower": np.nan, "cumulative_upper": np.nan}
    if res.reason is None:
        c = res.cumulative_effect(without=name).iloc[0]
        cum = {"cumulative": 100 * c["relative_change"], "cumulative_lower": 100 * c["lower"],
               "cumulative_upper": 100 * c["upper"]}
    underpowered = res.underpowered[name]
    text = verdict(lv["change_pct"], lv["change_lower_pct"], lv["change_upper_pct"], conf_level=conf_level,
                   lang=lang, underpowered=underpowered)
    if res.reason is not None:
        note.append(f"not estimated: {res.reason}")
    fields.update(estimate=lv["change_pct"], lower=lv["change_lower_pct"], upper=lv["change_upper_pct"],
                  p_value=lv["p_value"], points_pre=res.n_pre[name], points_post=res.n_post[name],
                  design_note="; ".join([*note, res.method, f"COVID-19: {covid}"]), verdict=text, **cum)
    return fields, res


# ------------------------------------------------------------------------------------------------
# comparative designs (lumbarstats.trend.staggered, when installed)
# ------------------------------------------------------------------------------------------------
def _comparative_designs(mod, inf, panel: pd.DataFrame, *, region: str, t0: int, starts: list[int]):
    """``[(design, estimand, run)]`` for the designs the installed modules offer; ``run()`` gives a dict
    with ``estimate, lower, upper`` (log-rate scale), ``p_value, min_p_value, note`` and the result."""
    common = {"unit": "region", "time": "t", "outcome": "log_rate"}
    out = []

    def first_row(summary):
        return summary.iloc[0] if isinstance(summary, pd.DataFrame) else summary

    if mod is not None and hasattr(mod, "staggered_did"):
        def did():
            res = mod.staggered_did(panel, first_treated="first_treated", control_group="notyettreated", **common)
            r = first_row(res.summary)
            pre = (res.pretrend_test or {}).get("p_value", np.nan)
            return {"estimate": r["estimate"], "lower": r["lower"], "upper": r["upper"], "p_value": r["p_value"],
                    "min_p_value": r.get("min_p_value", np.nan),
                    "note": f"{r.get('note', '')} pre-trend test p = {pre:.3g}".strip(), "result": res}
        out.append(("staggered_did", "average effect after the start (%; Callaway-Sant'Anna, not-yet-treated)", did))
    if mod is not None and hasattr(mod, "event_study"):
        def es():
            res = mod.event_study(panel, first_treated="first_treated", leads=12, lags=24, **common)
            agg = res.did.aggregate("dynamic").overall
            pre = (res.pretrend_test or {}).get("p_value", np.nan)
            return {"estimate": agg["estimate"], "lower": agg["lower"], "upper": agg["upper"],
                    "p_value": agg["p_value"], "min_p_value": agg.get("min_p_value", np.nan),
                    "note": f"leads 12, lags 24 months; leads jointly zero: p = {pre:.3g}. {res.note}".strip(),
                    "result": res}
        out.append(("event_study", "average of the event-time effects after the start (%; dynamic aggregation)", es))
    if inf is not None and hasattr(inf, "randomization_inference"):
        def ri():
            res = inf.randomization_inference(panel, treated_unit=region, start=t0, admissible_starts=starts, **common)
            return {"estimate": res.estimate, "lower": np.nan, "upper": np.nan, "p_value": res.p_value,
                    "min_p_value": res.min_p_value, "note": res.note, "result": res}
        out.append(("randomization_inference", "difference in differences of the log rate (%), permutation p-value",
                    ri))
    if inf is not None and hasattr(inf, "wild_cluster_bootstrap"):
        def wcb():
            res = inf.wild_cluster_bootstrap(panel, treated_unit=region, start=t0, weights="webb", seed=2024, **common)
            return {"estimate": res.estimate, "lower": np.nan, "upper": np.nan, "p_value": res.p_value,
                    "min_p_value": res.min_p_value, "note": res.note, "result": res}
        out.append(("wild_cluster_bootstrap", "two-way fixed-effects DiD of the log rate (%), WCR p-value (Webb)", wcb))
    return out


def _comparative_rows(series: pd.DataFrame, row, *, start, starts, controls: list[str], window_end, lang: str,
                      conf_level: float) -> tuple[list[dict], object]:
    """Comparative designs on the log standardized monthly rate (log observed / expected) of the region and
    its admissible controls up to ``window_end`` (after it a control may start its own intervention):
    event study and staggered DiD (:mod:`lumbarstats.trend.staggered`), randomization inference over regions
    and the window's starts and the wild cluster bootstrap (:mod:`lumbarstats.trend.inference`), those the
    installed modules offer. Returns ``(rows, event-study result or None)``."""
    from lumbarstats.trend.its import verdict

    mod, inf = _optional_modules()
    if (mod is None and inf is None) or not controls:
        return [], None
    panel = series[series["region"].isin([row["region"], *controls])
                   & (pd.to_datetime(series["month"]) <= window_end.to_timestamp())].copy()
    panel["t"] = [p.ordinal for p in pd.PeriodIndex(pd.to_datetime(panel["month"]), freq="M")]
    # a month without examinations has no log rate; dropping it would unbalance the panel, so with any
    # zero count 0.5 is added to every count (the usual continuity correction; noted in the row)
    zeros = bool((panel["events"] == 0).any())
    panel["log_rate"] = np.log((panel["events"] + (0.5 if zeros else 0.0)) / panel["expected_events"])
    panel = panel[np.isfinite(panel["log_rate"])]
    t0 = _as_period(start).ordinal
    panel["first_treated"] = np.where(panel["region"] == row["region"], t0, 0)
    panel = panel[["region", "t", "month", "log_rate", "first_treated"]].reset_index(drop=True)
    n_units = panel["region"].nunique()
    base = {"conf_level": conf_level, "points_pre": int((panel["t"] < t0).sum() // max(n_units, 1)),
            "points_post": int((panel["t"] >= t0).sum() // max(n_units, 1))}
    rows, es_result = [], None
    for design, estimand, run in _comparative_designs(mod, inf, panel, region=row["region"], t0=t0,
                                                      starts=[_as_period(s).ordinal for s in starts]):
        try:
            r = run()
        except Exception as err:  # a design that fails on these data is reported, never hidden
            rows.append({**base, "design": design, "estimand": estimand, "estimate": np.nan, "lower": np.nan,
                         "upper": np.nan, "p_value": np.nan, "min_p_value": np.nan,
                         "design_note": f"controls: {', '.join(controls)}; not estimated: {type(err).__name__}: {err}",
                         "verdict": "not evaluable" if lang == "en" else "kan ikke evalueres"})
            continue
        if design == "event_study":
            es_result = r["result"]
        est, lo, hi = (100 * np.expm1(float(r[k])) for k in ("estimate", "lower", "upper"))
        minp = float(r["min_p_value"]) if r["min_p_value"] is not None else np.nan
        if np.isfinite(lo):
            text = verdict(est, lo, hi, conf_level=conf_level, lang=lang,
                           min_p_value=minp if np.isfinite(minp) else None)
            if n_units < _FEW_UNITS:
                text += (f" (asymptotic interval from {n_units} regions, one of them treated: too narrow; the "
                         "randomization-inference row is the honest test)" if lang == "en" else
                         f" (asymptotisk interval fra {n_units} regioner, heraf én behandlet: for smalt; "
                         "randomiseringsinferensen er den ærlige test)")
        else:
            text = _p_verdict(est, float(r["p_value"]), minp, alpha=1 - conf_level, lang=lang)
        rows.append({**base, "design": design, "estimand": estimand, "estimate": est, "lower": lo, "upper": hi,
                     "p_value": float(r["p_value"]), "min_p_value": minp,
                     "design_note": "; ".join(x for x in ("controls: " + ", ".join(controls),
                                                          f"months up to {window_end}",
                                                          "0.5 added to every monthly count (months without "
                                                          "examinations)" if zeros else "", str(r["note"])) if x),
                     "verdict": text})
    return rows, es_result


#: below this many regions the asymptotic (influence-function) intervals of the DiD designs are too narrow
_FEW_UNITS = 10


def _p_verdict(est: float, p: float, min_p: float, *, alpha: float, lang: str) -> str:
    """Verdict for a design that gives a p-value but no interval (permutation, wild bootstrap)."""
    e = f"{est:+.1f} %" if lang == "en" else f"{est:+.1f} %".replace(".", ",")
    if np.isfinite(min_p) and min_p > alpha:
        return (f"{e}: the design cannot tell an effect from noise (smallest attainable p = {min_p:.2g})"
                if lang == "en" else
                f"{e}: designet kan ikke skelne en effekt fra tilfældig variation (mindste opnåelige p = "
                f"{min_p:.2g})".replace(".", ","))
    if not np.isfinite(p):
        return "not evaluable" if lang == "en" else "kan ikke evalueres"
    if p <= alpha:
        return (f"{e}: distinguishable from noise (p = {p:.2g})" if lang == "en" else
                f"{e}: kan skelnes fra tilfældig variation (p = {p:.2g})".replace(".", ","))
    return (f"{e}: no clear change (p = {p:.2g})" if lang == "en" else
            f"{e}: ingen klar ændring (p = {p:.2g})".replace(".", ","))


def _optional_modules():
    """:mod:`lumbarstats.trend.staggered` and :mod:`lumbarstats.trend.inference` when installed (else None)."""
    try:
        from lumbarstats.trend import staggered
    except ImportError:
        staggered = None
    try:
        from lumbarstats.trend import inference
    except ImportError:
        inference = None
    return staggered, inference


# ------------------------------------------------------------------------------------------------
# the step
# ------------------------------------------------------------------------------------------------
def comparative_window(row, *, before: int = 12, after: int = 36) -> tuple[pd.Period, pd.Period]:
    """The months a comparative design of intervention ``row`` uses: from ``before`` months before its
    window opens to ``after`` months after it closes (controls must be free of interventions there)."""
    return row["start_from"] - before, row["start_to"] + after - 1


def _middle(row) -> pd.Period:
    return row["start_from"] + (row["start_to"] - row["start_from"]).n // 2


def _role(row, modality: str, payer: str) -> str:
    if payer != "public":
        return "private imaging (substitution)"
    return "targeted" if modality in row["modality_targeted"].split("|") else "other modality (substitution)"


def overview_rows(series_by: Mapping, row, *, interventions: pd.DataFrame, covid_options=("indicators", "exclude"),
                  step_months: int = 6, lang: str = "en", conf_level: float = 0.95, hac_lags: int | None = None,
                  group_series: Mapping | None = None) -> tuple[list[dict], dict, dict]:
    """Rows of the overview for one intervention. ``series_by``: ``{(modality, payer): all regions' monthly
    series}``; ``group_series``: ``{(modality, dimension): group series}``. Every start of the grid and
    COVID-19 handling for the public series; the middle start and the default COVID-19 handling for the
    private series and the population groups. Returns ``(rows, {(modality, start): MultiITSResult},
    {(modality, start): event-study result})``."""
    rows, fits, event_studies = [], {}, {}
    grid = start_grid(row, step_months=step_months)
    window = f"{row['start_from']}–{row['start_to']}"
    common = {"region": row["region"], "intervention_id": row["intervention_id"],
              "intervention": row["intervention"], "target": row["target"], "start_window": window}

    def add(fields, *, modality, payer, group, start, k, covid):
        rows.append({**common, **fields, "modality": modality, "payer": payer, "population_group": group,
                     "outcome_role": _role(row, modality, payer), "start": _month_str(start),
                     "start_in_window": f"{k + 1}/{len(grid)}", "covid": covid})

    # the private series, the groups and the comparative designs use the evaluable start (at least 3 months
    # of the series from it) nearest the window's middle
    mid = _middle(row)
    last = max(pd.Period(pd.Timestamp(sr["month"].max()), freq="M") for sr in series_by.values())
    usable = [k for k in range(len(grid)) if (last - grid[k]).n + 1 >= 3] or list(range(len(grid)))
    k_mid = min(usable, key=lambda k: abs((grid[k] - mid).n))
    for (modality, payer), series in series_by.items():
        one = series[series["region"] == row["region"]]
        starts = list(enumerate(grid)) if payer == "public" else [(k_mid, grid[k_mid])]
        covids = covid_options if payer == "public" else covid_options[:1]
        for k, start in starts:
            for covid in covids:
                fields, res = evaluate_its(one, row, interventions=interventions, start=start, covid=covid,
                                           lang=lang, conf_level=conf_level, hac_lags=hac_lags)
                add(fields, modality=modality, payer=payer, group="all", start=start, k=k, covid=covid)
                if payer == "public" and covid == covid_options[0] and k == k_mid and res is not None:
                    fits[(modality, _month_str(start))] = res
        if payer == "public":
            window = comparative_window(row)
            controls = admissible_controls(interventions, row["region"], window)
            crows, es = _comparative_rows(series, row, start=grid[k_mid], starts=grid, controls=controls,
                                          window_end=window[1], lang=lang, conf_level=conf_level)
            for crow in crows:
                add(crow, modality=modality, payer=payer, group="all", start=grid[k_mid], k=k_mid,
                    covid="none")
            if es is not None:
                event_studies[(modality, _month_str(grid[k_mid]))] = es
    for (modality, dimension), gs in (group_series or {}).items():
        for group, sub in gs[gs["region"] == row["region"]].groupby("group", observed=True):
            fields, _ = evaluate_its(sub, row, interventions=interventions, start=grid[k_mid],
                                     covid=covid_options[0], lang=lang, conf_level=conf_level, hac_lags=hac_lags)
            add(fields, modality=modality, payer="public", group=f"{dimension}={group}", start=grid[k_mid],
                k=k_mid, covid=covid_options[0])
    return rows, fits, event_studies


def _event_time_table(fits: Mapping, *, quarter: bool = True) -> pd.DataFrame:
    """Observed / expected-without-the-intervention by quarter relative to the start, per fit
    (``{(label, modality): (intervention name, MultiITSResult)}``): the ITS event-time view (pre-start
    quarters are in-sample residuals, post-start quarters the effect; the region's other interventions stay
    in the expected)."""
    rows = []
    for (label, modality), (name, res) in fits.items():
        if res.reason is not None:
            continue
        cf = res.counterfactual(without=name)
        t0 = res._spec(name)["t_start"]
        rel = (res.frame["t_num"].to_numpy() - t0).astype(int)
        key = np.floor_divide(rel, 3) if quarter else rel
        df = pd.DataFrame({"k": key, "obs": cf["observed_events"], "cf": cf["events"], "cf_lo": cf["events_lower"],
                           "cf_hi": cf["events_upper"], "in_fit": cf["in_fit"]})
        df = df[df["in_fit"]]
        g = df.groupby("k")[["obs", "cf", "cf_lo", "cf_hi"]].sum()
        g = g[g.index.to_series().between(-12, 12)]
        rows.append(pd.DataFrame({"label": label, "modality": modality, "event_quarter": g.index,
                                  "effect_pct": 100 * (g["obs"] / g["cf"] - 1).to_numpy(),
                                  "lower": 100 * (g["obs"] / g["cf_hi"] - 1).to_numpy(),
                                  "upper": 100 * (g["obs"] / g["cf_lo"] - 1).to_numpy()}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["label", "modality", "event_quarter", "effect_pct", "lower", "upper"])


def _staggered_event_table(results: Mapping) -> pd.DataFrame:
    """The event-study coefficients (log-rate differences -> per cent) by quarter-free event month."""
    rows = []
    for (label, modality), res in results.items():
        d = res.summary
        rows.append(pd.DataFrame({"label": label, "modality": modality, "event_time": d["rel_time"].to_numpy(),
                                  "effect_pct": 100 * np.expm1(d["estimate"].to_numpy(dtype=float)),
                                  "lower": 100 * np.expm1(d["lower"].to_numpy(dtype=float)),
                                  "upper": 100 * np.expm1(d["upper"].to_numpy(dtype=float))}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["label", "modality", "event_time", "effect_pct", "lower", "upper"])


def _draw_points(ax, table: pd.DataFrame, x: str, *, empty: str):
    for i, (label, s) in enumerate(table.groupby("label", sort=False)):
        off = (i - 0.5 * (table["label"].nunique() - 1)) * 0.12
        ax.errorbar(s[x] + off, s["effect_pct"], yerr=[s["effect_pct"] - s["lower"], s["upper"] - s["effect_pct"]],
                    fmt="o", ms=3, lw=0.9, capsize=1.5, color=f"C{i}", label=label)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.axvline(-0.5, color="0.3", ls=":", lw=1)
    if len(table):
        ax.legend(frameon=False, fontsize=7)
    else:
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _event_study_figure(its_table: pd.DataFrame, es_table: pd.DataFrame, *, region: str, lang: str,
                        modalities: list[str]):
    """Top row: the ITS event-time view by quarter; bottom row (when the comparative event study ran): the
    event study against the admissible controls by month. One column per modality."""
    import matplotlib.pyplot as plt

    from lumbarstats import dictionary

    da = lang == "da"
    nrows = 2 if len(es_table) else 1
    fig, axes = plt.subplots(nrows, len(modalities), figsize=(5.2 * len(modalities), 3.6 * nrows), squeeze=False)
    mod_label = dictionary.load().labels("modality", lang=lang)
    empty = "ingen evaluerbar indsats" if da else "no evaluable intervention"
    for j, m in enumerate(modalities):
        ax = axes[0][j]
        _draw_points(ax, its_table[its_table["modality"] == m], "event_quarter", empty=empty)
        ax.set_title(f"{mod_label.get(m, m)}: " + ("afbrudt tidsserie" if da else "interrupted time series"),
                     fontsize=10)
        ax.set_xlabel("kvartaler i forhold til start" if da else "quarters relative to the start")
        if j == 0:
            ax.set_ylabel("observeret mod forventet\nuden indsatsen (%)" if da else
                          "observed vs expected\nwithout the intervention (%)")
        if nrows == 2:
            ax = axes[1][j]
            _draw_points(ax, es_table[es_table["modality"] == m], "event_time", empty=empty)
            ax.set_title(f"{mod_label.get(m, m)}: " + ("hændelsesstudie mod kontrolregioner" if da else
                                                       "event study against control regions"), fontsize=10)
            ax.set_xlabel("måneder i forhold til start" if da else "months relative to the start")
            if j == 0:
                ax.set_ylabel("forskel i standardiseret rate (%)" if da else "difference in standardized rate (%)")
    fig.suptitle((f"Region {region}: effekt efter tid i forhold til indsatsens start" if da else
                  f"Region {region}: effect by time relative to the intervention's start"), fontsize=11)
    fig.tight_layout()
    return fig


def interventions_step(data_dir, out_dir, *, region, modalities=("MR", "XRAY"), lang: str = "da",
                       min_cell: int = 5, interventions: pd.DataFrame | None = None, step_months: int = 6,
                       groups: Sequence[str] = GROUP_DIMENSIONS, private: bool = True,
                       covid_options=("indicators", "exclude"), hac_lags: int | None = None,
                       conf_level: float = 0.95, series_cache: dict | None = None) -> list[Path]:
    """Evaluate every intervention of ``region`` and write the overview table and the event-study figure.

    Designs: ITS with all the region's interventions and COVID-19 terms (every start of the window's grid,
    COVID-19 as indicators — the default — and excluded — the sensitivity analysis), on each modality
    (the targeted one and the other as a substitution outcome), on privately financed imaging and by
    population group (``groups``) at the window's middle start; the event study and the staggered DiD of
    :mod:`lumbarstats.trend.staggered` against the admissible controls when that module exists.

    Writes (through :mod:`lumbarstats.export`, disclosure-controlled with ``min_cell``):
    ``{out_dir}/tables/interventions/overview_{region}.csv`` (:data:`OVERVIEW_COLUMNS`; estimates in per cent)
    and ``{out_dir}/figures/interventions/event_study_{region}.png`` / ``.svg``. ``series_cache`` (a dict)
    shares the monthly series between calls for several regions on the same register.
    """
    from lumbarstats import aggregate, dictionary, disclosure, export, monthly
    from lumbarstats.register import as_register
    from lumbarstats.trend.outputs import slug

    disclosure.validate_min_cell(min_cell)
    bad = [g for g in groups if g not in aggregate.WHERE_COLUMNS]
    if bad:
        raise ValueError(f"groups: unknown population variable(s) {bad}; choose from {list(aggregate.WHERE_COLUMNS)}")
    if lang not in ("da", "en"):
        raise ValueError(f"lang must be 'da' or 'en', got {lang!r}")
    dd = dictionary.load()
    name = dd.region_name(dd.resolve_region(region))
    table = load_interventions() if interventions is None else interventions
    mine = table[table["region"] == name]
    reg = as_register(data_dir)
    cache = {} if series_cache is None else series_cache

    def series(modality, payer):
        key = ("series", modality, payer)
        if key not in cache:
            cache[key] = monthly.monthly_standardized_series(reg, modality=modality, payer=payer)
        return cache[key]

    def gseries(modality, dimension):
        key = ("group", modality, dimension)
        if key not in cache:
            ckey = ("group_counts", modality, tuple(groups))
            if ckey not in cache:
                cache[ckey] = _group_counts(reg, modality=modality, payer="public", dimensions=groups)
            cache[key] = _group_series(cache[ckey], dimension=dimension)
        return cache[key]

    series_by = {}
    for m in modalities:
        series_by[(m, "public")] = series(m, "public")
    if private:
        for m in modalities:
            series_by[(m, "private")] = series(m, "private")
    group_series = {(m, g): gseries(m, g) for m in modalities for g in groups}
    rows, fits, event_studies = [], {}, {}
    for _, row in mine.iterrows():
        r, f, es = overview_rows(series_by, row, interventions=table, covid_options=covid_options,
                                 step_months=step_months, lang=lang, conf_level=conf_level, hac_lags=hac_lags,
                                 group_series=group_series)
        rows += r
        for (m, start), res in es.items():
            event_studies[(f"{row['intervention_id']} ({start})", m)] = res
        for (m, start), res in f.items():
            fits[(f"{row['intervention_id']} ({start})", m)] = (row["intervention_id"], res)
    overview = pd.DataFrame(rows).reindex(columns=OVERVIEW_COLUMNS)
    tag = slug(name)
    out_dir = Path(out_dir)
    paths = [export.publish_table(overview, out_dir / "tables" / "interventions" / f"overview_{tag}.csv",
                                  min_cell=min_cell)]
    # the event-time view of every separable intervention: the first of overlapping ones stands for them
    overlaps = {r["intervention_id"]: set(_overlapping(table, r)["intervention_id"]) for _, r in mine.iterrows()}
    keep, shown = {}, []
    for (label, m), (iid, res) in fits.items():
        if iid not in shown and any(iid in overlaps[o] for o in shown):
            continue
        if iid not in shown:
            shown.append(iid)
        keep[(label, m)] = (iid, res)
    n_more = {iid: len(overlaps[iid]) for iid in shown}
    word = "samtidige" if lang == "da" else "concurrent"

    def relabel(label):  # "SD-01 (2019-01)" -> "SD-01 +4 samtidige (2019-01)"
        iid, rest = label.split(" ", 1)
        return f"{iid} +{n_more[iid]} {word} {rest}" if n_more.get(iid) else label

    ev = _event_time_table({(relabel(lab), m): v for (lab, m), v in keep.items()})
    es = _staggered_event_table({(relabel(k[0]), k[1]): v for k, v in event_studies.items()
                                 if (k[0].split(" ")[0], k[1]) in {(lab.split(" ")[0], m) for lab, m in keep}})
    fig = _event_study_figure(ev, es, region=name, lang=lang, modalities=list(modalities))
    paths += export.publish_figure_files(fig, out_dir / "figures" / "interventions" / f"event_study_{tag}.png")
    return paths


def interventions_all_regions(data_dir, out_dir, *, regions=None, **kwargs) -> list[Path]:
    """:func:`interventions_step` for every region (default all five) on one opened register, sharing the
    monthly series between regions, and the combined ``tables/interventions/overview.csv`` (every region's
    rows, through the export path). ``kwargs`` as :func:`interventions_step`."""
    from lumbarstats import dictionary, export
    from lumbarstats.register import as_register

    reg = as_register(data_dir)
    codes = dictionary.region_order(whole_country=False) if regions is None else \
        [dictionary.resolve_region(r) for r in regions]
    cache = kwargs.pop("series_cache", None) or {}
    paths: list[Path] = []
    for code in codes:
        paths += interventions_step(reg, out_dir, region=code, series_cache=cache, **kwargs)
    tables = [p for p in paths if p.suffix == ".csv"]
    combined = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in tables], ignore_index=True)
    paths.append(export.write_published_csv(combined, Path(out_dir) / "tables" / "interventions" / "overview.csv"))
    return paths
