"""Imaging rates by population group (report chapter 4.2 and section 5.3, tables 5.3/5.4) and payer (box 4.1).

The report's second question is *who* is imaged. This module computes, for the pooled period 2021–2023,
the rate of publicly financed lumbar MR or X-ray examinations per 1,000 adults in each population group,
nationally (figures 4.3–4.14) and per region (tables 5.3 and 5.4):

============  =====================  =========================================  ==============
variable      computed from          population                                 rate
============  =====================  =========================================  ==============
age_group     ``age_band`` (7)       all adults                                 crude
sex           ``sex``                all adults                                 crude
education     ``education`` (4)      all adults (``unknown`` not reported)      standardized
employment    ``employment`` (4)     working age 18–64 (``working_age_group``)  standardized
industry      ``industry`` (DB07 19) employed, working age 18–64                standardized
cci           ``cci_category`` (4)   all adults                                 standardized
============  =====================  =========================================  ==============

**Standardization.** Rates of education, employment, industry and CCI groups are directly sex- and
age-standardized (sex x the seven age bands) to *one* standard population: the national adult
population pooled over the study years (:func:`lumbarstats.aggregate.default_standard`). For each variable
the standard is restricted to the sex x age-band strata that occur in that variable's population and the
weights are renormalized (:func:`restrict_standard`). For employment and industry (working age 18–64) this
means the standard is the national adult population in the bands 18-29 … 60-69, where the 60-69 band
carries the weight of the whole 60–69 population although the working-age data contain only ages 60–64:
employment and industry rates are thus standardized to the *working-age part of the adult standard*, the
same standard for every employment group, industry and region, so they are comparable with each other but
not with the all-adult education or CCI rates. Industry is restricted to working age (the report says
"employed adults"; restricting avoids empty 70+ strata among the employed); pass ``industry_ages=None``
to :func:`variable_strata` to use all employed adults. The published figures agree: the national X-ray
rates of the industries (4.1–9.5 per 1,000, figure 4.12) lie around the working-age rate of the employed
(7.3, figure 4.10), whereas with the 70+ strata (standard weight about a fifth, X-ray rates 30–43) they
would lie far above it. The synthetic register is raked over these same populations
(:data:`REPORT_VARIABLES` is read by :func:`lumbarstats.synth._group_targets`).

Standardized rates and their gamma intervals (Fay & Feuer 1997) come from
:func:`lumbarstats.standardize.direct`; crude rates (age group, sex) from
:func:`lumbarstats.standardize.crude_rate` with the exact Poisson interval (Garwood 1936).

**Persons and disclosure.** Every output row has ``persons`` (distinct persons with at least one counted
examination in the cell, computed from the person-level data, :func:`cell_persons`) and ``suppress``
from :func:`lumbarstats.disclosure.flag_small_cells` (fewer than ``min_cell`` persons).

References
----------
Benchmarkingenheden, Indenrigs- og Sundhedsministeriet (2024). *Billeddiagnostik af lænderyggen* (May 2024),
chapters 4–5, tables 5.3–5.4, box 4.1.
Fay MP, Feuer EJ (1997). Confidence intervals for directly standardized rates: a method based on the gamma
distribution. *Stat Med* 16:791–801.
Garwood F (1936). Fiducial limits for the Poisson distribution. *Biometrika* 28:437–442.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lumbarstats import dictionary
from lumbarstats import io as _io

__all__ = [
    "GroupVariable",
    "REPORT_VARIABLES",
    "attributed_examinations",
    "cell_persons",
    "compare_with_reference",
    "comparison_summary",
    "flag_suppress",
    "group_labels",
    "group_rates",
    "modality_label",
    "payer_shares",
    "plot_group_rates",
    "private_rate_trend",
    "report_group_table",
    "restrict_standard",
    "variable_strata",
    "write_csv_atomic",
    "write_figure_atomic",
    "write_report_group_tables",
]

STRATA = ["sex", "age_band"]
TABLE_COLUMNS = ["modality", "variable", "group", "region", "rate", "lower", "upper", "standardized",
                 "events", "persons", "population"]
EXTRA_COLUMNS = ["modality_label", "group_code", "crude_rate", "conf_level", "method", "suppress"]
TABLE_FILES = {"MR": "table5_3_mr_groups.csv", "XRAY": "table5_4_xray_groups.csv"}
# the same tables with all 19 industries (figures 4.11-4.12); tables 5.3-5.4 are slices of them
ALL_INDUSTRIES_FILES = {"MR": "table5_3_mr_groups_all_industries.csv",
                        "XRAY": "table5_4_xray_groups_all_industries.csv"}


@dataclass(frozen=True)
class GroupVariable:
    """How one of the report's group variables is computed.

    name: the report's ``variable`` (tables 5.3/5.4); column: the ``by`` column of
    :func:`lumbarstats.aggregate.strata_counts`; codelist: code list with labels and order;
    standardized: sex- and age-standardized (else crude); working_age: restrict to ages 18–64;
    label_column_da: special Danish label column (falls back to ``label_da``);
    report_flag: codelist column that must be ``true`` for a group to be reported;
    exclude: codes never reported (e.g. education ``unknown``); title_da/title_en: headings.
    """

    name: str
    column: str
    codelist: str
    standardized: bool
    working_age: bool = False
    label_column_da: str | None = None
    report_flag: str | None = None
    exclude: tuple[str, ...] = ()
    title_da: str = ""
    title_en: str = ""


REPORT_VARIABLES: dict[str, GroupVariable] = {
    v.name: v
    for v in (
        GroupVariable("age_group", "age_band", "age_band", False, title_da="Aldersgruppe", title_en="Age group"),
        GroupVariable("sex", "sex", "sex", False, title_da="Køn", title_en="Sex"),
        GroupVariable("education", "education", "education", True, exclude=("unknown",),
                      title_da="Uddannelsesbaggrund", title_en="Education"),
        GroupVariable("employment", "employment", "employment", True, working_age=True,
                      report_flag="working_age_group", title_da="Beskæftigelsesstatus", title_en="Employment"),
        GroupVariable("industry", "industry", "industry", True, working_age=True,
                      label_column_da="report_label_da", report_flag="report_top6",
                      title_da="Arbejdsmarkedsbranche", title_en="Industry (DB07)"),
        GroupVariable("cci", "cci_category", "cci_category", True,
                      title_da="Helbredstilstand (CCI)", title_en="Comorbidity (CCI)"),
    )
}


# --------------------------------------------------------------------------------------------------
# small helpers: labels, disclosure, atomic writes, years
# --------------------------------------------------------------------------------------------------
def _spec(variable: str) -> GroupVariable:
    try:
        return REPORT_VARIABLES[variable]
    except KeyError:
        raise KeyError(f"unknown group variable {variable!r}; use one of {list(REPORT_VARIABLES)}") from None


def modality_label(modality: str, lang: str = "da") -> str:
    """The report's name of a modality: ``MR``/``Røntgen`` (da) or ``MRI``/``X-ray`` (en)."""
    dd = dictionary.load()
    cl = dd.codelist("modality").set_index("code")
    if modality not in cl.index:
        raise ValueError(f"unknown modality {modality!r}; use one of {list(cl.index)}")
    return str(cl.loc[modality, "report_label_da" if lang == "da" else "label_en"])


