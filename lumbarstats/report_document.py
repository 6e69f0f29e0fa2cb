"""The whole report as one document: ``rapport.docx`` and ``rapport.html`` in the report's chapter order.

:func:`write_report` assembles what the reproduce steps wrote into an output folder: a cover page (the
register, synthetic or real, and its content hash; the toolkit version; the date), a contents list, a
short method section generated from the parameters actually used, chapters 4 and 5 with boxes 4.1 and
5.1, Bilag 1 (regionsspecifikke nøgletal) and an appendix of published versus reproduced values. Every
table and figure has its numbered caption, Anm. and Kilde. :func:`write_region_reports` writes one
document per region (that region's Bilag 1).

What goes in: only the *protected* files of the output folder (tables already through the disclosure
layer, figures drawn from them), ``metadata.json`` of the register and the register's content hash
(:attr:`lumbarstats.register.Register.content_hash`) — never a number from the register itself. Each
CSV read is checked with :func:`lumbarstats.disclosure.check_directory` first (a product file with an
unprotected small count stops the document, naming the file and the cell), tables are laid out by
:mod:`lumbarstats.tables` (disclosure control on where the table has counts), and each finished
document is checked again before it is written (atomically, :mod:`lumbarstats.io`).

The chapter order, numbers, captions, Anm. and Kilde are data: ``templates/rapport/catalogue.yaml``.
Where :data:`lumbarstats.products.PRODUCTS` describes a product (same id or same file), its wording wins.

The documents are built here rather than with a document generator (pandoc, Quarto, docxtpl): the
pieces are python-docx and great_tables, already used for the publication tables, and the one thing
added is the order of the pieces. The HTML is one self-contained file (figures embedded as base64 PNG,
CSS for A4 print).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html as _html
import io as _stdio
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from lumbarstats import __version__
from lumbarstats import dictionary as _dictionary
from lumbarstats import disclosure as _disclosure
from lumbarstats import io as _io
from lumbarstats import tables as _tables

__all__ = ["write_report", "write_region_reports", "load_catalogue", "report_plan", "MissingProductError",
           "ReportDisclosureError", "FORMATS", "report_stem"]

FORMATS = ("docx", "html")
_MARKER = _disclosure.SUPPRESSED_MARKER

_W = {
    "da": {"contents": "Indhold", "missing": "MANGLER", "anm": "Anm.", "kilde": "Kilde", "register": "Register",
           "synthetic": "Syntetisk register", "real": "Registerdata", "hash": "Indholds-hash (BLAKE2b)",
           "version": "Værktøj", "date": "Dato", "region": "Region", "whole": "Hele landet",
           "incomplete": "ADVARSEL: output-mappen er ufuldstændig (INCOMPLETE.txt) – dokumentet må ikke offentliggøres.",
           "n_missing": "{n} produkt(er) mangler i output-mappen; de er markeret med MANGLER i dokumentet.",
           "report_source": "I rapporten: {src}", "yes": "Ja", "no": "Nej",
           "method": "Metode", "method_sub": "Genereret fra de parametre, kørslen faktisk brugte",
           "summary": "Oversigt: offentliggjorte og reproducerede værdier",
           "group": "Tabel/figur", "cells": "Celler", "reproduced_n": "Reproduceret", "mean_abs": "Gns. |forskel|",
           "within_share": "Inden for interval", "quantity": "Størrelse", "modality": "Modalitet",
           "published": "Offentliggjort", "reproduced": "Reproduceret", "difference": "Forskel",
           "within": "Inden for interval", "output": "Output-mappe", "created": "Oprettet",
           "not_producible": "kan ikke reproduceres",
           "comparison_source": "Rapporten (maj 2024) og dette output (comparison.csv)."},
    "en": {"contents": "Contents", "missing": "MISSING", "anm": "Note", "kilde": "Source", "register": "Register",
           "synthetic": "Synthetic register", "real": "Register data", "hash": "Content hash (BLAKE2b)",
           "version": "Toolkit", "date": "Date", "region": "Region", "whole": "Denmark",
           "incomplete": "WARNING: the output folder is incomplete (INCOMPLETE.txt) – do not publish this document.",
           "n_missing": "{n} product(s) are missing in the output folder; they are marked MISSING in the document.",
           "report_source": "In the report: {src}", "yes": "Yes", "no": "No",
           "method": "Method", "method_sub": "Generated from the parameters the run actually used",
           "summary": "Overview: published and reproduced values",
           "group": "Table/figure", "cells": "Cells", "reproduced_n": "Reproduced", "mean_abs": "Mean |difference|",
           "within_share": "Within interval", "quantity": "Quantity", "modality": "Modality",
           "published": "Published", "reproduced": "Reproduced", "difference": "Difference",
           "within": "Within interval", "output": "Output folder", "created": "Created",
           "not_producible": "not producible",
           "comparison_source": "The report (May 2024) and this output (comparison.csv)."},
}
_SYNTHETIC_SOURCE = {
    "da": "Syntetisk register (lumbarstats), kalibreret til Benchmarkingenhedens tal (maj 2024); egne beregninger.",
    "en": "Synthetic register (lumbarstats), calibrated to the Benchmarking Unit's figures (May 2024); own calculations.",
}


class MissingProductError(FileNotFoundError):
    """A product file the document needs is not in the output folder."""


class ReportDisclosureError(RuntimeError):
    """A product file or the finished document holds a count the disclosure layer would not pass."""


# --------------------------------------------------------------------------------------------------
# catalogue
# --------------------------------------------------------------------------------------------------
def load_catalogue(path: str | Path | None = None) -> dict:
    """The report's chapter catalogue (``templates/rapport/catalogue.yaml``, or an edited copy at ``path``)."""
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
    else:
        res = resources.files("lumbarstats.templates") / "rapport" / "catalogue.yaml"
        if not res.is_file():
            raise FileNotFoundError("the report catalogue lumbarstats/templates/rapport/catalogue.yaml is not "
                                    "installed (package data 'rapport/*.yaml' of lumbarstats.templates)")
        text = res.read_text(encoding="utf-8")
    cat = yaml.safe_load(text)
    if not isinstance(cat, dict) or "chapters" not in cat:
        raise ValueError(f"report catalogue {path or 'catalogue.yaml'} needs a 'chapters' list")
    return cat


def _pick(text, lang: str) -> str:
    if text is None:
        return ""
    if isinstance(text, Mapping):
        return str(text.get(lang) or text.get("da") or next(iter(text.values()), ""))
    return str(text)


def _products() -> list:
    """``lumbarstats.products.PRODUCTS`` if that module exists (it is optional for the document)."""
    import importlib

    try:
        products = importlib.import_module("lumbarstats.products")
    except ImportError:
        return []
    return list(getattr(products, "PRODUCTS", ()) or ())


