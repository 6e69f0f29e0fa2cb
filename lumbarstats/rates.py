"""The report's standardized rate tables: annual (tables 1–2) and pooled periods (tables 5.1–5.2).

Each function reads a register directory, aggregates with :mod:`lumbarstats.aggregate` and
standardizes with :mod:`lumbarstats.standardize` to the package's default standard population
(the register's national adult population pooled over the study years, by sex x age band — the
population the synthetic register is calibrated to). Output is long format with the region names of
the published tables (``Landsplan`` for the whole country), ready for comparison and export.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from lumbarstats import aggregate as _aggregate
from lumbarstats import dictionary as _dictionary
from lumbarstats import standardize as _standardize
from lumbarstats.register import as_register

__all__ = ["annual_rates", "period_rates", "compare_annual", "compare_periods", "MODALITY_LABELS"]

MODALITY_LABELS = {"MR": "MR", "XRAY": "Røntgen", "CT": "CT"}
STRATA = ["sex", "age_band"]


def _standard(reg, standard):
    if isinstance(standard, pd.DataFrame):
        return standard
    if standard in (None, "default", "register"):
        return reg.default_standard()  # computed once per Register
    return standard  # a name understood by ls.standardize.direct (e.g. "esp2013")


def _select_regions(df: pd.DataFrame, regions) -> pd.DataFrame:
    """Keep the asked regions: codes or names in any form (``ls.dictionary.resolve_region``), the whole
    country as ``Landsplan``/``Hele landet``/``Denmark``/0."""
    if regions is None or (isinstance(regions, str) and regions.casefold() == "all"):
        return df
    dd = _dictionary.load()
    wanted = [dd.resolve_region(r) for r in ([regions] if isinstance(regions, str | int) else list(regions))]
    return df[df["region_code"].isin(wanted)]


def _add_region_code(df: pd.DataFrame) -> pd.DataFrame:
    """``region_code`` (DST code, 0 = whole country) beside the region's name."""
    dd = _dictionary.load()
    codes = {dd.region_name(c): c for c in dd.region_order()}
    df.insert(df.columns.get_loc("region") + 1, "region_code", df["region"].map(codes).astype("int64"))
    return df


def annual_rates(data_dir, *, modality: str = "MR", regions="all", years: Sequence[int] | None = None,
                 standard="default", method: str = "gamma", conf_level: float = 0.95, per: int = 1000,
                 include_related: bool = False) -> pd.DataFrame:
    """Sex- and age-standardized rate per 1,000 adults by region (and the whole country) and year.

    Returns ``modality, region, year, events, population, crude_rate, rate, lower, upper, conf_level,
    method`` — the layout of the report's tables 1 (MR) and 2 (X-ray), in long format, with
    ``region_code`` beside ``region``. ``data_dir``: a register folder or :class:`lumbarstats.register.Register`.
    """
    reg = as_register(data_dir)
    counts = _aggregate.strata_counts(reg, by=["region_name", "year", *STRATA], modality=modality,
                                      years=years, include_related=include_related, with_total=True)
    res = _standardize.direct(counts, strata=STRATA, standard=_standard(reg, standard),
                              by=["region_name", "year"], per=per, method=method, conf_level=conf_level)
    res = _with_persons(res, reg, "year", modality=modality, years=years, include_related=include_related)
    res = res.rename(columns={"region_name": "region"})
    res.insert(0, "modality", modality)
    res = _order_regions(_add_region_code(res))
    return _select_regions(res, regions).reset_index(drop=True)


def period_rates(data_dir, *, modality: str = "MR", regions="all",
                 periods: Mapping[str, tuple[int, int]] | None = None, reference_period: str | None = None,
                 compare_period: str | None = None, standard="default", method: str = "gamma",
                 ratio_method: str = "lognormal", conf_level: float = 0.95, per: int = 1000) -> pd.DataFrame:
    """Standardized rates for pooled periods (tables 5.1–5.2) and the percent change between periods.

    Each period's rate pools the events and person-years of its years. ``pct_change``,
    ``pct_lower``, ``pct_upper`` give the change of each period against ``reference_period``
    (default the first, 2014–2016), from :func:`lumbarstats.standardize.rate_ratio`; they are empty
    on the reference period's row. ``compare_period`` (default the last) is flagged in ``is_compare``.
    """
    reg = as_register(data_dir)
    periods = dict(periods or _aggregate.report_periods())
    names = list(periods)
    reference_period = reference_period or names[0]
    compare_period = compare_period or names[-1]
    counts = _aggregate.strata_counts(reg, by=["region_name", "period", *STRATA], modality=modality,
                                      periods=periods, with_total=True)
    std = _standard(reg, standard)
    rates = _standardize.direct(counts, strata=STRATA, standard=std, by=["region_name", "period"], per=per,
                                method=method, conf_level=conf_level)
    rates = _with_persons(rates, reg, "period", modality=modality, periods=periods)
    ratios = _standardize.rate_ratio(counts, strata=STRATA, group="period", reference=reference_period,
                                     standard=std, by=["region_name"], per=per, method=ratio_method,
                                     conf_level=conf_level)
    keep = ["region_name", "period", "ratio", "lower", "upper", "pct_change", "pct_lower", "pct_upper"]
    ratios = ratios[[c for c in keep if c in ratios.columns]].rename(
        columns={"lower": "ratio_lower", "upper": "ratio_upper"})
    out = rates.merge(ratios, on=["region_name", "period"], how="left")
    out = out.rename(columns={"region_name": "region"})
    out.insert(0, "modality", modality)
    out["reference_period"] = reference_period
    out["is_compare"] = out["period"] == compare_period
    out["period"] = pd.Categorical(out["period"], categories=names, ordered=True)
    out = _order_regions(_add_region_code(out), extra=["period"])
    out["period"] = out["period"].astype(str)
    return _select_regions(out, regions).reset_index(drop=True)


