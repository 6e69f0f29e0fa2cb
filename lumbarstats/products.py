"""The report's national figures, box 4.1, box 5.1 and Bilag 1 ("Regionsspecifikke nøgletal"), made from the
register through the export path.

Products (:data:`PRODUCTS`, one :class:`Product` each, with the report's number, caption, Anm. and Kilde):

=================  =========================================================================================
figure 1.1 / 4.1   annual numbers of publicly financed MR and X-ray examinations, whole country, 2014–2023
figure 1.2 / 4.2   the whole country's standardized MR and X-ray rates side by side, with the change 2014→2023
figure 1.3–4/5.1–2 the regions and Landsplan in 2021–2023, one bar chart per modality (tables 5.1–5.2)
box 4.1 A, B       payer split 2021–2023 (public / private / other x modality); public and private rates
box 5.1 C          Region Syddanmark's annual standardized MR and X-ray rates
figure 4.11–4.12   standardized rates of all 19 DB07 industries (employed adults 18–64), 2021–2023
Bilag 1            per region and Landsplan: actual numbers of examinations and persons, crude and
                   standardized rates by year and by population group, and use by payer
=================  =========================================================================================

**One protection per set of linked cells.** Every number here repeats a cell of another published file or
adds up with them: the annual counts and national rates (figures 4.1–4.2, Bilag 1 by year) *are* the
cells of tables 1–2; the regions' 2021–2023 rates *are* tables 5.1–5.2; Bilag 1's groups are tables
5.3–5.4; box 4.1 A is ``payer_shares.csv``. They are therefore cut from the same protected tables,
protected over all regions at once (:func:`lumbarstats.rates.protect_rate_tables`,
:func:`lumbarstats.groups.protect_group_table`, :func:`lumbarstats.groups.protect_payer_tables`) — read
from the output folder when the report steps have written them, else computed exactly as those steps do —
so a cell hidden in one file is hidden in every file. The one new set of cells, Bilag 1's payer table
(regions x modality x payer, 2021–2023), is protected with its relations (payers add up to the totals their
shares reveal, regions add up to Landsplan) while its public cells (= tables 5.1–5.2) and its Landsplan cells
(= ``payer_shares.csv``) keep the state they have there: hidden there, hidden here; published there, a known
number here that no relation can hide (:func:`protect_linked`).

Figures are drawn from the protected tables only (a hidden value draws nothing), in Danish by default
(``lang="en"`` for English), with the report's Anm. line and a Kilde line (:mod:`lumbarstats.plots`).

Reference: Benchmarkingenheden, Indenrigs- og Sundhedsministeriet (2024). *Analyse af brugen af
billeddiagnostiske undersøgelser af lænderyggen* (May 2024), chapters 1, 4, 5, box 4.1, box 5.1, Bilag 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lumbarstats import dictionary as _dictionary
from lumbarstats import disclosure as _disclosure

__all__ = ["Product", "PRODUCTS", "product", "report_products_step", "bilag1_step", "region_slug",
           "annual_counts_table", "national_rates_table", "payer_split_table", "public_private_rates_table",
           "bilag1_tables", "protect_linked", "rate_tables", "group_tables"]

MODALITIES = ("MR", "XRAY")
PERIOD = "2021-2023"
PAYERS = ("public", "private", "other")
_MARK = _disclosure.SUPPRESSED_MARKER

_ANM_PUBLIC = {"da": "Der er tale om offentligt finansieret billeddiagnostiske udredninger af lænderyggen.",
               "en": "Publicly financed imaging examinations of the lumbar spine."}
_ANM_INDUSTRY = {"da": "Brancherne er baseret på Danmarks Statistiks brancheopdelingen DB07, standardgruppe 19. "
                       + _ANM_PUBLIC["da"],
                 "en": "Industries follow Statistics Denmark's DB07 classification, 19 standard groups. "
                       + _ANM_PUBLIC["en"]}
_ANM_PAYER = {"da": "Figur A og B skelner mellem forskellige finansieringsaktører (offentlig, privat og anden "
                    "betaling).",
              "en": "Figures A and B distinguish payers (public, private and other)."}
_KILDE_LPR = {"da": "Landspatientsregisteret og egne beregninger.",
              "en": "The National Patient Register and own calculations."}
_KILDE_DST = {"da": "Danmarks Statistik, Landspatientsregisteret og egne beregninger.",
              "en": "Statistics Denmark, the National Patient Register and own calculations."}
_KILDE_DST_ONLY = {"da": "Danmarks Statistik og egne beregninger.",
                   "en": "Statistics Denmark and own calculations."}
_KILDE_PAYER = {"da": "Landspatientsregisteret, Danmarks Statistik og egne beregninger.",
                "en": "The National Patient Register, Statistics Denmark and own calculations."}


@dataclass(frozen=True)
class Product:
    """One product of the report: ``id`` (``fig4_1``), the report's number (``Figur 4.1``), captions, the files
    it is written to (relative to the output folder; ``{slug}`` is a region's :func:`region_slug`), the Anm.
    and Kilde lines, and the ``chapter`` it belongs to (``4``, ``5``, ``box4_1``, ``box5_1``, ``bilag1``)."""

    id: str
    number_da: str
    caption_da: str
    caption_en: str
    files: tuple[str, ...]
    anm_da: str
    anm_en: str
    kilde_da: str
    kilde_en: str
    chapter: str

    def caption(self, lang: str = "da") -> str:
        return self.caption_da if lang == "da" else self.caption_en

    def anm(self, lang: str = "da") -> str:
        return self.anm_da if lang == "da" else self.anm_en

    def kilde(self, lang: str = "da") -> str:
        return self.kilde_da if lang == "da" else self.kilde_en


def _p(id_, number, da, en, files, anm, kilde, chapter) -> Product:
    return Product(id_, number, da, en, tuple(files), anm["da"], anm["en"], kilde["da"], kilde["en"], chapter)


def _fig(stem: str) -> tuple[str, str]:
    return (f"figures/{stem}.png", f"figures/{stem}.svg")


PRODUCTS: tuple[Product, ...] = (
    _p("fig4_1", "Figur 4.1",
       "Antal MR-scanninger og røntgen af lænderyggen på landsplan, 2014-2023",
       "Number of MRI and X-ray examinations of the lumbar spine, whole country, 2014-2023",
       ("tables/fig4_1_annual_counts.csv", *_fig("fig4_1_annual_counts")), _ANM_PUBLIC, _KILDE_LPR, "4"),
    _p("fig4_2", "Figur 4.2",
       "Køns- og aldersstandardiseret antal MR-scanninger og røntgen af lænderyggen pr. 1.000 voksne, "
       "landsplan, 2014-2023",
       "Sex- and age-standardized MRI and X-ray examinations of the lumbar spine per 1,000 adults, whole "
       "country, 2014-2023",
       ("tables/fig4_2_national_standardized.csv", *_fig("fig4_2_national_standardized")), _ANM_PUBLIC,
       _KILDE_DST, "4"),
    _p("fig5_1", "Figur 5.1",
       "Køns- og aldersstandardiseret antal MR-scanninger af lænderyggen pr. 1.000 voksne, 2021-2023",
       "Sex- and age-standardized MRI of the lumbar spine per 1,000 adults by region, 2021-2023",
       _fig("fig5_1_regions_mr"), _ANM_PUBLIC, _KILDE_DST, "5"),
    _p("fig5_2", "Figur 5.2",
       "Køns- og aldersstandardiseret antal røntgen af lænderyggen pr. 1.000 voksne, 2021-2023",
       "Sex- and age-standardized X-ray of the lumbar spine per 1,000 adults by region, 2021-2023",
       _fig("fig5_2_regions_xray"), _ANM_PUBLIC, _KILDE_DST, "5"),
    _p("box4_1_a", "Figur A (boks 4.1)",
       "Fordeling af betalingsaktører for billeddiagnostiske undersøgelser af lænderyggen, 2021-2023",
       "Payers of imaging examinations of the lumbar spine, 2021-2023",
       ("tables/box4_1_payer_split.csv", *_fig("box4_1_a_payer_split")), _ANM_PAYER, _KILDE_PAYER, "box4_1"),
    _p("box4_1_b", "Figur B (boks 4.1)",
       "Køns- og aldersstandardiseret antal offentligt- og privatfinansieret MR og røntgen af lænderyggen, "
       "2014-2023",
       "Sex- and age-standardized publicly and privately financed MRI and X-ray of the lumbar spine, 2014-2023",
       ("tables/box4_1_public_private_rates.csv", *_fig("box4_1_b_public_private_rates")), _ANM_PAYER,
       _KILDE_PAYER, "box4_1"),
    _p("box5_1_c", "Figur C (boks 5.1)",
       "Køns- og aldersstandardiseret MR-scanninger og røntgen af lænderyggen, Region Syddanmark 2014-2023",
       "Sex- and age-standardized MRI and X-ray of the lumbar spine, Region of Southern Denmark 2014-2023",
       _fig("box5_1_c_syddanmark"), _ANM_PUBLIC, _KILDE_DST, "box5_1"),
    _p("fig4_11", "Figur 4.11",
       "Køns- og aldersstandardiseret MR af lænderyggen på tværs af beskæftigede voksnes arbejdsmarkedsbranche, "
       "2021-2023",
       "Sex- and age-standardized MRI of the lumbar spine by industry of employed adults, 2021-2023",
       _fig("fig4_11_industry_mr"), _ANM_INDUSTRY, _KILDE_DST_ONLY, "4"),
    _p("fig4_12", "Figur 4.12",
       "Køns- og aldersstandardiseret røntgen af lænderyggen på tværs af beskæftigede voksnes "
       "arbejdsmarkedsbranche, 2021-2023",
       "Sex- and age-standardized X-ray of the lumbar spine by industry of employed adults, 2021-2023",
       _fig("fig4_12_industry_xray"), _ANM_INDUSTRY, _KILDE_DST_ONLY, "4"),
    _p("bilag1_annual", "Bilag 1",
       "Faktiske antal undersøgelser og personer, rå og køns- og aldersstandardiserede rater pr. 1.000 voksne "
       "efter år",
       "Actual numbers of examinations and persons, crude and sex- and age-standardized rates per 1,000 adults "
       "by year",
       ("tables/bilag1/bilag1_{slug}_annual.csv",),
       {"da": _ANM_PUBLIC["da"] + " Rå rater er faktiske antal pr. 1.000 voksne.",
        "en": _ANM_PUBLIC["en"] + " Crude rates are actual numbers per 1,000 adults."}, _KILDE_DST, "bilag1"),
    _p("bilag1_groups", "Bilag 1",
       "Faktiske antal og rater pr. 1.000 voksne efter befolkningsgruppe, 2021-2023",
       "Actual numbers and rates per 1,000 adults by population group, 2021-2023",
       ("tables/bilag1/bilag1_{slug}_groups.csv",),
       {"da": _ANM_PUBLIC["da"] + " Beskæftigelse og branche: voksne 18-64 år; branche: beskæftigede.",
        "en": _ANM_PUBLIC["en"] + " Employment and industry: adults aged 18-64; industry: employed adults."},
       _KILDE_DST, "bilag1"),
    _p("bilag1_payer", "Bilag 1",
       "Offentligt og privatfinansieret forbrug af MR og røntgen af lænderyggen, 2021-2023",
       "Publicly and privately financed MRI and X-ray of the lumbar spine, 2021-2023",
       ("tables/bilag1/bilag1_{slug}_payer.csv",), _ANM_PAYER, _KILDE_PAYER, "bilag1"),
)
"""The products this module writes, with the report's captions (see :class:`Product`)."""


def product(id_: str) -> Product:
    """The product ``id_``; raises naming the known products."""
    for p in PRODUCTS:
        if p.id == id_:
            return p
    raise KeyError(f"no product {id_!r}; known: {[p.id for p in PRODUCTS]}")


def region_slug(region) -> str:
    """Lowercase ASCII file name of a region (``syddanmark``, ``sjaelland``, ``landsplan``) in any spelling."""
    name = _dictionary.region_name(_dictionary.resolve_region(region))
    table = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "Æ": "ae", "Ø": "oe", "Å": "aa"})
    return name.translate(table).lower()