def _get(obj, name, default=None):
    return obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)


def _product_wording(item: dict, products: list, lang: str) -> dict:
    """Number, caption, Anm. and Kilde of ``item`` from PRODUCTS (same id or a shared file), else {}.

    A number several products share (``Bilag 1`` for every Bilag 1 table) numbers none of them: the
    catalogue's number stays."""
    files = {str(f) for f in item.get("files", [])}
    shared = {n for n in (_get(p, "number_da") for p in products)
              if n and sum(_get(q, "number_da") == n for q in products) > 1}
    for p in products:
        pid = _get(p, "id")
        pfiles = {str(f) for f in (_get(p, "files") or ())}
        if pid == item.get("id") or (files & pfiles):
            out = {}
            for key, attr in (("number", "number"), ("caption", "caption"), ("anm", "anm"), ("kilde", "kilde")):
                v = _get(p, f"{attr}_{lang}") or _get(p, f"{attr}_da")
                if v and not (key == "number" and _get(p, "number_da") in shared):
                    out[key] = str(v)
            return out
    return {}


# --------------------------------------------------------------------------------------------------
# the plan: blocks both writers draw
# --------------------------------------------------------------------------------------------------
@dataclass
class Block:
    kind: str  # cover, toc, heading, text, figure, table, missing, box_start, box_end, bullets, warning
    data: dict = field(default_factory=dict)


@dataclass
class _Run:
    out: Path
    data: Path
    lang: str
    region: str | None  # short name or None (whole country)
    allow_missing: bool
    catalogue: dict
    products: list
    info: dict  # register / run facts for the cover and the method section
    missing: list = field(default_factory=list)  # (file, label, reason)
    checked: set = field(default_factory=set)
    n_table: int = 0


def _register_info(data: Path, lang: str) -> dict:
    from lumbarstats import synth
    from lumbarstats.register import Register

    meta_path = data / "metadata.json"
    meta = {}
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    reg = Register(data, validate=False)
    try:
        content_hash = reg.content_hash
    finally:
        reg.close()
    return {"synthetic": synth.is_synthetic_register(data), "metadata": meta, "hash": content_hash,
            "path": str(data)}


def _run_info(out: Path) -> dict:
    from lumbarstats import reproduce

    info = {"marker": _io.read_marker(out) or {}, "incomplete": None, "steps": []}
    inc = out / reproduce.INCOMPLETE_NAME
    if inc.is_file():
        lines = [line for line in inc.read_text(encoding="utf-8").splitlines() if line.strip()]
        info["incomplete"] = lines[1] if len(lines) > 1 else "INCOMPLETE.txt"
    steps = reproduce.logs_dir(out) / reproduce.STEP_TIMES_NAME
    if steps.is_file():
        try:
            info["steps"] = json.loads(steps.read_text(encoding="utf-8")).get("steps", [])
        except ValueError:
            info["steps"] = []
    info["notebooks"] = _notebook_parameters(out)
    return info


def _notebook_parameters(out: Path) -> dict:
    """The parameters each executed report notebook ran with (papermill's record), by notebook name."""
    params = {}
    for nb in sorted((out / "notebooks").glob("*.ipynb")) if (out / "notebooks").is_dir() else []:
        try:
            meta = json.loads(nb.read_text(encoding="utf-8")).get("metadata", {})
        except ValueError:
            continue
        params[nb.stem] = (meta.get("papermill") or {}).get("parameters") or {}
    return params


def _why_missing(run: _Run, step: str | None) -> str:
    da = run.lang == "da"
    reasons = []
    for s in reversed(run.info["steps"]):
        if step and s.get("step") == step:
            if s.get("status") != "ok":
                reasons.append(f"trinnet »{step}« fejlede i den seneste kørsel" if da else
                                f"the step '{step}' failed in the last run")
            break
    else:
        if step and run.info["steps"]:
            reasons.append(f"trinnet »{step}« er ikke kørt i den seneste kørsel" if da else
                            f"the step '{step}' did not run in the last run")
    if run.info["incomplete"]:
        reasons.append("output-mappen er ufuldstændig" if da else "the output folder is incomplete")
    if not reasons:
        reasons.append("filen findes ikke i output-mappen" if da else "the file is not in the output folder")
    return "; ".join(reasons)


def _find(run: _Run, files: Sequence[str]) -> Path | None:
    for f in files:
        p = run.out / f
        if p.is_file():
            return p
    return None


def _read_protected_csv(run: _Run, path: Path) -> pd.DataFrame:
    """A product CSV, after checking that it passes the disclosure layer (as reproduce's check does)."""
    if path not in run.checked:
        v = _disclosure.check_directory(path, min_cell=run.info["min_cell"])
        if len(v):
            first = v.iloc[0]
            raise ReportDisclosureError(
                f"{path} is not protected: {len(v)} cell(s) break the disclosure rules, e.g. row {first['row']}, "
                f"column {first['column']!r}, value {first['value']} ({first['rule']}); the report document "
                "shows only tables that passed disclosure control — rerun the step that wrote the file")
        run.checked.add(path)
    return pd.read_csv(path, na_values=[_MARKER])


def _kilde(run: _Run, text: str) -> str:
    """The Kilde line: the report's wording; for a synthetic register the synthetic source first."""
    if not text:
        return ""
    if run.info["register"]["synthetic"]:
        return f"{_SYNTHETIC_SOURCE[run.lang]} {_W[run.lang]['report_source'].format(src=text)}"
    return text


def _fill(text: str, ctx: Mapping) -> str:
    return text.format(**ctx) if "{" in text else text


def _item_words(run: _Run, item: dict, ctx: Mapping) -> dict:
    lang = run.lang
    words = {k: _fill(_pick(item.get(k), lang), ctx) for k in ("number", "caption", "anm", "kilde")}
    words.update(_product_wording({**item, "files": [_fill(f, ctx) for f in item.get("files", [])]},
                                  run.products, lang))
    return words


def _missing_block(run: _Run, item: dict, words: dict, files: list[str]) -> Block:
    reason = _why_missing(run, item.get("step"))
    label = " ".join(x for x in (words.get("number"), words.get("caption")) if x) or item.get("id", "")
    run.missing.append((files[0], label, reason))
    return Block("missing", {"number": words.get("number", ""), "caption": words.get("caption", ""),
                             "file": files[0], "reason": reason})


def _figure_blocks(run: _Run, item: dict, ctx: Mapping, *, in_box: bool = False) -> list[Block]:
    words = _item_words(run, item, ctx)
    files = [_fill(f, ctx) for f in item.get("files", [])]
    path = _find(run, files)
    if path is None:
        return [_missing_block(run, item, words, files)]
    # a box's figures share the box's Anm. and Kilde at its end, as in the report
    anm, kilde = ("", "") if in_box else (words["anm"], _kilde(run, words["kilde"]))
    return [Block("figure", {"id": _fill(item.get("id", ""), ctx), "number": words["number"],
                             "caption": words["caption"], "png": path.read_bytes(), "file": str(path),
                             "anm": anm, "kilde": kilde, "in_box": in_box})]


