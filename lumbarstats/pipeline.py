"""The report's published outputs and the report steps whose tables are linked across files.

:data:`OUTPUTS` is the registry of the files the report publishes: name, file (pattern), the step that
writes it and the additive relations that link its cells (within the file and to other files). The
disclosure protection of each step declares the same relations, and the attack suite
(``tests/test_attack.py``) checks that no hidden cell follows from them.

The time-to-event step runs once per region (batch) and once for the whole country; its region files
repeat cells of the whole-country file (a region's curve by period is the whole country's curve of that
region and period). To hide the same cells in every file, every run protects the *whole country's*
tables (all regions x periods, with their relations) and writes its own slice of the protected table:
:func:`time_to_event_tables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from lumbarstats import disclosure as _disclosure
from lumbarstats import register as _register

__all__ = ["Output", "OUTPUTS", "output", "time_to_event_tables", "cif_relations"]


@dataclass(frozen=True)
class Output:
    """One published file of the report: ``file`` under the output folder (``{modality}``, ``{region}``
    and ``{outcome}`` are filled in), the reproduce ``step`` that writes it, and its ``relations``."""

    name: str
    file: str
    step: str
    relations: tuple[str, ...] = ()


OUTPUTS: tuple[Output, ...] = (
    Output("table1", "tables/table1_mr_annual.csv", "annual",
           ("regions add up to Landsplan in each year", "years add up to their period (table5_1)")),
    Output("table2", "tables/table2_xray_annual.csv", "annual",
           ("regions add up to Landsplan in each year", "years add up to their period (table5_2)")),
    Output("table5_1", "tables/table5_1_mr_periods.csv", "annual", ("regions add up to Landsplan",)),
    Output("table5_2", "tables/table5_2_xray_periods.csv", "annual", ("regions add up to Landsplan",)),
    Output("table5_3", "tables/table5_3_mr_groups.csv", "groups",
           ("regions add up to Landsplan", "groups of a variable add up to the region total",
            "published education groups + unpublished 'unknown' add up to the region total")),
    Output("table5_4", "tables/table5_4_xray_groups.csv", "groups",
           ("regions add up to Landsplan", "groups of a variable add up to the region total",
            "published education groups + unpublished 'unknown' add up to the region total")),
    Output("table5_3_all_industries", "tables/table5_3_mr_groups_all_industries.csv", "groups",
           ("table5_3 is its slice (six industries)", "regions add up to Landsplan",
            "groups of a variable add up to the region total")),
    Output("table5_4_all_industries", "tables/table5_4_xray_groups_all_industries.csv", "groups",
           ("table5_4 is its slice (six industries)", "regions add up to Landsplan",
            "groups of a variable add up to the region total")),
    Output("groups_region", "tables/groups_{region}_{modality}.csv", "groups", ("slice of table5_3/5_4",)),
    Output("payer_shares", "tables/payer_shares.csv", "groups",
           ("payers add up to the modality total (share within modality)",
            "modalities x payers add up to the total (share)")),
    Output("private_rate", "tables/private_rate.csv", "groups", ("years add up to payer_shares' private row",)),
    Output("table4_1", "tables/table4_1_profiles.csv", "profiles",
           ("regions add up to Landsplan for each profile", "share = exams / region total")),
    Output("persons_vs_exams", "tables/persons_vs_exams.csv", "profiles", ()),
    Output("fig4_1", "tables/fig4_1_annual_counts.csv", "products", ("Landsplan cells of table1/table2",)),
    Output("fig4_2", "tables/fig4_2_national_standardized.csv", "products", ("Landsplan rates of table1/table2",)),
    Output("box4_1_payer_split", "tables/box4_1_payer_split.csv", "products",
           ("the cells of payer_shares", "payers add up to the modality total (share within modality)",
            "modalities x payers add up to the total (share)")),
    Output("box4_1_public_private_rates", "tables/box4_1_public_private_rates.csv", "products",
           ("public rows: Landsplan cells of table1/table2", "private rows: the cells of private_rate")),
    Output("bilag1_annual", "tables/bilag1/bilag1_{slug}_annual.csv", "products",
           ("slice of table1/table2", "regions add up to Landsplan in each year",
            "years add up to their period (table5_1/5_2)")),
    Output("bilag1_groups", "tables/bilag1/bilag1_{slug}_groups.csv", "products",
           ("slice of table5_3/5_4", "regions add up to Landsplan", "groups of a variable add up to the region total")),
    Output("bilag1_payer", "tables/bilag1/bilag1_{slug}_payer.csv", "products",
           ("payers add up to the region's modality total (share)",
            "modalities x payers add up to the region total (share)",
            "regions add up to Landsplan per modality and payer", "public cells = table5_1/5_2 2021-2023",
            "Landsplan cells = payer_shares")),
    Output("interventions_overview", "tables/interventions/overview_{slug}.csv", "intervention",
           ("estimates only (no counts); rows of tables/interventions/overview.csv",)),
    Output("tte_cif", "time_to_event/{region}/tables/tte_{region}_{outcome}_cif.csv", "time_to_event",
           ("periods add up to the pooled region curve at each time",
            "regions add up to the whole country's period curve at each time",
            "region files repeat the whole country's region x period cells")),
    Output("tte_rmst", "time_to_event/{region}/tables/tte_{region}_{outcome}_rmst.csv", "time_to_event",
           ("regions add up to the whole country's period", "region files repeat whole-country cells")),
    Output("tte_exclusions", "time_to_event/{region}/tables/tte_{region}_{outcome}_exclusions.csv",
           "time_to_event", ("steps: remaining = previous remaining - excluded",)),
)
"""The report's published outputs (see :class:`Output`)."""