# --------------------------------------------------------------------------------------------------
# small helpers: hidden cells, labels
# --------------------------------------------------------------------------------------------------
def _hidden(col: pd.Series) -> np.ndarray:
    return col.astype(str).eq(_MARK).to_numpy()


def _numeric(df: pd.DataFrame, columns) -> pd.DataFrame:
    out = df.copy()
    for c in columns:
        if c in out.columns:
            out[c] = pd.to_numeric(out[c].where(~pd.Series(_hidden(out[c]), index=out.index)), errors="coerce")
    return out


def _mark(df: pd.DataFrame, mask, columns) -> pd.DataFrame:
    out = df.copy()
    mask = np.asarray(mask, dtype=bool)
    for c in columns:
        if c in out.columns and mask.any():
            out[c] = out[c].astype(object)
            out.loc[mask, c] = _MARK
    return out


def _modality_label(code: str, lang: str) -> str:
    from lumbarstats import groups

    return groups.modality_label(code, lang)


def _payer_label(code: str, lang: str) -> str:
    return _dictionary.load().labels("payer", lang)[code]


def _region_code(name: str) -> int:
    return int(_dictionary.resolve_region(name))


def _whole() -> str:
    return _dictionary.load().whole_country_name


def _source(reg, prod: Product, lang: str) -> str:
    """The figure's Kilde: the report's wording for register data, the synthetic register's otherwise."""
    from lumbarstats import plots

    synthetic = (Path(reg.path) / "metadata.json").is_file()
    return plots.source_line(reg.path, lang) if synthetic else prod.kilde(lang)