def _provenance(run: _Run) -> _tables.Provenance:
    reg = run.info["register"]
    meta = reg["metadata"]
    if reg["synthetic"]:
        src = {"da": f"syntetisk register (lumbarstats.synth, seed {meta.get('seed')}, skala {meta.get('scale')})",
               "en": f"synthetic register (lumbarstats.synth, seed {meta.get('seed')}, scale {meta.get('scale')})"}
    else:
        src = {"da": "registerdata", "en": "register data"}
    return _tables.Provenance(data_source=src, data_hash=reg["hash"][:12])


def _template_for(item: dict, lang: str) -> dict:
    tpl = _tables.load_template(item["template"])
    ov = item.get("overrides") or {}
    for key in ("label", "title", "note", "source"):
        if key in ov:
            tpl[key] = ov[key]
    for col, label in (ov.get("column_labels") or {}).items():
        cols = tpl["layout"].get("columns")
        if isinstance(cols, dict) and col in cols:
            cols[col] = {**(cols[col] or {}), "label": label}
    return tpl


def _table_blocks(run: _Run, item: dict, ctx: Mapping) -> list[Block]:
    files = [_fill(f, ctx) for f in item.get("files", [])]
    tpl = _template_for(item, run.lang)
    words = {"number": _pick(tpl.get("label"), run.lang), "caption": _pick(tpl.get("title"), run.lang)}
    words.update(_product_wording({**item, "files": files}, run.products, run.lang))
    path = _find(run, files)
    if path is None:
        return [_missing_block(run, item, words, files)]
    tpl["label"], tpl["title"] = words["number"], words["caption"]
    if words.get("anm"):
        tpl["note"] = words["anm"]
    df = _read_protected_csv(run, path)
    source = _kilde(run, words.get("kilde") or _pick(tpl.get("source"), run.lang))
    model = _tables.report_table_model(tpl, df, lang=run.lang, provenance=_provenance(run), source=source,
                                       min_cell=run.info["min_cell"])
    return [Block("table", {"id": item.get("id", ""), "model": model, "number": words["number"],
                            "caption": words["caption"]})]


def _region_table_blocks(run: _Run, item: dict, ctx: Mapping) -> list[Block]:
    """A Bilag 1 table of one region: the protected CSV as it is, its chosen columns, sections by modality
    (and population group variable); counts, hidden cells and all, through :func:`lumbarstats.tables.table_model`
    with disclosure control on."""
    files = [_fill(f, ctx) for f in item.get("files", [])]
    words = _item_words(run, item, ctx)
    label = ctx.get("region_label" if run.lang == "da" else "region_label_en", "")
    if label and label not in words["caption"]:  # a product's caption names no region
        words["caption"] = f"{words['caption']} – {label}"
    path = _find(run, files)
    if path is None:
        return [_missing_block(run, item, words, files)]
    df = _read_protected_csv(run, path)
    lang = run.lang
    group_names = run.catalogue.get("region_table_groups") or {}
    group_cols = [c for c in (item.get("group_by") or []) if c in df.columns]
    if group_cols:
        df = df.assign(_section=[" – ".join(_pick(group_names.get(str(v)), lang) or str(v) for v in vals)
                                 for vals in df[group_cols].itertuples(index=False)])
    wanted = [c for c in item.get("columns", []) if c in df.columns] or \
        [c for c in df.columns if c not in (*group_cols, "region", "region_code", "conf_level", "method")]
    labels = {c: (run.catalogue.get("region_table_labels") or {}).get(c) for c in wanted}
    counts = [c for c in df.columns if _disclosure.is_count_column(c)]
    table = df[wanted + (["_section"] if group_cols else []) + [c for c in counts if c not in wanted]]
    spec = _tables.TableSpec(title=words["caption"], label=words["number"], note=words["anm"] or None,
                             source=_kilde(run, words["kilde"]) or None,
                             group_by="_section" if group_cols else None, columns=labels,
                             percent=[c for c in item.get("percent", []) if c in wanted],
                             provenance=_provenance(run))
    df = table
    model = _tables.table_model(df, spec, run.lang, disclosure=bool(counts), min_cell=run.info["min_cell"],
                                count_column="persons" if "persons" in df.columns else (counts[0] if counts else None))
    return [Block("table", {"id": _fill(item.get("id", ""), ctx), "model": model, "number": words["number"],
                            "caption": words["caption"]})]


def _item_blocks(run: _Run, item: dict, ctx: Mapping, *, in_box: bool = False) -> list[Block]:
    kind = item.get("kind")
    if kind == "heading":
        return [Block("heading", {"level": 3, "text": _fill(_pick(item.get("title"), run.lang), ctx)})]
    if kind == "text":
        return [Block("text", {"text": _fill(_pick(item.get("text"), run.lang), ctx), "in_box": in_box})]
    if kind == "figure":
        return _figure_blocks(run, item, ctx, in_box=in_box)
    if kind == "table":
        return _table_blocks(run, item, ctx)
    if kind == "region_table":
        return _region_table_blocks(run, item, ctx)
    if kind == "box":
        words = _item_words(run, item, ctx)
        blocks = [Block("box_start", {"number": words["number"], "caption": words["caption"]})]
        if item.get("text"):
            blocks.append(Block("text", {"text": _fill(_pick(item["text"], run.lang), ctx), "in_box": True}))
        for sub in item.get("items", []):
            blocks.extend(_item_blocks(run, sub, ctx, in_box=True))
        blocks.append(Block("box_end", {"anm": words["anm"], "kilde": _kilde(run, words["kilde"])}))
        return blocks
    raise ValueError(f"report catalogue: unknown item kind {kind!r} (item {item.get('id')!r})")


def _region_context(name: str) -> dict:
    from lumbarstats import batch

    dd = _dictionary.load()
    code = dd.resolve_region(name)
    order = dd.region_order(whole_country=False)
    return {"region": dd.region_name(code), "region_label": dd.region_name(code, "da"),
            "region_label_en": dd.region_name(code, "en"), "slug": batch.region_slug(dd.region_name(code)),
            "k": order.index(code) + 1, "code": code}


# --------------------------------------------------------------------------------------------------
# the method section, from what the run used
# --------------------------------------------------------------------------------------------------
def _years_of(run: _Run, rel: str, column: str) -> list:
    p = run.out / rel
    if not p.is_file():
        return []
    try:
        col = pd.read_csv(p, usecols=[column])[column]
    except (ValueError, KeyError):
        return []
    return sorted(col.dropna().astype(str).unique())