def output(name: str) -> Output:
    """The registered output ``name``; raises naming the known outputs."""
    for o in OUTPUTS:
        if o.name == name:
            return o
    raise KeyError(f"no published output {name!r}; known: {[o.name for o in OUTPUTS]}")


# --------------------------------------------------------------------------------------------------
# time to event: the whole country's tables, protected once, sliced per run
# --------------------------------------------------------------------------------------------------
_CIF_KEYS = ["event_type", "grouping", "region_name", "period", "time"]


def _cif_national(data: pd.DataFrame, event_codes: dict, report_times: Sequence[float]) -> pd.DataFrame:
    """CIF at ``report_times`` by period, by region and by region x period, for every cause."""
    from lumbarstats import survival

    parts = []
    for cause in sorted(c for c in event_codes if c > 0):
        for by in (["period"], ["region_name"], ["region_name", "period"]):
            t = survival.cumulative_incidence(data, duration="duration", event="event", event_of_interest=cause,
                                              by=by, times=report_times)
            t.insert(0, "grouping", "+".join(by))
            t.insert(0, "event_type", event_codes[cause])
            parts.append(t)
    cif = pd.concat(parts, ignore_index=True)
    for c in ("region_name", "period"):
        if c not in cif.columns:
            cif[c] = None
        cif[c] = cif[c].astype(object).where(cif[c].notna(), "")
    return cif


def cif_relations(cif: pd.DataFrame) -> list[tuple[list, object]]:
    """Additive relations of the whole country's CIF table, for ``events`` and ``at_risk`` at each time:
    a region's periods add up to its pooled row, and the regions add up to the whole country's period."""
    rels = []
    idx = {tuple(k): i for i, k in zip(cif.index, cif[_CIF_KEYS].itertuples(index=False), strict=True)}
    cells = cif[cif["grouping"] == "region_name+period"]
    for (ev, region, time), g in cells.groupby(["event_type", "region_name", "time"], sort=False):
        total = idx.get((ev, "region_name", region, "", time))
        if total is not None:
            rels.append((list(g.index), total))
    for (ev, period, time), g in cells.groupby(["event_type", "period", "time"], sort=False):
        total = idx.get((ev, "period", "", period, time))
        if total is not None:
            rels.append((list(g.index), total))
    return rels