def group_labels(variable: str, *, modality: str = "MR", lang: str = "da") -> dict[str, str]:
    """Code -> label of the groups of a report variable, as printed in the report (``lang="da"``).

    Danish labels come from the code lists: ``label_da``, or ``report_label_da`` (industry) and
    ``label_da_xray`` (employment, X-ray) where the report words them differently.
    """
    if lang not in ("da", "en"):
        raise ValueError(f"lang must be 'da' or 'en', got {lang!r}")
    spec = _spec(variable)
    dd = dictionary.load()
    if lang == "en":
        return dd.labels(spec.codelist, "en")
    if variable == "employment" and modality == "XRAY":
        return dd.labels(spec.codelist, "da", column="label_da_xray")
    if spec.label_column_da:
        return dd.labels(spec.codelist, "da", column=spec.label_column_da)
    return dd.labels(spec.codelist, "da")


def _group_order(variable: str) -> dict[str, int]:
    if variable == "sex":  # the report lists women first
        return {"F": 0, "M": 1}
    spec = _spec(variable)
    cl = dictionary.load().codelist(spec.codelist)
    if "order" in cl.columns:
        cl = cl.sort_values("order", kind="stable")
    return {c: i for i, c in enumerate(cl["code"])}


def _reported_codes(variable: str) -> list[str]:
    spec = _spec(variable)
    cl = dictionary.load().codelist(spec.codelist)
    if spec.report_flag:
        cl = cl[cl[spec.report_flag].str.lower() == "true"]
    return [c for c in cl["code"] if c not in spec.exclude]


def flag_suppress(df: pd.DataFrame, *, count_column: str = "persons", min_cell: int = 5) -> pd.Series:
    """Boolean ``suppress`` Series: cells computed from fewer than ``min_cell`` persons. The rule itself lives
    in one place, :func:`lumbarstats.disclosure.flag_small_cells` (zero cells are not flagged there)."""
    from lumbarstats import disclosure

    flags = disclosure.flag_small_cells(df, count_column, min_cell=min_cell)
    return pd.Series(np.asarray(flags, dtype=bool), index=df.index, name="suppress")


def write_csv_atomic(df: pd.DataFrame, path: str | Path, *, min_cell: int = 5) -> Path:
    """Write a result table as CSV (UTF-8) atomically, with disclosure control applied
    (:func:`lumbarstats.disclosure.protect`: cells from fewer than ``min_cell`` persons are hidden)."""
    from lumbarstats import disclosure

    return disclosure.write_protected_csv(df, path, min_cell=min_cell)


def protect_group_table(table: pd.DataFrame, *, min_cell: int = 5, policy=None) -> pd.DataFrame:
    """Disclosure control of a group table (tables 5.3–5.4 layout) as a whole: cells from fewer than
    ``min_cell`` persons are hidden, and so many more that none can be recovered — the regions add up to
    ``Landsplan``, the groups of a variable add up to the region's total, which other tables publish,
    and the published groups of a variable with unreported codes (education without ``unknown``) add up
    to that total together with the unreported residual (:func:`unreported_residuals`), which is
    protected like a cell of its own. Write single-region extracts *from the protected table* so that
    every file hides the same cells. ``policy``: :class:`lumbarstats.disclosure.Policy`."""
    from lumbarstats import disclosure

    keys = ["modality", "variable", "group", "region"]
    values = [c for c in ("rate", "lower", "upper", "crude_rate", "population", "variance") if c in table.columns]
    totals = {"region": dictionary.load().whole_country_name}
    if not (table["region"] == totals["region"]).any():
        totals["region"] = None  # the whole country is published elsewhere
    totals["group"] = None
    residuals = unreported_residuals(table)
    full = pd.concat([table.assign(_unpublished=False), residuals.assign(_unpublished=True)], ignore_index=True)
    safe = disclosure.protect(full.drop(columns="_unpublished"), min_cell=min_cell, keys=keys,
                              count_columns=["events", "persons"], value_columns=values, rule_column="persons",
                              group_totals=totals, policy=policy, unpublished=full["_unpublished"])
    return safe.reset_index(drop=True)


