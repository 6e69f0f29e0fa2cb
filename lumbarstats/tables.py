"""Publication tables: Word (.docx), Excel (.xlsx), HTML and LaTeX, with disclosure control by default.

Tables look like the report's (Benchmarking Unit, May 2024): a numbered title, the table, a note
(``Anm.:``/``Note:``), a source line (``Kilde:``/``Source:``) and a provenance footer (package version,
data source and its SHA-256, period, standard population, interval method, parameters, date).
Numbers are formatted the Danish way by default (``14,7``, ``408.300``, ``39 pct.``); ``lang="en"``
gives ``14.7``, ``408,300``, ``39%`` and English labels. Column and code labels come from the data
dictionary (``ls.dictionary.load()``).

Every exported table passes :func:`lumbarstats.disclosure.suppress` first (``disclosure=True``,
``min_cell=5``): cells with fewer than ``min_cell`` persons — and the cells they could be computed
from — show ``–`` and a footnote explains why. Files are written atomically (a temporary file in the
same folder, then ``os.replace``), and all formats are rendered in memory before the first file is
written, so an error leaves no half-written table behind.

Usage::

    import lumbarstats as ls
    spec = ls.tables.TableSpec(title="MR pr. 1.000 voksne", source="Danmarks Statistik og egne beregninger",
                               provenance=ls.tables.Provenance(data_source="data/synthetic", period="2014-2023"))
    ls.tables.export(df, "output/tables/mr", spec)                     # docx, xlsx, html, tex
    ls.tables.export_report_table("table1", long_df, "output/tables")  # the report's layout (templates/)

Templates for the report's tables live in ``templates/*.yaml`` (installed as
``lumbarstats.templates``); edit a copy and pass its path as ``name``.

Pages: Word and Excel tables are set on A4 (landscape only when the table does not fit portrait), with
column widths from the content — every column at least as wide as its longest word, so text wraps only
at spaces — the header row repeated on every page and rows kept whole; Word documents carry the Danish
proofing language (``da-DK``; ``en-GB`` for ``lang="en"``). The Word styles come from a reference
document: ``ls.tables.write_reference_docx("journal.docx")``, restyle its ``Table …`` styles (or page) in
Word, and pass ``template="journal.docx"``. LaTeX uses booktabs, and longtable for long tables.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lumbarstats import __version__
from lumbarstats import dictionary as dictionary_mod
from lumbarstats import disclosure as disclosure_mod
from lumbarstats import io as io_mod

__all__ = [
    "FORMATS",
    "Provenance",
    "TableSpec",
    "data_hash",
    "format_number",
    "format_percent",
    "column_label",
    "code_labels",
    "render",
    "export",
    "list_templates",
    "load_template",
    "from_template",
    "export_report_table",
    "reference_docx",
    "write_reference_docx",
    "DOCX_STYLES",
    "report_table_model",
    "table_model",
    "table_html",
    "add_docx_table",
]

FORMATS = ("docx", "xlsx", "html", "tex")
LANGS = ("da", "en")
Text = str | Mapping[str, str]

_WORDS = {
    "da": {"note": "Anm.", "source": "Kilde", "table": "Tabel", "provenance": "Dokumentation", "data": "Data",
           "period": "Periode", "standard": "Standardpopulation", "method": "Metode", "parameters": "Parametre",
           "date": "Dato", "percent": " pct.", "unit": "Enhed"},
    "en": {"note": "Note", "source": "Source", "table": "Table", "provenance": "Provenance", "data": "Data",
           "period": "Period", "standard": "Standard population", "method": "Method", "parameters": "Parameters",
           "date": "Date", "percent": "%", "unit": "Unit"},
}

# Labels of result columns that are not variables of the data dictionary.
_RESULT_LABELS: dict[str, dict[str, str]] = {
    **disclosure_mod.COUNT_COLUMN_LABELS,
    "rate": {"da": "Pr. 1.000 voksne", "en": "Per 1,000 adults"},
    "lower": {"da": "95 %-KI, nedre", "en": "95% CI, lower"},
    "upper": {"da": "95 %-KI, øvre", "en": "95% CI, upper"},
    "conf_level": {"da": "Konfidensniveau", "en": "Confidence level"},
    "method": {"da": "Metode", "en": "Method"},
    "pct_change": {"da": "Ændring i pct.", "en": "Change (%)"},
    "pct_lower": {"da": "Ændring, 95 %-KI, nedre", "en": "Change, 95% CI, lower"},
    "pct_upper": {"da": "Ændring, 95 %-KI, øvre", "en": "Change, 95% CI, upper"},
    "share_pct": {"da": "Andel af forbruget", "en": "Share of use"},
    "region": {"da": "Region", "en": "Region"},
    "period": {"da": "Periode", "en": "Period"},
    "group": {"da": "Gruppe", "en": "Group"},
    "variable": {"da": "Variabel", "en": "Variable"},
    "rank": {"da": "Rang", "en": "Rank"},
    "standardized": {"da": "Standardiseret", "en": "Standardized"},
    "population": {"da": "Befolkning (person-år)", "en": "Population (person-years)"},
}
_INTEGER_COLUMNS = {*disclosure_mod.COUNT_COLUMN_NAMES, "population"}
_PERCENT_COLUMNS = {"pct_change", "pct_lower", "pct_upper", "share_pct"}
_KEY_LIKE = {"year", "month", "quarter", "rank", "period", "week"}
# Column name -> code list whose labels replace the codes.
_CODELIST_FOR_COLUMN = {
    "sex": "sex", "education": "education", "employment": "employment", "industry": "industry",
    "cci_category": "cci_category", "age_band": "age_band", "modality": "modality", "payer": "payer",
    "age_group_profile": "age_group_profile", "education_profile": "education_profile",
    "employment_profile": "employment_profile", "exit_type": "exit_type",
}


# ------------------------------------------------------------------------------------------------
# numbers
# ------------------------------------------------------------------------------------------------
def _check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    return lang


def format_number(x, decimals: int = 1, lang: str = "da", thousands: bool = True) -> str:
    """A number as published: ``14,7`` / ``408.300`` (Danish) or ``14.7`` / ``408,300`` (``lang="en"``).

    Rounds half away from zero on the shortest decimal representation (14.65 -> ``14,7``), as
    tables are read by people; missing values give ``""``.
    """
    _check_lang(lang)
    if decimals < 0 or int(decimals) != decimals:
        raise ValueError(f"decimals must be a whole number >= 0, got {decimals!r}")
    if x is None or x is pd.NA or (isinstance(x, (float, np.floating)) and np.isnan(x)):
        return ""
    try:
        d = Decimal(repr(float(x)))
    except (TypeError, ValueError):
        raise ValueError(f"cannot format {x!r} as a number") from None
    if not d.is_finite():
        raise ValueError(f"cannot format non-finite number {x!r}")
    q = d.quantize(Decimal(1).scaleb(-int(decimals)), rounding=ROUND_HALF_UP)
    if q == 0:
        q = abs(q)
    s = f"{abs(q):,.{int(decimals)}f}" if thousands else f"{abs(q):.{int(decimals)}f}"
    if lang == "da":
        s = s.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return ("-" if q < 0 else "") + s


def format_percent(x, decimals: int = 0, lang: str = "da") -> str:
    """Percentage points as published: ``39 pct.`` (Danish) or ``39%`` (English); 39 means 39 %."""
    s = format_number(x, decimals, lang)
    return s + _WORDS[lang]["percent"] if s else ""


def _excel_format(decimals: int, percent: bool, lang: str) -> str:
    """Excel number format; Excel shows the decimal/thousands marks of the reader's locale (14,7 in Danish)."""
    base = "#,##0" + ("." + "0" * decimals if decimals else "")
    if percent:
        return base + ('" pct."' if lang == "da" else '"%"')
    return base


# ------------------------------------------------------------------------------------------------
# provenance
# ------------------------------------------------------------------------------------------------
def data_hash(source: str | Path | Sequence[str | Path], length: int = 12) -> str:
    """Short SHA-256 of the data behind a table.

    ``source`` is a file, a folder (every file below it, with its relative path, in sorted order), a
    list of those, or a string that is not an existing path (hashed as text, e.g. a query or a run id).
    """
    h = hashlib.sha256()

    def add_file(p: Path, name: str) -> None:
        h.update(name.encode("utf-8") + b"\x00")
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)

    items = [source] if isinstance(source, (str, Path)) else list(source)
    if not items:
        raise ValueError("data_hash needs at least one file, folder or string")
    for item in items:
        p = Path(item)
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                add_file(f, f.relative_to(p).as_posix())
        elif p.is_file():
            add_file(p, p.name)
        elif isinstance(item, Path):
            raise FileNotFoundError(f"data source {item} does not exist")
        else:
            h.update(str(item).encode("utf-8") + b"\x00")
    return h.hexdigest()[:length]


