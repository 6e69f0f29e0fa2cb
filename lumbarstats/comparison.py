"""Comparison with the published figures: the one place where reproduced cells meet the report's.

The published figures are read through :mod:`lumbarstats.reference` (copied into the package, so the
comparison runs on a research server without the repository): the report's tables 1, 2, 4.1 and 5.1–5.4,
and every other number the two quantitative seed documents quote that the register can produce
(``reference/quoted_figures.csv``: counts, persons, crude and standardized rates, shares, changes, the
profiles' shares, the payer split, Region Syddanmark's 2017–2021 changes), each with its source, section,
Danish quote and stated precision. Every function returns one row per published cell with ``published``,
``reproduced`` and ``difference`` (reproduced − published), and the reproduced interval where there is one;
:func:`comparison_table` gathers them from a reproduce output folder into ``comparison.csv`` (one format
for every figure), :func:`summary_lines` summarises it per group of figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lumbarstats import dictionary, reference

__all__ = ["annual", "periods", "with_reference", "summary", "quoted_figures", "quoted", "comparison_table",
           "summary_lines", "COLUMNS"]


def _published(name: str) -> pd.DataFrame:
    """A reference table with text kept as text (a code such as "NA" is not a missing value), its modality
    given as the toolkit's code (the report writes "Røntgen")."""
    ref = reference.load(name, keep_default_na=False, na_values=[""])
    if "modality" in ref.columns:
        ref["modality"] = _modality_codes(ref["modality"])
    return ref


def _modality_codes(values: pd.Series) -> pd.Series:
    """Modality codes (MR, XRAY) from codes or the report's names in either language."""
    return values.replace({"Røntgen": "XRAY", "X-ray": "XRAY", "MRI": "MR"})


def annual(reproduced: pd.DataFrame) -> pd.DataFrame:
    """Every published cell of tables 1–2 beside the reproduced one: table, region, year, published, reproduced, difference."""
    rows = []
    for modality, table in (("MR", "table1"), ("XRAY", "table2")):
        pub = reference.annual_table(modality).rename(columns={"rate": "published"})
        keep = ["region", "year", "rate", "lower", "upper"] + (["_hidden"] if "_hidden" in reproduced else [])
        rep = reproduced[reproduced["modality"] == modality][keep]
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


def periods(reproduced: pd.DataFrame) -> pd.DataFrame:
    """Tables 5.1–5.2: published period rates and percent changes beside the reproduced ones."""
    pub = _published("table5_1_5_2_period_standardized")
    out = []
    hidden = "_hidden" in reproduced
    for rec in pub.itertuples():
        rep = reproduced[(reproduced["modality"] == rec.modality) & (reproduced["region"] == rec.region)]
        row = rep[rep["period"] == rec.period]
        table = "table5_1" if rec.modality == "MR" else "table5_2"
        out.append({"table": table, "modality": rec.modality, "region": rec.region, "cell": rec.period,
                    "measure": "rate per 1,000", "published": rec.rate_per_1000,
                    "reproduced": float(row["rate"].iloc[0]) if len(row) else float("nan"),
                    "lower": float(row["lower"].iloc[0]) if len(row) else float("nan"),
                    "upper": float(row["upper"].iloc[0]) if len(row) else float("nan"),
                    **({"_hidden": bool(row["_hidden"].iloc[0]) if len(row) else False} if hidden else {})})
    changes = pub.drop_duplicates(["modality", "region"])
    for rec in changes.itertuples():
        rep = reproduced[(reproduced["modality"] == rec.modality) & (reproduced["region"] == rec.region)
                         & reproduced["is_compare"]]
        table = "table5_1" if rec.modality == "MR" else "table5_2"
        out.append({"table": table, "modality": rec.modality, "region": rec.region, "cell": "2014-16 -> 2021-23",
                    "measure": "% change", "published": rec.pct_change_2014_16_to_2021_23,
                    "reproduced": float(rep["pct_change"].iloc[0]) if len(rep) else float("nan"),
                    "lower": float(rep["pct_lower"].iloc[0]) if len(rep) else float("nan"),
                    "upper": float(rep["pct_upper"].iloc[0]) if len(rep) else float("nan"),
                    **({"_hidden": bool(rep["_hidden"].iloc[0]) if len(rep) else False} if hidden else {})})
    res = pd.DataFrame(out)
    res["difference"] = res["reproduced"] - res["published"]
    return res