def unreported_residuals(table: pd.DataFrame) -> pd.DataFrame:
    """The cells a group table leaves out but lets be computed: per modality and region, the events and
    population of a variable's unreported codes (education ``unknown``) = the region total (the sum over
    ``sex``, which covers every adult) minus the reported groups. ``persons`` of the residual is not
    additive; its events (>= persons) stand in, so a residual of fewer than ``min_cell`` examinations is
    treated as a small cell. Rows in the table's layout with ``group`` ``"(unreported)"``."""
    if not {"variable", "events", "population", "region", "modality"} <= set(table.columns):
        return table.iloc[0:0]
    partial = [s.name for s in REPORT_VARIABLES.values() if s.exclude and not s.working_age
               and s.name in set(table["variable"])]
    if "sex" not in set(table["variable"]) or not partial:
        return table.iloc[0:0]
    ev = table.assign(events=pd.to_numeric(table["events"]), population=pd.to_numeric(table["population"]))
    totals = ev[ev["variable"] == "sex"].groupby(["modality", "region"], sort=False)[["events", "population"]].sum()
    rows = []
    for variable in partial:
        got = ev[ev["variable"] == variable].groupby(["modality", "region"], sort=False)[["events", "population"]].sum()
        rest = (totals - got.reindex(totals.index).fillna(0)).reset_index()
        if (rest["events"] < 0).any():
            bad = rest.loc[rest["events"] < 0, ["modality", "region"]].head(5).to_dict("records")
            raise ValueError(f"group table: the {variable} groups hold more examinations than the sex total "
                             f"(the groups must partition the adults) for {bad}")
        rest = rest.assign(variable=variable, group="(unreported)", persons=rest["events"])
        rows.append(rest)
    out = pd.concat(rows, ignore_index=True)
    return out.reindex(columns=table.columns)