@dataclass(frozen=True)
class Provenance:
    """What a table was made from, printed in its footer in the table's language.

    Text fields take a string or ``{"da": ..., "en": ...}``. A report table (:func:`export_report_table`)
    states the period, unit and method of its own numbers from the table's columns (``year``, ``period``,
    ``method``, ``conf_level``, ``count``) and its template's ``provenance`` section; the fields given here
    fill in what the table does not say (typically the data source, its hash, the standard population).
    """

    data_source: Text = ""
    data_hash: str | None = None
    period: Text | None = None
    standard: Text | None = None
    method: Text | None = None
    unit: Text | None = None
    parameters: Mapping[str, object] = field(default_factory=dict)
    version: str = __version__
    created: str = field(default_factory=lambda: date.today().isoformat())

    @classmethod
    def from_source(cls, source: str | Path | Sequence[str | Path], **kwargs) -> Provenance:
        """Provenance with ``data_hash`` computed from the source files (see :func:`data_hash`)."""
        label = kwargs.pop("data_source", None) or (str(source) if isinstance(source, (str, Path)) else
                                                   ", ".join(str(s) for s in source))
        return cls(data_source=label, data_hash=data_hash(source), **kwargs)

    def text(self, lang: str = "da") -> str:
        w = _WORDS[_check_lang(lang)]
        parts = [f"lumbarstats {self.version}"]
        if self.data_source or self.data_hash:
            src = _pick(self.data_source, lang) or "?"
            parts.append(f"{w['data']}: {src}" + (f" (SHA-256 {self.data_hash})" if self.data_hash else ""))
        for key in ("period", "unit", "method", "standard"):
            value = _pick(getattr(self, key), lang)
            if value:
                parts.append(f"{w[key]}: {value}")
        if self.parameters:
            parts.append(f"{w['parameters']}: " + ", ".join(f"{k}={v}" for k, v in self.parameters.items()))
        parts.append(f"{w['date']}: {self.created}")
        return f"{w['provenance']}: " + "; ".join(parts)


# ------------------------------------------------------------------------------------------------
# labels
# ------------------------------------------------------------------------------------------------
def _pick(text: Text | None, lang: str) -> str | None:
    if text is None:
        return None
    if isinstance(text, str):
        return text
    if lang in text and text[lang] is not None:
        return str(text[lang])
    return str(text.get("da", next(iter(text.values()))))


def column_label(name: str, lang: str = "da", dd=None) -> str:
    """Published label of a column: result columns (rate, persons, …), then the data dictionary."""
    _check_lang(lang)
    if name in _RESULT_LABELS:
        return _RESULT_LABELS[name][lang]
    dd = dd or dictionary_mod.load()
    spec = dd.spec
    for table in spec.get("tables", {}).values():
        col = table.get("columns", {}).get(name)
        if col and col.get(f"label_{lang}"):
            return str(col[f"label_{lang}"])
    derived = spec.get("derived", {})
    target = spec.get("report_variables", {}).get(name, name)
    for key in (name, target):
        if key in derived and derived[key].get(f"label_{lang}"):
            return str(derived[key][f"label_{lang}"])
    return str(name)


def code_labels(codelist: str, lang: str = "da", column: str | None = None, dd=None) -> dict:
    """Mapping from every known spelling of a code (code, Danish labels) to its published label.

    ``column`` picks a Danish label column (``report_label_da``, ``label_da_xray``, ``label_da_profile``);
    ``codelist="region"`` maps codes and names to the short names (Danish) or English labels, and the
    whole country (``Landsplan``) likewise.
    """
    _check_lang(lang)
    dd = dd or dictionary_mod.load()
    cl = dd.codelist(codelist)
    out: dict = {}
    if codelist == "region":
        wc = dd.spec["whole_country"]
        target = cl["name"] if lang == "da" else cl["label_en"]
        for col in ("code", "name", "label_da", "label_en"):
            for k, v in zip(cl[col], target, strict=True):
                out[k] = v
                out[str(k)] = v
        wc_label = wc["name"] if lang == "da" else wc["label_en"]
        for k in (wc["code"], str(wc["code"]), wc["name"], wc["label_da"], wc["label_en"]):
            out[k] = wc_label
        return out
    if lang == "en":
        target_col = "label_en"
    else:
        target_col = column if column else "label_da"
        if target_col not in cl.columns:
            raise KeyError(f"code list {codelist!r} has no column {target_col!r}; columns: {list(cl.columns)}")
    target = [t if t else base for t, base in zip(cl[target_col], cl["label_da" if lang == "da" else "label_en"],
                                                  strict=True)]
    spellings = ["code"] + [c for c in cl.columns if c.startswith(("label_", "report_label_"))]
    for col in spellings:
        for k, v in zip(cl[col], target, strict=True):
            if k != "" and k not in out:
                out[k] = v
    return out


def _codelist_spec(spec: str | None) -> tuple[str, str | None] | None:
    if not spec:
        return None
    name, _, col = str(spec).partition(":")
    return name, (col or None)


def _label_values(values: pd.Series, codelist: str | None, lang: str, dd) -> pd.Series:
    cs = _codelist_spec(codelist)
    if cs is None:
        return values.astype(object)
    mapping = code_labels(cs[0], lang, cs[1], dd)
    return values.map(lambda v: mapping.get(v, mapping.get(str(v), v)) if pd.notna(v) else v)


# ------------------------------------------------------------------------------------------------
# the table model every writer draws
# ------------------------------------------------------------------------------------------------
@dataclass
class _Cell:
    text: str
    value: float | None = None
    excel_format: str | None = None
    hidden: bool = False


@dataclass
class _Model:
    heading: str | None
    header: list[str]
    body: list[tuple[str, object]]  # ("group", label) or ("row", list[_Cell])
    numeric: list[bool]
    notes: list[str]
    source: str | None
    provenance: str | None
    stub: bool = True
    sheet: str = "Tabel"
    lang: str = "da"


@dataclass(frozen=True)
class TableSpec:
    """How a result DataFrame is published.

    ``columns`` chooses and orders the columns (mapping column -> label, ``None`` for the dictionary
    label); ``decimals`` per column (default 1, 0 for counts and population); ``percent`` columns hold
    percentage points (``pct.``/``%``); ``code_labels`` maps a column to a code list (``"industry"`` or
    ``"industry:report_label_da"``) whose labels replace codes; ``group_by`` makes row groups (section
    headings) from a column; ``label`` numbers the table (``Tabel 1``). Text fields take a string or
    ``{"da": ..., "en": ...}``.
    """

    title: Text | None = None
    note: Text | None = None
    source: Text | None = None
    label: Text | None = None
    columns: Mapping[str, Text | None] | Sequence[str] | None = None
    decimals: Mapping[str, int] = field(default_factory=dict)
    percent: Sequence[str] = ()
    code_labels: Mapping[str, str] = field(default_factory=dict)
    group_by: str | None = None
    stub: bool = True
    provenance: Provenance | None = None
    sheet: str | None = None


def _heading(spec_label, title, lang) -> str | None:
    lab, tit = _pick(spec_label, lang), _pick(title, lang)
    if lab and tit:
        return f"{lab}. {tit}"
    return lab or tit


def _notes(note_text: str | None, disclosure_text: str | None, lang: str) -> list[str]:
    parts = [t.strip() for t in (note_text, disclosure_text) if t]
    return [f"{_WORDS[lang]['note']}: " + " ".join(parts)] if parts else []


def _value_cell(v, *, hidden: bool, decimals: int, percent: bool, lang: str) -> _Cell:
    if hidden:
        return _Cell(disclosure_mod.SUPPRESSED_MARKER, hidden=True)
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and np.isnan(v)):
        return _Cell("")
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return _Cell(str(v))
    text = format_percent(v, decimals, lang) if percent else format_number(v, decimals, lang)
    # the spreadsheet holds the number as shown (a count as a whole number), not 15 digits of float
    shown = Decimal(repr(float(v))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    value = int(shown) if decimals == 0 else float(shown)
    return _Cell(text, value, _excel_format(decimals, percent, lang))


def _default_decimals(col: str, series: pd.Series) -> int:
    if col in _INTEGER_COLUMNS or pd.api.types.is_integer_dtype(series):
        return 0
    if col in _PERCENT_COLUMNS:
        return 0 if col == "pct_change" else 1
    return 1


def _apply_disclosure(df: pd.DataFrame, *, disclosure: bool, min_cell: int, count_column: str | None,
                      group_totals, keys=None, count_columns=None):
    """(table, mask, note-or-None) after suppression; raises if the table has no count to check."""
    if not disclosure:
        return df, pd.Series(False, index=df.index), None
    if count_columns is None:
        count_columns = [c for c in df.columns if str(c).casefold() in disclosure_mod.COUNT_COLUMN_NAMES]
    if count_column is not None and count_column in df.columns and count_column not in count_columns:
        count_columns = [count_column, *count_columns]
    if not count_columns:
        raise ValueError(
            f"disclosure control is on, but the table has no count column (one of "
            f"{list(disclosure_mod.COUNT_COLUMN_NAMES)}); columns: {list(df.columns)}. Keep the persons/events "
            "counts in the table, or pass disclosure=False for figures that describe no persons (e.g. the "
            "report's published numbers)."
        )
    rule = count_column if count_column in count_columns else None
    # a missing count is a cell suppressed upstream (a protected CSV read back): it stays hidden
    res = disclosure_mod.suppress(df, count_columns=count_columns, min_cell=min_cell, group_totals=group_totals,
                                  keys=keys, rule_column=rule, missing_counts="suppressed")
    note = res.note if res.mask.any() else None
    return res.table, res.mask, note


def _model_from_frame(df: pd.DataFrame, spec: TableSpec, lang: str, mask: pd.Series, note_fn) -> _Model:
    dd = dictionary_mod.load()
    if spec.columns is None:
        cols = [c for c in df.columns if c != spec.group_by]
        labels = {c: None for c in cols}
    elif isinstance(spec.columns, Mapping):
        cols, labels = list(spec.columns), dict(spec.columns)
    else:
        cols, labels = list(spec.columns), {c: None for c in spec.columns}
    missing = [c for c in cols + ([spec.group_by] if spec.group_by else []) if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} not in table; columns: {list(df.columns)}")
    header = [_pick(labels.get(c), lang) or column_label(c, lang, dd) for c in cols]
    shown = df.copy()
    for c in {*cols, *([spec.group_by] if spec.group_by else [])}:
        cl = spec.code_labels.get(c) or ("region" if c == "region" else _CODELIST_FOR_COLUMN.get(c))
        if cl and not pd.api.types.is_float_dtype(shown[c]):
            shown[c] = _label_values(shown[c], cl, lang, dd)
    numeric = []
    for c in cols:
        s = df[c]
        numeric.append(bool(pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
                            and c not in _KEY_LIKE))
    hidden_cols = {c for c in cols if c not in _KEY_LIKE and (
        pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]))}
    body: list[tuple[str, object]] = []
    current = object()
    for idx, row in shown.iterrows():
        if spec.group_by is not None and row[spec.group_by] != current:
            current = row[spec.group_by]
            body.append(("group", str(current)))
        cells = []
        for c, is_num in zip(cols, numeric, strict=True):
            v = row[c]
            if is_num:
                cells.append(_value_cell(v, hidden=bool(mask.get(idx, False)) and c in hidden_cols,
                                         decimals=int(spec.decimals.get(c, _default_decimals(c, df[c]))),
                                         percent=c in spec.percent or c in _PERCENT_COLUMNS, lang=lang))
            else:
                if bool(mask.get(idx, False)) and c in hidden_cols:
                    cells.append(_Cell(disclosure_mod.SUPPRESSED_MARKER, hidden=True))
                else:
                    cells.append(_Cell("" if v is None or (isinstance(v, float) and np.isnan(v)) else
                                       (str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer()
                                        else str(v))))
        body.append(("row", cells))
    prov = spec.provenance.text(lang) if spec.provenance else None
    src = _pick(spec.source, lang)
    return _Model(heading=_heading(spec.label, spec.title, lang), header=header, body=body, numeric=numeric,
                  notes=_notes(_pick(spec.note, lang), note_fn(lang) if note_fn else None, lang),
                  source=f"{_WORDS[lang]['source']}: {src}" if src else None, provenance=prov,
                  stub=spec.stub, sheet=spec.sheet or _WORDS[lang]["table"], lang=lang)