def _protect_cif(cif: pd.DataFrame, policy) -> pd.DataFrame:
    # a point of a curve describes the persons who had the event and those still at risk: the smaller
    # positive count decides (zero persons describe no one)
    counts = cif[["events", "at_risk"]]
    rule = counts.where(counts > 0).min(axis=1).fillna(0)
    table = cif.assign(fewest_persons=rule)
    safe = _disclosure.protect(table, keys=_CIF_KEYS, count_columns=["events", "at_risk", "fewest_persons"],
                               rule_column="fewest_persons", value_columns=["cif", "se", "lower", "upper"],
                               extra_relations=cif_relations(cif), policy=policy)
    return safe.drop(columns="fewest_persons")


def _rmst_national(data: pd.DataFrame, tau: float) -> pd.DataFrame:
    from lumbarstats import survival

    parts = [survival.rmst(data, duration="duration", event="event", tau=tau, by="period").assign(region_name="")]
    parts.append(survival.rmst(data, duration="duration", event="event", tau=tau, by=["region_name", "period"]))
    out = pd.concat(parts, ignore_index=True)
    return out


def _protect_rmst(rmst: pd.DataFrame, policy) -> pd.DataFrame:
    keys = ["region_name", "period", "tau"]
    rels = [(list(g.index), t.index[0])
            for (period, _tau), g in rmst[rmst["region_name"] != ""].groupby(["period", "tau"], sort=False)
            for t in [rmst[(rmst["region_name"] == "") & (rmst["period"] == period)]] if len(t)]
    counts = rmst[["n", "events"]]
    table = rmst.assign(fewest_persons=counts.where(counts > 0).min(axis=1).fillna(0))
    safe = _disclosure.protect(table, keys=keys, count_columns=["n", "events", "fewest_persons"],
                               rule_column="fewest_persons",
                               value_columns=[c for c in ("rmst", "se", "lower", "upper") if c in rmst.columns],
                               extra_relations=rels, policy=policy)
    return safe.drop(columns="fewest_persons")


def _rmst_differences(data: pd.DataFrame, tau: float, safe_est: pd.DataFrame) -> pd.DataFrame | None:
    """After - before for the run's data; hidden when either period's estimate is hidden."""
    from lumbarstats import survival

    if data["period"].nunique() < 2:
        return None
    diff = survival.rmst_difference(data, duration="duration", event="event", tau=tau, group="period",
                                    reference="before").assign(contrast="difference").astype(object)
    if (safe_est == _disclosure.SUPPRESSED_MARKER).any().any():
        cols = [c for c in ("rmst", "se", "lower", "upper", "difference", "p_value", "rmst_reference")
                if c in diff.columns]
        diff[cols] = _disclosure.SUPPRESSED_MARKER
    return diff


def time_to_event_tables(data: pd.DataFrame, event_codes: dict, *, region: str | None,
                         report_times: Sequence[float], rmst_tau: float, policy=None) -> dict[str, pd.DataFrame]:
    """The published CIF and RMST tables of one time-to-event run, protected over the whole country.

    ``data`` is the *whole country's* cohort (``cohort.build_cohort(..., region=None).data``: columns
    ``region_name, period, duration, event``); ``region`` the run's region (None: the whole country).
    Returns ``{"cif": ..., "rmst": ...}``: for the whole country the full tables (by period, by region,
    by region x period), for a region its rows by period — the same cells, hidden alike, as in the whole
    country's file. ``policy``: :class:`lumbarstats.disclosure.Policy` (suppression by default).
    """
    cif = _protect_cif(_cif_national(data, event_codes, report_times), policy)
    rmst = _protect_rmst(_rmst_national(data, rmst_tau), policy)
    if region is None:
        est = rmst[rmst["region_name"] == ""].drop(columns="region_name")
        run_data = data
    else:
        cif = cif[(cif["grouping"] == "region_name+period") & (cif["region_name"] == region)]
        cif = cif.assign(grouping="period").drop(columns="region_name")
        est = rmst[rmst["region_name"] == region].drop(columns="region_name")
        run_data = data[data["region_name"] == region]
    est = est.assign(contrast="estimate")
    diff = _rmst_differences(run_data, rmst_tau, est)
    rmst_out = est if diff is None else pd.concat([est.astype(object), diff], ignore_index=True)
    return {"cif": cif.reset_index(drop=True), "rmst": rmst_out.reset_index(drop=True)}