def write_figure_atomic(fig, path: str | Path, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically (:func:`lumbarstats.io.save_figure`: temporary name in the same
    folder, then rename; dpi 150, tight bounding box unless told)."""
    from lumbarstats import io as _io

    return _io.save_figure(fig, path, **savefig_kwargs)


def _year_range(years) -> tuple[int, int]:
    """``(2021, 2023)``, ``"2021-2023"`` or a single year -> (first, last)."""
    if isinstance(years, str):
        parts = years.replace("–", "-").split("-")
        try:
            vals = [int(p) for p in parts if p.strip()]
        except ValueError:
            raise ValueError(f"years must look like '2021-2023' or (2021, 2023), got {years!r}") from None
    elif isinstance(years, (int, np.integer)):
        vals = [int(years)]
    else:
        vals = [int(y) for y in years]
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or vals[0] > vals[1]:
        raise ValueError(f"years must be (first, last) with first <= last, got {years!r}")
    return vals[0], vals[1]


def _region_name_map() -> dict[int, str]:
    return dictionary.load().region_names()


def _region_order() -> dict[str, int]:
    names = list(_region_name_map().values())
    order = {n: i for i, n in enumerate(names)}
    order[dictionary.load().whole_country_name] = len(names)
    return order


def _normalize_regions(regions) -> list[str] | None:
    """``"all"`` -> None (keep everything); codes/names in any form (``ls.dictionary.resolve_region``,
    the whole country as ``Landsplan``/``Hele landet``/``Denmark``/0) -> list of short names."""
    dd = dictionary.load()
    if regions is None or (isinstance(regions, str) and regions.casefold() == "all"):
        return None
    if isinstance(regions, (str, int, np.integer)):
        regions = [regions]
    return [dd.region_name(dd.resolve_region(r)) for r in regions]


# --------------------------------------------------------------------------------------------------
# standard population
# --------------------------------------------------------------------------------------------------
def restrict_standard(standard: pd.DataFrame, strata: pd.DataFrame, *, strata_cols: Sequence[str] = STRATA,
                      population: str = "population") -> pd.DataFrame:
    """The standard restricted to the strata present (population > 0) in ``strata``, weights summing to 1.

    Used so that a subgroup defined on part of the age range (working-age employment groups) is
    standardized to the corresponding part of one common standard population.
    """
    strata_cols = list(strata_cols)
    missing = [c for c in [*strata_cols, "weight"] if c not in standard.columns]
    if missing:
        raise KeyError(f"standard population lacks columns {missing}; it needs {strata_cols} + ['weight']")
    missing = [c for c in [*strata_cols, population] if c not in strata.columns]
    if missing:
        raise KeyError(f"strata data lack columns {missing}")
    std = standard[[*strata_cols, "weight"]].copy()
    for c in strata_cols:
        std[c] = std[c].astype(str)
    present = strata.assign(**{c: strata[c].astype(str) for c in strata_cols})
    present = present.groupby(strata_cols, observed=True)[population].sum()
    present = present[present > 0].reset_index()[strata_cols]
    out = std.merge(present, on=strata_cols, how="inner")
    if out.empty or out["weight"].sum() <= 0:
        raise ValueError("the standard population shares no strata (with population > 0) with the data; "
                         f"check the {strata_cols} codes of both")
    out["weight"] = out["weight"] / out["weight"].sum()
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# rates from aggregated strata
# --------------------------------------------------------------------------------------------------
def group_rates(strata: pd.DataFrame, *, variable: str, standard: pd.DataFrame | None = None,
                by: Sequence[str] = ("region",), group_col: str | None = None, standardized: bool | None = None,
                per: float = 1000, method: str = "gamma", conf_level: float = 0.95) -> pd.DataFrame:
    """Rates per ``per`` person-years of each group of ``variable`` (crude or sex- and age-standardized).

    Parameters
    ----------
    strata
        Aggregated counts: ``by`` columns, the group column, ``events``, ``population`` and optionally
        ``persons``; for standardized rates also ``sex`` and ``age_band``.
    variable
        A report variable (``age_group``, ``sex``, ``education``, ``employment``, ``industry``, ``cci``).
    standard
        ``sex, age_band, weight`` (e.g. :func:`lumbarstats.aggregate.default_standard`); required for
        standardized variables. It is restricted to the strata present in ``strata`` and renormalized
        (:func:`restrict_standard`), the same standard for every group and ``by`` cell.
    by
        Cell columns besides the group (default region; pass ``()`` for one national table).
    standardized
        Override the report's choice (crude for age group and sex, standardized for the others).

    Returns
    -------
    DataFrame with ``by…, variable, group_code, events, persons, population, crude_rate, rate, lower, upper,
    conf_level, method, standardized, reason``. ``persons`` is the sum over strata of the stratum persons,
    an upper bound of the distinct persons when a person falls in several strata (use :func:`cell_persons`
    for the exact count, as :func:`report_group_table` does).

    Standardized rates: :func:`lumbarstats.standardize.direct` (``method``, default the gamma interval of
    Fay & Feuer 1997). Crude rates: :func:`lumbarstats.standardize.crude_rate` with the exact Poisson
    interval (Garwood 1936). A cell lacking population in a stratum of the standard gets NaN and a ``reason``.
    """
    from lumbarstats import standardize

    spec = _spec(variable)
    group_col = group_col or spec.column
    standardized = spec.standardized if standardized is None else bool(standardized)
    by = list(by)
    need = [*by, group_col, "events", "population"] + (STRATA if standardized else [])
    missing = [c for c in need if c not in strata.columns]
    if missing:
        raise KeyError(f"group_rates({variable!r}): strata lack columns {missing}; columns are {list(strata.columns)}")
    if (strata["population"] < 0).any() or (strata["events"] < 0).any():
        raise ValueError("events and population must be non-negative")
    data = strata.copy()
    if "persons" not in data.columns:
        data["persons"] = np.nan
    cell = [*by, group_col]
    data = data[data[group_col].notna()]
    if standardized:
        if standard is None:
            raise ValueError(f"variable {variable!r} is standardized: pass a standard population "
                             "(sex, age_band, weight), e.g. lumbarstats.aggregate.default_standard(data_dir)")
        for c in STRATA:
            data[c] = data[c].astype(str)
        std = restrict_standard(standard, data)
        data = data.merge(std[STRATA], on=STRATA, how="inner")  # strata without population anywhere
        data = data.groupby([*cell, *STRATA], observed=True, as_index=False)[["events", "population", "persons"]].sum(
            min_count=1)
        # complete the grid: a stratum missing from a cell has population 0 and `direct` says so in `reason`
        cells = data[cell].drop_duplicates()
        grid = cells.merge(std[STRATA], how="cross")
        data = grid.merge(data, on=[*cell, *STRATA], how="left")
        data[["events", "population"]] = data[["events", "population"]].fillna(0)
        res = standardize.direct(data, strata=STRATA, standard=std, events="events", population="population",
                                 by=cell, per=per, method=method, conf_level=conf_level)
    else:
        data = data.groupby(cell, observed=True, as_index=False)[["events", "population", "persons"]].sum(min_count=1)
        res = standardize.crude_rate(data, events="events", population="population", by=cell, per=per,
                                     method="exact", conf_level=conf_level)
        res["crude_rate"] = res["rate"]
    persons = data.groupby(cell, observed=True)["persons"].sum(min_count=1).rename("persons").reset_index()
    res = res.merge(persons, on=cell, how="left")
    res = res.rename(columns={group_col: "group_code"})
    res.insert(len(by), "variable", variable)
    res["standardized"] = standardized
    if "reason" not in res.columns:
        res["reason"] = ""
    cols = [*by, "variable", "group_code", "events", "persons", "population", "crude_rate", "rate", "lower",
            "upper", "conf_level", "method", "standardized", "reason"]
    for c in cols:
        if c not in res.columns:
            res[c] = np.nan
    return res[cols]


# --------------------------------------------------------------------------------------------------
# from a register directory
# --------------------------------------------------------------------------------------------------
def attributed_examinations(data_dir, *, years=(2021, 2023), modalities: Iterable[str] = ("MR", "XRAY"),
                            payer: str | None = "public", include_related: bool = False) -> pd.DataFrame:
    """One row per counted examination with the covariates of the person's population row of its year.

    Columns: ``person_id, date, year, modality, payer, region, sex, age, education, employment, industry,
    cci, age_band, age_group_profile, cci_category``. Examinations without a population row in their year
    (children, non-residents) are not counted, exactly as in the rates (docs/architecture.md): the
    counting rule is :meth:`lumbarstats.register.Register.counted_examinations` (exact codes). ``data_dir``:
    a register folder or :class:`lumbarstats.register.Register`.
    """
    from lumbarstats.register import as_register

    reg = as_register(data_dir)
    dd = reg.dd
    first, last = _year_range(years)
    try:
        ex = reg.counted_examinations(list(modalities), payer, include_related)
    except ValueError as exc:
        raise ValueError(str(exc).replace("unknown modality", "unknown modalities")) from None
    ex = ex.filter(ex.year.between(first, last))
    cols = ["person_id", "date", "year", "modality", "payer", "region", "sex", "age", "education", "employment",
            "industry", "cci"]
    df = ex.select(*cols).order_by(["person_id", "date", "modality"]).to_pandas()
    df["date"] = pd.to_datetime(df["date"]).astype("datetime64[us]")
    df["year"] = df["year"].astype("int32")
    df["region"] = df["region"].astype(int)
    df["age_band"] = dd.age_band(df["age"].to_numpy()).astype(str).to_numpy()
    df["age_group_profile"] = dd.age_group_profile(df["age"].to_numpy()).astype(str).to_numpy()
    df["cci_category"] = dd.cci_category(df["cci"].to_numpy()).astype(str).to_numpy()
    return df


def _apply_age_restriction(df: pd.DataFrame, ages) -> pd.DataFrame:
    if ages is None:
        return df
    lo, hi = ages
    return df[(df["age"] >= lo) & (df["age"] <= hi)]


def cell_persons(exams: pd.DataFrame, *, variable: str, industry_ages="working") -> pd.DataFrame:
    """Exact distinct persons per (region, group) and nationally (``Landsplan``) from
    :func:`attributed_examinations` rows of one modality, with the same age restriction and filters as
    :func:`variable_strata` (``industry_ages=None``: industry over all employed adults)."""
    spec = _spec(variable)
    dd = dictionary.load()
    restrict = spec.working_age and not (variable == "industry" and industry_ages is None)
    df = _apply_age_restriction(exams, dd.working_age if restrict else None)
    df = df[df[spec.column].notna()]
    if variable == "industry":
        df = df[df["employment"] == "employed"]
    names = _region_name_map()
    reg = df.groupby(["region", spec.column])["person_id"].nunique().rename("persons").reset_index()
    reg["region"] = reg["region"].astype(int).map(names)
    nat = df.groupby(spec.column)["person_id"].nunique().rename("persons").reset_index()
    nat["region"] = dd.whole_country_name
    out = pd.concat([reg, nat], ignore_index=True).rename(columns={spec.column: "group_code"})
    out["group_code"] = out["group_code"].astype(str)
    return out


def variable_strata(data_dir, *, variable: str, modality: str = "MR", years=(2021, 2023),
                    industry_ages="working") -> pd.DataFrame:
    """Stratum counts for one report variable by region (short names) plus ``Landsplan`` (their sum).

    Uses :func:`lumbarstats.aggregate.strata_counts` (public payer, core codes). Employment (and industry,
    unless ``industry_ages=None``) is restricted to working age (``dictionary.working_age``); industry to the
    employed (``employment == "employed"``). Columns: ``region, <group column>, [sex, age_band,] events,
    persons, population`` (``persons`` of ``Landsplan`` is the sum over regions).
    """
    from lumbarstats import aggregate

    spec = _spec(variable)
    dd = dictionary.load()
    restrict = spec.working_age and not (variable == "industry" and industry_ages is None)
    where = {}
    if restrict:
        where["age"] = tuple(int(a) for a in dd.working_age)
    if variable == "industry":
        where["employment"] = "employed"
        where["industry"] = aggregate.NOT_MISSING
    cols = list(dict.fromkeys(["region", spec.column] + (STRATA if spec.standardized else [])))
    sc = aggregate.strata_counts(data_dir, by=cols, modality=modality, payer="public", years=_year_range(years),
                                 where=where or None)
    sc = sc.assign(**{c: sc[c].astype(str) for c in cols if c != "region"})
    sc["region"] = sc["region"].astype(int).map(_region_name_map())
    nat_keys = [c for c in cols if c != "region"]
    nat = sc.groupby(nat_keys, observed=True, as_index=False)[["events", "persons", "population"]].sum()
    nat["region"] = dd.whole_country_name
    return pd.concat([sc, nat[sc.columns]], ignore_index=True)


def _label_table(res: pd.DataFrame, *, variable: str, modality: str, lang: str) -> pd.DataFrame:
    labels = group_labels(variable, modality=modality, lang=lang)
    res = res.copy()
    res["group"] = res["group_code"].map(labels)
    if res["group"].isna().any():
        bad = sorted(res.loc[res["group"].isna(), "group_code"].astype(str).unique())
        raise ValueError(f"{variable}: codes {bad} are not in code list {_spec(variable).codelist!r}")
    return res


def report_group_table(data_dir, *, modality: str = "MR", years=(2021, 2023), regions="all",
                       variables: Sequence[str] = tuple(REPORT_VARIABLES), lang: str = "da",
                       industries: str = "report", standard: pd.DataFrame | None = None, min_cell: int = 5,
                       per: float = 1000, exams: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tables 5.3 (MR) / 5.4 (X-ray) in long format, the five regions and ``Landsplan`` (figures 4.3–4.14).

    Columns: ``modality, variable, group, region, rate, lower, upper, standardized, events, persons,
    population`` (+ ``group_code, crude_rate, conf_level, method, suppress``). ``modality`` is the report's
    label (``MR``/``Røntgen``), ``group`` the report's Danish label (``lang="en"``: English), ``standardized``
    ``yes``/``no``. ``industries``: ``"report"`` — the report's six most imaged industries (``report_top6``
    in codelists/industry.csv); ``"top6"`` — the six with the highest national standardized rate in these
    data; ``"all"`` — all 19 DB07 groups (figures 4.11–4.12). ``persons`` is exact (:func:`cell_persons`);
    ``suppress`` flags cells from fewer than ``min_cell`` persons. ``standard`` defaults to
    :func:`lumbarstats.aggregate.default_standard`. See the module docstring for the standardization.
    """
    if industries not in ("report", "top6", "all"):
        raise ValueError(f"industries must be 'report', 'top6' or 'all', got {industries!r}")
    unknown = [v for v in variables if v not in REPORT_VARIABLES]
    if unknown:
        raise KeyError(f"unknown variables {unknown}; use {list(REPORT_VARIABLES)}")
    from lumbarstats.register import as_register

    dd = dictionary.load()
    data_dir = as_register(data_dir)  # opened and validated once for every query below
    if standard is None and any(REPORT_VARIABLES[v].standardized for v in variables):
        standard = data_dir.default_standard()
    if exams is None:
        exams = attributed_examinations(data_dir, years=years, modalities=[modality])
    else:
        exams = exams[exams["modality"] == modality]
    keep_regions = _normalize_regions(regions)
    parts = []
    for variable in variables:
        strata = variable_strata(data_dir, variable=variable, modality=modality, years=years)
        if keep_regions is not None:
            strata = strata[strata["region"].isin(keep_regions)]
        res = group_rates(strata, variable=variable, standard=standard, by=["region"], per=per)
        res["group_code"] = res["group_code"].astype(str)
        res = res.drop(columns="persons").merge(cell_persons(exams, variable=variable),
                                                on=["region", "group_code"], how="left")
        res["persons"] = res["persons"].fillna(0).astype(int)
        if variable == "industry" and industries != "all":
            if industries == "report":
                chosen = _reported_codes("industry")
            else:
                nat = res[res["region"] == dd.whole_country_name].sort_values("rate", ascending=False)
                chosen = list(nat["group_code"].head(6))
            res = res[res["group_code"].isin(chosen)]
        elif variable != "industry":
            res = res[res["group_code"].isin(_reported_codes(variable))]
        parts.append(_label_table(res, variable=variable, modality=modality, lang=lang))
    out = pd.concat(parts, ignore_index=True)
    out["modality"] = modality  # the code in data (MR, XRAY); the report's name beside it for display
    out["modality_label"] = modality_label(modality, lang)
    out["standardized"] = np.where(out["standardized"].astype(bool), "yes", "no")
    out["suppress"] = flag_suppress(out, min_cell=min_cell)
    var_order = {v: i for i, v in enumerate(REPORT_VARIABLES)}
    reg_order = _region_order()
    out["_v"] = out["variable"].map(var_order)
    out["_g"] = [_group_order(v).get(g, 99) for v, g in zip(out["variable"], out["group_code"], strict=True)]
    out["_r"] = out["region"].map(reg_order)
    out = out.sort_values(["_v", "_g", "_r"]).drop(columns=["_v", "_g", "_r"])
    return out[TABLE_COLUMNS + EXTRA_COLUMNS].reset_index(drop=True)


def write_report_group_tables(data_dir, out_dir, *, years=(2021, 2023), lang: str = "da", min_cell: int = 5,
                              figures: bool = True) -> dict[str, Path]:
    """Write ``{out_dir}/tables/table5_3_mr_groups.csv`` and ``table5_4_xray_groups.csv`` (all regions and
    ``Landsplan``) and, with ``figures``, the national bar charts (report figures 4.3–4.14) under
    ``{out_dir}/figures/``. Returns the written paths by name."""
    from lumbarstats.register import as_register

    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    data_dir = as_register(data_dir)  # opened and validated once
    exams = attributed_examinations(data_dir, years=years, modalities=list(TABLE_FILES))
    fig_no = {"age_group": 3, "sex": 5, "education": 7, "employment": 9, "industry": 11, "cci": 13}
    for i, modality in enumerate(TABLE_FILES):
        full = report_group_table(data_dir, modality=modality, years=years, lang=lang, min_cell=min_cell,
                                  exams=exams, industries="all")
        # protect once (all industries are drawn in figures 4.11-4.12), publish the table as a slice of it
        safe = protect_group_table(full, min_cell=min_cell)
        reported = (safe["variable"] != "industry") | safe["group_code"].isin(_reported_codes("industry"))
        written[TABLE_FILES[modality]] = _io.write_csv(safe[reported].reset_index(drop=True),
                                                       out_dir / "tables" / TABLE_FILES[modality])
        if figures:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            national = safe[safe["region"] == dictionary.load().whole_country_name]  # figures: protected cells
            for variable, n in fig_no.items():
                sub = national[national["variable"] == variable]
                fig, ax = plt.subplots(figsize=(7, 0.45 * len(sub) + 1.5))
                plot_group_rates(sub, ax=ax)
                name = f"fig4_{n + i}_{modality.lower()}_{variable}.png"
                written[name] = write_figure_atomic(fig, out_dir / "figures" / name, dpi=110)
                plt.close(fig)
    return written


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------
_VARIABLE_TITLES = {"age_group": "aldersgruppe", "sex": "køn", "education": "uddannelsesniveau",
                    "employment": "beskæftigelsesstatus", "industry": "branche (beskæftigede)",
                    "cci": "helbredstilstand (CCI)"}


def _figure_title(data: pd.DataFrame) -> str:
    """A Danish figure title in the report's manner: 'MR af lænderyggen efter beskæftigelsesstatus'."""
    modality = str(data["modality"].iloc[0]) if "modality" in data.columns else ""
    what = {"MR": "MR-scanninger", "Røntgen": "Røntgen", "XRAY": "Røntgen"}.get(modality, modality)
    variable = str(data["variable"].iloc[0]) if "variable" in data.columns else ""
    return f"{what} af lænderyggen efter {_VARIABLE_TITLES.get(variable, variable)}".strip()


def plot_group_rates(df: pd.DataFrame, ax=None, *, title: str | None = None, show_suppressed: bool = False,
                     lang: str = "da"):
    """Horizontal bars of ``rate`` per ``group`` with ``lower``–``upper`` interval whiskers (report figures
    4.3–4.14). ``df``: rows of one variable (from :func:`report_group_table`); several regions are drawn as
    grouped bars. Suppressed cells (``suppress``) are left out unless ``show_suppressed``. ``lang``: axis text and
    decimal format (``"da"``: ``14,7``; ``"en"``). Returns the axes."""
    import matplotlib.pyplot as plt

    need = ["group", "rate", "lower", "upper"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise KeyError(f"plot_group_rates needs columns {need}; missing {missing}")
    if "variable" in df.columns and df["variable"].nunique() > 1:
        raise ValueError(f"plot one variable at a time; got {sorted(df['variable'].unique())}")
    from lumbarstats import export, formatting, plots

    # a hidden cell (the marker of a protected table) is drawn as nothing
    data = export.plottable(df, [c for c in ("rate", "lower", "upper") if c in df.columns])
    if "suppress" in data.columns and not show_suppressed:
        data = data[~data["suppress"].astype(bool)]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.45 * max(len(data), 1) + 1.5))
    groups = list(dict.fromkeys(data["group"]))
    regions = list(dict.fromkeys(data["region"])) if "region" in data.columns else [None]
    height = 0.8 / len(regions)
    for j, region in enumerate(regions):
        sub = data if region is None else data[data["region"] == region]
        sub = sub.set_index("group").reindex(groups)
        y = np.arange(len(groups)) + (j - (len(regions) - 1) / 2) * height
        err = np.vstack([(sub["rate"] - sub["lower"]).to_numpy(), (sub["upper"] - sub["rate"]).to_numpy()])
        color = "#1f5f8b" if len(regions) == 1 else plots.region_color(region)  # one palette (lumbarstats.plots)
        ax.barh(y, sub["rate"], height=height, xerr=err, capsize=2, label=region, color=color,
                error_kw={"lw": 0.8})
        if len(regions) == 1:  # the report prints the value at the end of each bar (Danish decimals)
            ends = np.fmax(pd.to_numeric(sub["upper"], errors="coerce"), pd.to_numeric(sub["rate"], errors="coerce"))
            for yi, v, end in zip(y, pd.to_numeric(sub["rate"], errors="coerce"), ends, strict=True):
                if np.isfinite(v):
                    ax.text(end, yi, "  " + formatting.format_number(v, 1, lang), va="center", fontsize=7.5)
    ax.set_yticks(np.arange(len(groups)))
    ax.set_yticklabels(groups)
    ax.invert_yaxis()
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", color="#dddddd")
    ax.set_axisbelow(True)
    std = data["standardized"].iloc[0] if "standardized" in data.columns and len(data) else "no"
    labels = {"da": ("Køns- og aldersstandardiseret antal pr. 1.000 voksne", "Antal pr. 1.000 voksne"),
              "en": ("Sex- and age-standardized rate per 1,000 adults", "Rate per 1,000 adults")}[lang]
    ax.set_xlabel(labels[0] if std in ("yes", True) else labels[1])
    if len(regions) > 1:
        ax.legend(fontsize="small")
    if title is None and len(data):
        title = _figure_title(data)
    if title:
        ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    return ax