# ------------------------------------------------------------------------------------------------
# writers
# ------------------------------------------------------------------------------------------------
def _gt(model: _Model, table_id: str | None = None):
    import great_tables as gt

    ids = [f"c{i}" for i in range(len(model.header))]
    records, groups = [], []
    group = None
    for kind, content in model.body:
        if kind == "group":
            group = content
            continue
        records.append([c.text for c in content])
        groups.append(group)
    frame = pd.DataFrame(records, columns=ids) if records else pd.DataFrame(columns=ids)
    has_groups = any(g is not None for g in groups)
    if has_groups:
        frame["_group"] = [g or "" for g in groups]
    stub = ids[0] if model.stub and ids else None
    table = gt.GT(frame, rowname_col=stub, groupname_col="_group" if has_groups else None, auto_align=False,
                  id=table_id)
    if model.heading:
        table = table.tab_header(title=model.heading)
    labels = {i: h for i, h in zip(ids, model.header, strict=True) if i != stub}
    if labels:
        table = table.cols_label(**labels)
    if stub:
        table = table.tab_stubhead(label=model.header[0])
    right = [i for i, num in zip(ids, model.numeric, strict=True) if num and i != stub]
    left = [i for i, num in zip(ids, model.numeric, strict=True) if not num and i != stub]
    if right:
        table = table.cols_align("right", columns=right)
    if left:
        table = table.cols_align("left", columns=left)
    for line in [*model.notes, model.source, model.provenance]:
        if line:
            table = table.tab_source_note(line)
    return table


