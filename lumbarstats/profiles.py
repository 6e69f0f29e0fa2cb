"""Patient profiles (report section 4.3, table 4.1, section 5.4, figures 5.5–5.6) and persons versus
examinations (report section 4.1).

**Profiles.** A profile is a combination of sex (2) x age group (``<35``, ``35-65``, ``>65``; 3) x employment
(5 profile groups, ``profile_group`` of codelists/employment.csv) x education (3 profile groups,
``profile_group`` of codelists/education.csv) x CCI category (4) = 360 profiles. Each profile's share of
the modality's use is computed nationally and per region, and the most frequent profiles are ranked.

* ``count="exams"`` (default): shares of *examinations* — the report's table heading reads "Andel af
  forbruget" (share of use), and an examination is attributed to the covariates of its year like every
  rate in the report. ``count="persons"``: shares of *patients* ("patientgrundlaget"): each person counts
  once, in the profile (and region) of his or her first examination in the period, so the shares still sum
  to 100 %. With about 1.1 examinations per person (report 4.1) the two differ little.
* Persons whose education is ``unknown`` have no profile (the report's 360 profiles have three education
  groups only). ``denominator="profiled"`` (default) gives shares of the profiled use, so that the 360 shares
  sum to 100 % as in the report's "out of 360 possible profiles"; ``denominator="all"`` divides by all use
  including the unprofiled.

Output columns use the report's Danish labels (table 4.1): sex ``label_da``, age group, employment and
education profile ``label_da``, CCI ``label_da_profile`` (``Middelsvær sygelighed``).

**Persons versus examinations.** :func:`persons_vs_examinations` gives the section 4.1 figures: distinct
persons per modality, examinations per person, and the persons examined with both MR and X-ray within the
same calendar year (a sum over years of such persons), their examinations and share of all examinations.

Disclosure: every output has ``persons`` (distinct persons behind the cell) and ``suppress`` from
:func:`lumbarstats.disclosure.flag_small_cells` via :func:`lumbarstats.groups.flag_suppress`.

Reference: Benchmarkingenheden, Indenrigs- og Sundhedsministeriet (2024). *Billeddiagnostik af
lænderyggen*, sections 4.1, 4.3 and 5.4, table 4.1 and figures 5.5–5.6.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lumbarstats import dictionary
from lumbarstats.groups import (
    _normalize_regions,
    _region_name_map,
    _region_order,
    _year_range,
    attributed_examinations,
    flag_suppress,
    modality_label,
)

__all__ = [
    "PROFILE_DIMENSIONS",
    "all_profiles",
    "annual_exam_counts",
    "persons_vs_examinations",
    "plot_profile_shares",
    "profile_cells",
    "profile_coverage",
    "profile_shares",
    "table4_1_profiles",
]

#: profile dimension column -> (code list, Danish label column, output column of table 4.1)
PROFILE_DIMENSIONS: dict[str, tuple[str, str, str]] = {
    "sex": ("sex", "label_da", "sex"),
    "age_group_profile": ("age_group_profile", "label_da", "age_group"),
    "employment_profile": ("employment_profile", "label_da", "employment"),
    "education_profile": ("education_profile", "label_da", "education"),
    "cci_category": ("cci_category", "label_da_profile", "cci"),
}
DIMS = list(PROFILE_DIMENSIONS)


def all_profiles() -> pd.DataFrame:
    """The 360 possible profiles (codes), in code-list order."""
    dd = dictionary.load()
    codes = []
    for cl_name, _, _ in PROFILE_DIMENSIONS.values():
        cl = dd.codelist(cl_name)
        if "order" in cl.columns:
            cl = cl.sort_values("order", kind="stable")
        elif "min_age" in cl.columns:
            cl = cl.sort_values("min_age", kind="stable")
        codes.append(list(cl["code"]))
    return pd.DataFrame(list(itertools.product(*codes)), columns=DIMS)


def _is_missing(s: pd.Series) -> pd.Series:
    return s.isna() | s.astype(str).isin(["", "nan", "None", "<NA>"])


def profile_shares(cells: pd.DataFrame, *, count: str = "exams", denominator: str = "profiled",
                   by: Sequence[str] = ("region",)) -> pd.DataFrame:
    """Share of use of each of the 360 profiles, within each ``by`` cell.

    Parameters
    ----------
    cells
        ``by…``, the five profile columns (:data:`PROFILE_DIMENSIONS`; a missing value means "no profile",
        e.g. unknown education), ``exams`` and ``persons`` — and for ``count="persons"`` the column
        ``patients`` (persons counted once, in the profile of their first examination).
    count
        ``"exams"`` (share of examinations) or ``"persons"`` (share of patients, column ``patients``).
    denominator
        ``"profiled"``: the profiled use (the 360 shares sum to 100); ``"all"``: all use incl. unprofiled.

    Returns
    -------
    One row per ``by`` cell and profile (all 360, zeros included): ``by…, <profile columns>, exams, persons,
    patients, share_pct, rank`` (rank 1 = largest share; ties broken by code-list order).
    """
    if count not in ("exams", "persons"):
        raise ValueError(f"count must be 'exams' or 'persons', got {count!r}")
    if denominator not in ("profiled", "all"):
        raise ValueError(f"denominator must be 'profiled' or 'all', got {denominator!r}")
    by = list(by)
    value = "exams" if count == "exams" else "patients"
    need = [*by, *DIMS, value]
    missing = [c for c in need if c not in cells.columns]
    if missing:
        raise KeyError(f"profile_shares: cells lack columns {missing} (count={count!r}); columns are "
                       f"{list(cells.columns)}")
    data = cells.copy()
    for c in ("exams", "persons", "patients"):
        if c not in data.columns:
            data[c] = np.nan
    if (data[value] < 0).any():
        raise ValueError(f"column {value!r} has negative counts")
    no_by = not by
    if no_by:
        by = ["_all"]
        data["_all"] = 0
    unprofiled = np.logical_or.reduce([_is_missing(data[d]) for d in DIMS])
    grid = all_profiles()
    grid["_order"] = np.arange(len(grid))
    for d in DIMS:
        data[d] = data[d].astype(str)
        bad = sorted(set(data.loc[~unprofiled, d]) - set(grid[d]))
        if bad:
            raise ValueError(f"profile column {d!r} has codes {bad} not in its code list ({sorted(set(grid[d]))})")
    totals_all = data.groupby(by, observed=True)[value].sum().rename("_all_use").reset_index()
    prof = data[~unprofiled]
    full = data[by].drop_duplicates().merge(grid, how="cross")
    agg = prof.groupby([*by, *DIMS], observed=True, as_index=False)[["exams", "persons", "patients"]].sum(min_count=1)
    out = full.merge(agg, on=[*by, *DIMS], how="left")
    out[["exams", "persons", "patients"]] = out[["exams", "persons", "patients"]].fillna(0)
    if denominator == "profiled":
        denom = out.groupby(by, observed=True)[value].transform("sum")
    else:
        denom = out[by].merge(totals_all, on=by, how="left")["_all_use"].set_axis(out.index)
    out["share_pct"] = 100 * out[value] / denom.where(denom > 0)
    out = out.sort_values([*by, "share_pct", "_order"], ascending=[True] * len(by) + [False, True],
                          na_position="last", kind="stable")
    out["rank"] = out.groupby(by, observed=True).cumcount() + 1
    out = out.drop(columns=["_order"] + (["_all"] if no_by else []))
    return out.reset_index(drop=True)


def _profile_columns(exams: pd.DataFrame) -> pd.DataFrame:
    dd = dictionary.load()
    exams = exams.copy()
    exams["employment_profile"] = dd.profile_group("employment", exams["employment"].to_numpy()).to_numpy()
    exams["education_profile"] = dd.profile_group("education", exams["education"].to_numpy()).to_numpy()
    return exams


def profile_cells(exams: pd.DataFrame, *, modality: str) -> pd.DataFrame:
    """Profile counts per region from :func:`lumbarstats.groups.attributed_examinations` rows.

    ``exams``: examinations in the profile and region (covariates of the examination's year);
    ``persons``: distinct persons with at least one examination in the cell (for disclosure);
    ``patients``: persons counted once, in the profile and region of their first examination in the rows
    given (earliest date; ties by row order). Unprofiled rows (unknown education) keep missing profile codes.
    """
    need = ["person_id", "date", "modality", "region", "sex", "age_group_profile", "employment", "education",
            "cci_category"]
    missing = [c for c in need if c not in exams.columns]
    if missing:
        raise KeyError(f"profile_cells: exams lack columns {missing}")
    df = _profile_columns(exams[exams["modality"] == modality])
    df["region"] = df["region"].astype(int).map(_region_name_map())
    keys = ["region", *DIMS]
    filled = df.assign(**{d: df[d].astype(object).where(~_is_missing(df[d]), "__none__") for d in DIMS})
    ex = filled.groupby(keys).agg(exams=("person_id", "size"), persons=("person_id", "nunique")).reset_index()
    first = filled.sort_values(["person_id", "date"], kind="stable").drop_duplicates("person_id")
    pat = first.groupby(keys).size().rename("patients").reset_index()
    out = ex.merge(pat, on=keys, how="outer")
    out[["exams", "persons", "patients"]] = out[["exams", "persons", "patients"]].fillna(0).astype(int)
    for d in DIMS:
        out[d] = out[d].where(out[d] != "__none__", None)
    # national rows: exams and patients add up over regions; persons need the person-level data
    nat_ex = filled.groupby(DIMS).agg(exams=("person_id", "size"), persons=("person_id", "nunique")).reset_index()
    nat_pat = first.groupby(DIMS).size().rename("patients").reset_index()
    nat = nat_ex.merge(nat_pat, on=DIMS, how="outer")
    nat[["exams", "persons", "patients"]] = nat[["exams", "persons", "patients"]].fillna(0).astype(int)
    for d in DIMS:
        nat[d] = nat[d].where(nat[d] != "__none__", None)
    nat["region"] = dictionary.load().whole_country_name
    return pd.concat([out, nat[out.columns]], ignore_index=True)


def _label_profiles(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    dd = dictionary.load()
    out = df.copy()
    for dim, (cl_name, col_da, out_col) in PROFILE_DIMENSIONS.items():
        labels = dd.labels(cl_name, "en") if lang == "en" else dd.labels(cl_name, "da", column=col_da)
        out[out_col] = out[dim].map(labels)
    return out


def table4_1_profiles(data_dir=None, *, modalities: Sequence[str] = ("MR", "XRAY"), years=(2021, 2023),
                      count: str = "exams", denominator: str = "profiled", n: int = 5, regions="all",
                      lang: str = "da", min_cell: int = 5, exams: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 4.1 (national top ``n`` profiles) and figures 5.5–5.6 (their shares in each region).

    Columns ``modality, region, rank, sex, age_group, employment, education, cci, share_pct, exams, persons,
    patients, count, denominator, suppress`` with the report's Danish labels. ``region`` ``Landsplan`` rows are
    table 4.1; region rows give, for the national top ``n`` profiles (``rank`` = national rank), the profile's
    share of the region's use. Pass ``exams`` (from :func:`lumbarstats.groups.attributed_examinations`) to
    reuse already-read data instead of ``data_dir``.
    """
    if exams is None:
        if data_dir is None:
            raise ValueError("pass data_dir or exams")
        exams = attributed_examinations(data_dir, years=years, modalities=list(modalities))
    dd = dictionary.load()
    whole = dd.whole_country_name
    keep_regions = _normalize_regions(regions)
    parts = []
    for modality in modalities:
        cells = profile_cells(exams, modality=modality)
        shares = profile_shares(cells, count=count, denominator=denominator, by=["region"])
        top = shares[(shares["region"] == whole) & (shares["rank"] <= n)][[*DIMS, "rank"]]
        sel = shares.drop(columns="rank").merge(top, on=DIMS, how="inner")
        if keep_regions is not None:
            sel = sel[sel["region"].isin(keep_regions)]
        sel = _label_profiles(sel, lang)
        sel["modality"] = modality  # the code in data (MR, XRAY); the report's name beside it for display
        sel["modality_label"] = modality_label(modality, lang)
        sel["_m"] = len(parts)
        parts.append(sel)
    out = pd.concat(parts, ignore_index=True)
    out["count"] = count
    out["denominator"] = denominator
    out["suppress"] = flag_suppress(out, min_cell=min_cell)
    out["_r"] = out["region"].map(_region_order())
    out = out.sort_values(["_m", "_r", "rank"], kind="stable").drop(columns=["_m", "_r"])
    cols = ["modality", "region", "rank", "sex", "age_group", "employment", "education", "cci", "share_pct",
            "exams", "persons", "patients", "count", "denominator", "modality_label", "suppress"]
    return out[cols].reset_index(drop=True)


def protect_profile_table(table: pd.DataFrame, *, min_cell: int = 5, policy=None) -> pd.DataFrame:
    """Disclosure control of a :func:`table4_1_profiles` result: a profile's region rows add up to its
    ``Landsplan`` row, so the table is suppressed with that relation; a hidden cell's share is hidden with
    it (``exams / share_pct`` is the region's total). Returns the table with the marker in hidden cells."""
    from lumbarstats import disclosure

    totals = {"region": dictionary.load().whole_country_name}
    if not (table["region"] == totals["region"]).any():
        totals = None
    counts = [c for c in ("exams", "persons", "patients") if c in table.columns]
    return disclosure.protect(table, min_cell=min_cell, keys=["modality", "region", "rank"], count_columns=counts,
                              value_columns=["share_pct"], rule_column="persons", group_totals=totals,
                              policy=policy).reset_index(drop=True)


def profile_coverage(table: pd.DataFrame) -> pd.DataFrame:
    """Share of use covered together by the profiles of a :func:`table4_1_profiles` result, per modality
    and region (report: about 30 % for MR, 34 % for X-ray nationally). Columns ``modality, region,
    n_profiles, share_pct, persons``. Pass the *protected* table (:func:`protect_profile_table`): where a
    profile's share is hidden, the coverage is hidden too (it would give the hidden share back)."""
    from lumbarstats import disclosure

    need = ["modality", "region", "share_pct", "persons"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise KeyError(f"profile_coverage needs columns {need}; missing {missing}")
    marker = disclosure.SUPPRESSED_MARKER
    hidden = table["share_pct"].astype(str).eq(marker) | table["share_pct"].isna()
    if "suppress" in table.columns:
        hidden |= table["suppress"].astype(bool)
    data = table.assign(_hidden=hidden, share_pct=pd.to_numeric(table["share_pct"], errors="coerce"),
                        persons=pd.to_numeric(table["persons"], errors="coerce"))
    out = data.groupby(["modality", "region"], sort=False).agg(
        n_profiles=("share_pct", "size"), share_pct=("share_pct", "sum"), persons=("persons", "sum"),
        _hidden=("_hidden", "any")).reset_index()
    out[["share_pct", "persons"]] = out[["share_pct", "persons"]].astype(object)
    out.loc[out["_hidden"], ["share_pct", "persons"]] = marker
    return out.drop(columns="_hidden")


# --------------------------------------------------------------------------------------------------
# persons versus examinations (report 4.1)
# --------------------------------------------------------------------------------------------------
def persons_vs_examinations(data_dir=None, *, years=(2021, 2023), exams: pd.DataFrame | None = None,
                            min_cell: int = 5) -> pd.DataFrame:
    """Persons versus examinations of lumbar MR and X-ray (public, core codes) over ``years`` (report 4.1).

    Returns ``figure, value, unit, period, persons, suppress`` with figure names as in national_figures.csv:
    ``MR exams (public)``, ``X-ray exams (public)``, ``All lumbar imaging exams (public)``, ``Distinct persons
    with MR``, ``Distinct persons with X-ray``, ``Exams per MR-examined person``, ``Exams per X-ray-examined
    person``, ``Persons with both MR and X-ray in the same year`` (sum over the years of the persons with at
    least one MR and one X-ray in that calendar year — a person doing so in two years counts twice),
    ``Exams among persons with both modalities in same year`` (their MR and X-ray examinations in those
    years) and ``Share of all exams among persons with both modalities`` (percent of all MR + X-ray exams).
    """
    if exams is None:
        if data_dir is None:
            raise ValueError("pass data_dir or exams")
        exams = attributed_examinations(data_dir, years=years, modalities=["MR", "XRAY"])
    need = ["person_id", "year", "modality"]
    missing = [c for c in need if c not in exams.columns]
    if missing:
        raise KeyError(f"persons_vs_examinations: exams lack columns {missing}")
    a, b = _year_range(years)
    df = exams[(exams["year"] >= a) & (exams["year"] <= b) & exams["modality"].isin(["MR", "XRAY"])]
    period = f"{a}-{b}"
    n_mr = int((df["modality"] == "MR").sum())
    n_xr = int((df["modality"] == "XRAY").sum())
    p_mr = int(df.loc[df["modality"] == "MR", "person_id"].nunique())
    p_xr = int(df.loc[df["modality"] == "XRAY", "person_id"].nunique())
    per_py = df.groupby(["person_id", "year"])["modality"].agg(["nunique", "size"])
    both = per_py[per_py["nunique"] == 2]
    n_both = int(len(both))
    exams_both = int(both["size"].sum())
    total = n_mr + n_xr
    p_all = int(df["person_id"].nunique())
    rows = [
        ("MR exams (public)", n_mr, "exams", p_mr),
        ("X-ray exams (public)", n_xr, "exams", p_xr),
        ("All lumbar imaging exams (public)", total, "exams", p_all),
        ("Distinct persons with MR", p_mr, "persons", p_mr),
        ("Distinct persons with X-ray", p_xr, "persons", p_xr),
        ("Exams per MR-examined person", n_mr / p_mr if p_mr else np.nan, "ratio", p_mr),
        ("Exams per X-ray-examined person", n_xr / p_xr if p_xr else np.nan, "ratio", p_xr),
        ("Persons with both MR and X-ray in the same year", n_both, "persons",
         int(both.index.get_level_values(0).nunique())),
        ("Exams among persons with both modalities in same year", exams_both, "exams",
         int(both.index.get_level_values(0).nunique())),
        ("Share of all exams among persons with both modalities", 100 * exams_both / total if total else np.nan,
         "pct", int(both.index.get_level_values(0).nunique())),
    ]
    out = pd.DataFrame(rows, columns=["figure", "value", "unit", "persons"])
    out["period"] = period
    out["suppress"] = flag_suppress(out, min_cell=min_cell)
    return out[["figure", "value", "unit", "period", "persons", "suppress"]]


def annual_exam_counts(data_dir=None, *, years=None, exams: pd.DataFrame | None = None,
                       min_cell: int = 5) -> pd.DataFrame:
    """Public MR and X-ray examinations per year (report figure 4.1) as ``figure, value, unit, period,
    persons, suppress`` (figure names of national_figures.csv, ``period`` the year)."""
    dd = dictionary.load()
    years = dd.study_years if years is None else years
    if exams is None:
        if data_dir is None:
            raise ValueError("pass data_dir or exams")
        exams = attributed_examinations(data_dir, years=years, modalities=["MR", "XRAY"])
    a, b = _year_range(years)
    df = exams[(exams["year"] >= a) & (exams["year"] <= b)]
    g = df.groupby(["modality", "year"]).agg(value=("person_id", "size"), persons=("person_id", "nunique"))
    g = g.reset_index()
    names = {"MR": "MR exams (public)", "XRAY": "X-ray exams (public)"}
    g = g[g["modality"].isin(names)]
    out = pd.DataFrame({"figure": g["modality"].map(names), "value": g["value"], "unit": "exams",
                        "period": g["year"].astype(str), "persons": g["persons"]})
    out["suppress"] = flag_suppress(out, min_cell=min_cell)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------------------
def plot_profile_shares(table: pd.DataFrame, ax=None, *, modality: str | None = None, title: str | None = None):
    """Grouped horizontal bars: the share of use of each national top profile in each region (report
    figures 5.5–5.6). ``table`` from :func:`table4_1_profiles` (one modality, or pass ``modality``)."""
    import matplotlib.pyplot as plt

    data = table if modality is None else table[table["modality"] == modality]
    if data["modality"].nunique() > 1:
        raise ValueError(f"plot one modality at a time; got {sorted(data['modality'].unique())}")
    from lumbarstats import export, plots

    data = export.plottable(data, ["share_pct"])  # a hidden share (protected table) is drawn as nothing
    if "suppress" in data.columns:
        data = data[~data["suppress"].astype(bool)]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5))
    ranks = sorted(data["rank"].unique())
    regions = [r for r in _region_order() if r in set(data["region"])]
    height = 0.8 / max(len(regions), 1)
    for j, region in enumerate(regions):
        sub = data[data["region"] == region].set_index("rank").reindex(ranks)
        y = np.arange(len(ranks)) + (j - (len(regions) - 1) / 2) * height
        ax.barh(y, sub["share_pct"], height=height, label=region, color=plots.region_color(region))  # one palette
    ax.set_yticks(np.arange(len(ranks)))
    ax.set_yticklabels([f"Profil {r}" for r in ranks])
    ax.invert_yaxis()
    ax.set_xlabel("Andel af forbruget (pct.)")
    ax.legend(fontsize="small")
    if title is None and len(data):
        # the code in data (XRAY), the report's name in the title
        from lumbarstats.groups import modality_label

        title = f"Hyppigste patientprofiler – {modality_label(str(data['modality'].iloc[0]))}"
    if title:
        ax.set_title(title)
    return ax