# --------------------------------------------------------------------------------------------------
# report steps: what the notebooks show (protected tables only) and the files they publish
# --------------------------------------------------------------------------------------------------
def annual_step(data_dir, out_dir, *, modality: str = "MR", regions="all", years=None, standard="default",
                method: str = "gamma", min_cell: int = 5, policy=None, lang: str = "da") -> dict:
    """Tables 1-2 and 5.1-5.2 of one modality (protected together), their figures (drawn from the protected
    tables, in ``lang``; PNG and SVG) and the comparison with the published cells. Returns ``annual, periods, comparison, files``."""
    from pathlib import Path

    from lumbarstats import export, plots, rates, reference

    data_dir = _register.as_register(data_dir)  # opened and validated once for the step; queries cached
    annual = rates.annual_rates(data_dir, modality=modality, regions=regions, years=years, standard=standard,
                                method=method)
    periods = rates.period_rates(data_dir, modality=modality, regions=regions, standard=standard, method=method)
    files = rates.write_rate_tables(out_dir, annual=annual, periods=periods, min_cell=min_cell, policy=policy)
    safe_a, safe_p = rates.protect_rate_tables(rates.published_columns(annual, rates.ANNUAL_COLUMNS),
                                               rates.published_columns(periods, rates.PERIOD_COLUMNS),
                                               min_cell=min_cell, policy=policy)
    figures = Path(out_dir) / "figures"
    source = plots.source_line(data_dir.path, lang)
    fig = plots.annual_rate_figure(safe_a, modality=modality, reference=reference.annual_table(modality), lang=lang,
                                   source=source)
    files.extend(export.publish_figure_files(fig, figures / f"annual_{modality.lower()}.png"))
    fig = plots.period_bar_figure(safe_p, modality=modality, lang=lang, source=source)
    files.extend(export.publish_figure_files(fig, figures / f"periods_{modality.lower()}.png"))
    comparison = rates.compare_annual(export.plottable(safe_a, ["rate", "lower", "upper"]))
    return {"annual": safe_a, "periods": safe_p, "comparison": comparison, "files": files}