# --------------------------------------------------------------------------------------------------
# payer (box 4.1)
# --------------------------------------------------------------------------------------------------
def payer_shares(data_dir, *, years=None, by_region: bool = False, pooled: bool = False,
                 modalities: Sequence[str] = ("MR", "XRAY"), min_cell: int = 5) -> pd.DataFrame:
    """Examinations by payer (public/private/other), box 4.1 figure A.

    Returns ``year, region, modality, payer, exams, persons, share_pct, share_within_modality_pct, suppress``:
    ``share_pct`` is the share of all lumbar MR + X-ray examinations of the year (and region) — the report's
    "92 pct. public" — and ``share_within_modality_pct`` the share within the modality. ``years`` defaults to
    the study years; ``pooled=True`` pools them (``year`` then reads e.g. ``"2021-2023"``). ``region`` is
    ``Landsplan`` unless ``by_region``. ``persons`` is summed over years when pooled (an upper bound).
    """
    from lumbarstats import aggregate

    dd = dictionary.load()
    years = dd.study_years if years is None else years
    by = ["year", "modality", "payer"] + (["region"] if by_region else [])
    sc = aggregate.strata_counts(data_dir, by=by, modality=list(modalities), payer=None, years=_year_range(years))
    sc = sc.rename(columns={"events": "exams"})
    if by_region:
        sc["region"] = sc["region"].astype(int).map(_region_name_map())
    else:
        sc["region"] = dd.whole_country_name
    if pooled:
        a, b = _year_range(years)
        sc["year"] = f"{a}-{b}"
    keys = ["year", "region", "modality", "payer"]
    out = sc.groupby(keys, as_index=False)[["exams", "persons"]].sum()
    total = out.groupby(["year", "region"])["exams"].transform("sum")
    mod_total = out.groupby(["year", "region", "modality"])["exams"].transform("sum")
    out["share_pct"] = 100 * out["exams"] / total.where(total > 0)
    out["share_within_modality_pct"] = 100 * out["exams"] / mod_total.where(mod_total > 0)
    out["suppress"] = flag_suppress(out, min_cell=min_cell)
    return out.sort_values(keys).reset_index(drop=True)