def _note(prod: Product, lang: str, extra: str = "") -> str:
    return " ".join(x for x in (prod.anm(lang), extra) if x)


# --------------------------------------------------------------------------------------------------
# the protected tables the products are cut from
# --------------------------------------------------------------------------------------------------
def rate_tables(reg, out_dir=None, *, min_cell: int = 5, policy=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 1–2 and 5.1–5.2 of both modalities, protected (marker in hidden cells): read from
    ``out_dir/tables`` when all four files are there (written by the annual step), else computed and
    protected exactly as :func:`lumbarstats.pipeline.annual_step` does (the same cells hidden). Returns
    ``(annual, periods)`` with ``modality`` codes and ``region`` names (Landsplan for the whole country)."""
    from lumbarstats import rates

    tables = Path(out_dir) / "tables" if out_dir is not None else None
    files = ([tables / rates.ANNUAL_FILES[m] for m in MODALITIES] + [tables / rates.PERIOD_FILES[m] for m in MODALITIES]
             if tables is not None else [])
    if files and all(f.is_file() for f in files):
        annual = pd.concat([pd.read_csv(f, dtype={"region": str, "modality": str}) for f in files[:2]],
                           ignore_index=True)
        periods = pd.concat([pd.read_csv(f, dtype={"region": str, "modality": str, "period": str})
                             for f in files[2:]], ignore_index=True)
        return annual, periods
    parts_a, parts_p = [], []
    for m in MODALITIES:
        a = rates.annual_rates(reg, modality=m)
        p = rates.period_rates(reg, modality=m)
        sa, sp = rates.protect_rate_tables(rates.published_columns(a, rates.ANNUAL_COLUMNS),
                                           rates.published_columns(p, rates.PERIOD_COLUMNS), min_cell=min_cell,
                                           policy=policy)
        parts_a.append(sa)
        parts_p.append(sp)
    return pd.concat(parts_a, ignore_index=True), pd.concat(parts_p, ignore_index=True)


def group_tables(reg, out_dir=None, *, min_cell: int = 5, policy=None, all_industries: bool = False) -> pd.DataFrame:
    """Tables 5.3–5.4 of both modalities, protected: read from ``out_dir/tables`` when there (and, with
    ``all_industries``, holding all 19 industries), else computed with all 19 industries and protected as a
    whole (:func:`lumbarstats.groups.protect_group_table`). A cell hidden in a published table 5.3/5.4 that
    lacks industries is hidden here too (it counts as a small cell), so the 19-industry figures show nothing
    that table hides."""
    from lumbarstats import groups

    n_industries = len(_dictionary.load().codelist("industry"))
    parts = []
    for m in MODALITIES:
        f = Path(out_dir) / "tables" / groups.TABLE_FILES[m] if out_dir is not None else None
        f_all = Path(out_dir) / "tables" / groups.ALL_INDUSTRIES_FILES[m] if out_dir is not None else None
        if all_industries and f_all is not None and f_all.is_file():  # groups_step protected all 19 at once
            parts.append(pd.read_csv(f_all, dtype={"region": str, "modality": str, "group_code": str}))
            continue
        published = pd.read_csv(f, dtype={"region": str, "modality": str, "group_code": str}) \
            if f is not None and f.is_file() else None
        if published is not None:
            ind = published[(published["variable"] == "industry") & (published["region"] == _whole())]
            if not all_industries or ind["group_code"].nunique() == n_industries:
                parts.append(published)
                continue
        full = groups.report_group_table(reg, modality=m, industries="all", min_cell=min_cell)
        if published is not None:
            hidden = published.loc[_hidden(published["persons"]), ["variable", "group_code", "region"]]
            key = set(map(tuple, hidden.astype(str).to_numpy()))
            forced = [(v, str(g), r) in key for v, g, r in zip(full["variable"], full["group_code"], full["region"],
                                                                 strict=True)]
            full = full.assign(persons=np.where(forced, 1, full["persons"]))  # hidden there: hidden here
        parts.append(groups.protect_group_table(full, min_cell=min_cell, policy=policy))
    return pd.concat(parts, ignore_index=True)


def _payer_national(reg, *, min_cell: int, policy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``payer_shares.csv`` and ``private_rate.csv`` exactly as the groups step protects them."""
    from lumbarstats import groups

    return groups.protect_payer_tables(groups.payer_shares(reg, years=PERIOD, pooled=True),
                                       groups.private_rate_trend(reg), min_cell=min_cell, policy=policy)


# --------------------------------------------------------------------------------------------------
# the national tables
# --------------------------------------------------------------------------------------------------
def annual_counts_table(annual: pd.DataFrame, *, lang: str = "da") -> pd.DataFrame:
    """Figure 4.1's table: the whole country's publicly financed examinations per modality and year (the
    Landsplan cells of the protected tables 1–2, counted by :meth:`lumbarstats.register.Register.
    counted_examinations`), with distinct persons and the change in per cent from the first year.
    Columns ``year, modality, modality_label, examinations, persons, pct_change_from_first``."""
    df = annual[annual["region"] == _whole()].copy()
    hidden = _hidden(df["events"])
    df = _numeric(df, ["events", "persons"])
    rows = []
    for m, g in df.groupby("modality", sort=False):
        g = g.sort_values("year")
        first = g["events"].iloc[0]
        rows.append(pd.DataFrame({"year": g["year"].astype(int), "modality": m,
                                  "modality_label": _modality_label(m, lang), "examinations": g["events"],
                                  "persons": g["persons"], "pct_change_from_first": 100 * (g["events"] / first - 1),
                                  "_h": hidden[df.index.get_indexer(g.index)] | bool(np.isnan(first))}))
    out = pd.concat(rows, ignore_index=True)
    out = _mark(out, out["_h"], ["examinations", "persons", "pct_change_from_first"]).drop(columns="_h")
    return _sort_modality(out)


def national_rates_table(annual: pd.DataFrame, *, lang: str = "da") -> pd.DataFrame:
    """Figure 4.2's table: the whole country's standardized rates per 1,000 adults per modality and year (the
    Landsplan rows of the protected tables 1–2) and the change in per cent from the first year.
    Columns ``year, modality, modality_label, rate, lower, upper, pct_change_from_first``."""
    df = annual[annual["region"] == _whole()].copy()
    df = _numeric(df, ["rate", "lower", "upper"])
    rows = []
    for m, g in df.groupby("modality", sort=False):
        g = g.sort_values("year")
        rows.append(pd.DataFrame({"year": g["year"].astype(int), "modality": m,
                                  "modality_label": _modality_label(m, lang), "rate": g["rate"],
                                  "lower": g["lower"], "upper": g["upper"],
                                  "pct_change_from_first": 100 * (g["rate"] / g["rate"].iloc[0] - 1)}))
    out = pd.concat(rows, ignore_index=True)
    hidden = out["rate"].isna().to_numpy()
    out = _mark(out, hidden | out["pct_change_from_first"].isna().to_numpy(), ["pct_change_from_first"])
    return _sort_modality(_mark(out, hidden, ["rate", "lower", "upper"]))


def _sort_modality(df: pd.DataFrame) -> pd.DataFrame:
    order = {m: i for i, m in enumerate(MODALITIES)}
    keys = [c for c in ("year",) if c in df.columns]
    return df.assign(_m=df["modality"].map(order)).sort_values(["_m", *keys], kind="stable").drop(
        columns="_m").reset_index(drop=True)


def payer_split_table(shares: pd.DataFrame, *, lang: str = "da") -> pd.DataFrame:
    """Box 4.1 figure A's table: the protected ``payer_shares`` (2021–2023 pooled, whole country) with codes
    and labels: ``year, region, modality, modality_label, payer, payer_label, examinations, persons,
    share_pct, share_within_modality_pct`` — the same cells hidden as in ``payer_shares.csv``."""
    out = shares.rename(columns={"exams": "examinations"}).copy()
    out.insert(out.columns.get_loc("modality") + 1, "modality_label",
               [_modality_label(m, lang) for m in out["modality"]])
    out.insert(out.columns.get_loc("payer") + 1, "payer_label", [_payer_label(p, lang) for p in out["payer"]])
    payer_order = {p: i for i, p in enumerate(PAYERS)}
    out = out.assign(_p=out["payer"].map(payer_order), _m=out["modality"].map({m: i for i, m in enumerate(MODALITIES)}))
    return out.sort_values(["_p", "_m"]).drop(columns=["_p", "_m"]).reset_index(drop=True)


def public_private_rates_table(annual: pd.DataFrame, private: pd.DataFrame, *, lang: str = "da") -> pd.DataFrame:
    """Box 4.1 figure B's table: the whole country's standardized rates of publicly financed examinations
    (the Landsplan cells of the protected tables 1–2) and of privately financed ones (the protected
    ``private_rate`` table) per modality and year. Columns ``year, modality, modality_label, payer,
    payer_label, examinations, rate, lower, upper``."""
    pub = annual[annual["region"] == _whole()]
    pub = pd.DataFrame({"year": pub["year"].astype(int), "modality": pub["modality"], "payer": "public",
                        "examinations": pub["events"], "rate": pub["rate"], "lower": pub["lower"],
                        "upper": pub["upper"]})
    priv = pd.DataFrame({"year": private["year"].astype(int), "modality": private["modality"], "payer": "private",
                         "examinations": private["events"], "rate": private["rate"], "lower": private["lower"],
                         "upper": private["upper"]})
    out = pd.concat([pub.astype(object), priv.astype(object)], ignore_index=True)
    out.insert(2, "modality_label", [_modality_label(m, lang) for m in out["modality"]])
    out.insert(4, "payer_label", [_payer_label(p, lang) for p in out["payer"]])
    out = out.assign(_p=out["payer"].map({p: i for i, p in enumerate(PAYERS)}),
                     _m=out["modality"].map({m: i for i, m in enumerate(MODALITIES)}))
    return out.sort_values(["_p", "_m", "year"]).drop(columns=["_p", "_m"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# protection of a new set of cells linked to published ones
# --------------------------------------------------------------------------------------------------
def protect_linked(cells: pd.DataFrame, relations: Sequence[tuple[Sequence[int], int | None]], *, keys: Sequence[str],
                   known=None, forced=None, rule_column: str = "persons", count_columns=("examinations", "persons"),
                   min_cell: int = 5, policy=None) -> np.ndarray:
    """Which cells of ``cells`` (a stack, positional index) to hide, given additive ``relations``
    ``(member positions, total position or None for a total published elsewhere)`` and the state of cells that
    other files publish: ``forced`` (hidden there: hidden here, as small cells) and ``known`` (published
    there: a number anyone knows, so it is taken out of every relation — a relation whose total is known
    keeps its members with a known total, ``None``). Secondary suppression is
    :func:`lumbarstats.disclosure.suppress`. Under a rounding policy only small and forced cells are hidden.
    Returns a boolean mask."""
    pol = _disclosure.as_policy(policy, min_cell=min_cell)
    n = len(cells)
    known = np.zeros(n, bool) if known is None else np.asarray(known, bool)
    forced = np.zeros(n, bool) if forced is None else np.asarray(forced, bool)
    if (known & forced).any():
        raise ValueError("a cell cannot be both published elsewhere (known) and hidden elsewhere (forced)")
    stack = cells.reset_index(drop=True).copy()
    rule = pd.to_numeric(stack[rule_column], errors="coerce").fillna(0).to_numpy(float)
    stack["_rule"] = np.where(forced, 1.0, rule)  # hidden elsewhere: a small cell here
    if pol.kind == "round":
        return _disclosure.flag_small_cells(stack["_rule"], min_cell=pol.min_cell).to_numpy(bool)
    rels = []
    for members, total in relations:
        members = [int(m) for m in members if not known[m]]
        tot = None if total is None or known[total] else int(total)
        if members:
            rels.append((members, tot))
    res = _disclosure.suppress(stack, count_columns=[*count_columns, "_rule"], value_columns=[], keys=list(keys),
                               rule_column="_rule", min_cell=pol.min_cell, extra_relations=rels)
    mask = res.mask.to_numpy(bool)
    if (mask & known).any():  # a known cell can only be hidden by being small, which it cannot be
        bad = stack.loc[mask & known, list(keys)].head(3).to_dict("records")
        raise ValueError(f"cells published elsewhere would be hidden here: {bad}")
    return mask


# --------------------------------------------------------------------------------------------------
# Bilag 1
# --------------------------------------------------------------------------------------------------
def _bilag1_annual(annual: pd.DataFrame, *, lang: str) -> pd.DataFrame:
    """Tables 1–2 (protected) with the crude rate and its exact Poisson interval (Garwood 1936) from the
    published examinations and population, hidden with the cell."""
    from lumbarstats import standardize

    hidden = _hidden(annual["events"])
    df = _numeric(annual, ["events", "persons", "population", "rate", "lower", "upper"])
    rows = pd.DataFrame({"_row": np.arange(len(df)), "events": df["events"].fillna(0).to_numpy(),
                         "population": df["population"].fillna(1).to_numpy()})
    crude = standardize.crude_rate(rows, events="events", population="population", by="_row", per=1000,
                                   method="exact").sort_values("_row")
    out = pd.DataFrame({"region": df["region"], "region_code": [_region_code(r) for r in df["region"]],
                        "year": df["year"].astype(int), "modality": df["modality"],
                        "modality_label": [_modality_label(m, lang) for m in df["modality"]],
                        "examinations": df["events"], "persons": df["persons"], "population": df["population"],
                        "crude_rate": crude["rate"].to_numpy(), "crude_lower": crude["lower"].to_numpy(),
                        "crude_upper": crude["upper"].to_numpy(), "rate": df["rate"], "lower": df["lower"],
                        "upper": df["upper"]})
    return _mark(out, hidden, ["examinations", "persons", "population", "crude_rate", "crude_lower", "crude_upper",
                               "rate", "lower", "upper"])


def _bilag1_groups(table: pd.DataFrame, *, lang: str) -> pd.DataFrame:
    from lumbarstats import groups

    hidden = _hidden(table["persons"])
    df = table.copy()
    labels = {}
    for (variable, m), _ in df.groupby(["variable", "modality"]):
        labels.update({(variable, m, str(k)): v for k, v in groups.group_labels(variable, modality=m,
                                                                                   lang=lang).items()})
    out = pd.DataFrame({"region": df["region"], "region_code": [_region_code(r) for r in df["region"]],
                        "modality": df["modality"],
                        "modality_label": [_modality_label(m, lang) for m in df["modality"]],
                        "variable": df["variable"], "group_code": df["group_code"].astype(str),
                        "group": [labels.get((v, m, str(c)), g) for v, m, c, g in
                                  zip(df["variable"], df["modality"], df["group_code"], df["group"], strict=True)],
                        "period": PERIOD, "examinations": df["events"], "persons": df["persons"],
                        "population": df["population"], "crude_rate": df["crude_rate"], "rate": df["rate"],
                        "lower": df["lower"], "upper": df["upper"], "standardized": df["standardized"]})
    return _mark(out, hidden, ["examinations", "persons", "population", "crude_rate", "rate", "lower", "upper"])


def _bilag1_payer(reg, periods: pd.DataFrame, national_shares: pd.DataFrame, *, lang: str, min_cell: int,
                  policy) -> pd.DataFrame:
    """Use by payer per region and Landsplan, 2021–2023 pooled: examinations, shares (of the region's MR and
    X-ray examinations, and within the modality) and the standardized rate per 1,000 adults. Protected with
    :func:`protect_linked`: public cells as in tables 5.1–5.2, Landsplan cells as in ``payer_shares.csv``."""
    from lumbarstats import groups

    dd = _dictionary.load()
    whole = _whole()
    by_region = groups.payer_shares(reg, years=PERIOD, pooled=True, by_region=True)
    cells = []
    regions = list(dd.region_names().values()) + [whole]
    nat = _numeric(national_shares.rename(columns={"exams": "examinations"}), ["examinations", "persons"])
    nat_hidden = {(m, p): h for m, p, h in zip(national_shares["modality"], national_shares["payer"],
                                                _hidden(national_shares["exams"]), strict=True)}
    raw = by_region.rename(columns={"exams": "examinations"})
    for r in regions:
        for m in MODALITIES:
            for p in PAYERS:
                src = nat if r == whole else raw[raw["region"] == r]
                row = src[(src["modality"] == m) & (src["payer"] == p)]
                ex = float(row["examinations"].iloc[0]) if len(row) else 0.0
                pe = float(row["persons"].iloc[0]) if len(row) else 0.0
                cells.append({"region": r, "modality": m, "payer": p, "examinations": ex, "persons": pe})
    stack = pd.DataFrame(cells)
    if (stack["region"] == whole).any():  # Landsplan hidden in payer_shares.csv has no number: the regions' sum
        for (m, p), h in nat_hidden.items():
            sel = (stack["region"] == whole) & (stack["modality"] == m) & (stack["payer"] == p)
            if h:
                regs = stack[(stack["region"] != whole) & (stack["modality"] == m) & (stack["payer"] == p)]
                stack.loc[sel, ["examinations", "persons"]] = regs[["examinations", "persons"]].sum().to_numpy()
    # the state of the cells in the other files
    per = periods[periods["period"].astype(str) == PERIOD]
    per_hidden = {(r, m): h for r, m, h in zip(per["region"], per["modality"], _hidden(per["events"]), strict=True)}
    forced = np.zeros(len(stack), bool)
    known = np.zeros(len(stack), bool)
    for i, c in stack.iterrows():
        states = []
        if c["payer"] == "public":
            states.append(per_hidden.get((c["region"], c["modality"])))
        if c["region"] == whole:
            states.append(nat_hidden.get((c["modality"], c["payer"])))
        states = [s for s in states if s is not None]
        if any(states):
            forced[i] = True
        elif states:
            known[i] = True
    rels = []
    for _, g in stack.groupby(["region", "modality"], sort=False):
        rels.append((list(g.index), None))  # shares within the modality reveal its total
    for _, g in stack.groupby(["region"], sort=False):
        rels.append((list(g.index), None))  # shares of all examinations reveal the region's total
    for _, g in stack.groupby(["modality", "payer"], sort=False):
        tot = g.index[g["region"] == whole]
        rels.append((list(g.index[g["region"] != whole]), int(tot[0]) if len(tot) else None))
    mask = protect_linked(stack, rels, keys=["region", "modality", "payer"], known=known, forced=forced,
                          min_cell=min_cell, policy=policy)
    # shares and standardized rates
    tot_r = stack.groupby("region")["examinations"].transform("sum")
    tot_rm = stack.groupby(["region", "modality"])["examinations"].transform("sum")
    stack["share_pct"] = 100 * stack["examinations"] / tot_r.where(tot_r > 0)
    stack["share_within_modality_pct"] = 100 * stack["examinations"] / tot_rm.where(tot_rm > 0)
    rate_parts = []
    for p in ("private", "other"):
        r = groups.private_rate_trend(reg, years=PERIOD, payer=p, region="all", pooled=True)
        rate_parts.append(r.assign(payer=p)[["region", "modality", "payer", "rate", "lower", "upper"]])
    pub = _numeric(per, ["rate", "lower", "upper"])
    rate_parts.append(pub.assign(payer="public")[["region", "modality", "payer", "rate", "lower", "upper"]])
    stack = stack.merge(pd.concat(rate_parts, ignore_index=True), on=["region", "modality", "payer"], how="left")
    out = pd.DataFrame({"region": stack["region"], "region_code": [_region_code(r) for r in stack["region"]],
                        "year": PERIOD, "modality": stack["modality"],
                        "modality_label": [_modality_label(m, lang) for m in stack["modality"]],
                        "payer": stack["payer"], "payer_label": [_payer_label(p, lang) for p in stack["payer"]],
                        "examinations": stack["examinations"], "share_pct": stack["share_pct"],
                        "share_within_modality_pct": stack["share_within_modality_pct"], "rate": stack["rate"],
                        "lower": stack["lower"], "upper": stack["upper"]})
    pol = _disclosure.as_policy(policy, min_cell=min_cell)
    if pol.kind == "round":
        out = _disclosure.round_counts(out.assign(persons=stack["persons"]), count_columns=["examinations"],
                                       value_columns=["share_pct", "share_within_modality_pct"],
                                       rule_column="persons", min_cell=pol.min_cell, base=pol.base).drop(
            columns="persons")
    return _mark(out, mask, ["examinations", "share_pct", "share_within_modality_pct", "rate", "lower", "upper"])


def bilag1_tables(data_dir, out_dir=None, *, lang: str = "da", min_cell: int = 5, policy=None) -> dict[str, pd.DataFrame]:
    """Bilag 1's three tables for all regions and Landsplan, each protected over all regions at once (slice
    them per region): ``annual`` (tables 1–2 with crude rates), ``groups`` (tables 5.3–5.4 with crude rates)
    and ``payer`` (:func:`_bilag1_payer`). Inputs are read from ``out_dir/tables`` when the report steps
    have written them (:func:`rate_tables`, :func:`group_tables`)."""
    from lumbarstats.register import as_register

    reg = as_register(data_dir)
    annual, periods = rate_tables(reg, out_dir, min_cell=min_cell, policy=policy)
    gtab = group_tables(reg, out_dir, min_cell=min_cell, policy=policy)
    shares, _ = _payer_national(reg, min_cell=min_cell, policy=policy)
    return {"annual": _bilag1_annual(annual, lang=lang), "groups": _bilag1_groups(gtab, lang=lang),
            "payer": _bilag1_payer(reg, periods, shares, lang=lang, min_cell=min_cell, policy=policy)}


def _region_list(region) -> list[str]:
    dd = _dictionary.load()
    if isinstance(region, str) and region.casefold() == "all":
        return list(dd.region_names().values()) + [dd.whole_country_name]
    if isinstance(region, (str, int, np.integer)):
        region = [region]
    return [dd.region_name(dd.resolve_region(r)) for r in region]


def bilag1_step(data_dir, out_dir, *, region, lang: str = "da", min_cell: int = 5, policy=None) -> list[Path]:
    """Write Bilag 1 for ``region`` (a region in any spelling, ``Landsplan``, a list of them, or ``"all"``):
    ``tables/bilag1/bilag1_{slug}_annual.csv``, ``…_groups.csv`` and ``…_payer.csv`` per region — slices of
    tables protected over all regions (:func:`bilag1_tables`), so no region file can be differenced against
    Landsplan's. Several regions in one call compute the tables once. Returns the files written."""
    from lumbarstats import export

    names = _region_list(region)
    tabs = bilag1_tables(data_dir, out_dir, lang=lang, min_cell=min_cell, policy=policy)
    folder = Path(out_dir) / "tables" / "bilag1"
    files = []
    for name in names:
        slug = region_slug(name)
        for kind, tab in tabs.items():
            part = tab[tab["region"] == name].reset_index(drop=True)
            files.append(export.write_published_csv(part, folder / f"bilag1_{slug}_{kind}.csv"))
    return files


# --------------------------------------------------------------------------------------------------
# the national products
# --------------------------------------------------------------------------------------------------
def report_products_step(data_dir, out_dir, *, lang: str = "da", min_cell: int = 5, policy=None) -> list[Path]:
    """Write figures 4.1–4.2 (with their tables), 5.1–5.2, box 4.1 A–B (with tables), box 5.1 C and 4.11–4.12
    (all 19 industries) under ``out_dir`` (``tables/``, ``figures/`` PNG and SVG), from protected tables only.
    Tables 1–2, 5.1–5.4 are read from ``out_dir/tables`` when there, else computed as the report steps do.
    Returns the files written."""
    from lumbarstats import export, plots
    from lumbarstats.register import as_register

    reg = as_register(data_dir)
    out = Path(out_dir)
    tables, figures = out / "tables", out / "figures"
    files: list[Path] = []
    annual, periods = rate_tables(reg, out, min_cell=min_cell, policy=policy)

    def figure(fig, stem):
        files.extend(export.publish_figure_files(fig, figures / f"{stem}.png"))

    p = product("fig4_1")
    counts = annual_counts_table(annual, lang=lang)
    files.append(export.write_published_csv(counts, tables / "fig4_1_annual_counts.csv"))
    figure(plots.annual_count_figure(counts, lang=lang, source=_source(reg, p, lang), note=_note(p, lang),
                                     title=p.caption(lang)), "fig4_1_annual_counts")

    p = product("fig4_2")
    national = national_rates_table(annual, lang=lang)
    files.append(export.write_published_csv(national, tables / "fig4_2_national_standardized.csv"))
    figure(plots.national_rate_figure(national, lang=lang, source=_source(reg, p, lang), note=_note(p, lang),
                                      title=p.caption(lang)), "fig4_2_national_standardized")

    for pid, m, stem in (("fig5_1", "MR", "fig5_1_regions_mr"), ("fig5_2", "XRAY", "fig5_2_regions_xray")):
        p = product(pid)
        figure(plots.region_bar_figure(periods, modality=m, period=PERIOD, lang=lang, source=_source(reg, p, lang),
                                       note=_note(p, lang), title=p.caption(lang)), stem)

    p = product("box5_1_c")
    figure(plots.region_rates_figure(annual, region="Syddanmark", lang=lang, source=_source(reg, p, lang),
                                     note=_note(p, lang), title=p.caption(lang)), "box5_1_c_syddanmark")

    shares, private = _payer_national(reg, min_cell=min_cell, policy=policy)
    p = product("box4_1_a")
    split = payer_split_table(shares, lang=lang)
    files.append(export.write_published_csv(split, tables / "box4_1_payer_split.csv"))
    figure(plots.payer_split_figure(split, lang=lang, source=_source(reg, p, lang), note=_note(p, lang),
                                    title=p.caption(lang)), "box4_1_a_payer_split")
    p = product("box4_1_b")
    pp = public_private_rates_table(annual, private, lang=lang)
    files.append(export.write_published_csv(pp, tables / "box4_1_public_private_rates.csv"))
    figure(plots.public_private_rate_figure(pp, lang=lang, source=_source(reg, p, lang), note=_note(p, lang),
                                            title=p.caption(lang)), "box4_1_b_public_private_rates")

    gtab = group_tables(reg, out, min_cell=min_cell, policy=policy, all_industries=True)
    for pid, m, stem in (("fig4_11", "MR", "fig4_11_industry_mr"), ("fig4_12", "XRAY", "fig4_12_industry_xray")):
        p = product(pid)
        figure(plots.group_rates_figure(_relabel_groups(gtab, lang), variable="industry", modality=m,
                                        region=_whole(), lang=lang, source=_source(reg, p, lang),
                                        note=_note(p, lang), title=p.caption(lang)), stem)
    return files


def _relabel_groups(table: pd.DataFrame, lang: str) -> pd.DataFrame:
    """Group labels in ``lang`` from the code lists (a table read back may carry another language)."""
    from lumbarstats import groups

    out = table.copy()
    for (variable, m), idx in out.groupby(["variable", "modality"]).groups.items():
        labels = groups.group_labels(variable, modality=m, lang=lang)
        out.loc[idx, "group"] = [labels.get(str(c), g) for c, g in zip(out.loc[idx, "group_code"],
                                                                        out.loc[idx, "group"], strict=True)]
    return out