def groups_step(data_dir, out_dir, *, modality: str = "MR", region: str = "Landsplan", years="2021-2023",
                min_cell: int = 5, policy=None) -> dict:
    """Tables 5.3-5.4 (protected as a whole, the region's file cut from it), the group figures drawn from
    the protected table, and the payer tables (box 4.1, protected together). Returns ``table`` (the
    region's protected rows), ``payer_shares``, ``private_rate``, ``comparison``, ``files``."""
    from pathlib import Path

    import matplotlib.pyplot as plt

    from lumbarstats import export, groups, plots

    out = Path(out_dir)
    region = _region_name(region)
    data_dir = _register.as_register(data_dir)  # opened and validated once for the step; queries cached
    regions = "all" if region == "Landsplan" else [region]
    # protected once with all 19 industries (figures 4.11-4.12 draw them); the report's table is a slice, so
    # a cell hidden there is hidden in every file cut from it
    full = groups.report_group_table(data_dir, modality=modality, years=years, regions=regions, industries="all")
    safe_all = groups.protect_group_table(full, min_cell=min_cell, policy=policy)
    reported = (safe_all["variable"] != "industry") | safe_all["group_code"].isin(groups._reported_codes("industry"))
    safe = safe_all[reported].reset_index(drop=True)
    table = safe[safe["region"] == region].reset_index(drop=True)
    files = [export.write_published_csv(table, out / "tables" / f"groups_{region}_{modality}.csv")]
    if region == "Landsplan":
        files.append(export.write_published_csv(safe, out / "tables" / groups.TABLE_FILES[modality]))
        files.append(export.write_published_csv(safe_all, out / "tables" / groups.ALL_INDUSTRIES_FILES[modality]))
    source = plots.source_line(data_dir.path)
    for variable in groups.REPORT_VARIABLES:
        sub = table[table["variable"] == variable]
        with plots.journal_style():
            fig, ax = plt.subplots(figsize=(plots.FIGURE_WIDTH, 0.3 * sub["group"].nunique() + 1.3))
            groups.plot_group_rates(sub, ax=ax, title="")
            if len(sub):  # the figure states its region and period (the years pooled), over the whole width
                fig.suptitle(f"{groups._figure_title(sub)} – {plots.region_label(region)}, "
                             f"{str(years).replace('-', '–')}", x=0.01, ha="left", fontweight="bold")
            plots.locale_ticks(ax, "x")
            fig.tight_layout()
            plots.add_source(fig, source)
        files.extend(export.publish_figure_files(fig, out / "figures" / f"groups_{region}_{modality}_{variable}.png"))
    shares, private = groups.protect_payer_tables(groups.payer_shares(data_dir, years=years, pooled=True),
                                                  groups.private_rate_trend(data_dir), min_cell=min_cell,
                                                  policy=policy)
    files.append(export.write_published_csv(shares, out / "tables" / "payer_shares.csv"))
    files.append(export.write_published_csv(private, out / "tables" / "private_rate.csv"))
    comparison = None
    if region == "Landsplan":
        comparison = groups.compare_with_reference(export.plottable(safe, ["rate", "lower", "upper"]),
                                                   kind="groups")
    return {"table": table, "payer_shares": shares, "private_rate": private, "comparison": comparison,
            "files": files}


def profiles_step(data_dir, out_dir, *, region: str = "Landsplan", count: str = "exams", min_cell: int = 5,
                  policy=None) -> dict:
    """Table 4.1 and the profiles' shares per region (protected with regions adding up to Landsplan), their
    coverage (hidden where a share is hidden), figures 5.5-5.6 from the protected table, and persons
    versus examinations. Returns ``table, coverage, persons_vs_exams, comparison, files``."""
    import json
    from pathlib import Path

    import matplotlib.pyplot as plt

    from lumbarstats import disclosure, export, groups, plots, profiles

    out = Path(out_dir)
    region = _region_name(region)
    data_dir = _register.as_register(data_dir)  # opened and validated once for the step; queries cached
    regions = "all" if region == "Landsplan" else [region, "Landsplan"]
    raw = profiles.table4_1_profiles(data_dir, count=count, regions=regions)
    table = profiles.protect_profile_table(raw, min_cell=min_cell, policy=policy)
    name = "table4_1_profiles.csv" if region == "Landsplan" else f"profiles_{region}.csv"
    files = [export.write_published_csv(table, out / "tables" / name)]
    for modality in table["modality"].unique():
        with plots.journal_style():
            fig, ax = plt.subplots(figsize=(plots.FIGURE_WIDTH, 4.2))
            profiles.plot_profile_shares(table, ax=ax, modality=modality)
            title = ax.get_title()
            ax.set_title("")
            ax.set_title(f"{title} – 2021–2023", loc="left", fontweight="bold")  # the report's years
            ax.spines[["top", "right"]].set_visible(False)
            plots.locale_ticks(ax, "x")
            fig.tight_layout()
            plots.add_source(fig, plots.source_line(data_dir.path))
        files.extend(export.publish_figure_files(fig, out / "figures" / f"profiles_{_modality_code(modality)}.png"))
    pve = disclosure.protect(profiles.persons_vs_examinations(data_dir), keys=["figure", "period"],
                             count_columns=["persons"], value_columns=["value"], rule_column="persons",
                             min_cell=min_cell, policy=policy)
    files.append(export.write_published_csv(pve, out / "tables" / "persons_vs_exams.csv"))
    meta = data_dir.path / "metadata.json"
    scale = json.loads(meta.read_text(encoding="utf-8")).get("scale", 1.0) if meta.exists() else 1.0
    comparison = {
        "profiles": groups.compare_with_reference(export.plottable(table, ["share_pct"]), kind="profiles"),
        "national": groups.compare_with_reference(export.plottable(pve, ["value"]), kind="national", scale=scale),
    }
    return {"table": table[table["region"] == region].reset_index(drop=True),
            "coverage": profiles.profile_coverage(table), "persons_vs_exams": pve, "comparison": comparison,
            "files": files}