def _first_value(run: _Run, rel: str, column: str):
    p = run.out / rel
    if not p.is_file():
        return None
    try:
        col = pd.read_csv(p, usecols=[column])[column].dropna()
    except (ValueError, KeyError):
        return None
    return col.iloc[0] if len(col) else None


def _min_cell_used(info: dict) -> int:
    """The threshold the steps used: a notebook's ``min_cell`` parameter where one was given, else the
    default of the report steps (:func:`lumbarstats.pipeline.annual_step`)."""
    import inspect

    from lumbarstats import pipeline

    given = {int(p["min_cell"]) for p in info["notebooks"].values() if "min_cell" in p}
    if given:
        return max(given)
    return int(inspect.signature(pipeline.annual_step).parameters["min_cell"].default)


def _method_bullets(run: _Run) -> list[str]:
    lang, info = run.lang, run.info
    da = lang == "da"
    reg, meta = info["register"], info["register"]["metadata"]
    dd = _dictionary.load()
    fmt = _tables.format_number
    out = []
    if reg["synthetic"]:
        out.append((f"Register: syntetisk register skabt af {meta.get('generator')} {meta.get('version', '')} "
                    f"(seed {meta.get('seed')}, skala {fmt(meta.get('scale', 1.0), 2, lang)}, "
                    f"{fmt(meta.get('persons', 0), 0, lang)} personer)"
                    + (f", oprettet {meta['created']}" if meta.get("created") else "") + ". "
                    f"Indholds-hash (BLAKE2b) {reg['hash']}.") if da else
                   (f"Register: synthetic register made by {meta.get('generator')} {meta.get('version', '')} "
                    f"(seed {meta.get('seed')}, scale {fmt(meta.get('scale', 1.0), 2, lang)}). "
                    f"Content hash (BLAKE2b) {reg['hash']}."))
    else:
        out.append((f"Register: registerdata i kanonisk form ({reg['path']}); indholds-hash (BLAKE2b) {reg['hash']}.")
                   if da else f"Register: register data in canonical form; content hash (BLAKE2b) {reg['hash']}.")
    years = _years_of(run, "tables/table1_mr_annual.csv", "year")
    y0, y1 = dd.study_years
    span = f"{years[0]}-{years[-1]}" if years else f"{y0}-{y1}"
    periods = _years_of(run, "tables/table5_1_mr_periods.csv", "period")
    group_years = sorted({str(p.get("years")) for k, p in info["notebooks"].items()
                          if k.startswith("02_") and p.get("years")}) or ["2021-2023"]
    out.append((f"Population: alle voksne med bopæl i Danmark pr. 31. december året før; undersøgelsen henføres "
                f"til bopælsregionen. Analyseperiode {span}; perioder {', '.join(periods) or '–'}; befolkningsgrupper "
                f"og patientprofiler {', '.join(group_years)} under et.") if da else
               (f"Population: all adults resident in Denmark on 31 December of the year before. Study period {span}; "
                f"periods {', '.join(periods) or '–'}; population groups and profiles {', '.join(group_years)} pooled."))
    codes = dd.counted_procedure_codes()
    code_text = ", ".join(f"{m} {'/'.join(c)}" for m, c in codes.items() if m in ("MR", "XRAY"))
    out.append((f"Tælleregel: offentligt finansierede undersøgelser (betaler »public«) med kerneprocedurekoden "
                f"({code_text}); en undersøgelse tilhører året for sin dato.") if da else
               (f"Counting rule: publicly financed examinations (payer 'public') with the core procedure code "
                f"({code_text}); an examination belongs to the year of its date."))
    standards = sorted({str(p.get("standard")) for k, p in info["notebooks"].items()
                        if k.startswith("01_") and p.get("standard")}) or ["default"]
    std_text = {"default": (f"den voksne befolkning {y0}-{y1} samlet efter køn og aldersgruppe" if da else
                            f"the adult population {y0}-{y1} pooled by sex and age band"),
                "esp2013": "European Standard Population 2013"}
    method = _first_value(run, "tables/table1_mr_annual.csv", "method") or "gamma"
    conf = _first_value(run, "tables/table1_mr_annual.csv", "conf_level") or 0.95
    ci = _tables._METHOD_TEXT.get(str(method), {}).get(lang, str(method)).format(ci=_tables._ci_text(conf, lang))
    out.append((f"Standardisering: direkte køns- og aldersstandardisering; standardpopulation: "
                f"{'; '.join(std_text.get(s, s) for s in standards)}; {ci}. Tallene for aldersgrupper og køn er "
                f"faktiske antal pr. 1.000 voksne.") if da else
               (f"Standardization: direct by sex and age; standard population: "
                f"{'; '.join(std_text.get(s, s) for s in standards)}; {ci}."))
    out.append(("Diskretionering: " if da else "Disclosure control: ") +
               _disclosure.disclosure_note(info["min_cell"], lang) +
               (" Alle tabeller i dokumentet er læst fra de beskyttede filer i output-mappen og kontrolleret igen "
                "(lumbarstats.disclosure.check_directory)." if da else
                " Every table is read from the protected files of the output folder and checked again."))
    steps = info["steps"]
    if steps:
        ok = sum(s.get("status") == "ok" for s in steps)
        failed = [s.get("label") for s in steps if s.get("status") != "ok"]
        out.append((f"Kørsel: lumbarstats {info['marker'].get('version', __version__)}, output oprettet "
                    f"{info['marker'].get('created', '?')}; {ok} af {len(steps)} trin gennemført"
                    + (f" (fejlede: {', '.join(map(str, failed))})" if failed else "") + ".") if da else
                   (f"Run: lumbarstats {info['marker'].get('version', __version__)}, output created "
                    f"{info['marker'].get('created', '?')}; {ok} of {len(steps)} steps completed"
                    + (f" (failed: {', '.join(map(str, failed))})" if failed else "") + "."))
    return out


# --------------------------------------------------------------------------------------------------
# the comparison appendix
# --------------------------------------------------------------------------------------------------
def _num(v, decimals: int, lang: str) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return _MARKER
    return _tables.format_number(float(v), decimals, lang)


