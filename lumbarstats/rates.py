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
from lumbarstats import reference as _reference
from lumbarstats import standardize as _standardize

__all__ = ["annual_rates", "period_rates", "compare_annual", "compare_periods", "MODALITY_LABELS"]

MODALITY_LABELS = {"MR": "MR", "XRAY": "Røntgen", "CT": "CT"}
STRATA = ["sex", "age_band"]


def _standard(data_dir, standard):
    if isinstance(standard, pd.DataFrame):
        return standard
    if standard in (None, "default", "register"):
        return _aggregate.default_standard(data_dir)
    return standard  # a name understood by ls.standardize.direct (e.g. "esp2013")


def _select_regions(df: pd.DataFrame, regions) -> pd.DataFrame:
    if regions in (None, "all"):
        return df
    dd = _dictionary.load()
    wanted = []
    for r in ([regions] if isinstance(regions, str) else list(regions)):
        wanted.append(dd.whole_country_name if str(r) in (dd.whole_country_name, "Denmark", "0")
                      else dd.region_names()[dd.region_code(r)])
    return df[df["region"].isin(wanted)]


def annual_rates(data_dir, *, modality: str = "MR", regions="all", years: Sequence[int] | None = None,
                 standard="default", method: str = "gamma", conf_level: float = 0.95, per: int = 1000,
                 include_related: bool = False) -> pd.DataFrame:
    """Sex- and age-standardized rate per 1,000 adults by region (and the whole country) and year.

    Returns ``modality, region, year, events, population, crude_rate, rate, lower, upper, conf_level,
    method`` — the layout of the report's tables 1 (MR) and 2 (X-ray), in long format.
    """
    counts = _aggregate.strata_counts(data_dir, by=["region_name", "year", *STRATA], modality=modality,
                                      years=years, include_related=include_related, with_total=True)
    res = _standardize.direct(counts, strata=STRATA, standard=_standard(data_dir, standard),
                              by=["region_name", "year"], per=per, method=method, conf_level=conf_level)
    res = res.merge(_persons(data_dir, "year", modality=modality, years=years, include_related=include_related),
                    on=["region_name", "year"], how="left")
    res = res.rename(columns={"region_name": "region"})
    res.insert(0, "modality", modality)
    res = _order_regions(res)
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
    periods = dict(periods or _aggregate.report_periods())
    names = list(periods)
    reference_period = reference_period or names[0]
    compare_period = compare_period or names[-1]
    counts = _aggregate.strata_counts(data_dir, by=["region_name", "period", *STRATA], modality=modality,
                                      periods=periods, with_total=True)
    std = _standard(data_dir, standard)
    rates = _standardize.direct(counts, strata=STRATA, standard=std, by=["region_name", "period"], per=per,
                                method=method, conf_level=conf_level)
    rates = rates.merge(_persons(data_dir, "period", modality=modality, periods=periods),
                        on=["region_name", "period"], how="left")
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
    out = _order_regions(out, extra=["period"])
    out["period"] = out["period"].astype(str)
    return _select_regions(out, regions).reset_index(drop=True)


def _persons(data_dir, key: str, **kwargs) -> pd.DataFrame:
    """Distinct persons examined per region and year/period (the count the disclosure rule is about).
    Summing the strata's persons would count a person twice when a pooled period spans two age bands."""
    dd = _dictionary.load()
    p = _aggregate.strata_counts(data_dir, by=["region_name", key], **kwargs)
    # the whole country separately: a person who moved between regions is one person
    t = _aggregate.strata_counts(data_dir, by=[key], **kwargs).assign(region_name=dd.whole_country_name)
    return pd.concat([p, t], ignore_index=True)[["region_name", key, "persons"]]


def _order_regions(df: pd.DataFrame, extra: Sequence[str] = ("year",)) -> pd.DataFrame:
    dd = _dictionary.load()
    order = list(dd.region_names().values()) + [dd.whole_country_name]
    df = df.copy()
    df["_o"] = df["region"].map({r: i for i, r in enumerate(order)})
    cols = ["_o"] + [c for c in extra if c in df.columns]
    return df.sort_values(cols).drop(columns="_o")


def compare_annual(reproduced: pd.DataFrame) -> pd.DataFrame:
    """Every published cell of tables 1–2 beside the reproduced one: table, region, year, published, reproduced, difference."""
    rows = []
    for modality, table in (("MR", "table1"), ("XRAY", "table2")):
        pub = _reference.annual_table(modality).rename(columns={"rate": "published"})
        rep = reproduced[reproduced["modality"] == modality][["region", "year", "rate", "lower", "upper"]]
        if rep.empty:
            continue
        m = pub.merge(rep.rename(columns={"rate": "reproduced"}), on=["region", "year"], how="left")
        m.insert(0, "table", table)
        m.insert(1, "modality", modality)
        rows.append(m)
    out = pd.concat(rows, ignore_index=True)
    out["difference"] = out["reproduced"] - out["published"]
    out["cell"] = out["year"].astype(str)
    out["measure"] = "rate per 1,000"
    return out