def _with_persons(res: pd.DataFrame, reg, key: str, **kwargs) -> pd.DataFrame:
    """Add distinct persons examined per region and year/period (the count the disclosure rule is about),
    and for the whole country (a person who moved between regions is one person) — one query
    (:func:`lumbarstats.aggregate.distinct_persons`). Summing the strata's persons would count a person
    twice when a pooled period spans two age bands."""
    p = _aggregate.distinct_persons(reg, by=["region_name", key], with_total=True, **kwargs)
    out = res.merge(p, on=["region_name", key], how="left")
    out["persons"] = out["persons"].fillna(0).astype("int64")
    return out


def _order_regions(df: pd.DataFrame, extra: Sequence[str] = ("year",)) -> pd.DataFrame:
    dd = _dictionary.load()
    order = list(dd.region_names().values()) + [dd.whole_country_name]
    df = df.copy()
    df["_o"] = df["region"].map({r: i for i, r in enumerate(order)})
    cols = ["_o"] + [c for c in extra if c in df.columns]
    return df.sort_values(cols).drop(columns="_o")


def compare_annual(reproduced: pd.DataFrame) -> pd.DataFrame:
    """Tables 1–2 beside the published cells: :func:`lumbarstats.comparison.annual`."""
    from lumbarstats import comparison

    return comparison.annual(reproduced)


def compare_periods(reproduced: pd.DataFrame) -> pd.DataFrame:
    """Tables 5.1–5.2 beside the published cells: :func:`lumbarstats.comparison.periods`."""
    from lumbarstats import comparison

    return comparison.periods(reproduced)


ANNUAL_FILES = {"MR": "table1_mr_annual.csv", "XRAY": "table2_xray_annual.csv"}
PERIOD_FILES = {"MR": "table5_1_mr_periods.csv", "XRAY": "table5_2_xray_periods.csv"}
ANNUAL_COLUMNS = ["region", "year", "events", "persons", "population", "rate", "lower", "upper", "conf_level",
                  "method"]
PERIOD_COLUMNS = ["region", "period", "events", "persons", "population", "rate", "lower", "upper", "ratio",
                  "ratio_lower",
                  "ratio_upper", "pct_change", "pct_lower", "pct_upper", "reference_period", "conf_level", "method"]