def _comparison_frame(comp: pd.DataFrame, region: str | None, whole: str) -> pd.DataFrame:
    """comparison.csv in the appendix's columns; ``_quantity`` is the cell (year, group, rank …), with the
    measure where the measures of a group differ."""
    c = comp.copy()
    group = "figure_group" if "figure_group" in c.columns else "table"
    c["_group"] = c[group].astype(str) if group in c.columns else ""
    name = "cell" if "cell" in c.columns else ("quantity" if "quantity" in c.columns else None)
    base = c[name].fillna("").astype(str) if name else pd.Series("", index=c.index)
    if "measure" in c.columns:
        varies = c.groupby("_group")["measure"].transform(lambda m: m.nunique(dropna=True) > 1).astype(bool)
        base = base.where(~varies, base + " (" + c["measure"].fillna("").astype(str) + ")")
    c["_quantity"] = base
    c["_producible"] = ~(c["quantity"].astype(str) == "not_producible") if "quantity" in c.columns else True
    c["_region"] = c["region"].fillna(whole).astype(str) if "region" in c.columns else whole
    c["_modality"] = c["modality"].fillna("").astype(str) if "modality" in c.columns else ""
    for col in ("published", "reproduced", "difference"):
        c[col] = pd.to_numeric(c[col], errors="coerce") if col in c.columns else float("nan")
    if "within_interval" in c.columns:
        w = c["within_interval"].map(lambda x: None if pd.isna(x) else str(x).strip().lower() in ("true", "1", "yes"))
    elif {"lower", "upper"} <= set(c.columns):
        lo, up = pd.to_numeric(c["lower"], errors="coerce"), pd.to_numeric(c["upper"], errors="coerce")
        w = ((c["published"] >= lo) & (c["published"] <= up)).where(lo.notna() & up.notna())
        w = w.map(lambda x: None if pd.isna(x) else bool(x))
    else:
        w = pd.Series([None] * len(c), index=c.index)
    c["_within"] = w
    if region is not None:
        c = c[c["_region"] == region]
    return c


def _comparison_blocks(run: _Run) -> list[Block]:
    cfg = run.catalogue.get("comparison") or {}
    lang, w = run.lang, _W[run.lang]
    path = run.out / cfg.get("file", "comparison.csv")
    blocks = [Block("heading", {"level": 1, "text": f"{_pick(cfg.get('number'), lang)} {_pick(cfg.get('title'), lang)}",
                                "anchor": "appendix"}),
              Block("text", {"text": _pick(cfg.get("intro"), lang).format(marker=_MARKER)})]
    if not path.is_file():
        words = {"number": _pick(cfg.get("number"), lang), "caption": _pick(cfg.get("title"), lang)}
        blocks.append(_missing_block(run, {"id": "comparison", "step": cfg.get("step", "comparison")}, words,
                                     [cfg.get("file", "comparison.csv")]))
        return blocks
    comp = _read_protected_csv(run, path)
    whole = _dictionary.load().whole_country_name
    c = _comparison_frame(comp, run.region, whole)
    labels = cfg.get("group_labels") or {}
    prefix = _pick(cfg.get("table_prefix"), lang) or "Tabel A"
    groups = list(dict.fromkeys(c["_group"]))
    yes_no = lambda x: "" if x is None else (w["yes"] if x else w["no"])  # noqa: E731
    summary_rows = []
    for g in groups:
        part = c[c["_group"] == g]
        within = [x for x in part["_within"] if x is not None]
        diff = part["difference"].abs()
        summary_rows.append([_pick(labels.get(g), lang) or g, str(len(part)), str(int(part["reproduced"].notna().sum())),
                             _num(diff.mean() if diff.notna().any() else None, 2, lang),
                             (_tables.format_percent(100 * sum(within) / len(within), 0, lang) if within else "")])
    blocks.append(Block("table", {"id": "comparison_summary", "number": f"{prefix}.1", "caption": w["summary"],
                                  "model": _text_model(f"{prefix}.1. {w['summary']}",
                                                       [w["group"], w["cells"], w["reproduced_n"], w["mean_abs"],
                                                        w["within_share"]],
                                                       summary_rows, [False, True, True, True, True], lang)}))
    for i, g in enumerate(groups, start=2):
        part = c[c["_group"] == g]
        rows = []
        for _, r in part.iterrows():
            big = pd.notna(r["published"]) and abs(r["published"]) >= 1000
            reproduced = (_num(r["reproduced"], 0 if big else 2, lang) if r["_producible"] else w["not_producible"])
            rows.append([r["_quantity"], r["_region"], r["_modality"], _num(r["published"], 0 if big else 1, lang),
                         reproduced, _num(r["difference"], 0 if big else 2, lang) if r["_producible"] else "",
                         yes_no(r["_within"])])
        title = _pick(labels.get(g), lang) or g
        blocks.append(Block("table", {"id": f"comparison_{g}", "number": f"{prefix}.{i}", "caption": title,
                                      "model": _text_model(f"{prefix}.{i}. {title}",
                                                           [w["quantity"], w["region"], w["modality"], w["published"],
                                                            w["reproduced"], w["difference"], w["within"]],
                                                           rows, [False, False, False, True, True, True, False],
                                                           lang)}))
    return blocks


def _text_model(heading: str, header: list[str], rows: list[list[str]], numeric: list[bool], lang: str):
    """A table of already formatted texts (the comparison appendix: each row has its own number of decimals)."""
    body = [("row", [_tables._Cell(str(t)) for t in row]) for row in rows]
    source = f"{_W[lang]['kilde']}: {_W[lang]['comparison_source']}"
    return _tables._Model(heading=heading, header=header, body=body, numeric=numeric, notes=[], source=source,
                          provenance=None, stub=True, lang=lang)