def _html_bytes(model: _Model, table_id: str) -> bytes:
    body = _gt(model, table_id).as_raw_html(make_page=False)
    lang = model.lang
    title = model.heading or ""
    page = (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{_html_escape(title)}</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
    return page.encode("utf-8")


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _tex_escape(s: str) -> str:
    out = []
    for ch in str(s):
        out.append(_TEX_SPECIAL.get(ch, ch))
    return "".join(out)


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--"}
_TEX_LONG_ROWS = 25  # more body rows than this: longtable, which breaks across pages and repeats the header
_TEX_CONTINUED = {"da": "fortsat", "en": "continued"}


def _tex_column_spec(model: _Model) -> tuple[str, str]:
    """(column spec, font size command): numbers right-aligned; text columns wrap (ragged right) when the
    table does not fit the line with each text on one line, at 9 pt (``\\small``) or else 8 pt."""
    right = [bool(num) and (j > 0 or not model.stub) for j, num in enumerate(model.numeric)]
    usable = _PAPER_A4_PT[0] - 2 * _MARGIN_PT
    text = [j for j, r in enumerate(right) if not r]
    for size, command in ((9.0, r"\small"), (8.0, r"\footnotesize")):
        minimum, preferred = _column_extents(model, size)
        if sum(preferred) <= usable or not text:
            return "".join("r" if r else "l" for r in right), command
        # numbers keep their natural width (DejaVu overestimates it); the text columns share the rest
        room = max(usable - sum(p for p, r in zip(preferred, right, strict=True) if r), 0.2 * usable)
        widths = _fit_widths([minimum[j] for j in text], [preferred[j] for j in text], room)
        if widths is not None:
            break
    else:  # not even the longest words fit at 8 pt: shrink the text columns alike
        widths = [minimum[j] * room / sum(minimum[j] for j in text) for j in text]
    share = dict(zip(text, widths, strict=True))
    return "".join("r" if r else
                   rf">{{\raggedright\arraybackslash}}p{{\dimexpr{share[j] / usable:.3f}\linewidth-2\tabcolsep}}"
                   for j, r in enumerate(right)), command


def _tex_bytes(model: _Model) -> bytes:
    """LaTeX with booktabs; a longtable (header repeated on every page) when the table is long.

    Written here rather than by great_tables, whose LaTeX output has no longtable and no group rows
    spanning the table; the fragment needs ``booktabs`` and ``longtable`` and UTF-8 input.
    """
    ncol = len(model.header)
    spec, size = _tex_column_spec(model)
    header = " & ".join(_tex_escape(h) for h in model.header) + r" \\"
    body = []
    for kind, content in model.body:
        if kind == "group":
            body.append(rf"\addlinespace \multicolumn{{{ncol}}}{{@{{}}l}}{{\textbf{{{_tex_escape(content)}}}}} \\")
        else:
            body.append(" & ".join(_tex_escape(c.text) for c in content) + r" \\")
    foot = [r"\noindent " + _tex_escape(line) for line in [*model.notes, model.source] if line]
    prov = r"\noindent " + _tex_escape(model.provenance) if model.provenance else None
    lines = ["% Written by lumbarstats; needs \\usepackage{array,booktabs,longtable} and UTF-8 input "
             "(\\usepackage[utf8]{inputenc}\\usepackage[T1]{fontenc} with pdflatex)."]
    title = _tex_escape(model.heading) if model.heading else None
    if len(model.body) > _TEX_LONG_ROWS:
        lines.append("{" + size)
        if title:
            lines.append(rf"\noindent\textbf{{{title}}}\par")
        cont = rf"\multicolumn{{{ncol}}}{{@{{}}l}}{{\textit{{({_TEX_CONTINUED[model.lang]})}}}} \\"
        lines += [rf"\begin{{longtable}}{{@{{}}{spec}@{{}}}}", r"\toprule", header, r"\midrule", r"\endfirsthead",
                  cont, r"\toprule", header, r"\midrule", r"\endhead", r"\bottomrule", r"\endfoot",
                  r"\bottomrule", r"\endlastfoot", *body, r"\end{longtable}", r"\footnotesize"]
        lines += [line + r"\par" for line in foot]
        if prov:
            lines.append(rf"{{\scriptsize {prov}\par}}")
        lines.append("}")
    else:
        lines += [r"\begin{table}[htbp]", size]
        if title:
            lines.append(rf"\textbf{{{title}}}\par\medskip")
        lines += [r"\noindent", rf"\begin{{tabular}}{{@{{}}{spec}@{{}}}}", r"\toprule", header, r"\midrule",
                  *body, r"\bottomrule", r"\end{tabular}", r"\par\medskip\footnotesize"]
        lines += [line + r"\par" for line in foot]
        if prov:
            lines.append(rf"{{\scriptsize {prov}\par}}")
        lines.append(r"\end{table}")
    return ("\n".join(line for line in lines if line) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------------------
# page layout shared by Word and Excel: column widths from the content
# ------------------------------------------------------------------------------------------------
_PAPER_A4_PT = (595.3, 841.9)
_MARGIN_PT = 56.7  # 2 cm
_CELL_PADDING_PT = 12.0  # Word's default cell margins (2 x 0.19 cm) and a little air


def _text_width_pt(text: str, size: float, bold: bool = False) -> float:
    """Width of ``text`` in points, set in DejaVu Sans (shipped with matplotlib, so the same everywhere).

    DejaVu Sans is wider than Calibri, Arial or Carlito: columns sized by it fit in any of them, in Word
    and in LibreOffice (which falls back to DejaVu Sans when Calibri is missing). The sum of the glyphs'
    widths ignores kerning, which only narrows text, and is fast on tables of many thousand cells.
    """
    return sum(_glyph_width_pt(ch, bold) for ch in str(text)) * size


@lru_cache(maxsize=2048)
def _glyph_width_pt(ch: str, bold: bool) -> float:
    """Advance width of one character at 1 pt."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    fp = FontProperties(family="DejaVu Sans", size=100, weight="bold" if bold else "normal")
    if ch.isspace():  # a space alone measures as nothing: take it between two letters
        return (text_to_path.get_text_width_height_descent(f"x{ch}x", fp, ismath=False)[0] -
                2 * text_to_path.get_text_width_height_descent("x", fp, ismath=False)[0]) / 100
    return float(text_to_path.get_text_width_height_descent(ch, fp, ismath=False)[0]) / 100


def _column_extents(model: _Model, size: float) -> tuple[list[float], list[float]]:
    """Per column: (width of its longest word, width of its longest text), padding included.

    Header words are bold; group headings span the table and are left out. Text wraps only at spaces, so
    a column as wide as its longest word never breaks a word.
    """
    ncol = len(model.header)
    longest_word = [0.0] * ncol
    longest_text = [0.0] * ncol

    def add(j: int, text: str, bold: bool) -> None:
        words = [w for w in str(text).split() if w]
        if not words:
            return
        longest_word[j] = max(longest_word[j], max(_text_width_pt(w, size, bold) for w in words))
        longest_text[j] = max(longest_text[j], _text_width_pt(" ".join(words), size, bold))

    for j, h in enumerate(model.header):
        add(j, h, True)
    for kind, content in model.body:
        if kind == "row":
            for j, cell in enumerate(content):
                add(j, cell.text, False)
    minimum = [w + _CELL_PADDING_PT for w in longest_word]
    preferred = [max(t, w) + _CELL_PADDING_PT for t, w in zip(longest_text, longest_word, strict=True)]
    return minimum, preferred


def _fit_widths(minimum: list[float], preferred: list[float], usable: float) -> list[float] | None:
    """Column widths filling ``usable`` points, or None if the longest words do not fit.

    As browsers lay out automatic tables: every column gets its longest word; the rest of the width goes
    to the columns in proportion to how much more their longest text needs (all of it if everything fits
    on one line, then the spare width in proportion to the columns' widths).
    """
    if sum(minimum) > usable:
        return None
    if sum(preferred) <= usable:
        return [p * usable / sum(preferred) for p in preferred]
    spare, wants = usable - sum(minimum), [p - m for p, m in zip(preferred, minimum, strict=True)]
    return [m + spare * w / sum(wants) for m, w in zip(minimum, wants, strict=True)]


@dataclass(frozen=True)
class _PageLayout:
    landscape: bool
    font_size: float
    widths_pt: list[float]


def _page_layout(model: _Model, page_pt: tuple[float, float] = _PAPER_A4_PT, margin_pt: float = _MARGIN_PT,
                 font_size: float = 9.0) -> _PageLayout:
    """Portrait if the table fits the page width with no word broken (at 1 pt less if need be), else
    landscape, else a smaller font."""
    short, long = sorted(page_pt)
    tries = [(False, font_size), (False, font_size - 1), (True, font_size), (True, font_size - 1),
             (True, font_size - 2)]
    for landscape, size in tries:
        minimum, preferred = _column_extents(model, size)
        widths = _fit_widths(minimum, preferred, (long if landscape else short) - 2 * margin_pt)
        if widths is not None:
            return _PageLayout(landscape, size, widths)
    # wider than a landscape page even at 7 pt: words must break; keep the proportions of the longest words
    usable = long - 2 * margin_pt
    return _PageLayout(True, font_size - 2, [m * usable / sum(minimum) for m in minimum])


# ------------------------------------------------------------------------------------------------
# Word
# ------------------------------------------------------------------------------------------------
_DOCX_FONT = "Calibri"
_DOCX_LANG = {"da": "da-DK", "en": "en-GB"}
# paragraph styles of a table; a reference document (write_reference_docx) defines them and a journal's
# template may redefine them under the same names
DOCX_STYLES = {"title": "Table Title", "header": "Table Heading", "body": "Table Text",
               "group": "Table Group", "note": "Table Note", "provenance": "Table Provenance"}


def _set_lang(rpr, lang_tag: str) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    el = rpr.find(qn("w:lang"))
    if el is None:
        el = OxmlElement("w:lang")
        rpr.append(el)
    el.set(qn("w:val"), lang_tag)
    el.set(qn("w:eastAsia"), lang_tag)


def _ensure_styles(doc, lang: str) -> None:
    """Add the table styles a document lacks (a user's template keeps its own) and set the proofing language."""
    from docx.enum.style import WD_STYLE_TYPE
    from docx.shared import Pt, RGBColor

    styles = doc.styles
    defaults = styles.element.find(_qn("w:docDefaults"))
    if defaults is not None:
        rpr = defaults.find(_qn("w:rPrDefault"))
        if rpr is not None and rpr.find(_qn("w:rPr")) is not None:
            _set_lang(rpr.find(_qn("w:rPr")), _DOCX_LANG[lang])
    _set_lang(styles["Normal"].element.get_or_add_rPr(), _DOCX_LANG[lang])
    names = {s.name for s in styles}
    spec = {  # name: (size, bold, italic, grey, space_before, space_after, keep_with_next)
        "title": (11, True, False, False, 0, 4, True), "header": (9, True, False, False, 1, 1, False),
        "body": (9, False, False, False, 1, 1, False), "group": (9, True, False, False, 3, 1, True),
        "note": (8, False, False, False, 3, 0, True), "provenance": (7, False, False, True, 2, 0, False)}
    for key, (size, bold, italic, grey, before, after, keep) in spec.items():
        name = DOCX_STYLES[key]
        if name in names:
            continue
        st = styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
        st.base_style = styles["Normal"]
        st.quick_style = True
        st.font.name, st.font.size, st.font.bold, st.font.italic = _DOCX_FONT, Pt(size), bold, italic
        if grey:
            st.font.color.rgb = RGBColor(0x59, 0x59, 0x59)
        pf = st.paragraph_format
        pf.space_before, pf.space_after, pf.keep_with_next = Pt(before), Pt(after), keep
        pf.line_spacing = 1.0


def _qn(tag: str):
    from docx.oxml.ns import qn

    return qn(tag)


def reference_docx(lang: str = "da"):
    """The Word document whose styles the tables use (A4, Calibri, proofing language of ``lang``).

    Save it with :func:`write_reference_docx`, change the styles named in ``DOCX_STYLES`` (or the page)
    to a journal's, and pass the file as ``template=`` to :func:`export` or :func:`export_report_table`.
    """
    import docx
    from docx.shared import Pt

    _check_lang(lang)
    doc = docx.Document()
    normal = doc.styles["Normal"]
    normal.font.name, normal.font.size = _DOCX_FONT, Pt(10)
    normal.paragraph_format.space_after = Pt(4)
    section = doc.sections[0]
    section.page_width, section.page_height = Pt(_PAPER_A4_PT[0]), Pt(_PAPER_A4_PT[1])
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Pt(_MARGIN_PT))
    _ensure_styles(doc, lang)
    doc.core_properties.language = _DOCX_LANG[lang]
    return doc


def write_reference_docx(path: str | Path, lang: str = "da") -> Path:
    """Write the reference document (:func:`reference_docx`) with one example of each table style."""
    doc = reference_docx(lang)
    for key, name in DOCX_STYLES.items():
        doc.add_paragraph(f"{name} ({key})", style=name)
    buf = io.BytesIO()
    doc.save(buf)
    p = Path(path)
    io_mod.write_bytes(buf.getvalue(), p)
    return p


def _open_docx(template: str | Path | None, lang: str):
    import docx

    if template is None:
        return reference_docx(lang)
    p = Path(template)
    if not p.is_file():
        raise FileNotFoundError(f"Word template {p} does not exist (write one with tables.write_reference_docx)")
    try:
        doc = docx.Document(str(p))
    except Exception as e:  # python-docx raises several types for a file that is not a .docx
        raise ValueError(f"Word template {p} is not a .docx document: {e}") from None
    body = doc.element.body
    for child in list(body):  # keep the page setup (sectPr), drop the example content
        if child.tag != _qn("w:sectPr"):
            body.remove(child)
    _ensure_styles(doc, lang)
    doc.core_properties.language = _DOCX_LANG[lang]
    return doc


def _docx_table_props(table, widths_twips: list[int]) -> None:
    from docx.oxml import OxmlElement

    tblpr = table._tbl.tblPr
    layout = OxmlElement("w:tblLayout")  # fixed: Word keeps the widths instead of re-fitting the text
    layout.set(_qn("w:type"), "fixed")
    tblpr.append(layout)
    tblw = tblpr.find(_qn("w:tblW"))
    if tblw is None:
        tblw = OxmlElement("w:tblW")
        tblpr.append(tblw)
    tblw.set(_qn("w:w"), str(sum(widths_twips)))
    tblw.set(_qn("w:type"), "dxa")
    borders = OxmlElement("w:tblBorders")
    for edge, val in (("top", "single"), ("left", "nil"), ("bottom", "single"), ("right", "nil"),
                      ("insideH", "nil"), ("insideV", "nil")):
        el = OxmlElement(f"w:{edge}")
        el.set(_qn("w:val"), val)
        if val != "nil":
            el.set(_qn("w:sz"), "8")
            el.set(_qn("w:color"), "000000")
        borders.append(el)
    tblpr.append(borders)


def _docx_row_props(row, *, header: bool) -> None:
    from docx.oxml import OxmlElement

    trpr = row._tr.get_or_add_trPr()
    cant = OxmlElement("w:cantSplit")  # a row stays on one page
    trpr.append(cant)
    if header:
        rep = OxmlElement("w:tblHeader")  # repeated at the top of every page
        trpr.append(rep)


def _docx_bytes(model: _Model, template: str | Path | None = None) -> bytes:
    from docx.enum.section import WD_ORIENT

    doc = _open_docx(template, model.lang)
    section = doc.sections[-1]
    page = (section.page_width.pt, section.page_height.pt)
    layout = _page_layout(model, page, max(section.left_margin.pt, section.right_margin.pt))
    if layout.landscape != (section.page_width > section.page_height):
        section.orientation = WD_ORIENT.LANDSCAPE if layout.landscape else WD_ORIENT.PORTRAIT
        section.page_width, section.page_height = section.page_height, section.page_width
    doc.core_properties.title = model.heading or ""
    doc.core_properties.author = f"lumbarstats {__version__}"
    _docx_append(doc, model, layout)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def _set_orientation(section, landscape: bool) -> None:
    from docx.enum.section import WD_ORIENT

    if landscape != (section.page_width > section.page_height):
        section.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT
        section.page_width, section.page_height = section.page_height, section.page_width


def add_docx_table(doc, model: _Model) -> None:
    """Append a table model (:func:`report_table_model`, :func:`table_model`) to an open Word document.

    For documents that hold several tables (the report document, :mod:`lumbarstats.report_document`): the
    table keeps the page of the document when it fits its width; a table that needs landscape gets a
    landscape section of its own (new page), and the pages after it are portrait again. The document
    needs the table styles (:func:`reference_docx` has them).
    """
    from docx.enum.section import WD_SECTION

    _ensure_styles(doc, model.lang)
    section = doc.sections[-1]
    portrait = section.page_width < section.page_height
    short, long = sorted((section.page_width.pt, section.page_height.pt))
    layout = _page_layout(model, (short, long), max(section.left_margin.pt, section.right_margin.pt))
    # a table of up to KEEP_TOGETHER_ROWS rows is not split over two pages (longer ones break between rows
    # and repeat their header); its title keeps a little distance from the text above it
    keep = len(model.body) <= KEEP_TOGETHER_ROWS
    if layout.landscape and portrait:
        _set_orientation(doc.add_section(WD_SECTION.NEW_PAGE), True)
        _docx_append(doc, model, layout, keep_together=keep, space_before=0, in_document=True)
        _set_orientation(doc.add_section(WD_SECTION.NEW_PAGE), False)
    else:
        _docx_append(doc, model, layout, keep_together=keep, space_before=12, in_document=True)


KEEP_TOGETHER_ROWS = 30
"""A table appended to a document (:func:`add_docx_table`) with at most this many rows stays on one page."""


def _docx_append(doc, model: _Model, layout: _PageLayout, *, keep_together: bool = False,
                 space_before: float | None = None, in_document: bool = False) -> None:
    """Write the title, the table, the notes and the provenance of ``model`` at the end of ``doc``."""
    from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement
    from docx.shared import Pt, Twips

    style = {k: doc.styles[v] for k, v in DOCX_STYLES.items()}
    style_id = {k: st.style_id for k, st in style.items()}
    size = Pt(layout.font_size)

    if model.heading:
        title = doc.add_paragraph(model.heading, style=style["title"])
        if space_before is not None:
            title.paragraph_format.space_before = Pt(space_before)
    ncol = len(model.header)
    table = doc.add_table(rows=1 + len(model.body), cols=ncol)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    widths = [Twips(int(w * 20)) for w in layout.widths_pt]
    _docx_table_props(table, [int(w) // 635 for w in widths])  # EMU -> twips
    for j, col in enumerate(table.columns):  # the grid (LibreOffice) and each cell (Word)
        col.width = widths[j]

    def write(cell, text, key, *, right=False):
        p = cell.paragraphs[0]
        p._p.style = style_id[key]  # Paragraph.style looks the style up by name each time: slow on long tables
        run = p.add_run(text)
        if layout.font_size != 9.0:
            run.font.size = size
        if right:
            p.alignment = WD_ALIGN_PARAGRAPH.RIGHT

    def bottom_border(cell):
        tcpr = cell._tc.get_or_add_tcPr()
        borders = OxmlElement("w:tcBorders")
        el = OxmlElement("w:bottom")
        for k, v in (("w:val", "single"), ("w:sz", "8"), ("w:color", "000000")):
            el.set(_qn(k), v)
        borders.append(el)
        tcpr.append(borders)

    right_col = [bool(num) and (j > 0 or not model.stub) for j, num in enumerate(model.numeric)]
    rows = list(table.rows)  # table.rows[i] and row.cells walk the table each time: once only
    grid = [row.cells for row in rows]
    for i, row in enumerate(rows):
        _docx_row_props(row, header=i == 0)
        for j, cell in enumerate(grid[i]):
            cell.width = widths[j]
    for j, h in enumerate(model.header):
        c = grid[0][j]
        write(c, h, "header", right=right_col[j])
        c.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.BOTTOM  # wrapped headings end on the rule
        bottom_border(c)
    for i, (kind, content) in enumerate(model.body, start=1):
        cells = grid[i]
        if kind == "group":
            merged = cells[0].merge(cells[-1]) if ncol > 1 else cells[0]
            write(merged, str(content), "group")  # keep-with-next: never alone at the foot of a page
            continue
        for j, cell in enumerate(content):
            write(cells[j], cell.text, "body", right=right_col[j])
    footer = any([*model.notes, model.source, model.provenance])
    for cell in rows[-1].cells if footer else []:  # the notes never start a page alone (merged cells change)
        for p in cell.paragraphs:
            p.paragraph_format.keep_with_next = True
    if keep_together:  # every row keeps with the next: the short table moves to the next page as a whole
        for row in rows[:-1]:
            for cell in row.cells:
                for p in cell.paragraphs:
                    p.paragraph_format.keep_with_next = True

    last = None
    for line, key in [*[(n, "note") for n in model.notes], (model.source, "note"), (model.provenance, "provenance")]:
        if line:
            last = doc.add_paragraph(line, style=style[key])
    if last is not None and in_document:  # the table's block ends here: not chained to what follows
        last.paragraph_format.keep_with_next = False


# ------------------------------------------------------------------------------------------------
# Excel
# ------------------------------------------------------------------------------------------------
_XLSX_FONT = "Calibri"
_XLSX_LOCALE = {"da": "[$-406]", "en": "[$-809]"}  # Danish / English (UK) number display in LibreOffice


def _xlsx_bytes(model: _Model) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.properties import PageSetupProperties

    def font(**kw) -> Font:  # one family for title, body and footer
        return Font(name=_XLSX_FONT, **kw)

    wb = Workbook()
    ws = wb.active
    ws.title = re.sub(r"[\[\]:*?/\\]", "", model.sheet)[:31] or "Tabel"
    ncol = len(model.header)
    right_col = [bool(num) and (j > 0 or not model.stub) for j, num in enumerate(model.numeric)]
    r = 1
    text_rows = []  # (row, text, size, bold): spread over the table's width and wrapped, below
    if model.heading:
        ws.cell(r, 1, model.heading).font = font(bold=True, size=12)
        text_rows.append((r, model.heading, 12.0, True))
        r += 2
    thin = Side(style="thin")
    header_row = r
    for j, h in enumerate(model.header, start=1):
        c = ws.cell(r, j, h)
        c.font = font(bold=True, size=10)
        c.border = Border(top=thin, bottom=thin)
        c.alignment = Alignment(horizontal="right" if right_col[j - 1] else "left", vertical="bottom",
                                wrap_text=True)
    r += 1
    for kind, content in model.body:
        if kind == "group":
            ws.cell(r, 1, str(content)).font = font(bold=True, size=10)
            if ncol > 1:
                ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=ncol)
            r += 1
            continue
        for j, cell in enumerate(content, start=1):
            if cell.value is not None:
                c = ws.cell(r, j, cell.value)  # already rounded as shown (a count is an int)
                c.number_format = _XLSX_LOCALE[model.lang] + (cell.excel_format or "General")
            else:
                c = ws.cell(r, j, cell.text)
            c.font = font(size=10)
            c.alignment = Alignment(horizontal="right" if right_col[j - 1] else "left", vertical="top",
                                    wrap_text=True)
        r += 1
    last_row = r - 1
    for j in range(1, ncol + 1):
        ws.cell(last_row, j).border = Border(bottom=thin)
    ws.freeze_panes = f"{get_column_letter(2 if model.stub else 1)}{header_row + 1}"
    r += 1
    for line, small in [*[(n, False) for n in model.notes], (model.source, False), (model.provenance, True)]:
        if line:
            ws.cell(r, 1, line).font = font(size=8 if small else 9, italic=small, color="595959" if small else None)
            text_rows.append((r, line, 8.0 if small else 9.0, False))
            r += 1
    # widths from the content at 10 pt; an Excel width unit is about the width of a digit. A sheet is
    # scaled to the page width when printed, so every text gets one line if that fits a landscape page
    # (scaled to no less than 80 %); otherwise the page layout's widths, with wrapped rows made taller.
    minimum, preferred = _column_extents(model, 10.0)
    short, long = (x - 2 * _MARGIN_PT for x in sorted(_PAPER_A4_PT))
    if sum(preferred) <= long / 0.8:
        widths, landscape = preferred, sum(preferred) > short / 0.8
    else:
        layout = _page_layout(model, font_size=10.0)
        widths, landscape = [w * 10.0 / layout.font_size for w in layout.widths_pt], layout.landscape
    digit = _text_width_pt("0", 10.0)
    for j, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(j)].width = round(w / digit + 1, 1)
    for row in ws.iter_rows(min_row=header_row, max_row=last_row):
        lines = max([_xlsx_lines(c, widths[c.column - 1]) for c in row if c.coordinate not in ws.merged_cells]
                    or [1])
        if lines > 1:  # LibreOffice does not grow a row for wrapped text by itself
            ws.row_dimensions[row[0].row].height = lines * 13.0
    table_pt = sum(widths)
    for row, text, size, bold in text_rows:  # title and notes wrap within the printed width
        if ncol > 1:
            ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=ncol)
        ws.cell(row, 1).alignment = Alignment(wrap_text=True, vertical="top")
        lines = -(-_text_width_pt(text, size, bold) * 1.05 // table_pt)  # ceil; a little slack for word wrap
        ws.row_dimensions[row].height = max(lines, 1) * size * 1.3
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0  # one page wide, as many pages long as needed
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.print_area = f"A1:{get_column_letter(ncol)}{r - 1}"
    ws.page_margins.left = ws.page_margins.right = 0.79  # 2 cm
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _xlsx_lines(cell, width_pt: float) -> int:
    """Lines a text cell wraps to in a column ``width_pt`` wide (10 pt; a little slack for word wrap)."""
    if not isinstance(cell.value, str) or not cell.value:
        return 1
    room = max(width_pt - _CELL_PADDING_PT, 1.0) + 0.5
    text_pt = _text_width_pt(cell.value, 10.0, bool(cell.font.b))
    return 1 if text_pt <= room else int(-(-text_pt * 1.1 // room))


def _check_formats(formats) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    fmts = tuple(str(f).lower().lstrip(".") for f in formats)
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise ValueError(f"unknown table format(s) {bad or list(formats)}; choose from {list(FORMATS)}")
    return tuple(dict.fromkeys(fmts))


def _write_model(model: _Model, path_or_stem: str | Path, formats, template: str | Path | None = None) -> list[Path]:
    fmts = _check_formats(formats)
    stem = Path(path_or_stem)
    if stem.suffix.lower().lstrip(".") in FORMATS:
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    table_id = re.sub(r"[^A-Za-z0-9_-]", "-", stem.name) or "table"
    builders = {"docx": lambda: _docx_bytes(model, template), "xlsx": lambda: _xlsx_bytes(model),
                "html": lambda: _html_bytes(model, table_id), "tex": lambda: _tex_bytes(model)}
    payloads = {f: builders[f]() for f in fmts}  # render everything before writing anything
    paths = []
    for f, payload in payloads.items():
        p = stem.with_name(f"{stem.name}.{f}")
        io_mod.write_bytes(payload, p)
        paths.append(p)
    return paths


# ------------------------------------------------------------------------------------------------
# public API for any result table
# ------------------------------------------------------------------------------------------------
def _prepare(df, spec, lang, disclosure, min_cell, count_column, group_totals):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a DataFrame, got {type(df).__name__}")
    _check_lang(lang)
    spec = spec or TableSpec()
    table, mask, note_fn = _apply_disclosure(df, disclosure=disclosure, min_cell=min_cell,
                                             count_column=count_column, group_totals=group_totals)
    return _model_from_frame(table, spec, lang, mask, note_fn)


def render(df: pd.DataFrame, spec: TableSpec | None = None, lang: str = "da", *, disclosure: bool = True,
           min_cell: int = disclosure_mod.MIN_CELL_DEFAULT, count_column: str | None = "persons",
           group_totals: Mapping[str, object] | None = None):
    """The table as a ``great_tables.GT`` (for notebooks), with disclosure control applied as in :func:`export`."""
    return _gt(_prepare(df, spec, lang, disclosure, min_cell, count_column, group_totals))


def export(df: pd.DataFrame, path_or_stem: str | Path, spec: TableSpec | None = None,
           formats: Sequence[str] | str = FORMATS, lang: str = "da", *, disclosure: bool = True,
           min_cell: int = disclosure_mod.MIN_CELL_DEFAULT, count_column: str | None = "persons",
           group_totals: Mapping[str, object] | None = None, template: str | Path | None = None) -> list[Path]:
    """Write ``df`` as a publication table in each of ``formats``; returns the written paths.

    ``path_or_stem`` is ``folder/name`` (an extension is dropped). Disclosure control is on by default:
    ``count_column`` (``persons``; falls back to ``events``) decides primary suppression with
    ``min_cell`` (never below 3); ``group_totals`` (see :func:`lumbarstats.disclosure.suppress`) adds
    secondary suppression for additive tables. A table without any count column raises unless
    ``disclosure=False``. ``template`` is a Word document whose styles and page the .docx takes (see
    :func:`write_reference_docx`).
    """
    model = _prepare(df, spec, lang, disclosure, min_cell, count_column, group_totals)
    return _write_model(model, path_or_stem, formats, template)


# ------------------------------------------------------------------------------------------------
# report templates
# ------------------------------------------------------------------------------------------------
def list_templates() -> list[str]:
    """Names of the installed report table templates (``table1``, ``table5_3``, …)."""
    root = resources.files("lumbarstats.templates")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_template(name: str | Path | Mapping) -> dict:
    """A template as a dict: an installed name (``"table1"``), the path of an edited YAML copy, or a
    template given as a mapping (e.g. an installed template with another label, as the report document
    prints Table 4.1 again as Table 5.5)."""
    if isinstance(name, Mapping):
        import copy

        tpl = copy.deepcopy(dict(name))
        if "layout" not in tpl:
            raise ValueError("a table template given as a mapping needs a 'layout' section")
        return tpl
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        text = p.read_text(encoding="utf-8")
    else:
        res = resources.files("lumbarstats.templates") / f"{name}.yaml"
        if not res.is_file():
            raise KeyError(f"unknown table template {name!r}; installed: {list_templates()} (or pass a YAML path)")
        text = res.read_text(encoding="utf-8")
    tpl = yaml.safe_load(text)
    if not isinstance(tpl, dict) or "layout" not in tpl:
        raise ValueError(f"table template {name!r} must be a mapping with a 'layout' section")
    return tpl


def _normalizer(column: str, codelist: str | None, dd):
    """Function turning a data value into a canonical key (code if known) for matching and ordering."""
    cs = _codelist_spec(codelist) or (("region", None) if column == "region" else None)
    if cs is None:
        return lambda v: str(v)
    cl = dd.codelist(cs[0])
    canon: dict[str, str] = {}
    if cs[0] == "region":
        for _, row in cl.iterrows():
            for k in (row["code"], row["name"], row["label_da"], row["label_en"]):
                canon[str(k).casefold()] = row["name"]
        wc = dd.spec["whole_country"]
        for k in (wc["code"], wc["name"], wc["label_da"], wc["label_en"]):
            canon[str(k).casefold()] = wc["name"]
    else:
        cols = ["code"] + [c for c in cl.columns if c.startswith(("label_", "report_label_"))]
        for _, row in cl.iterrows():
            for c in cols:
                if row[c] != "":
                    canon.setdefault(str(row[c]).casefold(), str(row["code"]))
    return lambda v: canon.get(str(v).casefold(), str(v))


def _region_order(dd) -> list[str]:
    return [*dd.region_names().values(), dd.whole_country_name]


def _ordered(keys: list, order: Sequence | None, norm) -> list:
    if not order:
        return keys
    rank = {norm(o): i for i, o in enumerate(order)}
    missing = [k for k in keys if norm(k) not in rank]
    return sorted([k for k in keys if norm(k) in rank], key=lambda k: rank[norm(k)]) + missing


def _select(df: pd.DataFrame, where: Mapping | None, dd) -> pd.DataFrame:
    if not where:
        return df
    out = df
    for col, wanted in where.items():
        if col not in out.columns:  # a table without the column holds one implicit value of it
            continue
        if wanted in ("$first", "$last"):
            vals = sorted(df[col].dropna().unique(), key=str)
            if not vals:
                return out.iloc[0:0]
            wanted = vals[0] if wanted == "$first" else vals[-1]
        norm = _normalizer(col, _CODELIST_FOR_COLUMN.get(col), dd)
        wanted_list = wanted if isinstance(wanted, list) else [wanted]
        keys = {norm(w) for w in wanted_list}
        out = out[out[col].map(norm).isin(keys)]
    return out


def _template_model(name, long_df: pd.DataFrame, lang: str, provenance: Provenance | None, disclosure: bool,
                    min_cell: int, source=None) -> _Model:
    _check_lang(lang)
    if not isinstance(long_df, pd.DataFrame):
        raise TypeError(f"expected a DataFrame, got {type(long_df).__name__}")
    tpl = load_template(name)
    dd = dictionary_mod.load()
    lay = tpl["layout"]
    required = tpl.get("required_columns", [])
    missing = [c for c in required if c not in long_df.columns]
    if missing:
        raise KeyError(f"template {name!r} needs columns {missing}; the table has {list(long_df.columns)}")
    df = long_df.reset_index(drop=True)
    disc = tpl.get("disclosure", {}) or {}
    note_fn = None
    mask = pd.Series(False, index=df.index)
    if disclosure:
        keys = [k for k in disc.get("keys", []) if k in df.columns] or None
        totals = {}
        for dim, tot in (disc.get("group_totals") or {}).items():
            if dim in df.columns:  # a total row that is not in this table is public elsewhere: keep the relation
                totals[dim] = tot if tot is not None and (df[dim] == tot).any() else None
        counts = [c for c in disc.get("count_columns", []) if c in df.columns] or None
        df, mask, note_fn = _apply_disclosure(df, disclosure=True, min_cell=min_cell,
                                              count_column=disc.get("rule_column"), group_totals=totals or None,
                                              keys=keys, count_columns=counts)
    df = _select(df, lay.get("filter"), dd)
    mask = mask.loc[df.index]
    kind = lay.get("type")
    builder = {"wide": _layout_wide, "measure_rows": _layout_measure_rows, "grouped": _layout_grouped,
               "records": _layout_records}.get(kind)
    if builder is None:
        raise ValueError(f"template {name!r}: unknown layout type {kind!r}; use wide, measure_rows, grouped or records")
    header, body, numeric = builder(df, mask, lay, tpl, lang, dd)
    src = _pick(source if source is not None else tpl.get("source"), lang)
    prov = _result_provenance(tpl, df, provenance, lang)
    return _Model(heading=_heading(tpl.get("label"), tpl.get("title"), lang), header=header, body=body,
                  numeric=numeric, notes=_notes(_pick(tpl.get("note"), lang), note_fn(lang) if note_fn else None, lang),
                  source=f"{_WORDS[lang]['source']}: {src}" if src else None,
                  provenance=prov.text(lang) if prov else None, stub=True,
                  sheet=_pick(tpl.get("label"), lang) or _WORDS[lang]["table"], lang=lang)


# What produced a report table's numbers, in the table's language (the provenance footer).
_METHOD_TEXT = {
    "gamma": {"da": "direkte standardisering, {ci} efter gammametoden (Fay & Feuer 1997)",
              "en": "direct standardization, {ci} by the gamma method (Fay & Feuer 1997)"},
    "tiwari": {"da": "direkte standardisering, {ci} efter den modificerede gammametode (Tiwari m.fl. 2006)",
               "en": "direct standardization, {ci} by the modified gamma method (Tiwari et al. 2006)"},
    "dobson": {"da": "direkte standardisering, {ci} efter Dobsons metode",
               "en": "direct standardization, {ci} by Dobson's method"},
    "lognormal": {"da": "direkte standardisering, log-normal {ci}", "en": "direct standardization, log-normal {ci}"},
    "normal": {"da": "direkte standardisering, normalapproksimeret {ci}",
               "en": "direct standardization, normal-approximation {ci}"},
    "exact": {"da": "ustandardiseret rate, eksakt Poisson-{ci}", "en": "crude rate, exact Poisson {ci}"},
    "byar": {"da": "ustandardiseret rate, {ci} efter Byars metode", "en": "crude rate, Byar's {ci}"},
}
_UNIT_TEXT = {"events": {"da": "undersøgelser", "en": "examinations"},
              "exams": {"da": "undersøgelser", "en": "examinations"},
              "persons": {"da": "personer", "en": "persons"}}
_AND = {"da": "og", "en": "and"}
_SHARE_TEXT = {  # profiles.profile_shares(denominator=...)
    "profiled": {"da": "andel af {unit} blandt personer med en fuld profil, ustandardiseret",
                 "en": "share of the {unit} of persons with a complete profile, not standardized"},
    "all": {"da": "andel af alle {unit}, ustandardiseret", "en": "share of all {unit}, not standardized"}}


def _ci_text(conf_level, lang: str) -> str:
    pct = format_number(100 * float(conf_level), 0, lang)
    return f"{pct} %-KI" if lang == "da" else f"{pct}% CI"


def _result_provenance(tpl: dict, df: pd.DataFrame, base: Provenance | None, lang: str) -> Provenance | None:
    """The caller's provenance with the period, unit, method and standard of this table's own numbers.

    The table's columns win (``year``/``period``, ``count``, ``method`` and ``conf_level``), then the
    template's ``provenance`` section (it describes this table), then the caller's fields (they describe
    the whole run). The standard population is the caller's, else the template's, and is stated only for
    a table the template does not mark ``standardized: false``.
    """
    if base is None:
        return None
    section = tpl.get("provenance") or {}
    period = unit = method = None
    if "year" in df.columns and df["year"].notna().any():
        years = sorted({int(y) for y in df["year"].dropna()})
        period = f"{years[0]}-{years[-1]}" if len(years) > 1 else str(years[0])
    elif "period" in df.columns and df["period"].notna().any():
        periods = sorted({str(p) for p in df["period"].dropna()})
        if tpl["layout"].get("type") == "measure_rows" and len(periods) > 1:  # a change from first to last
            period = f"{periods[0]} {_AND[lang]} {periods[-1]}"
        else:
            period = ", ".join(periods)
    if "count" in df.columns:
        units = [_UNIT_TEXT.get(str(u), {}).get(lang, str(u)) for u in dict.fromkeys(df["count"].dropna())]
        unit = ", ".join(units) or None
    if "method" in df.columns and df["method"].notna().any():
        conf = df["conf_level"].dropna().iloc[0] if "conf_level" in df.columns and df["conf_level"].notna().any() \
            else 0.95
        texts = [_METHOD_TEXT.get(str(m), {}).get(lang, str(m)).format(ci=_ci_text(conf, lang))
                 for m in dict.fromkeys(df["method"].dropna())]
        method = "; ".join(texts)
    elif "denominator" in df.columns and df["denominator"].notna().any():
        what = unit or _pick(section.get("unit"), lang) or _UNIT_TEXT["events"][lang]
        method = "; ".join(_SHARE_TEXT.get(str(d), {}).get(lang, str(d)).format(unit=what)
                           for d in dict.fromkeys(df["denominator"].dropna()))
    standardized = section.get("standardized")
    standard = None if standardized is False else (base.standard or section.get("standard"))
    return replace(base,
                   period=period or _pick(section.get("period"), lang) or base.period,
                   unit=unit or _pick(section.get("unit"), lang) or base.unit,
                   method=method or _pick(section.get("method"), lang) or base.method,
                   standard=_pick(standard, lang))


def _fmt_opts(tpl: dict, value_col: str, item: Mapping | None = None) -> tuple[int, bool]:
    item = item or {}
    decimals = item.get("decimals", tpl.get("decimals", {}).get(value_col, 1))
    percent = item.get("percent", value_col in tpl.get("percent", []))
    return int(decimals), bool(percent)


def _pivot_cells(df, mask, rows_col, cols_col, value_col, row_keys, col_keys, norm_r, norm_c, tpl, lang):
    decimals, percent = _fmt_opts(tpl, value_col)
    lookup: dict = {}
    for idx, r in df.iterrows():
        k = (norm_r(r[rows_col]), norm_c(r[cols_col]))
        if k in lookup:
            raise ValueError(f"more than one row for {rows_col}={r[rows_col]!r}, {cols_col}={r[cols_col]!r}")
        lookup[k] = (r[value_col], bool(mask[idx]))
    out = {}
    for rk in row_keys:
        cells = []
        for ck in col_keys:
            v, hidden = lookup.get((norm_r(rk), norm_c(ck)), (None, False))
            cells.append(_value_cell(v, hidden=hidden, decimals=decimals, percent=percent, lang=lang))
        out[rk] = cells
    return out


def _col_header(values: list, column: str, codelist, lang, dd) -> list[str]:
    if column == "region" or codelist:
        labels = _label_values(pd.Series(values, dtype=object), codelist or "region", lang, dd)
        return [str(v) for v in labels]
    return [str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer() else str(v) for v in values]


def _axis(df, column, order, codelist, dd):
    norm = _normalizer(column, codelist, dd)
    keys = list(dict.fromkeys(df[column].dropna().tolist()))
    if order is None and column == "region":
        order = _region_order(dd)
    return _ordered(keys, order, norm), norm


def _layout_wide(df, mask, lay, tpl, lang, dd):
    rows_col, cols_col, value_col = lay["rows"], lay["columns"], lay["values"]
    for c in (rows_col, cols_col, value_col):
        if c not in df.columns:
            raise KeyError(f"layout needs column {c!r}; the table has {list(df.columns)}")
    row_keys, norm_r = _axis(df, rows_col, lay.get("row_order"), lay.get("row_codelist"), dd)
    col_keys, norm_c = _axis(df, cols_col, lay.get("column_order"), lay.get("column_codelist"), dd)
    cells = _pivot_cells(df, mask, rows_col, cols_col, value_col, row_keys, col_keys, norm_r, norm_c, tpl, lang)
    row_labels = _col_header(row_keys, rows_col, lay.get("row_codelist"), lang, dd)
    header = [_pick(lay.get("stub_label"), lang) or column_label(rows_col, lang, dd),
              *_col_header(col_keys, cols_col, lay.get("column_codelist"), lang, dd)]
    body = [("row", [_Cell(lab), *cells[k]]) for k, lab in zip(row_keys, row_labels, strict=True)]
    return header, body, [False] + [True] * len(col_keys)


def _layout_measure_rows(df, mask, lay, tpl, lang, dd):
    cols_col = lay["columns"]
    col_keys, norm_c = _axis(df, cols_col, lay.get("column_order"), lay.get("column_codelist"), dd)
    header = [_pick(lay.get("stub_label"), lang) or column_label(cols_col, lang, dd),
              *_col_header(col_keys, cols_col, lay.get("column_codelist"), lang, dd)]
    body = []
    normed = df[cols_col].map(norm_c)
    for item in lay["rows"]:
        value_col = item["value"]
        if value_col not in df.columns:
            raise KeyError(f"layout row needs column {value_col!r}; the table has {list(df.columns)}")
        decimals, percent = _fmt_opts(tpl, value_col, item)
        # `where` selects the cells a row shows; `at` selects the row holding a value derived from several
        # cells (the change 2014-16 -> 2021-23 sits on the 2021-23 row), which stays hidden if any is
        picker = item.get("where") or item.get("at")
        sel = _select(df, picker, dd)
        context = {k: (sel[k].iloc[0] if len(sel) and k in sel.columns else "") for k in (picker or {})}
        label = (_pick(item.get("label"), lang) or column_label(value_col, lang, dd)).format(**context)
        cells = [_Cell(label)]
        for ck in col_keys:
            part = sel[sel[cols_col].map(norm_c) == norm_c(ck)]
            scope = part if item.get("where") else df[normed == norm_c(ck)]
            hidden = bool(mask.loc[scope.index].any())
            vals = part[value_col].dropna()
            if len(vals) > 1 and vals.nunique() > 1:
                raise ValueError(
                    f"layout row {value_col!r}: {len(vals)} different values for {cols_col}={ck!r} "
                    f"({', '.join(map(str, vals.tolist()))}); say which row holds it with `at:` "
                    "(e.g. at: {period: $last}) in the template")
            cells.append(_value_cell(vals.iloc[0] if len(vals) else None, hidden=hidden, decimals=decimals,
                                     percent=percent, lang=lang))
        body.append(("row", cells))
    return header, body, [False] + [True] * len(col_keys)


def _layout_grouped(df, mask, lay, tpl, lang, dd):
    group_col, rows_col, cols_col, value_col = lay["group_by"], lay["rows"], lay["columns"], lay["values"]
    for c in (group_col, rows_col, cols_col, value_col):
        if c not in df.columns:
            raise KeyError(f"layout needs column {c!r}; the table has {list(df.columns)}")
    col_keys, norm_c = _axis(df, cols_col, lay.get("column_order"), lay.get("column_codelist"), dd)
    header = [_pick(lay.get("stub_label"), lang) or column_label(cols_col, lang, dd),
              *_col_header(col_keys, cols_col, lay.get("column_codelist"), lang, dd)]
    groups = _ordered(list(dict.fromkeys(df[group_col].dropna())), lay.get("group_order"), str)
    body = []
    for g in groups:
        part = df[df[group_col] == g]
        glabel = _pick((lay.get("group_labels") or {}).get(g), lang) or column_label(str(g), lang, dd)
        body.append(("group", glabel))
        codelist = (lay.get("row_codelists") or {}).get(g)
        row_keys, norm_r = _axis(part, rows_col, None, codelist, dd)
        cells = _pivot_cells(part, mask.loc[part.index], rows_col, cols_col, value_col, row_keys, col_keys,
                             norm_r, norm_c, tpl, lang)
        labels = _label_values(pd.Series(row_keys, dtype=object), codelist, lang, dd)
        for k, lab in zip(row_keys, labels, strict=True):
            body.append(("row", [_Cell(str(lab)), *cells[k]]))
    return header, body, [False] + [True] * len(col_keys)


def _layout_records(df, mask, lay, tpl, lang, dd):
    cols = lay["columns"]
    group_col = lay.get("group_by")
    sort = lay.get("sort") or []
    header = [_pick(lay.get("stub_label"), lang) or ""]
    numeric = [False]
    for c, opts in cols.items():
        opts = opts or {}
        header.append(_pick(opts.get("label"), lang) or column_label(c, lang, dd))
        numeric.append(bool(opts.get("numeric", pd.api.types.is_numeric_dtype(df[c]) if c in df.columns else False)))
    missing = [c for c in [*cols, *sort, *([group_col] if group_col else [])] if c not in df.columns]
    if missing:
        raise KeyError(f"layout needs columns {missing}; the table has {list(df.columns)}")
    if group_col:
        gnorm = _normalizer(group_col, _CODELIST_FOR_COLUMN.get(group_col), dd)
        groups = _ordered(list(dict.fromkeys(df[group_col].dropna())), lay.get("group_order"), gnorm)
    else:
        groups, gnorm = [None], str
    body = []
    for g in groups:
        part = df if g is None else df[df[group_col].map(gnorm) == gnorm(g)]
        if sort:
            part = part.sort_values(sort, kind="stable")
        if g is not None:
            labels = lay.get("group_labels") or {}
            glabel = _pick(labels.get(gnorm(g)) or labels.get(g), lang)
            body.append(("group", glabel or str(_label_values(pd.Series([g]), _CODELIST_FOR_COLUMN.get(group_col),
                                                              lang, dd).iloc[0])))
        for idx, row in part.iterrows():
            stub = (_pick(lay.get("stub"), lang) or "").format(**row.to_dict())
            cells = [_Cell(stub)]
            hidden = bool(mask[idx])
            for (c, opts), is_num in zip(cols.items(), numeric[1:], strict=True):
                opts = opts or {}
                v = row[c]
                if is_num:
                    decimals, percent = _fmt_opts(tpl, c, opts)
                    cells.append(_value_cell(v, hidden=hidden, decimals=decimals, percent=percent, lang=lang))
                else:
                    lab = _label_values(pd.Series([v], dtype=object), opts.get("codelist"), lang, dd).iloc[0]
                    cells.append(_Cell("" if lab is None or (isinstance(lab, float) and np.isnan(lab)) else str(lab)))
            body.append(("row", cells))
    return header, body, numeric


def report_table_model(name: str | Path | Mapping, long_df: pd.DataFrame, *, lang: str = "da",
                       provenance: Provenance | None = None, disclosure: bool = True,
                       min_cell: int = disclosure_mod.MIN_CELL_DEFAULT, source: str | Mapping | None = None):
    """The laid-out table of a report template (what :func:`export_report_table` writes), for documents
    that hold several tables: pass it to :func:`add_docx_table` or :func:`table_html`."""
    return _template_model(name, long_df, lang, provenance, disclosure, min_cell, source=source)


def table_model(df: pd.DataFrame, spec: TableSpec | None = None, lang: str = "da", *, disclosure: bool = True,
                min_cell: int = disclosure_mod.MIN_CELL_DEFAULT, count_column: str | None = "persons",
                group_totals: Mapping[str, object] | None = None):
    """The laid-out table of any result DataFrame (what :func:`export` writes), for documents that hold
    several tables: pass it to :func:`add_docx_table` or :func:`table_html`."""
    return _prepare(df, spec, lang, disclosure, min_cell, count_column, group_totals)


def table_html(model, table_id: str) -> str:
    """The table as an HTML fragment (great_tables, its style scoped to ``table_id``) for a page that
    holds several tables."""
    return _gt(model, re.sub(r"[^A-Za-z0-9_-]", "-", table_id) or "table").as_raw_html(make_page=False)


def from_template(name: str | Path, long_df: pd.DataFrame, *, lang: str = "da", provenance: Provenance | None = None,
                  disclosure: bool = True, min_cell: int = disclosure_mod.MIN_CELL_DEFAULT):
    """A report table laid out by a template (``templates/<name>.yaml``) as a ``great_tables.GT``.

    ``long_df`` is the pipeline's long table (e.g. ``region, year, events, persons, population, rate,
    lower, upper`` for ``table1``); disclosure control uses the template's ``disclosure`` section.
    """
    return _gt(_template_model(name, long_df, lang, provenance, disclosure, min_cell))


def export_report_table(name: str | Path, long_df: pd.DataFrame, out_dir: str | Path,
                        formats: Sequence[str] | str = FORMATS, lang: str = "da",
                        provenance: Provenance | None = None, *, disclosure: bool = True,
                        min_cell: int = disclosure_mod.MIN_CELL_DEFAULT, stem: str | None = None,
                        source: str | Mapping | None = None, template: str | Path | None = None) -> list[Path]:
    """Pivot ``long_df`` as the template ``name`` says and write it to ``out_dir/<stem>.<format>``.

    ``stem`` defaults to the template name (plus ``_en`` for English). ``source`` replaces the template's
    source line (a string, or ``{"da": …, "en": …}``), e.g. for results from the synthetic register.
    ``template`` is a Word document whose styles and page the .docx takes (see :func:`write_reference_docx`).
    Returns the written paths.
    """
    model = _template_model(name, long_df, lang, provenance, disclosure, min_cell, source=source)
    base = stem or (Path(name).stem + ("" if lang == "da" else f"_{lang}"))
    return _write_model(model, Path(out_dir) / base, formats, template)