def time_to_event_step(data_dir, out_dir, *, region: str = "Landsplan", index_modality: str = "any",
                       outcome: str = "surgery", washout_days: int = 365, period_split="2019-01-01",
                       report_times=(30, 90, 180, 365, 730, 1095, 1825), rmst_tau: float = 365,
                       min_cell: int = 5, policy=None) -> dict:
    """One time-to-event run (notebook 05): the whole country's cohort is built and its CIF and RMST
    tables protected over all regions and periods (:func:`time_to_event_tables`); the run publishes its
    slice, the exclusions, the Cox model and its PH test, the Fine–Gray model, and the CIF figure drawn from the protected
    table. Returns ``exclusions, cif, cox, ph, fine_gray, rmst, event_codes, files``."""
    from pathlib import Path

    from lumbarstats import cohort as _cohort
    from lumbarstats import dictionary, export, plots

    pol = _disclosure.as_policy(policy, min_cell=min_cell)
    region = _region_name(region)
    data_dir = _register.as_register(data_dir)
    whole = region == dictionary.load().whole_country_name
    # the national cohort is built once for the whole batch (remembered by the register's content hash);
    # a region's cohort is its slice, identical to building it with region=
    national = _cohort.cached_cohort(data_dir, index_modality=index_modality, washout_days=washout_days,
                                     outcome=outcome, period_split=period_split, region=None)
    run = national if whole else _cohort.restrict_to_region(national, region)
    tables_dir, figures_dir = Path(out_dir) / "tables", Path(out_dir) / "figures"
    stem = f"tte_{region}_{outcome}"
    tte = time_to_event_tables(national.data, national.event_codes, region=None if whole else region,
                               report_times=list(report_times), rmst_tau=rmst_tau, policy=pol)
    exclusions = protect_exclusions(run.exclusions, policy=pol)
    cox, ph, fine_gray = (export.protected_view(t, policy=pol) for t in _cox_tables(run.data, whole))
    files = [export.write_published_csv(exclusions, tables_dir / f"{stem}_exclusions.csv"),
             export.write_published_csv(tte["cif"], tables_dir / f"{stem}_cif.csv"),
             export.write_published_csv(tte["rmst"], tables_dir / f"{stem}_rmst.csv"),
             export.write_published_csv(cox, tables_dir / f"{stem}_cox.csv"),
             export.write_published_csv(ph, tables_dir / f"{stem}_cox_ph_test.csv"),
             export.write_published_csv(fine_gray, tables_dir / f"{stem}_fine_gray.csv")]
    by = ["period"] if not whole else ["period", "region_name"]
    for b in by:
        fig = plots.cif_figure(tte["cif"], by=b, event_type=outcome, title=plots.event_title(outcome, region),
                               source=plots.source_line(data_dir.path))
        files.extend(export.publish_figure_files(fig, figures_dir / f"{stem}_cif_{b.split('_')[0]}.png"))
    return {"exclusions": exclusions, "cif": tte["cif"], "cox": cox, "ph": ph, "fine_gray": fine_gray,
            "rmst": tte["rmst"],
            "event_codes": run.event_codes, "files": files}


