"""Comparison with the published figures: the one place where reproduced cells meet the report's.

The published figures are read through :mod:`lumbarstats.reference` (copied into the package, so the
comparison runs on a research server without the repository). Every function returns one row per
published cell with ``published``, ``reproduced`` and ``difference`` (reproduced − published), and the
reproduced interval where there is one; :func:`comparison_table` gathers them from a reproduce output
folder into ``comparison.csv`` (one format for every table), :func:`summary_lines` summarises it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lumbarstats import dictionary, reference

__all__ = ["annual", "periods", "with_reference", "summary", "comparison_table", "summary_lines"]


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


def periods(reproduced: pd.DataFrame) -> pd.DataFrame:
    """Tables 5.1–5.2: published period rates and percent changes beside the reproduced ones."""
    pub = _published("table5_1_5_2_period_standardized")
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


def _register_scale(data: Path) -> float:
    meta = data / "metadata.json"
    if meta.exists():
        return float(json.loads(meta.read_text(encoding="utf-8")).get("scale", 1.0))
    return 1.0


def comparison_table(out: Path, data: Path) -> pd.DataFrame:
    """Every published cell beside the reproduced one: table, modality, region, cell, measure,
    published, reproduced, difference (plus interval where there is one)."""
    from lumbarstats import disclosure, rates

    def read(path):  # suppressed cells (the marker) compare as missing
        return pd.read_csv(path, na_values=[disclosure.SUPPRESSED_MARKER])

    tables = out / "tables"
    parts = []
    annual_parts = [read(tables / f).assign(modality=m) for m, f in rates.ANNUAL_FILES.items() if (tables / f).exists()]
    if annual_parts:
        parts.append(annual(pd.concat(annual_parts)))
    per = [read(tables / f).assign(modality=m) for m, f in rates.PERIOD_FILES.items() if (tables / f).exists()]
    if per:
        p = pd.concat(per)
        p["is_compare"] = p["period"] == "2021-2023"
        parts.append(periods(p))
    grp = [read(tables / f) for f in ("table5_3_mr_groups.csv", "table5_4_xray_groups.csv")
           if (tables / f).exists()]
    if grp:
        c = with_reference(pd.concat(grp), kind="groups")
        parts.append(_normalize(c, "table5_3_5_4"))
    if (tables / "table4_1_profiles.csv").exists():
        c = with_reference(read(tables / "table4_1_profiles.csv"), kind="profiles")
        parts.append(_normalize(c, "table4_1"))
    if (tables / "persons_vs_exams.csv").exists():
        c = with_reference(read(tables / "persons_vs_exams.csv"), kind="national",
                                          scale=_register_scale(data))
        parts.append(_normalize(c, "national_figures"))
    if not parts:
        return pd.DataFrame()
    cols = ["table", "modality", "region", "cell", "measure", "published", "reproduced", "difference"]
    res = pd.concat(parts, ignore_index=True)
    extra = [c for c in res.columns if c not in cols]
    return res[[c for c in cols if c in res.columns] + extra]


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


def summary_lines(comp: pd.DataFrame) -> list[str]:
    lines = []
    if comp.empty:
        return lines
    for table, g in comp.groupby("table", sort=False):
        rel = "relative_difference_pct" in g and g["relative_difference_pct"].notna().any()
        d = pd.to_numeric(g["relative_difference_pct" if rel else "difference"], errors="coerce").abs()
        unit = " %" if rel else ""
        if d.notna().any():
            lines.append(f"  {table:<18} {len(g):>4} cells  mean |diff| {d.mean():6.2f}{unit}  "
                         f"max |diff| {d.max():6.2f}{unit}")
    return lines