def protect_rate_tables(annual: pd.DataFrame | None, periods: pd.DataFrame | None, *, min_cell: int = 5,
                        policy=None):
    """Disclosure control of tables 1–2 and 5.1–5.2 *together*, per modality.

    The tables are linked: the regions add up to Landsplan in every year and period, and a region's
    years add up to its pooled periods. Protecting each table alone would let a hidden year be recovered
    from its period minus the other years, so they are stacked into one table of cells and suppressed
    with all these relations (:func:`lumbarstats.disclosure.suppress`). A period change (ratio, percent
    change) is hidden with its period and wherever the reference period is hidden. Returns the two
    tables with the marker in hidden cells (``None`` stays ``None``). ``policy="round"``
    (:class:`lumbarstats.disclosure.Policy`): small cells redacted, the other counts rounded instead.
    """
    from lumbarstats import disclosure

    pol = disclosure.as_policy(policy, min_cell=min_cell)
    if pol.kind == "round":
        def rounded(df):
            return None if df is None else disclosure.round_counts(
                df, count_columns=["events", "persons"], value_columns=[c for c in _HIDDEN_WITH_CELL
                                                                         if c in df.columns and c != "events"
                                                                         and c != "persons"],
                rule_column="persons", min_cell=pol.min_cell, base=pol.base)
        return rounded(annual), rounded(periods)
    min_cell = pol.min_cell
    dd = _dictionary.load()
    total = dd.whole_country_name
    out_a, out_p = [], []
    modalities = sorted(set((annual if annual is not None else periods)["modality"]))
    for modality in modalities:
        a = annual[annual["modality"] == modality].copy() if annual is not None else None
        p = periods[periods["modality"] == modality].copy() if periods is not None else None
        parts = []
        if a is not None:
            parts.append(pd.DataFrame({"region": a["region"], "cell": a["year"].astype(str), "kind": "year",
                                       "persons": a["persons"], "events": a["events"]}))
        if p is not None:
            parts.append(pd.DataFrame({"region": p["region"], "cell": p["period"].astype(str), "kind": "period",
                                       "persons": p["persons"], "events": p["events"]}))
        stack = pd.concat(parts, ignore_index=True)
        relations = []
        if a is not None and p is not None:
            spans = _aggregate.report_periods(dd)
            index = {(r, c): i for i, (r, c) in enumerate(zip(stack["region"], stack["cell"], strict=True))}
            for region in stack["region"].unique():
                for name, (y0, y1) in spans.items():
                    members = [index.get((region, str(y))) for y in range(y0, y1 + 1)]
                    tot = index.get((region, name))
                    if tot is not None and all(m is not None for m in members):
                        relations.append((members, tot))
        res = disclosure.suppress(stack, count_columns=["persons", "events"], value_columns=[],
                                  keys=["region", "cell"], group_totals={"region": total}, rule_column="persons",
                                  min_cell=min_cell, extra_relations=relations)
        hidden = set(zip(stack.loc[res.mask, "region"], stack.loc[res.mask, "cell"], strict=True))
        if a is not None:
            out_a.append(_mark(a, [(r, str(y)) in hidden for r, y in zip(a["region"], a["year"], strict=True)]))
        if p is not None:
            mask = [(r, str(q)) in hidden for r, q in zip(p["region"], p["period"], strict=True)]
            ref_hidden = {r for r, q, ref in zip(p["region"], p["period"], p["reference_period"], strict=True)
                          if q == ref and (r, str(q)) in hidden}
            change_mask = [m or r in ref_hidden for m, r in zip(mask, p["region"], strict=True)]
            marked = _mark(p, mask)
            marked = _mark(marked, change_mask, columns=["ratio", "ratio_lower", "ratio_upper", "pct_change",
                                                         "pct_lower", "pct_upper"])
            out_p.append(marked)
    return (pd.concat(out_a) if out_a else None), (pd.concat(out_p) if out_p else None)


_HIDDEN_WITH_CELL = ("events", "persons", "population", "crude_rate", "rate", "lower", "upper", "variance", "ratio",
                     "ratio_lower", "ratio_upper", "pct_change", "pct_lower", "pct_upper")


def _mark(df: pd.DataFrame, mask, columns=_HIDDEN_WITH_CELL) -> pd.DataFrame:
    from lumbarstats import disclosure

    mask = pd.Series(mask, index=df.index, dtype=bool)
    if not mask.any():
        return df
    out = df.copy()
    for c in columns:
        if c in out.columns:
            out[c] = out[c].astype(object)
            out.loc[mask, c] = disclosure.SUPPRESSED_MARKER
    return out


def published_columns(df: pd.DataFrame | None, columns) -> pd.DataFrame | None:
    """The published columns of a rate table (``modality`` first), counts and population as integers."""
    if df is None:
        return None
    df = df.copy()
    for c in ("events", "population"):
        df[c] = df[c].round().astype("int64")
    return df[["modality"] + [c for c in columns if c in df.columns]]


def write_rate_tables(out_dir, *, annual: pd.DataFrame | None = None, periods: pd.DataFrame | None = None,
                      min_cell: int = 5, policy=None) -> list:
    """Write the long-format CSVs of tables 1–2 and 5.1–5.2 under ``out_dir/tables`` (atomically), with
    disclosure control applied to the tables together (:func:`protect_rate_tables`)."""
    from pathlib import Path

    from lumbarstats import export as _export

    annual = published_columns(annual, ANNUAL_COLUMNS)
    periods = published_columns(periods, PERIOD_COLUMNS)
    annual, periods = protect_rate_tables(annual, periods, min_cell=min_cell, policy=policy)
    written = []
    tables = Path(out_dir) / "tables"
    for df, files in ((annual, ANNUAL_FILES), (periods, PERIOD_FILES)):
        if df is None:
            continue
        for modality, g in df.groupby("modality"):
            # the modality code stays in the file (codes in data); integers and rounding as published
            written.append(_export.write_published_csv(g, tables / files[modality]))
    return written