def _region_name(region) -> str:
    """The report's name of a region given in any spelling (``sjaelland``, ``SJÆLLAND``, 1085, ``Denmark``):
    a step's region selects rows by name, so a spelling the tables do not use would select nothing."""
    from lumbarstats import dictionary

    return dictionary.region_name(dictionary.resolve_region(region))


def _modality_code(modality: str) -> str:
    """The code (``XRAY``) of a modality given as code or as the report's label (``Røntgen``): file names
    carry codes."""
    from lumbarstats import dictionary

    cl = dictionary.load().codelist("modality")
    hit = cl[(cl["code"] == modality) | (cl["report_label_da"] == modality) | (cl["label_da"] == modality)]
    if hit.empty:
        raise ValueError(f"unknown modality {modality!r}; use one of {list(cl['code'])}")
    return str(hit["code"].iloc[0])


def protect_exclusions(exclusions: pd.DataFrame, *, policy=None) -> pd.DataFrame:
    """The cohort's exclusion flow, protected: small ``n_excluded`` are hidden, with a second one (the
    steps add up to the persons lost between the first and the last ``n_remaining``), and the
    ``n_remaining`` between them (each would give a hidden step back as a difference)."""
    safe = _disclosure.protect(exclusions.drop(columns=["n_remaining"]), keys=["step"],
                               count_columns=["n_excluded"], value_columns=[], group_totals={"step": None},
                               policy=policy)
    out = safe.assign(n_remaining=exclusions["n_remaining"].to_numpy()).astype({"n_remaining": object})
    hidden = out["n_excluded"].astype(str).eq(_disclosure.SUPPRESSED_MARKER).to_numpy()
    if hidden.any():
        first, last = hidden.argmax(), len(hidden) - 1 - hidden[::-1].argmax()
        out.loc[out.index[first:last], "n_remaining"] = _disclosure.SUPPRESSED_MARKER
    return out[list(exclusions.columns)]


FINE_GRAY_MAX_PERSONS = 50_000
"""Above this many persons the report's Fine–Gray model is fitted on a seeded random sample."""
FINE_GRAY_SEED = 2024


def _cox_tables(data: pd.DataFrame, whole_country: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The cause-specific Cox model, its PH test and the Fine–Gray subdistribution-hazard model of the
    same covariates (death and emigration as competing events): the Cox model describes the rate among
    those still at risk, Fine–Gray the cumulative incidence. Each gives a ``reason`` where it cannot be
    estimated (small regions), and the run goes on."""
    from lumbarstats import survival

    covariates = ["sex", "age_band", "education", "employment", "cci"]
    if data["period"].nunique() > 1:
        covariates.append("period")
    if whole_country:
        covariates.append("region_name")
    reference = {"period": "before", "region_name": "Syddanmark"}
    model = survival.cox(data, duration="duration", event="event", covariates=covariates, event_of_interest=1,
                         reference=reference)
    # Fine–Gray's censoring-weighted risk sets grow with (persons x event times): on a national cohort it
    # takes minutes and gigabytes, so the report fits it on a seeded random sample (as ph_test does) and
    # says so in the table; its intervals are those of the sample, wider, not falsely narrow
    sample = data if len(data) <= FINE_GRAY_MAX_PERSONS else data.sample(n=FINE_GRAY_MAX_PERSONS,
                                                                          random_state=FINE_GRAY_SEED)
    fine_gray = survival.fine_gray(sample, duration="duration", event="event", covariates=covariates,
                                   event_of_interest=1, reference=reference)
    fg = fine_gray.summary.assign(
        persons_in_fit=len(sample),
        note="" if len(sample) == len(data) else
        f"fitted on a seeded random sample of {len(sample):,} of {len(data):,} persons (seed {FINE_GRAY_SEED})")
    return model.summary, survival.ph_test(model), fg