def with_reference(table_df: pd.DataFrame, kind: str = "groups", *, scale: float = 1.0) -> pd.DataFrame:
    """Published figures beside reproduced ones, with the difference (reproduced − published).

    kind="groups": ``table_df`` from :func:`report_group_table` (Danish labels) against tables 5.3/5.4 —
    columns ``modality, variable, group, region, published, reproduced, difference, abs_difference``, one row
    per published cell (reproduced NaN where missing).
    kind="profiles": ``table_df`` from :func:`lumbarstats.profiles.table4_1_profiles` (national rows) against
    table 4.1 — per modality and published rank: the published profile and share, the rank and share of that
    profile in the reproduction, and whether the reproduced profile of that rank is the same.
    kind="national": ``table_df`` with ``figure, value, period`` (e.g.
    :func:`lumbarstats.profiles.persons_vs_examinations`) against national_figures.csv — ``relative_difference_pct``;
    counts (units ``exams``/``persons``) are divided by ``scale`` first (a synthetic register at
    ``scale=0.05`` holds 5 % of the country; see its metadata.json).
    Summaries: :func:`comparison_summary`.
    """
    if kind == "groups":
        ref = _published("table5_3_5_4_groups_by_region").rename(columns={"rate_per_1000": "published"})
        need = ["modality", "variable", "group", "region", "rate"]
        missing = [c for c in need if c not in table_df.columns]
        if missing:
            raise KeyError(f"compare_with_reference(kind='groups') needs columns {need}; missing {missing}")
        rep = table_df[need].rename(columns={"rate": "reproduced"}).assign(
            modality=lambda d: _modality_codes(d["modality"]))
        keys = ["modality", "variable", "group", "region"]
        out = ref[[*keys, "published", "standardized"]].merge(rep, on=keys, how="left")
        out["difference"] = out["reproduced"] - out["published"]
        out["abs_difference"] = out["difference"].abs()
        return out
    if kind == "profiles":
        ref = _published("table4_1_top_profiles").rename(columns={"share_of_use_pct": "published_share"})
        dims = ["sex", "age_group", "employment", "education", "cci"]
        need = ["modality", "rank", *dims, "share_pct"]
        missing = [c for c in need if c not in table_df.columns]
        if missing:
            raise KeyError(f"compare_with_reference(kind='profiles') needs columns {need}; missing {missing}")
        rep = table_df
        if "region" in rep.columns:
            rep = rep[rep["region"] == dictionary.load().whole_country_name]
        rep = rep[["modality", "rank", *dims, "share_pct"]].assign(modality=lambda d: _modality_codes(d["modality"]))
        by_profile = ref.merge(rep.rename(columns={"rank": "reproduced_rank", "share_pct": "reproduced_share"}),
                               on=["modality", *dims], how="left")
        same_rank = ref[["modality", "rank", *dims]].merge(rep[["modality", "rank", *dims]], on=["modality", "rank"],
                                                          how="left", suffixes=("", "_reproduced"))
        same = np.logical_and.reduce([same_rank[d] == same_rank[f"{d}_reproduced"] for d in dims])
        by_profile = by_profile.merge(same_rank[["modality", "rank"]].assign(same_profile_at_rank=same),
                                      on=["modality", "rank"], how="left")
        by_profile["difference"] = by_profile["reproduced_share"] - by_profile["published_share"]
        by_profile["abs_difference"] = by_profile["difference"].abs()
        return by_profile
    if kind == "national":
        ref = _published("national_figures").rename(columns={"value": "published"})
        need = ["figure", "value", "period"]
        missing = [c for c in need if c not in table_df.columns]
        if missing:
            raise KeyError(f"compare_with_reference(kind='national') needs columns {need}; missing {missing}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        rep = table_df[need].rename(columns={"value": "reproduced"}).assign(period=lambda d: d["period"].astype(str))
        ref = ref.assign(period=ref["period"].astype(str))
        out = rep.merge(ref[["figure", "period", "published", "unit"]], on=["figure", "period"], how="inner")
        counts = out["unit"].isin(["exams", "persons"])
        out["reproduced"] = np.where(counts, out["reproduced"] / scale, out["reproduced"])
        out["difference"] = out["reproduced"] - out["published"]
        out["relative_difference_pct"] = 100 * out["difference"] / out["published"]
        return out
    raise ValueError(f"kind must be 'groups', 'profiles' or 'national', got {kind!r}")


def summary(comparison: pd.DataFrame, kind: str = "groups", *, mad_limit: float = 1.5,
                       rho_limit: float = 0.95, share_limit: float = 1.5, relative_limit_pct: float = 5.0
                       ) -> pd.DataFrame:
    """Acceptance statistics of a :func:`with_reference` result, one row per modality (and overall).

    groups: ``n_cells, n_missing, mad`` (mean absolute difference per 1,000), ``max_abs_difference``,
    ``spearman`` (rank correlation over cells) and ``passes`` (mad <= ``mad_limit`` and spearman >= ``rho_limit``).
    profiles: ``n_same_profiles`` (published top profiles found in the reproduced top five),
    ``max_abs_difference`` of shares and ``passes`` (all five found, all within ``share_limit`` points).
    national: ``max_abs_relative_difference_pct`` and ``passes`` (within ``relative_limit_pct``).
    """
    from scipy import stats

    rows = []
    if kind == "groups":
        for mod, sub in [*comparison.groupby("modality", sort=False), ("all", comparison)]:
            ok = sub.dropna(subset=["reproduced", "published"])
            rho = stats.spearmanr(ok["published"], ok["reproduced"]).statistic if len(ok) > 2 else np.nan
            mad = ok["abs_difference"].mean() if len(ok) else np.nan
            rows.append({"modality": mod, "n_cells": len(sub), "n_missing": len(sub) - len(ok), "mad": mad,
                         "max_abs_difference": ok["abs_difference"].max() if len(ok) else np.nan,
                         "spearman": rho,
                         "passes": bool(len(ok) == len(sub) and mad <= mad_limit and rho >= rho_limit)})
    elif kind == "profiles":
        for mod, sub in comparison.groupby("modality", sort=False):
            found = sub["reproduced_rank"].le(5) & sub["reproduced_rank"].notna()
            maxdiff = sub["abs_difference"].max()
            rows.append({"modality": mod, "n_profiles": len(sub), "n_same_profiles": int(found.sum()),
                         "n_same_rank": int(sub["same_profile_at_rank"].fillna(False).astype(bool).sum()),
                         "max_abs_difference": maxdiff,
                         "passes": bool(found.all() and maxdiff <= share_limit)})
    elif kind == "national":
        rel = comparison["relative_difference_pct"].abs()
        rows.append({"n_figures": len(comparison), "max_abs_relative_difference_pct": rel.max(),
                     "passes": bool(len(comparison) > 0 and (rel <= relative_limit_pct).all())})
    else:
        raise ValueError(f"kind must be 'groups', 'profiles' or 'national', got {kind!r}")
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# comparison.csv: every published figure beside the reproduced one
# --------------------------------------------------------------------------------------------------
COLUMNS = ["figure_group", "table", "id", "source", "section", "quantity", "measure", "modality", "region",
           "period", "variable", "group", "cell", "published", "reproduced", "difference", "relative_difference",
           "lower", "upper", "published_rounding", "qualifier", "within_interval", "within_rounding",
           "reproduced_from", "implied_by_report", "note"]
"""Columns of ``comparison.csv`` (:func:`comparison_table`). ``difference`` = reproduced − published (in the
figure's unit; percentage points for shares and changes), ``relative_difference`` = 100 × difference /
|published| (percent of the published value). ``lower``/``upper``: the reproduced 95 % interval where there is
one. ``published_rounding``: the published precision (unit of the last stated digit, e.g. 0.1 per 1,000, 100
examinations, 10 percentage points for "ca. 30 pct." said of 34 %); ``qualifier``: ``rounded`` / ``about``
(the number is the value rounded to that unit), ``more than``, ``nearly`` (knap/næsten: at most the value and
above it minus one unit). ``within_interval``: the published value lies in the reproduced interval widened
by half the rounding unit (rates, shares and changes with an interval only); ``within_rounding``: the
reproduced value rounds to the published one (or satisfies its qualifier). ``reproduced_from``: the output
file (or the register function) the reproduced value comes from, and why a figure is not compared
(suppressed cell, not producible from the register). ``table``, ``cell`` and ``measure`` are the columns of
earlier versions, kept for their readers."""

MARKER_NOTE = "suppressed cell: not compared"

_WHOLE = "Landsplan"
_QUOTED = "quoted_figures"
_QUALIFIERS = ("rounded", "about", "more than", "nearly")
_COUNT_UNITS = ("exams", "persons")


def quoted_figures() -> pd.DataFrame:
    """The numbers the two seed documents quote (``reference/quoted_figures.csv``), checked: unique ids, a
    source, section and quote for every row, a known qualifier, a positive rounding unit."""
    ref = reference.load(_QUOTED, keep_default_na=False, na_values=[""], dtype={"period": str})
    problems = []
    if not ref["id"].is_unique:
        problems.append(f"duplicate ids {sorted(ref.loc[ref['id'].duplicated(), 'id'])}")
    for col in ("source", "section", "quote", "quantity", "figure_group", "value", "rounding"):
        bad = ref.loc[ref[col].isna(), "id"].tolist()
        if bad:
            problems.append(f"empty {col!r} in rows {bad}")
    bad = ref.loc[~ref["qualifier"].isin(_QUALIFIERS), "id"].tolist()
    if bad:
        problems.append(f"qualifier not one of {_QUALIFIERS} in rows {bad}")
    bad = ref.loc[~(pd.to_numeric(ref["rounding"], errors="coerce") > 0), "id"].tolist()
    if bad:
        problems.append(f"rounding must be a positive number in rows {bad}")
    if problems:
        raise ValueError(f"{reference.reference_path() / (_QUOTED + '.csv')}: " + "; ".join(problems))
    ref["modality"] = _modality_codes(ref["modality"].fillna(""))
    ref["period"] = ref["period"].fillna("")
    return ref


def _read(path: Path) -> pd.DataFrame:
    """A product file with suppressed cells (the disclosure marker) as missing values, and ``_hidden``
    marking the rows where any cell was suppressed."""
    from lumbarstats import disclosure

    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = pd.read_csv(path, na_values=[disclosure.SUPPRESSED_MARKER])
    df["_hidden"] = raw.eq(disclosure.SUPPRESSED_MARKER).any(axis=1).to_numpy()
    return df


def _first(df: pd.DataFrame, names) -> str | None:
    return next((c for c in names if c in df.columns), None)


def _years(period: str) -> tuple[int, int]:
    a, _, b = str(period).partition("-")
    return int(a), int(b or a)


def _change_interval(a: dict, b: dict, z: float = 1.959963984540054) -> tuple[float, float, float]:
    """Percent change from rate ``a`` to rate ``b`` with a log-normal 95 % interval whose log standard errors
    come from each rate's own interval (``(ln upper − ln lower) / 2z``), combined as for independent
    estimates: the two periods' examinations are disjoint, so their Poisson errors are independent; the
    overlap of their populations (person-years, fixed denominators) adds no sampling error. Own code: the
    published tables give only rates and intervals, not the strata a :func:`standardize.rate_ratio` needs."""
    pct = 100 * (b["value"] / a["value"] - 1)
    try:
        se = [(np.log(r["upper"]) - np.log(r["lower"])) / (2 * z) for r in (a, b)]
    except (KeyError, TypeError):
        return pct, np.nan, np.nan
    s = float(np.sqrt(se[0] ** 2 + se[1] ** 2))
    if not np.isfinite(s):
        return pct, np.nan, np.nan
    lr = np.log(b["value"] / a["value"])
    return pct, 100 * (np.exp(lr - z * s) - 1), 100 * (np.exp(lr + z * s) - 1)


def _wilson(count: float, total: float) -> tuple[float, float]:
    """Wilson 95 % interval of a share in percent (statsmodels). Examinations cluster within persons, so the
    interval is slightly too narrow for shares of examinations (most persons have one)."""
    from statsmodels.stats.proportion import proportion_confint

    if not (np.isfinite(count) and np.isfinite(total)) or total <= 0:
        return np.nan, np.nan
    lo, hi = proportion_confint(round(count), round(total), alpha=0.05, method="wilson")
    return 100 * float(lo), 100 * float(hi)


class _Products:
    """The reproduce output folder's product files, each read once; where a file is absent the value is
    computed from the register through the package's public functions (opened once)."""

    def __init__(self, out: Path, data: Path | None):
        self.out = Path(out)
        self.data = data
        self._cache: dict = {}
        self._reg = None

    def table(self, name: str) -> pd.DataFrame | None:
        if name not in self._cache:
            path = self.out / "tables" / name
            self._cache[name] = _read(path) if path.is_file() else None
        return self._cache[name]

    def bilag1(self) -> pd.DataFrame | None:
        """The per-region annual files of appendix 1, stacked with ``region`` (short name)."""
        if "bilag1" not in self._cache:
            parts = []
            for path in sorted((self.out / "tables" / "bilag1").glob("bilag1_*_annual.csv")):
                df = _read(path)
                if "region" not in df.columns:
                    slug = path.name[len("bilag1_"):-len("_annual.csv")]
                    df["region"] = dictionary.region_name(dictionary.resolve_region(slug))
                parts.append(df)
            self._cache["bilag1"] = pd.concat(parts, ignore_index=True) if parts else None
        return self._cache["bilag1"]

    def register(self):
        if self._reg is None:
            from lumbarstats.register import as_register

            self._reg = as_register(self.data)
        return self._reg

    def computed(self, key, fn) -> pd.DataFrame | None:
        """A register computation, once per key; None without a register (the figure is then reported as
        not in the output)."""
        if self.data is None:
            return None
        if key not in self._cache:
            self._cache[key] = fn(self.register())
        return self._cache[key]


def _value(df: pd.DataFrame, mask, col: str, source: str, lower: str | None = None, upper: str | None = None) -> dict | None:
    """The value of ``col`` in the one row of ``df[mask]`` (None when there is no such row)."""
    sel = df[mask]
    if sel.empty:
        return None
    r = sel.iloc[0]
    # a file's suppressed cell (the marker), or a register result's cell flagged ``suppress`` (the
    # register fallbacks are not protected, so their small cells are not shown here either)
    hidden = (bool(r.get("_hidden", False)) and pd.isna(r[col])) or bool(r.get("suppress", False))
    res = {"value": float(r[col]) if pd.notna(r[col]) and not hidden else np.nan, "from": source, "hidden": hidden}
    if lower and upper and lower in sel.columns and upper in sel.columns:
        res["lower"], res["upper"] = float(r[lower]), float(r[upper])
    return res


def _annual_count(p: _Products, modality: str, year: int) -> dict | None:
    t = p.table("fig4_1_annual_counts.csv")
    if t is not None:
        col = _first(t, ("examinations", "exams", "events", "value", "count"))
        mod = _modality_codes(t["modality"].astype(str)) if "modality" in t else None
        if col and mod is not None and "year" in t:
            mask = (mod == modality) & (t["year"].astype(str) == str(year))
            if "region" in t:
                mask &= t["region"] == _WHOLE
            res = _value(t, mask, col, "tables/fig4_1_annual_counts.csv")
            if res:
                return res
    from lumbarstats import rates

    t = p.table(rates.ANNUAL_FILES[modality])
    if t is not None and "events" in t:
        res = _value(t, (t["region"] == _WHOLE) & (t["year"] == int(year)), "events",
                     f"tables/{rates.ANNUAL_FILES[modality]} (Landsplan events)")
        if res:
            return res
    from lumbarstats import profiles

    counts = p.computed("annual_exam_counts", lambda reg: profiles.annual_exam_counts(reg))
    if counts is None:
        return None
    name = "MR exams (public)" if modality == "MR" else "X-ray exams (public)"
    return _value(counts, (counts["figure"] == name) & (counts["period"].astype(str) == str(year)), "value",
                  "register (profiles.annual_exam_counts)")


def _standardized_rate(p: _Products, region: str, modality: str, year: int) -> dict | None:
    from lumbarstats import rates

    if region == _WHOLE:
        t = p.table("fig4_2_national_standardized.csv")
        if t is not None and {"year", "modality", "rate"} <= set(t.columns):
            mask = (_modality_codes(t["modality"].astype(str)) == modality) & (t["year"].astype(str) == str(year))
            res = _value(t, mask, "rate", "tables/fig4_2_national_standardized.csv", "lower", "upper")
            if res:
                return res
    t = p.table(rates.ANNUAL_FILES[modality])
    if t is not None:
        res = _value(t, (t["region"] == region) & (t["year"] == int(year)), "rate",
                     f"tables/{rates.ANNUAL_FILES[modality]}", "lower", "upper")
        if res:
            return res
    b = p.bilag1()
    if b is not None and region != _WHOLE and "rate" in b:
        mask = (b["region"] == region) & (_modality_codes(b["modality"].astype(str)) == modality) \
            & (b["year"].astype(str) == str(year))
        res = _value(b, mask, "rate", "tables/bilag1", "lower", "upper")
        if res:
            return res
    t = p.computed(("annual_rates", modality), lambda reg: rates.annual_rates(reg, modality=modality))
    if t is None:
        return None
    return _value(t, (t["region"] == region) & (t["year"] == int(year)), "rate", "register (rates.annual_rates)",
                  "lower", "upper")


def _period_rate(p: _Products, region: str, modality: str, period: str) -> dict | None:
    from lumbarstats import rates

    t = p.table(rates.PERIOD_FILES[modality])
    if t is not None:
        res = _value(t, (t["region"] == region) & (t["period"] == period), "rate",
                     f"tables/{rates.PERIOD_FILES[modality]}", "lower", "upper")
        if res:
            return res
    t = p.computed(("period_rates", modality), lambda reg: rates.period_rates(reg, modality=modality))
    if t is None:
        return None
    return _value(t, (t["region"] == region) & (t["period"] == period), "rate", "register (rates.period_rates)",
                  "lower", "upper")


def _group_rate(p: _Products, modality: str, variable: str, group: str, region: str = _WHOLE) -> dict | None:
    from lumbarstats import groups

    t = p.table(groups.TABLE_FILES[modality])
    if t is not None:
        mask = (_modality_codes(t["modality"].astype(str)) == modality) & (t["variable"] == variable) \
            & (t["group"] == group) & (t["region"] == region)
        res = _value(t, mask, "rate", f"tables/{groups.TABLE_FILES[modality]}", "lower", "upper")
        if res:
            return res
    t = p.computed(("groups", modality, variable), lambda reg: groups.report_group_table(
        reg, modality=modality, variables=[variable]))
    if t is None:
        return None
    return _value(t, (t["variable"] == variable) & (t["group"] == group) & (t["region"] == region), "rate",
                  "register (groups.report_group_table)", "lower", "upper")


def _industry_extreme(p: _Products, modality: str, which: str) -> dict | None:
    """Lowest or highest national standardized rate over all 19 industries (figures 4.11–4.12 have no table
    file holding all industries, so always from the register): the 19-industry table of every region is
    protected as a whole (:func:`lumbarstats.groups.protect_group_table`, as the figures are) and only
    shown cells take part, so the comparison shows no rate the figures hide."""
    from lumbarstats import groups

    def protected(reg):
        full = groups.report_group_table(reg, modality=modality, variables=["industry"], industries="all")
        return groups.protect_group_table(full)

    t = p.table(groups.ALL_INDUSTRIES_FILES[modality])  # groups_step writes it protected as a whole
    source = f"tables/{groups.ALL_INDUSTRIES_FILES[modality]}"
    if t is None:
        t = p.computed(("industries", modality), protected)
        source = "register (groups.report_group_table, industries='all', protected)"
    if t is None:
        return None
    t = t.assign(rate=pd.to_numeric(t["rate"], errors="coerce"), lower=pd.to_numeric(t["lower"], errors="coerce"),
                 upper=pd.to_numeric(t["upper"], errors="coerce"))
    t = t[(t["variable"] == "industry") & (t["region"] == _WHOLE) & t["rate"].notna()]
    if t.empty:
        return None
    r = t.loc[t["rate"].idxmin() if which == "min" else t["rate"].idxmax()]
    return {"value": float(r["rate"]), "lower": float(r["lower"]), "upper": float(r["upper"]), "hidden": False,
            "from": source,
            "note": f"industry: {r['group']}"}


def _persons_vs_exams(p: _Products, figure: str, period: str) -> dict | None:
    t = p.table("persons_vs_exams.csv")
    if t is not None:
        res = _value(t, (t["figure"] == figure) & (t["period"].astype(str) == period), "value",
                     "tables/persons_vs_exams.csv")
        if res:
            return res
    from lumbarstats import profiles

    a, b = _years(period)
    t = p.computed(("persons_vs_exams", period), lambda reg: profiles.persons_vs_examinations(reg, years=(a, b)))
    if t is None:
        return None
    return _value(t, t["figure"] == figure, "value", "register (profiles.persons_vs_examinations)")


def _payer_share(p: _Products, payer: str, period: str) -> dict | None:
    t = p.table("box4_1_payer_split.csv")
    if t is not None and "payer" in t:
        res = _share_from_counts(t, payer, period, "tables/box4_1_payer_split.csv")
        if res:
            return res
    t = p.table("payer_shares.csv")
    source = "tables/payer_shares.csv"
    if t is None:
        from lumbarstats import groups

        t = p.computed(("payer_shares", period), lambda reg: groups.payer_shares(reg, years=_years(period),
                                                                               pooled=True))
        source = "register (groups.payer_shares)"
    if t is None:
        return None
    return _share_from_counts(t, payer, period, source)


def _share_from_counts(t: pd.DataFrame, payer: str, period: str, source: str) -> dict | None:
    """The share of ``payer`` in all examinations of ``period`` (whole country): the sum of the payer's
    ``share_pct`` (shares of the total) or, without it, its examinations over all examinations."""
    sel = t
    if "year" in t:
        sel = sel[sel["year"].astype(str) == period]
    if "region" in sel:
        sel = sel[sel["region"] == _WHOLE]
    if sel.empty:
        return None
    rows = sel[sel["payer"] == payer]
    if rows.empty:
        return None
    count_col = _first(sel, ("exams", "examinations", "events"))
    hidden = bool(rows["_hidden"].any()) if "_hidden" in rows else False
    if "suppress" in rows and rows["suppress"].astype(bool).any():  # a register result's small cell
        return {"value": np.nan, "from": source, "hidden": True}
    if "share_pct" in sel:
        share = float(rows["share_pct"].sum()) if rows["share_pct"].notna().all() else np.nan
        total = np.nan
        if count_col:
            ok = sel[sel[count_col].notna() & sel["share_pct"].gt(0)]
            if len(ok):
                total = float(ok[count_col].iloc[0] * 100 / ok["share_pct"].iloc[0])
    elif count_col:
        total = float(sel[count_col].sum()) if sel[count_col].notna().all() else np.nan
        share = 100 * float(rows[count_col].sum()) / total if total > 0 else np.nan
    else:
        return None
    count = float(rows[count_col].sum()) if count_col and rows[count_col].notna().all() else np.nan
    lo, hi = _wilson(count, total)
    return {"value": share, "lower": lo, "upper": hi, "from": source, "hidden": hidden and np.isnan(share)}


def _top5_share(p: _Products, modality: str, region: str) -> dict | None:
    t = p.table("table4_1_profiles.csv")
    source = "tables/table4_1_profiles.csv"
    if t is None:
        from lumbarstats import profiles

        t = p.computed("profiles", lambda reg: profiles.table4_1_profiles(reg))
        source = "register (profiles.table4_1_profiles)"
    if t is None:
        return None
    sel = t[(_modality_codes(t["modality"].astype(str)) == modality) & (t["region"] == region) & (t["rank"] <= 5)]
    if sel.empty:
        return None
    hidden = sel["_hidden"].any() if "_hidden" in sel else False
    if "suppress" in sel and sel["suppress"].astype(bool).any():
        hidden = True
    if hidden or sel["share_pct"].isna().any():
        return {"value": np.nan, "from": source, "hidden": bool(hidden)}
    share = float(sel["share_pct"].sum())
    lo = hi = np.nan
    if "exams" in sel and sel["exams"].notna().all() and (sel["share_pct"] > 0).any():
        r = sel[sel["share_pct"] > 0].iloc[0]
        lo, hi = _wilson(float(sel["exams"].sum()), float(r["exams"] * 100 / r["share_pct"]))
    return {"value": share, "lower": lo, "upper": hi, "from": source, "hidden": False}


def _population(p: _Products, region: str, year: int) -> dict | None:
    from lumbarstats import aggregate, rates

    t = p.table(rates.ANNUAL_FILES["MR"])
    if t is not None and "population" in t:
        res = _value(t, (t["region"] == region) & (t["year"] == int(year)), "population",
                     f"tables/{rates.ANNUAL_FILES['MR']} (population)")
        if res:
            return res
    b = p.bilag1()
    if b is not None and "population" in b:
        res = _value(b, (b["region"] == region) & (b["year"].astype(str) == str(year)), "population",
                     "tables/bilag1 (population)")
        if res:
            return res
    t = p.computed(("population", year), lambda reg: aggregate.population_counts(reg, by=["region"],
                                                                                 years=(year, year)))
    if t is None:
        return None
    names = t["region"].map(lambda c: dictionary.region_name(c))
    return _value(t, names == region, "population", "register (aggregate.population_counts)")


def _combine(a: dict | None, b: dict | None, fn, source_sep: str = " + ") -> dict | None:
    """A figure derived from two reproduced values (no interval); hidden if either is."""
    if a is None or b is None:
        return None
    hidden = a.get("hidden") or b.get("hidden")
    value = fn(a["value"], b["value"]) if not hidden else np.nan
    src = a["from"] if a["from"] == b["from"] else f"{a['from']}{source_sep}{b['from']}"
    return {"value": value, "from": src, "hidden": bool(hidden)}


def _resolve(p: _Products, row) -> dict | None:
    """The reproduced value of one quoted figure: ``value`` (+ ``lower``/``upper``), ``from`` (its source),
    ``hidden`` (a suppressed cell) and ``note``; None when the output has no such cell."""
    q, mod, region, period = row.quantity, row.modality, row.region, row.period
    if q == "not_producible":
        return {"value": np.nan, "from": f"not producible: {row.note}", "hidden": False}
    if q == "persons_vs_exams":
        return _persons_vs_exams(p, row.figure, period)
    if q == "annual_exams":
        return _annual_count(p, mod, int(period))
    if q == "annual_exams_change_pct":
        a, b = _years(period)
        return _combine(_annual_count(p, mod, a), _annual_count(p, mod, b), lambda x, y: 100 * (y / x - 1))
    if q == "standardized_rate":
        return _standardized_rate(p, region, mod, int(period))
    if q == "standardized_rate_change_pct":
        a, b = _years(period)
        ra, rb = _standardized_rate(p, region, mod, a), _standardized_rate(p, region, mod, b)
        if ra is None or rb is None:
            return None
        src = ra["from"] if ra["from"] == rb["from"] else f"{ra['from']} + {rb['from']}"
        if ra["hidden"] or rb["hidden"]:
            return {"value": np.nan, "from": src, "hidden": True}
        pct, lo, hi = _change_interval(ra, rb)
        return {"value": pct, "lower": lo, "upper": hi, "from": src, "hidden": False,
                "note": f"{a}: {ra['value']:.4g}, {b}: {rb['value']:.4g} per 1,000"}
    if q == "period_rate":
        return _period_rate(p, region, mod, period)
    if q == "group_rate":
        return _group_rate(p, mod, row.variable, row.group, region)
    if q in ("group_rate_ratio", "group_rate_difference_pct"):
        fn = (lambda x, y: x / y) if q == "group_rate_ratio" else (lambda x, y: 100 * (x / y - 1))
        return _combine(_group_rate(p, mod, row.variable, row.group, region),
                        _group_rate(p, mod, row.variable, row.group_ref, region), fn)
    if q in ("industry_rate_min", "industry_rate_max"):
        return _industry_extreme(p, mod, q[-3:])
    if q == "payer_share":
        return _payer_share(p, row.group, period)
    if q == "top5_share":
        return _top5_share(p, mod, region)
    if q == "possible_profiles":
        from lumbarstats import profiles

        return {"value": float(len(profiles.all_profiles())), "from": "code lists (profiles.all_profiles)",
                "hidden": False}
    if q == "population_ratio":
        y = int(period)
        return _combine(_population(p, row.group, y), _population(p, row.group_ref, y), lambda x, z: x / z)
    raise ValueError(f"quoted_figures.csv row {row.id!r}: unknown quantity {q!r}")


def quoted(out: Path, data: Path | None = None, *, scale: float | None = None) -> pd.DataFrame:
    """Every quoted figure of the seed documents (:func:`quoted_figures`) beside the reproduced value read
    from the reproduce output folder ``out`` (computed from the register ``data`` where a product file is
    absent), in the columns :data:`COLUMNS`. Counts (examinations, persons) are divided by the register's
    ``scale`` (its metadata.json; a synthetic register at scale 0.05 holds 5 % of the country)."""
    if scale is None:
        scale = _register_scale(Path(data)) if data is not None else 1.0
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    p = _Products(Path(out), Path(data) if data is not None else None)
    rows = []
    for row in quoted_figures().itertuples(index=False):
        res = _resolve(p, row)
        rec = {"figure_group": row.figure_group,
               "table": "national_figures" if isinstance(row.figure, str) and row.figure else "quoted_figures",
               "id": row.id, "source": row.source, "section": row.section, "quantity": row.quantity,
               "measure": row.unit, "modality": row.modality, "region": row.region, "period": row.period,
               "variable": row.variable, "group": row.group if not isinstance(row.group_ref, str)
               else f"{row.group} / {row.group_ref}", "published": float(row.value),
               "published_rounding": float(row.rounding), "qualifier": row.qualifier,
               "implied_by_report": row.implied_by_report, "note": row.note}
        rec["cell"] = " | ".join(str(v) for v in (row.period, rec["group"]) if isinstance(v, str) and v)
        if res is None:
            rec.update(reproduced=np.nan, reproduced_from="not in the output")
        elif res.get("hidden"):
            rec.update(reproduced=np.nan, reproduced_from=f"{res['from']}: {MARKER_NOTE}")
        elif not np.isfinite(res["value"]) and row.quantity != "not_producible":
            rec.update(reproduced=np.nan, reproduced_from=f"{res['from']}: no value in the output")
        else:
            value, lo, hi = res["value"], res.get("lower", np.nan), res.get("upper", np.nan)
            frm = res["from"]
            if row.unit in _COUNT_UNITS and scale != 1.0 and np.isfinite(value):
                value, lo, hi = value / scale, lo / scale, hi / scale
                frm = f"{frm} / scale {scale:g}"
            rec.update(reproduced=value, lower=lo, upper=hi, reproduced_from=frm)
            if res.get("note"):
                rec["note"] = "; ".join(n for n in (res["note"], rec["note"]) if isinstance(n, str) and n)
        rows.append(rec)
    return _finish(pd.DataFrame(rows))


def _finish(c: pd.DataFrame) -> pd.DataFrame:
    """Difference, relative difference and the two acceptance flags of a comparison in :data:`COLUMNS`."""
    c = c.copy()
    for col in COLUMNS:
        if col not in c.columns:
            c[col] = np.nan
    num = ["published", "reproduced", "lower", "upper", "published_rounding"]
    c[num] = c[num].apply(pd.to_numeric, errors="coerce")
    c["difference"] = c["reproduced"] - c["published"]
    c["relative_difference"] = 100 * c["difference"] / c["published"].abs().where(c["published"] != 0)
    pub, rep, half = c["published"], c["reproduced"], c["published_rounding"] / 2
    tol = 1e-9 * np.maximum(1.0, pub.abs())
    qual = c["qualifier"].fillna("rounded")
    rounded = qual.isin(["rounded", "about"])
    within = pd.Series(np.select(
        [rounded, qual == "more than", qual == "nearly"],
        [(rep - pub).abs() <= half + tol, rep > pub,
         (rep <= pub + tol) & (rep >= pub - c["published_rounding"] - tol)], default=False), index=c.index)
    c["within_rounding"] = within.astype(object).where(rep.notna(), None)
    has_ci = rounded & rep.notna() & c["lower"].notna() & c["upper"].notna()
    inside = (pub >= c["lower"] - half - tol) & (pub <= c["upper"] + half + tol)
    c["within_interval"] = inside.astype(object).where(has_ci, None)
    extra = [col for col in c.columns if col not in COLUMNS and not col.startswith("_")]
    return c[COLUMNS + extra]


def _register_scale(data: Path) -> float:
    meta = Path(data) / "metadata.json"
    if meta.exists():
        return float(json.loads(meta.read_text(encoding="utf-8")).get("scale", 1.0))
    return 1.0


_TABLE_SOURCES = {
    "table1": ("table 1", "000_459e597f7e249e02.txt", "3.1.1 (tabel 1; report bilag 1)"),
    "table2": ("table 2", "000_459e597f7e249e02.txt", "3.1.1 (tabel 2; report bilag 1)"),
    "table5_1": ("table 5.1", "004_1857f6ce72a54c53.txt", "5.2 (figur 5.3, tabel 5.1)"),
    "table5_2": ("table 5.2", "004_1857f6ce72a54c53.txt", "5.2 (figur 5.4, tabel 5.2)"),
    "table5_3": ("table 5.3", "004_1857f6ce72a54c53.txt", "5.3 (tabel 5.3)"),
    "table5_4": ("table 5.4", "004_1857f6ce72a54c53.txt", "5.3 (tabel 5.4)"),
    "table4_1": ("table 4.1", "004_1857f6ce72a54c53.txt", "4.3 (tabel 4.1); 5.4 (tabel 5.5)"),
}


def _tables(out: Path) -> list[pd.DataFrame]:
    """Tables 1, 2, 5.1–5.4 and 4.1 of the output folder beside the published cells (absent files: no rows)."""
    from lumbarstats import groups, rates

    tables = Path(out) / "tables"
    parts = []
    ann = [_read(tables / f).assign(modality=m) for m, f in rates.ANNUAL_FILES.items() if (tables / f).exists()]
    if ann:
        c = annual(pd.concat(ann, ignore_index=True))
        c["source_file"] = c["modality"].map(lambda m: f"tables/{rates.ANNUAL_FILES[m]}")
        c = c.assign(id=[f"{t}_{r}_{y}" for t, r, y in zip(c["table"], c["region"], c["year"], strict=True)],
                     period=c["year"].astype(str), quantity="standardized_rate", published_rounding=0.1)
        parts.append(c)
    per = [_read(tables / f).assign(modality=m) for m, f in rates.PERIOD_FILES.items() if (tables / f).exists()]
    if per:
        p = pd.concat(per, ignore_index=True)
        p["is_compare"] = p["period"] == "2021-2023"
        c = periods(p)
        change = c["measure"] == "% change"
        c["source_file"] = c["modality"].map(lambda m: f"tables/{rates.PERIOD_FILES[m]}")
        c = c.assign(period=c["cell"].str.replace(" -> ", "->"),
                     quantity=np.where(change, "period_rate_change_pct", "period_rate"),
                     published_rounding=np.where(change, 1.0, 0.1),
                     id=[f"{t}_{r}_{'change' if ch else per_}" for t, r, per_, ch in
                         zip(c["table"], c["region"], c["cell"], change, strict=True)])
        parts.append(c)
    grp = {m: _read(tables / f) for m, f in groups.TABLE_FILES.items() if (tables / f).exists()}
    if grp:
        full = pd.concat(grp.values(), ignore_index=True)
        c = with_reference(full, kind="groups")
        keys = ["modality", "variable", "group", "region"]
        extra = full.assign(modality=_modality_codes(full["modality"].astype(str)))[[*keys, "lower", "upper",
                                                                                      "_hidden"]]
        c = c.merge(extra.drop_duplicates(keys), on=keys, how="left")
        c["_hidden"] = c["_hidden"].eq(True)
        c = c[c["modality"].isin(grp)]  # a modality whose file is absent is not compared
        c["table"] = np.where(c["modality"] == "MR", "table5_3", "table5_4")
        c["source_file"] = c["modality"].map(lambda m: f"tables/{groups.TABLE_FILES[m]}")
        c = c.assign(cell=c["variable"] + " | " + c["group"], period="2021-2023", measure="rate per 1,000",
                     quantity=np.where(c["standardized"] == "yes", "standardized_group_rate", "crude_group_rate"),
                     published_rounding=0.1,
                     id=[f"{t}_{v}_{g}_{r}" for t, v, g, r in
                         zip(c["table"], c["variable"], c["group"], c["region"], strict=True)])
        parts.append(c)
    if (tables / "table4_1_profiles.csv").exists():
        prof = _read(tables / "table4_1_profiles.csv")
        c = with_reference(prof, kind="profiles")
        dims = ["sex", "age_group", "employment", "education", "cci"]
        nat = prof[prof["region"] == dictionary.load().whole_country_name].assign(
            modality=lambda d: _modality_codes(d["modality"].astype(str)))
        nat = nat[["modality", *dims, "exams", "share_pct", "_hidden"]].drop_duplicates(["modality", *dims])
        c = c.merge(nat, on=["modality", *dims], how="left")
        ci = [_wilson(e, e * 100 / s) if pd.notna(e) and pd.notna(s) and s > 0 else (np.nan, np.nan)
              for e, s in zip(c["exams"], c["share_pct"], strict=True)]
        c["lower"], c["upper"] = [x[0] for x in ci], [x[1] for x in ci]
        c["_hidden"] = c["_hidden"].eq(True) & c["reproduced_share"].isna()
        c = c.drop(columns=["exams", "share_pct"])
        c = _normalize(c, "table4_1")
        c = c.assign(region=_WHOLE, period="2021-2023", measure="share of use (%)", quantity="profile_share",
                     published_rounding=0.1, source_file="tables/table4_1_profiles.csv",
                     id=[f"table4_1_{m}_{r}" for m, r in zip(c["modality"], c["rank"], strict=True)],
                     note=[f"reproduced rank {int(r)}" if pd.notna(r) else "profile not among the reproduced"
                           for r in c["reproduced_rank"]])
        c["cell"] = "rank " + c["rank"].astype(str)
        parts.append(c)
    res = []
    for c in parts:
        c = c.copy()
        c["figure_group"] = c["table"].map(lambda t: _TABLE_SOURCES[t][0])
        c["source"] = c["table"].map(lambda t: _TABLE_SOURCES[t][1])
        c["section"] = c["table"].map(lambda t: _TABLE_SOURCES[t][2])
        c["qualifier"] = "rounded"
        hidden = c["_hidden"].eq(True) if "_hidden" in c else pd.Series(False, index=c.index)
        c["reproduced_from"] = np.where(hidden & c["reproduced"].isna(), c["source_file"] + ": " + MARKER_NOTE,
                                        np.where(c["reproduced"].isna(), c["source_file"] + ": no value in the output",
                                                 c["source_file"]))
        res.append(c.drop(columns=[x for x in ("source_file", "_hidden", "is_compare") if x in c.columns]))
    return res


def comparison_table(out: Path, data: Path | None, *, scale: float | None = None) -> pd.DataFrame:
    """Every published figure beside the reproduced one (``comparison.csv``): the cells of tables 1, 2,
    5.1–5.4 and 4.1 found in the output folder ``out``, and every number quoted in the two seed documents
    (:func:`quoted`, computed from the register ``data`` where a product file is absent), in the columns
    :data:`COLUMNS` (+ the tables' own columns, e.g. ``variable``, ``rank``, ``standardized``).
    Counts are divided by the register's scale (``scale``, default its metadata.json); suppressed cells are
    not compared (``reproduced_from`` says so). Without a register (``data=None``) the figures no product
    file holds are reported as not in the output.
    """
    parts = [_finish(c) for c in _tables(out)]
    parts.append(quoted(out, data, scale=scale))
    return pd.concat(parts, ignore_index=True)


def _normalize(c: pd.DataFrame, table: str) -> pd.DataFrame:
    c = c.copy()
    c.insert(0, "table", table)
    rename = {"published_value": "published", "reproduced_value": "reproduced", "reference": "published",
              "published_share": "published", "reproduced_share": "reproduced",
              "value": "reproduced"}
    c = c.rename(columns={k: v for k, v in rename.items() if k in c.columns and v not in c.columns})
    if "cell" not in c.columns:
        keys = [k for k in ("variable", "group", "figure", "rank", "period") if k in c.columns]
        c["cell"] = c[keys].astype(str).agg(" | ".join, axis=1) if keys else ""
    if "difference" not in c.columns and {"published", "reproduced"} <= set(c.columns):
        c["difference"] = c["reproduced"] - c["published"]
    return c


def _flag_count(s: pd.Series) -> tuple[int, int]:
    known = s.dropna()
    return int(known.astype(bool).sum()), len(known)


def summary_lines(comp: pd.DataFrame) -> list[str]:
    """One line per group of figures of a :func:`comparison_table` result: how many published numbers, how
    many compared, how many within the reproduced interval and within the published rounding, and the
    largest deviation (relative to the published value, with its id)."""
    lines = []
    if comp.empty:
        return lines
    key = "figure_group" if "figure_group" in comp.columns else "table"
    for name, g in comp.groupby(key, sort=False):
        compared = g["reproduced"].notna()
        parts = [f"  {name:<26} {len(g):>4} numbers {int(compared.sum()):>4} compared"]
        if "within_interval" in g:
            k, n = _flag_count(g["within_interval"])
            parts.append(f"in interval {k:>3}/{n:<3}" if n else "in interval   –    ")
        if "within_rounding" in g:
            k, n = _flag_count(g["within_rounding"])
            parts.append(f"in rounding {k:>3}/{n:<3}" if n else "in rounding   –    ")
        # a deviation is measured from stated values, not from bounds ("more than 30 pct.")
        point = g["qualifier"].isin(["rounded", "about"]) if "qualifier" in g else pd.Series(True, index=g.index)
        rel = pd.to_numeric(g.get("relative_difference", pd.Series(np.nan, index=g.index)), errors="coerce").abs()
        rel = rel.where(point)
        diff = pd.to_numeric(g["difference"], errors="coerce").abs().where(point)
        if rel.notna().any():
            i = rel.idxmax()
            ident = g.at[i, "id"] if "id" in g else g.at[i, "cell"]
            parts.append(f"largest {g.at[i, 'difference']:+.4g} ({rel[i]:.1f} %) at {ident}")
        elif diff.notna().any():
            i = diff.idxmax()
            parts.append(f"largest {g.at[i, 'difference']:+.4g} at {g.at[i, 'cell']}")
        hidden = g["reproduced_from"].astype(str).str.contains(MARKER_NOTE, regex=False).sum() \
            if "reproduced_from" in g else 0
        if hidden:
            parts.append(f"{hidden} suppressed")
        lines.append("  ".join(parts))
    return lines