# --------------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------------
def report_plan(out_dir, data_dir, *, region=None, lang: str = "da", allow_missing: bool = False,
                catalogue: dict | None = None, steps: Sequence[Mapping] | None = None,
                incomplete: str | bool | None = None) -> tuple[list[Block], dict]:
    """The document as a list of blocks (what both writers draw) and the run facts (cover, method).

    ``steps`` / ``incomplete``: the state of the run (see :func:`write_report`); None reads
    ``OUT.logs/steps.json`` and ``OUT/INCOMPLETE.txt``. Raises :class:`MissingProductError` naming every
    missing product file unless ``allow_missing``.
    """
    if lang not in _W:
        raise ValueError(f"lang must be one of {list(_W)}, got {lang!r}")
    out, data = Path(out_dir), Path(data_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"output folder {out} does not exist; run `lumbarstats reproduce` first")
    cat = catalogue or load_catalogue()
    region_ctx = _region_context(region) if region is not None else None
    if region_ctx and region_ctx["code"] == _dictionary.load().whole_country_code:
        region_ctx = None
    info = _run_info(out)
    if steps is not None:
        info["steps"] = [dict(x) for x in steps]
    if incomplete is not None:
        info["incomplete"] = (incomplete if isinstance(incomplete, str) else "INCOMPLETE") if incomplete else None
    info["register"] = _register_info(data, lang)
    info["min_cell"] = _min_cell_used(info)
    run = _Run(out=out, data=data, lang=lang, region=region_ctx["region"] if region_ctx else None,
               allow_missing=allow_missing, catalogue=cat, products=_products(), info=info)
    blocks: list[Block] = [Block("cover", {}), Block("toc", {})]
    blocks.append(Block("heading", {"level": 1, "text": f"3 {_W[lang]['method']}", "anchor": "ch3"}))
    blocks.append(Block("text", {"text": _W[lang]["method_sub"] + ".", "style": "small"}))
    blocks.append(Block("bullets", {"items": _method_bullets(run)}))
    if region_ctx is None:
        for ch in cat["chapters"]:
            blocks.append(Block("heading", {"level": 1, "text": f"{ch['number']} {_pick(ch['title'], lang)}",
                                            "anchor": ch.get("id", f"ch{ch['number']}")}))
            if ch.get("intro"):
                blocks.append(Block("text", {"text": _pick(ch["intro"], lang)}))
            for sec in ch.get("sections", []):
                blocks.append(Block("heading", {"level": 2, "text": f"{sec['number']} {_pick(sec['title'], lang)}",
                                                "anchor": "s" + str(sec["number"]).replace(".", "_")}))
                for item in sec.get("items", []):
                    blocks.extend(_item_blocks(run, item, {}))
    b1 = cat.get("bilag1") or {}
    dd = _dictionary.load()
    b1_title = f"{_pick(b1.get('number'), lang)} {_pick(b1.get('title'), lang)}"
    if region_ctx is not None:
        b1_title += f" – {region_ctx['region_label'] if lang == 'da' else region_ctx['region_label_en']}"
    blocks.append(Block("heading", {"level": 1, "text": b1_title, "anchor": "bilag1"}))
    if b1.get("intro"):
        blocks.append(Block("text", {"text": _pick(b1["intro"], lang)}))
    if region_ctx is None:
        for item in b1.get("overview", []):
            blocks.extend(_item_blocks(run, item, {}))
        regions = [_region_context(dd.region_name(c)) for c in dd.region_order(whole_country=False)]
    else:
        regions = [region_ctx]
    for ctx in regions:
        if region_ctx is None:
            blocks.append(Block("heading", {"level": 2, "text": ctx["region_label"] if lang == "da" else
                                            ctx["region_label_en"], "anchor": f"bilag1_{ctx['slug']}"}))
        for item in b1.get("per_region", []):
            blocks.extend(_item_blocks(run, item, ctx))
    blocks.extend(_comparison_blocks(run))
    if run.missing and not allow_missing:
        shown = 5  # one readable line: the first few, then how many more (all of them with allow_missing=True)
        listed = "; ".join(f"{f} ({label}: {reason})" for f, label, reason in run.missing[:shown])
        if len(run.missing) > shown:
            listed += f"; and {len(run.missing) - shown} more"
        raise MissingProductError(
            f"the report document needs {len(run.missing)} product file(s) missing in {out}: {listed}. Run "
            "`lumbarstats reproduce` (all steps) first, or pass allow_missing=True to mark them in the document")
    info["missing"] = run.missing
    info["region"] = region_ctx
    info["title"] = _pick(cat.get("title"), lang)
    info["subtitle"] = (_pick(cat.get("region_subtitle"), lang).format(**region_ctx) if region_ctx
                        else _pick(cat.get("subtitle"), lang))
    info["date"] = _dt.date.today().isoformat()
    info["lang"] = lang
    info["out"] = str(out)
    return blocks, info


def _toc(blocks: list[Block]) -> list[tuple[int, str, str]]:
    return [(b.data["level"], b.data["text"], b.data.get("anchor", "")) for b in blocks
            if b.kind == "heading" and b.data["level"] <= 2]


def _cover_lines(info: dict) -> list[tuple[str, str]]:
    w = _W[info["lang"]]
    reg, meta = info["register"], info["register"]["metadata"]
    region = info["region"]
    lines = [(w["region"], (region["region_label"] if info["lang"] == "da" else region["region_label_en"])
              if region else w["whole"])]
    if reg["synthetic"]:
        lines.append((w["register"], f"{w['synthetic']} ({meta.get('generator')}, seed {meta.get('seed')}, "
                                     f"{'skala' if info['lang'] == 'da' else 'scale'} "
                                     f"{_tables.format_number(meta.get('scale', 1.0), 2, info['lang'])})"))
    else:
        lines.append((w["register"], w["real"]))
    lines += [(w["hash"], reg["hash"]), (w["version"], f"lumbarstats {__version__}"), (w["date"], info["date"])]
    return lines


# --------------------------------------------------------------------------------------------------
# Word
# --------------------------------------------------------------------------------------------------
_BOX_FILL = "E9EEF4"
_RED = (0xB0, 0x00, 0x20)