def compare_periods(reproduced: pd.DataFrame) -> pd.DataFrame:
    """Tables 5.1–5.2: published period rates and percent changes beside the reproduced ones."""
    pub = _reference.load("table5_1_5_2_period_standardized")
    pub["modality"] = pub["modality"].map({"MR": "MR", "Røntgen": "XRAY"})
    out = []
    for rec in pub.itertuples():
        rep = reproduced[(reproduced["modality"] == rec.modality) & (reproduced["region"] == rec.region)]
        row = rep[rep["period"] == rec.period]
        table = "table5_1" if rec.modality == "MR" else "table5_2"
        out.append({"table": table, "modality": rec.modality, "region": rec.region, "cell": rec.period,
                    "measure": "rate per 1,000", "published": rec.rate_per_1000,
                    "reproduced": float(row["rate"].iloc[0]) if len(row) else float("nan"),
                    "lower": float(row["lower"].iloc[0]) if len(row) else float("nan"),
                    "upper": float(row["upper"].iloc[0]) if len(row) else float("nan")})
    changes = pub.drop_duplicates(["modality", "region"])
    for rec in changes.itertuples():
        rep = reproduced[(reproduced["modality"] == rec.modality) & (reproduced["region"] == rec.region)
                         & reproduced["is_compare"]]
        table = "table5_1" if rec.modality == "MR" else "table5_2"
        out.append({"table": table, "modality": rec.modality, "region": rec.region, "cell": "2014-16 -> 2021-23",
                    "measure": "% change", "published": rec.pct_change_2014_16_to_2021_23,
                    "reproduced": float(rep["pct_change"].iloc[0]) if len(rep) else float("nan"),
                    "lower": float(rep["pct_lower"].iloc[0]) if len(rep) else float("nan"),
                    "upper": float(rep["pct_upper"].iloc[0]) if len(rep) else float("nan")})
    res = pd.DataFrame(out)
    res["difference"] = res["reproduced"] - res["published"]
    return res


ANNUAL_FILES = {"MR": "table1_mr_annual.csv", "XRAY": "table2_xray_annual.csv"}
PERIOD_FILES = {"MR": "table5_1_mr_periods.csv", "XRAY": "table5_2_xray_periods.csv"}
ANNUAL_COLUMNS = ["region", "year", "events", "persons", "population", "rate", "lower", "upper", "conf_level",
                  "method"]
PERIOD_COLUMNS = ["region", "period", "events", "persons", "population", "rate", "lower", "upper", "ratio",
                  "ratio_lower",
                  "ratio_upper", "pct_change", "pct_lower", "pct_upper", "reference_period", "conf_level", "method"]


def protect_rate_tables(annual: pd.DataFrame | None, periods: pd.DataFrame | None, *, min_cell: int = 5):
    """Disclosure control of tables 1–2 and 5.1–5.2 *together*, per modality.

    The tables are linked: the regions add up to Landsplan in every year and period, and a region's
    years add up to its pooled periods. Protecting each table alone would let a hidden year be recovered
    from its period minus the other years, so they are stacked into one table of cells and suppressed
    with all these relations (:func:`lumbarstats.disclosure.suppress`). A period change (ratio, percent
    change) is hidden with its period and wherever the reference period is hidden. Returns the two
    tables with the marker in hidden cells (``None`` stays ``None``).
    """
    from lumbarstats import disclosure

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


def write_rate_tables(out_dir, *, annual: pd.DataFrame | None = None, periods: pd.DataFrame | None = None,
                      min_cell: int = 5) -> list:
    """Write the long-format CSVs of tables 1–2 and 5.1–5.2 under ``out_dir/tables`` (atomically), with
    disclosure control applied to the tables together (:func:`protect_rate_tables`)."""
    from pathlib import Path

    from lumbarstats import io as _io

    def prepared(df, cols):
        if df is None:
            return None
        df = df.copy()
        for c in ("events", "population"):
            df[c] = df[c].round().astype("int64")
        return df[["modality"] + [c for c in cols if c in df.columns]]

    annual, periods = prepared(annual, ANNUAL_COLUMNS), prepared(periods, PERIOD_COLUMNS)
    annual, periods = protect_rate_tables(annual, periods, min_cell=min_cell)
    written = []
    tables = Path(out_dir) / "tables"
    for df, files in ((annual, ANNUAL_FILES), (periods, PERIOD_FILES)):
        if df is None:
            continue
        for modality, g in df.groupby("modality"):
            written.append(_io.write_csv(g.drop(columns="modality"), tables / files[modality]))
    return written