def protect_payer_tables(shares: pd.DataFrame, private: pd.DataFrame | None = None, *, min_cell: int = 5,
                         policy=None, public_published: bool = True) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Disclosure control of :func:`payer_shares` and :func:`private_rate_trend` together.

    The shares publish their totals: ``exams / share_pct`` is the total of the year (and region) and
    ``exams / share_within_modality_pct`` the modality's total, so the payers of a modality, and all cells
    of a year, add up to a known total; a hidden cell's shares are hidden with it. The private rate's years
    add up to the pooled private row of the shares. All cells are suppressed in one stack with these
    relations. Returns the two tables with the marker in hidden cells (without the ``suppress`` column).

    ``public_published``: the publicly financed examinations of a period are the events of tables 5.1–5.2
    (published there), so a public cell that is not small is a known number: it is taken out of the
    relations and never chosen to hide another cell (hiding it here would protect nothing; a relation then
    needs another of its cells hidden).
    """
    from lumbarstats import disclosure

    pol = disclosure.as_policy(policy, min_cell=min_cell)
    s = shares.drop(columns=[c for c in ("suppress",) if c in shares.columns]).reset_index(drop=True)
    parts = [pd.DataFrame({"kind": "share", "year": s["year"].astype(str), "region": s["region"],
                           "modality": s["modality"], "payer": s["payer"], "events": s["exams"],
                           "persons": s["persons"]})]
    if private is not None:
        p = private.drop(columns=[c for c in ("suppress",) if c in private.columns]).reset_index(drop=True)
        parts.append(pd.DataFrame({"kind": "private", "year": p["year"].astype(str), "region": "",
                                   "modality": p["modality"], "payer": "private", "events": p["events"],
                                   "persons": p["persons"]}))
    stack = pd.concat(parts, ignore_index=True)
    share_rows = stack[stack["kind"] == "share"]
    known = set()
    if public_published:
        big = pd.to_numeric(share_rows["persons"], errors="coerce").fillna(0) >= pol.min_cell
        known = set(share_rows.index[(share_rows["payer"] == "public") & big])
    rels = []
    for by in (["year", "region"], ["year", "region", "modality"]):
        for _, g in share_rows.groupby(by, sort=False):
            members = [i for i in g.index if i not in known]
            if members:
                rels.append((members, None))
    if private is not None:
        for row in share_rows[(share_rows["payer"] == "private")].itertuples():
            span = str(row.year).split("-")
            years = [str(y) for y in range(int(span[0]), int(span[-1]) + 1)]
            members = stack.index[(stack["kind"] == "private") & (stack["modality"] == row.modality)
                                  & stack["year"].isin(years)]
            if len(members) == len(years):
                rels.append((list(members), row.Index))
    res = disclosure.suppress(stack, count_columns=["events", "persons"], value_columns=[],
                              keys=["kind", "year", "region", "modality", "payer"], rule_column="persons",
                              min_cell=pol.min_cell, extra_relations=rels)
    if pol.kind == "round":
        res_mask = disclosure.flag_small_cells(stack, "persons", pol.min_cell)
    else:
        res_mask = res.mask
    share_mask = res_mask[stack["kind"] == "share"].to_numpy()
    safe_s = _mark_hidden(s, share_mask, ["exams", "persons", "share_pct", "share_within_modality_pct"])
    safe_p = None
    if private is not None:
        private_mask = res_mask[stack["kind"] == "private"].to_numpy()
        safe_p = _mark_hidden(p, private_mask, ["events", "persons", "population", "rate", "lower", "upper"])
    if pol.kind == "round":
        safe_s = disclosure.round_counts(safe_s, count_columns=["exams", "persons"],
                                         value_columns=["share_pct", "share_within_modality_pct"],
                                         min_cell=pol.min_cell, base=pol.base)
        if safe_p is not None:
            safe_p = disclosure.round_counts(safe_p, count_columns=["events", "persons"],
                                             value_columns=["rate", "lower", "upper", "population"],
                                             min_cell=pol.min_cell, base=pol.base)
    return safe_s, safe_p


def _mark_hidden(df: pd.DataFrame, mask, columns) -> pd.DataFrame:
    from lumbarstats import disclosure

    out = df.copy()
    mask = np.asarray(mask, dtype=bool)
    for c in columns:
        if c in out.columns:
            out[c] = out[c].astype(object)
            out.loc[mask, c] = disclosure.SUPPRESSED_MARKER
    return out


def private_rate_trend(data_dir, standard: pd.DataFrame | None = None, *, years=None, payer: str = "private",
                       modalities: Sequence[str] = ("MR", "XRAY"), per: float = 1000, method: str = "gamma",
                       min_cell: int = 5, region=None, pooled: bool = False) -> pd.DataFrame:
    """Sex- and age-standardized rate of examinations of one ``payer`` per year (box 4.1 figure B; Bilag 1).

    Returns ``year, modality, rate, lower, upper, events, persons, population, conf_level, method, suppress``
    (with ``region`` after ``year`` when ``region`` is given). ``region``: None — the whole country (box 4.1);
    a region in any spelling :func:`lumbarstats.dictionary.resolve_region` accepts (``Syddanmark``, 1083,
    ``Landsplan``) — that region; ``"all"`` — the five regions and ``Landsplan``. ``pooled=True`` pools the
    years (``year`` then reads e.g. ``"2021-2023"``; person-years added up). ``persons`` is summed over the
    sex x age strata (and years): an upper bound of the distinct persons, used for the small-cell rule only.
    Standard: ``standard`` or :func:`lumbarstats.aggregate.default_standard`, restricted to the strata with
    population (:func:`restrict_standard`); interval of Fay & Feuer (1997) via
    :func:`lumbarstats.standardize.direct`.
    """
    from lumbarstats import aggregate, standardize
    from lumbarstats.register import as_register

    dd = dictionary.load()
    years = dd.study_years if years is None else years
    data_dir = as_register(data_dir)
    if standard is None:
        standard = data_dir.default_standard()
    wanted = None if region is None else _normalize_regions(region)
    by_region = region is not None
    sc = aggregate.strata_counts(data_dir, by=(["region_name"] if by_region else []) + ["year", "modality", *STRATA],
                                 modality=list(modalities), payer=payer, years=_year_range(years),
                                 with_total=by_region)
    sc = sc.assign(sex=sc["sex"].astype(str), age_band=sc["age_band"].astype(str))
    keys = ["year", "modality"]
    if by_region:
        sc = sc.rename(columns={"region_name": "region"})
        sc["region"] = sc["region"].astype(str)
        if wanted is not None:
            sc = sc[sc["region"].isin(wanted)]
        keys = ["region", *keys]
    if pooled:
        a, b = _year_range(years)
        sc = sc.assign(year=f"{a}-{b}").groupby([*keys, *STRATA], as_index=False, observed=True)[
            ["events", "persons", "population"]].sum()
    std = restrict_standard(standard, sc)
    res = standardize.direct(sc, strata=STRATA, standard=std, events="events", population="population",
                             by=keys, per=per, method=method)
    persons = sc.groupby(keys, observed=True)["persons"].sum().rename("persons").reset_index()
    res = res.merge(persons, on=keys, how="left")
    res["suppress"] = flag_suppress(res, min_cell=min_cell)
    cols = ["year", *(["region"] if by_region else []), "modality", "rate", "lower", "upper", "events", "persons",
            "population", "conf_level", "method", "suppress"]
    order = ["modality", *(["region"] if by_region else []), "year"]
    if by_region:
        res["_r"] = res["region"].map(_region_order())
        order = ["modality", "_r", "year"]
    return res.sort_values(order)[cols].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# comparison with the published figures
# --------------------------------------------------------------------------------------------------
def compare_with_reference(table_df: pd.DataFrame, kind: str = "groups", *, scale: float = 1.0) -> pd.DataFrame:
    """Published figures beside reproduced ones: :func:`lumbarstats.comparison.with_reference`."""
    from lumbarstats import comparison

    return comparison.with_reference(table_df, kind, scale=scale)


def comparison_summary(comparison: pd.DataFrame, kind: str = "groups", **limits) -> pd.DataFrame:
    """Acceptance statistics of a comparison: :func:`lumbarstats.comparison.summary`."""
    from lumbarstats import comparison as _comparison

    return _comparison.summary(comparison, kind, **limits)