def _box_paragraph(p) -> None:
    """Frame and shade a paragraph; adjacent framed paragraphs form one box (Word and LibreOffice)."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    ppr = p._p.get_or_add_pPr()
    bdr = OxmlElement("w:pBdr")
    for edge in ("top", "left", "bottom", "right"):
        el = OxmlElement(f"w:{edge}")
        for k, v in (("w:val", "single"), ("w:sz", "6"), ("w:space", "4"), ("w:color", "7F8FA6")):
            el.set(qn(k), v)
        bdr.append(el)
    ppr.append(bdr)
    shd = OxmlElement("w:shd")
    for k, v in (("w:val", "clear"), ("w:color", "auto"), ("w:fill", _BOX_FILL)):
        shd.set(qn(k), v)
    ppr.append(shd)


def _docx_bytes(blocks: list[Block], info: dict) -> bytes:
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
    from docx.shared import Cm, Pt, RGBColor
    from PIL import Image

    lang = info["lang"]
    w = _W[lang]
    doc = _tables.reference_docx(lang)
    doc.core_properties.title = info["title"]
    doc.core_properties.author = f"lumbarstats {__version__}"
    doc.core_properties.subject = info["subtitle"]
    styles = doc.styles
    for name, size in (("Heading 1", 16), ("Heading 2", 13), ("Heading 3", 11)):
        st = styles[name]
        st.font.name, st.font.size = "Calibri", Pt(size)
        st.paragraph_format.keep_with_next = True
    small = styles[_tables.DOCX_STYLES["note"]]
    in_box = False

    def para(text="", *, bold=False, size=None, style=None, keep=False, color=None, align=None):
        p = doc.add_paragraph(style=style)
        if text:
            run = p.add_run(text)
            run.bold = bold
            if size:
                run.font.size = Pt(size)
            if color:
                run.font.color.rgb = RGBColor(*color)
        p.paragraph_format.keep_with_next = keep
        if align:
            p.alignment = align
        if in_box:
            _box_paragraph(p)
        return p

    for b in blocks:
        d = b.data
        if b.kind == "cover":
            para(info["title"], bold=True, size=24).paragraph_format.space_before = Pt(120)
            para(info["subtitle"], size=14).paragraph_format.space_after = Pt(36)
            for label, value in _cover_lines(info):
                p = para()
                p.add_run(f"{label}: ").bold = True
                p.add_run(value)
            if info["run"]["incomplete"]:
                para(w["incomplete"], bold=True, color=_RED).paragraph_format.space_before = Pt(24)
            if info["missing"]:
                para(w["n_missing"].format(n=len(info["missing"])), bold=True, color=_RED)
            para().add_run().add_break(WD_BREAK.PAGE)
        elif b.kind == "toc":
            para(w["contents"], style="Heading 1")
            for level, text, _anchor in _toc(blocks):
                p = para(text, bold=level == 1)
                p.paragraph_format.left_indent = Cm(0.8 * (level - 1))
                p.paragraph_format.space_after = Pt(2)
        elif b.kind == "heading":
            h = doc.add_heading(d["text"], level=d["level"])
            if d["level"] == 1:
                h.paragraph_format.page_break_before = True
        elif b.kind == "text":
            para(d["text"], style=small if d.get("style") == "small" else None)
        elif b.kind == "bullets":
            for t in d["items"]:
                para(t, style="List Bullet")
        elif b.kind == "box_start":
            para().paragraph_format.space_after = Pt(0)
            in_box = True
            para(d["number"], bold=True, keep=True)
            para(d["caption"], bold=True, size=12, keep=True)
        elif b.kind == "box_end":
            for label, text in ((w["anm"], d["anm"]), (w["kilde"], d["kilde"])):
                if text:
                    para(f"{label}: {text}", style=small, keep=label == w["anm"])
            in_box = False
        elif b.kind == "figure":
            para(d["number"], bold=True, keep=True)
            para(d["caption"], bold=True, keep=True)
            with Image.open(_stdio.BytesIO(d["png"])) as im:
                px_w, px_h = im.size
            width_cm = min(15.5, 20.0 * px_w / max(px_h, 1))  # at most 20 cm high: a caption fits above
            p = para(keep=bool(d["anm"] or d["kilde"]), align=WD_ALIGN_PARAGRAPH.CENTER)
            p.add_run().add_picture(_stdio.BytesIO(d["png"]), width=Cm(width_cm))
            for label, text in ((w["anm"], d["anm"]), (w["kilde"], d["kilde"])):
                if text:
                    para(f"{label}: {text}", style=small, keep=label == w["anm"] and bool(d["kilde"]))
        elif b.kind == "missing":
            para(" ".join(x for x in (d["number"], d["caption"]) if x), bold=True, keep=True)
            para(f"{w['missing']}: {d['file']} – {d['reason']}.", bold=True, color=_RED)
        elif b.kind == "table":
            _tables.add_docx_table(doc, d["model"])
        else:
            raise ValueError(f"unknown block {b.kind!r}")
    buf = _stdio.BytesIO()
    doc.save(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------
_CSS = """
@page { size: A4; margin: 2cm; }
html { background: #f4f4f4; }
body { font-family: Calibri, Carlito, "Segoe UI", Arial, sans-serif; font-size: 10.5pt; line-height: 1.35;
       color: #1a1a1a; background: #fff; max-width: 17cm; margin: 0 auto; padding: 1.5cm 2cm; }
h1 { font-size: 17pt; margin: 0 0 .6em 0; padding-top: .4em; page-break-before: always; break-before: page; }
h2 { font-size: 13.5pt; margin: 1.4em 0 .5em 0; page-break-after: avoid; break-after: avoid; }
h3 { font-size: 11pt; margin: 1.2em 0 .4em 0; page-break-after: avoid; break-after: avoid; }
.cover { min-height: 24cm; page-break-after: always; break-after: page; padding-top: 5cm; }
.cover .title { font-size: 26pt; font-weight: bold; margin-bottom: .4em; }
.cover .subtitle { font-size: 14pt; margin-bottom: 2.5em; }
.cover dl { display: grid; grid-template-columns: max-content 1fr; gap: .3em 1em; }
.cover dt { font-weight: bold; } .cover dd { margin: 0; font-family: Consolas, monospace; word-break: break-all; }
.toc ul { list-style: none; padding-left: 0; } .toc li.l2 { padding-left: 1.2em; }
.toc li.l1 { font-weight: bold; margin-top: .4em; } .toc a { color: inherit; text-decoration: none; }
figure { margin: 1em 0 1.4em 0; page-break-inside: avoid; break-inside: avoid; }
figure img { display: block; max-width: 100%; max-height: 21cm; margin: .3em auto; }
.number { font-weight: bold; } .caption { font-weight: bold; margin-bottom: .2em; }
.anm, .kilde, .small { font-size: 8.5pt; margin: .15em 0; }
.box { border: 1px solid #7f8fa6; background: #e9eef4; padding: .6em .9em; margin: 1.2em 0; break-inside: avoid; page-break-inside: avoid; }
.box figure { background: #fff; padding: .3em; }
.missing { border: 2px dashed #b00020; color: #b00020; padding: .6em; margin: 1em 0; font-weight: bold; }
.warning { color: #b00020; font-weight: bold; }
.table-block { margin: 1.2em 0; }
.table-block > div { overflow: visible !important; width: auto !important; height: auto !important;
                     padding: 0 !important; }
.table-block table.gt_table { font-size: 8.5pt !important; width: 100% !important; margin: 0 !important; }
.table-block .gt_table td, .table-block .gt_table th { padding: 2px 5px !important; }
.table-block .gt_heading .gt_title { font-size: 10pt !important; font-weight: bold; text-align: left !important; }
.table-block .gt_sourcenote { font-size: 7.5pt !important; padding: 2px 5px !important; }
.table-block table { page-break-inside: auto; } .table-block tr { page-break-inside: avoid; break-inside: avoid; }
.table-block thead { display: table-header-group; }
@media print { html { background: #fff; } body { padding: 0; max-width: none; } }
"""


def _html_bytes(blocks: list[Block], info: dict) -> bytes:
    lang = info["lang"]
    w = _W[lang]
    e = _html.escape
    parts = []
    box_open = False
    for b in blocks:
        d = b.data
        if b.kind == "cover":
            dl = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in _cover_lines(info))
            warn = ""
            if info["run"]["incomplete"]:
                warn += f'<p class="warning">{e(w["incomplete"])}</p>'
            if info["missing"]:
                warn += f'<p class="warning">{e(w["n_missing"].format(n=len(info["missing"])))}</p>'
            parts.append(f'<section class="cover"><div class="title">{e(info["title"])}</div>'
                         f'<div class="subtitle">{e(info["subtitle"])}</div><dl>{dl}</dl>{warn}</section>')
        elif b.kind == "toc":
            lis = "".join(f'<li class="l{lv}"><a href="#{e(a)}">{e(t)}</a></li>' for lv, t, a in _toc(blocks))
            parts.append(f'<nav class="toc"><h2>{e(w["contents"])}</h2><ul>{lis}</ul></nav>')
        elif b.kind == "heading":
            lv = d["level"]
            anchor = f' id="{e(d["anchor"])}"' if d.get("anchor") else ""
            parts.append(f"<h{lv}{anchor}>{e(d['text'])}</h{lv}>")
        elif b.kind == "text":
            cls = ' class="small"' if d.get("style") == "small" else ""
            parts.append(f"<p{cls}>{e(d['text'])}</p>")
        elif b.kind == "bullets":
            parts.append("<ul>" + "".join(f"<li>{e(t)}</li>" for t in d["items"]) + "</ul>")
        elif b.kind == "box_start":
            box_open = True
            parts.append(f'<aside class="box"><div class="number">{e(d["number"])}</div>'
                         f'<div class="caption">{e(d["caption"])}</div>')
        elif b.kind == "box_end":
            for cls, label, text in (("anm", w["anm"], d["anm"]), ("kilde", w["kilde"], d["kilde"])):
                if text:
                    parts.append(f'<p class="{cls}">{e(label)}: {e(text)}</p>')
            parts.append("</aside>")
            box_open = False
        elif b.kind == "figure":
            src = "data:image/png;base64," + base64.b64encode(d["png"]).decode("ascii")
            notes = "".join(f'<p class="{cls}">{e(label)}: {e(text)}</p>'
                            for cls, label, text in (("anm", w["anm"], d["anm"]), ("kilde", w["kilde"], d["kilde"]))
                            if text)
            parts.append(f'<figure id="{e(d["id"])}"><div class="number">{e(d["number"])}</div>'
                         f'<div class="caption">{e(d["caption"])}</div>'
                         f'<img src="{src}" alt="{e(d["number"])}: {e(d["caption"])}">{notes}</figure>')
        elif b.kind == "missing":
            parts.append(f'<div class="missing">{e(" ".join(x for x in (d["number"], d["caption"]) if x))}<br>'
                         f'{e(w["missing"])}: {e(d["file"])} – {e(d["reason"])}.</div>')
        elif b.kind == "table":
            parts.append(f'<div class="table-block">{_tables.table_html(d["model"], "t-" + str(d["id"]))}</div>')
    if box_open:
        parts.append("</aside>")
    page = (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="generator" content="lumbarstats {e(__version__)}">\n'
            f"<title>{e(info['title'])} – {e(info['subtitle'])}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")
    return page.encode("utf-8")


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------
def report_stem(region=None) -> str:
    """``rapport`` for the whole country, ``rapport_<slug>`` for a region (``rapport_sjaelland``)."""
    if region is None:
        return "rapport"
    ctx = _region_context(region)
    if ctx["code"] == _dictionary.load().whole_country_code:
        return "rapport"
    return f"rapport_{ctx['slug']}"


def _check_payload(payload: bytes, name: str, min_cell: int) -> None:
    """The finished document through the disclosure checker before it is written (in a private folder)."""
    with tempfile.TemporaryDirectory(prefix="lumbarstats-report-") as tmp:
        path = _io.write_bytes(payload, Path(tmp) / name)
        v = _disclosure.check_directory(path, min_cell=min_cell)
    if len(v):
        first = v.iloc[0]
        raise ReportDisclosureError(
            f"the report document {name} would show {len(v)} cell(s) the disclosure rules forbid, e.g. "
            f"{first['file']} row {first['row']}, column {first['column']!r}, value {first['value']} "
            f"({first['rule']}); nothing was written")


def write_report(out_dir, data_dir, *, region=None, lang: str = "da", formats: Sequence[str] = FORMATS,
                 allow_missing: bool = False, catalogue: dict | str | Path | None = None,
                 steps: Sequence[Mapping] | None = None, incomplete: str | bool | None = None) -> list[Path]:
    """Write the whole report as one document: ``out_dir/rapport.docx`` and ``out_dir/rapport.html``.

    out_dir : an output folder written by ``lumbarstats reproduce`` (read: its protected tables, figures,
        ``comparison.csv``, the executed notebooks' parameters, ``OUT.logs/steps.json``).
    data_dir : the register the output was made from (read: ``metadata.json`` and its content hash only).
    region : None for the whole report; a region (any spelling: ``sjaelland``, 1085, ``Region Sjælland``)
        for that region's own report (its Bilag 1), written as ``rapport_<slug>.docx/.html``.
    formats : any of ``docx``, ``html``.
    allow_missing : a missing product file raises :class:`MissingProductError` naming every missing file;
        with True the document says visibly where a product is missing and why.
    steps, incomplete : the state of the run, for a caller inside ``lumbarstats reproduce`` (where
        ``INCOMPLETE.txt`` is still there and ``steps.json`` is the previous run's): ``steps`` as in
        ``steps.json`` (``step``, ``label``, ``status``), ``incomplete`` False or the reason. None: read
        ``OUT.logs/steps.json`` and ``OUT/INCOMPLETE.txt``.

    Each CSV read must pass :func:`lumbarstats.disclosure.check_directory`, and so must each finished
    document before it is written (else :class:`ReportDisclosureError`, nothing written). Returns the
    written paths.
    """
    fmts = tuple(dict.fromkeys(str(f).lower().lstrip(".") for f in ([formats] if isinstance(formats, str)
                                                                      else formats)))
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise ValueError(f"unknown report format(s) {bad or list(formats)}; choose from {list(FORMATS)}")
    cat = catalogue if isinstance(catalogue, dict) else load_catalogue(catalogue)
    blocks, info = report_plan(out_dir, data_dir, region=region, lang=lang, allow_missing=allow_missing,
                               catalogue=cat, steps=steps, incomplete=incomplete)
    info["run"] = {"incomplete": info.get("incomplete")}
    stem = report_stem(region) + ("" if lang == "da" else f"_{lang}")
    builders = {"docx": _docx_bytes, "html": _html_bytes}
    payloads = {f: builders[f](blocks, info) for f in fmts}  # everything rendered and checked before writing
    for f, payload in payloads.items():
        _check_payload(payload, f"{stem}.{f}", info["min_cell"])
    return [_io.write_bytes(payload, Path(out_dir) / f"{stem}.{f}") for f, payload in payloads.items()]


def write_region_reports(out_dir, data_dir, regions="all", **kwargs) -> list[Path]:
    """One report per region (that region's Bilag 1): ``rapport_<slug>.docx/.html`` for each of ``regions``
    (``"all"``: the five regions in the report's order; or names/codes). Keyword arguments go to
    :func:`write_report`. Returns every written path."""
    dd = _dictionary.load()
    if regions in ("all", None):
        names = [dd.region_name(c) for c in dd.region_order(whole_country=False)]
    else:
        names = [r.strip() for r in regions.split(",")] if isinstance(regions, str) else list(regions)
    paths: list[Path] = []
    for name in names:
        paths.extend(write_report(out_dir, data_dir, region=name, **kwargs))
    return paths
