"""Disclosure control (diskretionering) for tables that leave Statistics Denmark's research servers.

Statistics Denmark does not allow researchers to take out cells based on fewer than 3 persons;
research groups commonly use 5. This module is the **one place** where the small-cell rule lives
(:func:`flag_small_cells`); every exporter in lumbarstats calls it.

Rules applied by :func:`suppress`
---------------------------------
1. *Primary suppression*: a cell whose person count is ``0 < n < min_cell`` is hidden. The count that
   decides is the number of **distinct persons** (column ``persons``) when the table has one, since the
   rule is about persons; otherwise the event count (``events``; every person has at least one event,
   so events >= persons and an event-based rule is the weaker fallback). Zero cells are published:
   they describe no person.
2. *Hidden together*: when a cell is hidden, all its counts (events, persons, exams, …) and all its
   values (rate, lower, upper, shares, percentage changes, population) are hidden with it — a rate and
   its confidence interval together with the population give the count back.
3. *Secondary (complementary) suppression* where the table is additive (``group_totals``: regions
   adding up to ``Landsplan``, groups adding up to a total published elsewhere, shares adding up to
   100): in every relation "members add up to a total" that holds exactly one hidden cell, the smallest
   non-zero visible cell is hidden too; then a linear-algebra check makes sure that no hidden cell is
   uniquely determined by the published cells (a cell is determined iff its unit vector lies in the
   row space of the relations restricted to the hidden cells, i.e. iff it is zero in every vector of
   the null space). While one is, another complementary cell in one of its relations is hidden.
   This is the "simple heuristic" for cell suppression in Hundepool et al. (2012), *Statistical
   Disclosure Control*, Wiley, ch. 4.3 and Cox (1980), "Suppression methodology and statistical
   disclosure control", JASA 75(370):377–385. Interval (bounds) disclosure from non-negativity is not
   analysed beyond preferring non-zero complementary cells.

Counts in scanned files (:func:`check_directory`)
--------------------------------------------------
Count columns are recognised by name: ``events, persons, exams, examinations, n, count, observed, cases``
and the Danish/English labels lumbarstats writes (``Antal personer``, ``Number of persons``, …; see
:data:`COUNT_COLUMN_LABELS`). ``population`` is **not** a small-cell count: it is a denominator
(person-years of residents, public in Statistics Denmark's StatBank), not a count of persons with a
condition; it is hidden together with suppressed cells but never triggers suppression.
"""

from __future__ import annotations

import csv
import html.parser
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "MIN_CELL_DEFAULT",
    "MIN_CELL_FLOOR",
    "SUPPRESSED_MARKER",
    "COUNT_COLUMN_NAMES",
    "COUNT_COLUMN_LABELS",
    "SuppressionResult",
    "validate_min_cell",
    "flag_small_cells",
    "suppress",
    "determined_cells",
    "disclosure_note",
    "is_count_column",
    "check_table",
    "check_directory",
    "protect",
    "Policy",
    "as_policy",
    "round_counts",
    "DERIVED_FROM_COUNTS",
    "write_protected_csv",
]

MIN_CELL_DEFAULT = 5
"""Smallest publishable number of persons in a cell (research-group convention)."""
MIN_CELL_FLOOR = 3
"""Statistics Denmark's absolute minimum; ``min_cell`` below this raises."""
SUPPRESSED_MARKER = "–"
"""What a suppressed cell shows in exported tables (an en dash), explained in a footnote."""

def _load_count_columns() -> tuple[tuple[str, ...], dict[str, dict[str, str]], tuple[str, ...]]:
    """Count-column names, their labels and extra heading words from ``data_dictionary/count_columns.yaml``."""
    import yaml

    from lumbarstats import dictionary as _dictionary

    with open(_dictionary.dictionary_path() / "count_columns.yaml", encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)
    labels = {str(k): {str(lang): str(v) for lang, v in d.items()} for k, d in spec["count_columns"].items()}
    return tuple(labels), labels, tuple(str(x) for x in spec.get("extra_names", ()))


COUNT_COLUMN_NAMES, COUNT_COLUMN_LABELS, _EXTRA_COUNT_NAMES = _load_count_columns()
"""Column names that hold counts of persons or events (``population`` deliberately excluded) and their
published Danish/English labels, as declared in the data dictionary (``count_columns.yaml``)."""
_KEY_LIKE_NUMERIC = ("year", "month", "quarter", "rank", "period", "week", "region", "region_code", "age", "cci",
                     "step", "time", "tau")
_TOTAL_ROW_LABELS = ("landsplan", "hele landet", "i alt", "total", "denmark", "all")
_HIDDEN_STRINGS = {SUPPRESSED_MARKER, "-", "—", "..", "x", "X", "*", "[x]", "c"}
_HIDDEN_RE = re.compile(r"^<\s*\d+$")
_SCANNED_SUFFIXES = (".csv", ".tsv", ".xlsx", ".html", ".htm", ".docx", ".tex", ".ipynb")


# ------------------------------------------------------------------------------------------------
# the small-cell rule
# ------------------------------------------------------------------------------------------------
def validate_min_cell(min_cell: int) -> int:
    """Return ``min_cell`` as an int; raise if it is below Statistics Denmark's minimum of 3."""
    if isinstance(min_cell, bool) or not float(min_cell).is_integer():
        raise ValueError(f"min_cell must be a whole number of persons, got {min_cell!r}")
    m = int(min_cell)
    if m < MIN_CELL_FLOOR:
        raise ValueError(
            f"min_cell={m} is below Statistics Denmark's minimum of {MIN_CELL_FLOOR} persons per cell; "
            f"use min_cell >= {MIN_CELL_FLOOR} (default {MIN_CELL_DEFAULT})"
        )
    return m


def flag_small_cells(df: pd.DataFrame | pd.Series, count_column: str | None = None,
                     min_cell: int = MIN_CELL_DEFAULT) -> pd.Series:
    """True where a cell holds ``0 < count < min_cell`` persons — the one small-cell rule of lumbarstats.

    ``df`` is a DataFrame (then ``count_column`` names the count) or a Series of counts. Missing
    counts (already hidden) and zeros are not flagged. Non-numeric or negative counts raise.
    """
    m = validate_min_cell(min_cell)
    if isinstance(df, pd.Series):
        s = df
    else:
        if count_column is None:
            raise ValueError("flag_small_cells needs count_column= when given a DataFrame")
        if count_column not in df.columns:
            raise KeyError(f"count column {count_column!r} not in table; columns: {list(df.columns)}")
        s = df[count_column]
    values = pd.to_numeric(s, errors="coerce")
    bad = values.isna() & s.notna()
    if bad.any():
        raise ValueError(f"count column {s.name!r} holds non-numeric values at rows {list(s.index[bad][:10])}")
    if (values < 0).any():
        raise ValueError(f"count column {s.name!r} holds negative counts at rows {list(s.index[values < 0][:10])}")
    return ((values > 0) & (values < m)).fillna(False).astype(bool)


def disclosure_note(min_cell: int = MIN_CELL_DEFAULT, lang: str = "da", unit: str = "persons",
                    marker: str = SUPPRESSED_MARKER) -> str:
    """Footnote explaining suppressed cells (without the leading ``Anm.:``/``Note:``)."""
    m = validate_min_cell(min_cell)
    if lang == "da":
        what = "personer" if unit == "persons" else "observationer"
        return (f"Celler med færre end {m} {what} er udeladt ({marker}), og det samme gælder celler, "
                f"som de ellers kunne beregnes ud fra (diskretionering).")
    if lang == "en":
        what = "persons" if unit == "persons" else "observations"
        return (f"Cells with fewer than {m} {what} are suppressed ({marker}), as are cells from which "
                f"they could otherwise be derived (statistical disclosure control).")
    raise ValueError(f"lang must be 'da' or 'en', got {lang!r}")


# ------------------------------------------------------------------------------------------------
# suppression of a long (tidy) table
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SuppressionResult:
    """Outcome of :func:`suppress`. Unpacks as ``table, mask = suppress(...)``.

    ``table`` has the counts and values of suppressed cells set to missing; ``mask`` is True for
    suppressed rows (cells); ``primary`` marks the cells below the threshold themselves.
    """

    table: pd.DataFrame
    mask: pd.Series
    primary: pd.Series
    min_cell: int
    rule_column: str
    count_columns: tuple[str, ...]
    value_columns: tuple[str, ...]

    @property
    def secondary(self) -> pd.Series:
        return self.mask & ~self.primary

    @property
    def n_suppressed(self) -> int:
        return int(self.mask.sum())

    def __iter__(self) -> Iterator:
        yield self.table
        yield self.mask

    def marked(self, marker: str = SUPPRESSED_MARKER) -> pd.DataFrame:
        """The table as objects with ``marker`` in every hidden count/value cell."""
        out = self.table.astype(object)
        for col in (*self.count_columns, *self.value_columns):
            out.loc[self.mask, col] = marker
        return out

    def note(self, lang: str = "da") -> str:
        return disclosure_note(self.min_cell, lang, unit="persons" if self.rule_column == "persons" else "events")


def _default_columns(df: pd.DataFrame, count_columns, value_columns, keys):
    if count_columns is None:
        count_columns = [c for c in df.columns if str(c).casefold() in COUNT_COLUMN_NAMES]
    count_columns = list(count_columns)
    for c in count_columns:
        if c not in df.columns:
            raise KeyError(f"count column {c!r} not in table; columns: {list(df.columns)}")
    if keys is None:
        if value_columns is not None:
            keys = [c for c in df.columns if c not in count_columns and c not in value_columns]
        else:
            keys = [c for c in df.columns if c not in count_columns and (
                not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])
                or str(c).casefold() in _KEY_LIKE_NUMERIC)]
    keys = list(keys)
    if value_columns is None:
        value_columns = [c for c in df.columns if c not in count_columns and c not in keys]
    value_columns = list(value_columns)
    for c in (*keys, *value_columns):
        if c not in df.columns:
            raise KeyError(f"column {c!r} not in table; columns: {list(df.columns)}")
    return count_columns, value_columns, keys


def _relations(df: pd.DataFrame, keys: Sequence[str], group_totals: Mapping | None) -> list[tuple[np.ndarray, int | None]]:
    """Additive relations as (positions of members, position of the total or None if known elsewhere)."""
    rels: list[tuple[np.ndarray, int | None]] = []
    if not group_totals:
        return rels
    pos = pd.Series(np.arange(len(df)), index=df.index)
    for dim, total in group_totals.items():
        if dim not in keys:
            raise KeyError(f"group_totals dimension {dim!r} is not a key column of the table; keys: {list(keys)}")
        col = df[dim]
        if total is not None and not (col == total).any():
            raise ValueError(f"group_totals says {dim!r} has a total row {total!r}, but no row has {dim} == {total!r}")
        others = [k for k in keys if k != dim]
        groups = [(None, df)] if not others else df.groupby(others, dropna=False, sort=False)
        for _, g in groups:
            is_total = (g[dim] == total) if total is not None else pd.Series(False, index=g.index)
            members = pos[g.index[~is_total & g[dim].notna()]].to_numpy()
            if len(members) == 0:
                continue
            tot = pos[g.index[is_total]].to_numpy()
            rels.append((members, int(tot[0]) if len(tot) else None))
    return rels


def _relation_matrix(rels, n: int) -> np.ndarray:
    m = np.zeros((len(rels), n))
    for i, (members, tot) in enumerate(rels):
        m[i, members] = 1.0
        if tot is not None:
            m[i, tot] = -1.0
    return m


def _determined(matrix: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Positions of hidden cells whose value follows uniquely from the published cells.

    The relations restricted to the hidden cells fall apart into independent blocks (connected
    components: cells linked by a relation); each block is solved on its own, which keeps the SVDs small.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    idx = np.flatnonzero(hidden)
    if len(idx) == 0 or matrix.shape[0] == 0:
        return np.array([], dtype=int)
    a = matrix[:, idx]
    a = a[np.any(a != 0, axis=1)]
    if a.shape[0] == 0:
        return np.array([], dtype=int)
    n_rel, n_cell = a.shape
    links = csr_matrix(np.block([[np.zeros((n_rel, n_rel)), a != 0], [(a != 0).T, np.zeros((n_cell, n_cell))]]))
    _, labels = connected_components(links, directed=False)
    out = []
    for lab in np.unique(labels[n_rel:]):
        cols = np.flatnonzero(labels[n_rel:] == lab)
        rows = np.flatnonzero(labels[:n_rel] == lab)
        if len(rows) == 0:
            continue
        block = a[np.ix_(rows, cols)]
        # null space via SVD: hidden cell j is determined iff every null-space vector is 0 at j
        _, s, vt = np.linalg.svd(block, full_matrices=True)
        rank = int(np.sum(s > 1e-9 * max(block.shape)))
        null = vt[rank:].T
        det = cols if null.shape[1] == 0 else cols[np.linalg.norm(null, axis=1) < 1e-8]
        out.extend(idx[det])
    return np.array(sorted(out), dtype=int)


def determined_cells(df: pd.DataFrame, hidden, *, keys: Sequence[str], group_totals: Mapping) -> pd.Series:
    """True for hidden cells that can be computed exactly from the published cells and the totals.

    ``hidden`` is a boolean mask (Series aligned with ``df`` or array); ``group_totals`` as in :func:`suppress`.
    """
    hidden = np.asarray(hidden, dtype=bool)
    rels = _relations(df, keys, group_totals)
    det = _determined(_relation_matrix(rels, len(df)), hidden)
    out = np.zeros(len(df), dtype=bool)
    out[det] = True
    return pd.Series(out, index=df.index)


def suppress(df: pd.DataFrame, *, count_columns: Sequence[str] | None = None,
             value_columns: Sequence[str] | None = None, min_cell: int = MIN_CELL_DEFAULT,
             group_totals: Mapping[str, object] | None = None, keys: Sequence[str] | None = None,
             rule_column: str | None = None, missing_counts: str = "error",
             extra_relations: Sequence[tuple[Sequence, object]] | None = None,
             unpublished=None) -> SuppressionResult:
    """Primary and secondary cell suppression of a long table (one row per published cell).

    Parameters
    ----------
    df : one row per cell, e.g. ``region, year, events, persons, population, rate, lower, upper``.
    count_columns : counts hidden with the cell; default the columns named in :data:`COUNT_COLUMN_NAMES`.
    value_columns : values hidden with the cell (rates, intervals, shares, population); default every
        other numeric column that is not a key.
    min_cell : smallest publishable number of persons (default 5, never below 3).
    group_totals : the additive structure, ``{dimension: total_label}``: within each combination of the
        other keys the rows of ``dimension`` add up to the row whose ``dimension == total_label``
        (``{"region": "Landsplan"}``); ``total_label=None`` means the members add up to a total that is
        public elsewhere (groups of a variable adding up to the region total, shares adding up to 100).
        ``None`` (default): no additive structure, only primary suppression.
    keys : columns identifying a cell; default the non-numeric columns plus year/month/period/rank.
    rule_column : the count the threshold applies to; default ``persons`` if present, else ``events``,
        else the first count column.
    missing_counts : ``"error"`` (default): a cell without its count is an error; ``"suppressed"``: a
        missing count marks a cell suppressed upstream (a protected CSV read back), which stays hidden
        and takes part in the secondary suppression.
    extra_relations : further additive relations ``(member row labels, total row label or None)``, e.g.
        the years of a pooled period adding up to the period's row in a stacked table.
    unpublished : boolean mask (aligned with ``df``) of cells that take part in the relations but are not
        published, e.g. the "unknown" education group left out of tables 5.3–5.4 (the groups and it add
        up to the total). They are hidden from the start; a small one is protected like any primary
        cell (no published cell may let it be computed). The caller drops them before publishing.

    The steps: :func:`_rule_counts` (the count that decides, cells hidden upstream), the small-cell rule
    (:func:`flag_small_cells`), :func:`_all_relations`, :func:`_secondary_suppression` and :func:`_hide`.

    References: Hundepool A, Domingo-Ferrer J, Franconi L, et al. (2012) *Statistical Disclosure
    Control*. Wiley, ch. 4; Cox LH (1980) JASA 75:377–385.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"suppress expects a DataFrame, got {type(df).__name__}")
    m = validate_min_cell(min_cell)
    count_columns, value_columns, keys = _default_columns(df, count_columns, value_columns, keys)
    if not count_columns:
        raise ValueError(
            "disclosure control needs a count column (persons or events) to know how many persons a cell "
            f"describes; table columns are {list(df.columns)}. Pass count_columns=[...]."
        )
    if rule_column is None:
        rule_column = next((c for c in ("persons", "events") if c in count_columns), count_columns[0])
    if rule_column not in df.columns:
        raise KeyError(f"rule column {rule_column!r} not in table; columns: {list(df.columns)}")
    if keys and df.duplicated(keys).any():
        dup = df[df.duplicated(keys, keep=False)][keys].head(5).to_dict("records")
        raise ValueError(f"cells are not unique on key columns {keys}; duplicated, e.g.: {dup}")
    counts, upstream = _rule_counts(df, rule_column, missing_counts)
    primary = flag_small_cells(pd.Series(counts, index=df.index, name=rule_column), min_cell=m) | upstream
    not_published = (np.zeros(len(df), dtype=bool) if unpublished is None
                     else np.asarray(pd.Series(unpublished, index=df.index).fillna(False), dtype=bool))
    rels = _all_relations(df, keys, group_totals, extra_relations)
    hidden = _secondary_suppression(df, keys, rels, counts, primary.to_numpy(), not_published)
    mask = pd.Series(hidden, index=df.index, name="suppressed")
    return SuppressionResult(table=_hide(df, mask, count_columns, value_columns), mask=mask,
                             primary=primary.rename("primary"), min_cell=m, rule_column=rule_column,
                             count_columns=tuple(count_columns), value_columns=tuple(value_columns))


def _rule_counts(df: pd.DataFrame, rule_column: str, missing_counts: str) -> tuple[np.ndarray, pd.Series]:
    """The deciding counts as floats, and the cells hidden upstream (missing count, ``"suppressed"`` mode)."""
    if missing_counts not in ("error", "suppressed"):
        raise ValueError(f"missing_counts must be 'error' or 'suppressed', got {missing_counts!r}")
    values = pd.to_numeric(df[rule_column], errors="coerce")
    bad = values.isna() & df[rule_column].notna() & ~df[rule_column].astype(str).isin(list(_HIDDEN_STRINGS))
    if bad.any():
        raise ValueError(f"count column {rule_column!r} holds non-numeric values at rows {list(df.index[bad][:5])}")
    missing = values.isna()
    if missing.any() and missing_counts == "error":
        raise ValueError(
            f"count column {rule_column!r} is missing at rows {list(df.index[missing][:10])}; every cell needs "
            "its person count for disclosure control"
        )
    upstream = missing.rename(rule_column) if missing_counts == "suppressed" else pd.Series(False, index=df.index)
    return values.fillna(0).to_numpy(dtype=float), upstream.astype(bool)


def _all_relations(df, keys, group_totals, extra_relations) -> list[tuple[np.ndarray, int | None]]:
    """The relations of ``group_totals`` and the ``extra_relations`` (row labels) as row positions."""
    rels = _relations(df, keys, group_totals)
    if extra_relations:
        pos = pd.Series(np.arange(len(df)), index=df.index)
        for members, total in extra_relations:
            rels.append((pos[list(members)].to_numpy(), None if total is None else int(pos[total])))
    return rels


def _secondary_suppression(df, keys, rels, counts: np.ndarray, primary: np.ndarray,
                           not_published: np.ndarray) -> np.ndarray:
    """Hidden cells after complementary suppression: no relation with one hidden cell, and no protected
    cell (hidden and published, or unpublished and small) determined by the published cells."""
    matrix = _relation_matrix(rels, len(df))
    hidden = primary | not_published
    # an unpublished cell that is not small may be computed by anyone: it needs no protection
    free = not_published & ~primary
    totals = {t for _, t in rels if t is not None}

    def pick(candidates) -> int | None:
        cand = [int(c) for c in candidates if not hidden[c]]
        if not cand:
            return None
        return min(cand, key=lambda c: (counts[c] == 0, c in totals, counts[c], c))

    def protected_in(cells) -> int:
        return int((hidden[cells] & ~free[cells]).sum())

    for _ in range(len(df) + 1):
        changed = False
        for members, tot in rels:  # each relation: zero or at least two hidden cells
            cells = members if tot is None else np.append(members, tot)
            if hidden[cells].sum() == 1 and protected_in(cells) == 1:
                c = pick(cells)
                if c is not None:
                    hidden[c] = True
                    changed = True
        if changed:
            continue
        det = [int(u) for u in _determined(matrix, hidden) if not free[u]]
        if not det:
            break
        u = det[0]
        options = _complements(rels, det, pick) or _complements(rels, np.flatnonzero(hidden), pick)
        if not options:
            row = df.iloc[u][keys].to_dict() if keys else u
            raise ValueError(
                f"cannot protect suppressed cell {row}: it equals a published total and no other cell can be "
                "hidden with it. Merge it with a neighbouring group or drop the total."
            )
        hidden[min(options, key=lambda c: (counts[c] == 0, c in totals, counts[c], c))] = True
    return hidden


def _complements(rels, cells_to_protect, pick) -> list[int]:
    """Candidate complementary cells: the best visible cell of each relation holding one of the cells (first
    the determined cells' own relations; when all their cells are hidden, relations linked to them)."""
    wanted = {int(c) for c in cells_to_protect}
    options = []
    for members, tot in rels:
        cells = members if tot is None else np.append(members, tot)
        if wanted.intersection(int(c) for c in cells):
            c = pick(cells)
            if c is not None:
                options.append(c)
    return options


def _hide(df: pd.DataFrame, mask: pd.Series, count_columns, value_columns) -> pd.DataFrame:
    """``df`` with the counts and values of the masked cells set to missing."""
    out = df.copy()
    for col in count_columns:
        if pd.api.types.is_integer_dtype(out[col]):
            out[col] = out[col].astype("Int64")
        out.loc[mask, col] = pd.NA if str(out[col].dtype) == "Int64" else np.nan
    for col in value_columns:
        if pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].astype(float)
            out.loc[mask, col] = np.nan
        else:
            out[col] = out[col].astype(object)
            out.loc[mask, col] = None
    return out


# ------------------------------------------------------------------------------------------------
# checking tables and folders
# ------------------------------------------------------------------------------------------------
def _normalize_header(name) -> str:
    s = re.sub(r"\s+", " ", str(name)).strip().casefold()
    return s.strip(" :")


_COUNT_NAMES_NORMALIZED = sorted(
    {_normalize_header(n) for n in COUNT_COLUMN_NAMES}
    | {_normalize_header(v) for d in COUNT_COLUMN_LABELS.values() for v in d.values()}
    | set(_EXTRA_COUNT_NAMES),
    key=len, reverse=True,
)
_PERIOD = r"\d{4}(?:\s*[-–]\s*\d{2,4})?"
_COUNT_NAME_RE = re.compile(
    r"^(?:(?:{n})(?:[ ,:_.-]+{p})?|{p}[ ,:_.-]+(?:{n}))$".format(
        n="|".join(re.escape(n) for n in _COUNT_NAMES_NORMALIZED), p=_PERIOD)
)


def is_count_column(name) -> bool:
    """True if a column heading names a count of persons/events (e.g. ``persons``, ``Antal personer 2014``)."""
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return False
    return bool(_COUNT_NAME_RE.match(_normalize_header(name)))


def check_table(df: pd.DataFrame, *, count_columns: Sequence[str] | None = None,
                min_cell: int = MIN_CELL_DEFAULT, keys: Sequence[str] | None = None,
                group_totals: Mapping[str, object] | None = None) -> pd.DataFrame:
    """Violations of the disclosure rules in a long table: columns ``row, column, value, rule``.

    ``rule`` is ``small_cell`` (a count ``0 < n < min_cell`` is shown) or, when ``group_totals`` is
    given, ``recoverable`` (a hidden count can be computed exactly from the shown cells and totals).
    Count columns default to those recognised by :func:`is_count_column`.
    """
    m = validate_min_cell(min_cell)
    if count_columns is None:
        count_columns = [c for c in df.columns if is_count_column(c)]
    rows = []
    for col in count_columns:
        vals = pd.to_numeric(df[col], errors="coerce")
        small = flag_small_cells(vals.rename(col), min_cell=m)
        for idx in df.index[small]:
            rows.append({"row": idx, "column": col, "value": vals[idx], "rule": "small_cell"})
    if group_totals and count_columns:
        count_columns, _, keys = _default_columns(df, count_columns, None, keys)
        for col in count_columns:
            hidden = pd.to_numeric(df[col], errors="coerce").isna()
            det = determined_cells(df, hidden, keys=keys, group_totals=group_totals)
            for idx in df.index[det]:
                rows.append({"row": idx, "column": col, "value": np.nan, "rule": "recoverable"})
    return pd.DataFrame(rows, columns=["row", "column", "value", "rule"])


def _parse_number(cell) -> float | None:
    """A published number from a cell (Danish or English formatting); None if the cell is not a number."""
    if cell is None or isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float, np.integer, np.floating)):
        return None if np.isnan(float(cell)) else float(cell)
    s = str(cell).replace("\u00a0", " ").replace("\u2212", "-").strip()
    if not s:
        return None
    if re.fullmatch(r"-?\d+", s):
        return float(s)
    if re.fullmatch(r"-?\d{1,3}(?:([.,' ])\d{3})(?:\1\d{3})*", s):  # 408.300 / 408,300 / 1 234
        return float(re.sub(r"[.,' ]", "", s))
    if re.fullmatch(r"-?\d*[.,]\d+", s):
        return float(s.replace(",", "."))
    return None


def _is_hidden(cell) -> bool:
    return isinstance(cell, str) and (cell.strip() in _HIDDEN_STRINGS or bool(_HIDDEN_RE.match(cell.strip())))


def _scan_grid(grid: list[list], min_cell: int) -> list[dict]:
    """Find small counts in a grid of cells; a column is a count column below a count-named heading."""
    out = []
    labels = [r[0] for r in grid if r and isinstance(r[0], str) and r[0].strip()]
    wide = len(labels) == len(set(labels))  # long tables repeat labels: no total-row check there
    count_cols: dict[int, str] = {}
    section: dict[int, list] = {}  # column -> [(row, cell)] since its heading, for the total-row check
    for i, row in enumerate(grid):
        headings = {j: c for j, c in enumerate(row) if isinstance(c, str) and is_count_column(c)}
        if headings:
            for j, c in enumerate(row):
                if j in headings:
                    count_cols[j] = re.sub(r"\s+", " ", str(c)).strip()
                    section[j] = []
                elif isinstance(c, str) and c.strip() and _parse_number(c) is None and j in count_cols:
                    del count_cols[j]
            continue
        first = row[0] if row else None
        is_total_row = wide and isinstance(first, str) and _normalize_header(first) in _TOTAL_ROW_LABELS
        for j, cell in enumerate(row):
            if j not in count_cols:
                continue
            v = _parse_number(cell)
            if v is not None and 0 < v < min_cell:
                out.append({"row": i + 1, "column": count_cols[j], "value": v, "rule": "small_cell"})
            if is_total_row:
                members = section.get(j, [])
                n_hidden = sum(_is_hidden(c) for _, c in members)
                if v is not None and n_hidden == 1:
                    r = next(r for r, c in members if _is_hidden(c))
                    out.append({"row": r + 1, "column": count_cols[j], "value": np.nan,
                                "rule": "recoverable_from_total"})
                section[j] = []
            else:
                section.setdefault(j, []).append((i, cell))
    return out


def _grid_csv(path: Path) -> list[list]:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if path.suffix.lower() == ".tsv":
        delim = "\t"
    else:
        try:
            delim = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
        except csv.Error:
            delim = ","
    return [list(r) for r in csv.reader(text.splitlines(), delimiter=delim)]


def _grids_xlsx(path: Path) -> list[tuple[str, list[list]]]:
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=False, data_only=True)
    out = []
    for ws in wb.worksheets:
        grid = [list(r) for r in ws.iter_rows(values_only=True)]
        for rng in ws.merged_cells.ranges:  # spread a merged heading over its columns
            v = ws.cell(rng.min_row, rng.min_col).value
            for r in range(rng.min_row, rng.max_row + 1):
                for c in range(rng.min_col, rng.max_col + 1):
                    if r - 1 < len(grid) and c - 1 < len(grid[r - 1]):
                        grid[r - 1][c - 1] = v
        out.append((ws.title, grid))
    return out


def _grids_docx(path: Path) -> list[list[list]]:
    import docx

    doc = docx.Document(str(path))
    grids = []
    for table in doc.tables:
        grids.append([[cell.text for cell in row.cells] for row in table.rows])  # merged cells repeat
    return grids


class _HTMLTables(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list]] = []
        self._stack: list[list[list]] = []
        self._cell: list[str] | None = None
        self._span = 1
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "table":
            self._stack.append([])
        elif tag == "tr" and self._stack:
            self._stack[-1].append([])
        elif tag in ("td", "th") and self._stack:
            self._cell = []
            span = dict(attrs).get("colspan") or "1"
            self._span = int(span) if str(span).isdigit() else 1

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("td", "th") and self._cell is not None and self._stack:
            if not self._stack[-1]:
                self._stack[-1].append([])
            text = re.sub(r"\s+", " ", "".join(self._cell)).strip()
            self._stack[-1][-1].extend([text] * self._span)
            self._cell = None
        elif tag == "table" and self._stack:
            self.tables.append(self._stack.pop())

    def handle_data(self, data):
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def _grids_html(path: Path) -> list[list[list]]:
    p = _HTMLTables()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return p.tables


def _strip_latex(s: str) -> str:
    s = re.sub(r"\\multicolumn\{(\d+)\}\{[^}]*\}\{(.*)\}", lambda m: "\x00".join([m.group(2)] * int(m.group(1))), s)
    s = re.sub(r"\\(?:toprule|midrule|bottomrule|hline|cline\{[^}]*\}|addlinespace(?:\[[^\]]*\])?)", "", s)
    s = re.sub(r"\\[a-zA-Z]+\*?(?:\[[^\]]*\])?", "", s)
    s = s.replace("{", "").replace("}", "").replace("\\%", "%").replace("\\&", "&").replace("~", " ")
    return s.strip()


def _grids_tex(path: Path) -> list[list[list]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    grids = []
    # tables.py writes long tables as longtable (header repeated on every page): scan those too
    for _env, body in re.findall(r"\\begin\{(tabular\*?|longtable)\}(.*?)\\end\{\1\}", text, flags=re.S):
        body = re.sub(r"^\{[^\n]*\}", "", body.lstrip())  # column spec line
        grid = []
        for line in re.split(r"\\\\(?:\[[^\]]*\])?", body):
            line = line.strip()
            if not line:
                continue
            cells = [c for part in re.split(r"(?<!\\)&", line) for c in _strip_latex(part).split("\x00")]
            if any(cells):
                grid.append(cells)
        grids.append(grid)
    return grids


_TOKEN_RE = re.compile(r"\S+(?: \S+)*")  # pandas' text tables separate columns by two or more spaces


def _grids_text(text: str) -> list[list[list]]:
    """Tables printed as text (pandas ``to_string``/repr in a notebook's ``text/plain`` or stream output).

    Columns are right-aligned, so a value belongs to the heading that ends where it ends. Every line
    whose words are not numbers starts a new table (the header); the other lines are its rows.
    """
    grids: list[list[list]] = []
    ends: list[int] = []
    for line in text.splitlines():
        tokens = [(m.group(0), m.end()) for m in _TOKEN_RE.finditer(line)]
        if not tokens:
            continue
        numeric = [_parse_number(t) is not None or _is_hidden(t) for t, _ in tokens]
        if len(tokens) >= 2 and not any(numeric[1:]):
            ends = [e for _, e in tokens]
            grids.append([[t for t, _ in tokens]])
            continue
        if not grids:
            grids.append([])
        row = [None] * len(ends)
        for t, e in tokens:
            if e in ends:
                row[ends.index(e)] = t
        grids[-1].append(row)
    return grids


def _grids_ipynb(path: Path) -> list[list[list]]:
    """Tables in a notebook's outputs: HTML tables (``text/html``) and printed tables (``text/plain``,
    streams). Source code is not scanned; images cannot be."""
    import json

    nb = json.loads(path.read_text(encoding="utf-8"))
    grids = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            data = output.get("data", {}) or {}
            html_text = data.get("text/html")
            if html_text:
                p = _HTMLTables()
                p.feed("".join(html_text) if isinstance(html_text, list) else str(html_text))
                grids.extend(p.tables)
            for text in (data.get("text/plain"), output.get("text")):
                if text and not (html_text and text is data.get("text/plain")):
                    grids.extend(_grids_text("".join(text) if isinstance(text, list) else str(text)))
    return grids


def _file_grids(path: Path) -> list[tuple[str, list[list]]]:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return [("", _grid_csv(path))]
    if suffix == ".xlsx":
        return [(f"#{name}", g) for name, g in _grids_xlsx(path)]
    if suffix == ".ipynb":
        grids = _grids_ipynb(path)
        return [(f"#output{i + 1}", g) for i, g in enumerate(grids)]
        return [(f"#{name}", g) for name, g in _grids_xlsx(path)]
    if suffix in (".html", ".htm"):
        grids = _grids_html(path)
    elif suffix == ".docx":
        grids = _grids_docx(path)
    elif suffix == ".tex":
        grids = _grids_tex(path)
    else:
        return []
    return [(f"#table{i + 1}" if len(grids) > 1 else "", g) for i, g in enumerate(grids)]


def check_directory(path: str | Path, min_cell: int = MIN_CELL_DEFAULT, recursive: bool = True) -> pd.DataFrame:
    """Scan an output folder for published small counts; a DataFrame ``file, row, column, value, rule``.

    Reads CSV/TSV, XLSX (every sheet), HTML, DOCX, LaTeX tables and the outputs of executed notebooks
    (``.ipynb``: HTML tables and printed tables) (tables as written by
    :mod:`lumbarstats.tables`). A column is a count column below a heading recognised by
    :func:`is_count_column` (``events``, ``persons``, ``Antal personer``, ``Number of persons 2014``, …);
    ``population`` is a denominator and is not checked. Numbers in Danish (``1.234``) and English
    (``1,234``) formatting are read. Rules: ``small_cell`` (a count ``0 < n < min_cell`` is shown) and
    ``recoverable_from_total`` (a column holds exactly one hidden cell above a published total row such
    as ``Landsplan``/``I alt``). Suppressed cells (``–``, ``<5``, ``..``) are not violations. ``row`` is
    the 1-based row of the cell in the file's table (CSV line, sheet row, table row); ``file`` is
    relative to ``path`` and names the sheet/table after ``#``. An empty DataFrame means no violation.
    """
    m = validate_min_cell(min_cell)
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no such file or folder: {root}")
    if root.is_file():
        files, base = [root], root.parent
    else:
        pattern = "**/*" if recursive else "*"
        files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in _SCANNED_SUFFIXES
                       and not p.name.startswith(("~$", ".~", ".")))
        base = root
    rows = []
    for f in files:
        try:
            grids = _file_grids(f)
        except Exception as exc:  # an unreadable file must not pass silently
            rows.append({"file": str(f.relative_to(base)), "row": 0, "column": "", "value": np.nan,
                         "rule": f"unreadable: {type(exc).__name__}: {exc}"})
            continue
        for suffix, grid in grids:
            for v in _scan_grid(grid, m):
                rows.append({"file": str(f.relative_to(base)) + suffix, **v})
    return pd.DataFrame(rows, columns=["file", "row", "column", "value", "rule"])


@dataclass(frozen=True)
class Policy:
    """How published counts are protected, chosen by configuration and passed down (no global).

    ``kind="suppress"`` (default): cell suppression, primary and secondary (:func:`suppress`).
    ``kind="round"``: counts from fewer than ``min_cell`` persons are redacted (with every value of the
    cell), the other counts are rounded to the nearest multiple of ``base`` (as OpenSAFELY publishes:
    redact small counts, round the rest to 5), and values that are exact functions of a cell's counts
    (shares, percentages, crude rates: :data:`DERIVED_FROM_COUNTS`) are hidden, since they would give the
    unrounded count back. Rounding hides the exact value of every cell, so differences of published
    cells give only an interval and no secondary suppression is needed.
    """

    kind: str = "suppress"
    min_cell: int = MIN_CELL_DEFAULT
    base: int = 5

    def __post_init__(self):
        if self.kind not in ("suppress", "round"):
            raise ValueError(f"disclosure policy must be 'suppress' or 'round', got {self.kind!r}")
        validate_min_cell(self.min_cell)
        if isinstance(self.base, bool) or not float(self.base).is_integer() or int(self.base) < 2:
            raise ValueError(f"rounding base must be a whole number >= 2, got {self.base!r}")


DERIVED_FROM_COUNTS = ("share_pct", "share_within_modality_pct", "crude_rate", "pct", "percent", "share")
"""Value columns that are exact functions of the cell's counts (hidden under the rounding policy)."""


def as_policy(policy: Policy | str | Mapping | None = None, *, min_cell: int | None = None) -> Policy:
    """A :class:`Policy` from a Policy, a kind (``"suppress"``/``"round"``), a mapping (configuration), or
    None (suppression); ``min_cell`` overrides the policy's threshold when given."""
    if policy is None:
        policy = Policy()
    elif isinstance(policy, str):
        policy = Policy(kind=policy)
    elif isinstance(policy, Mapping):
        unknown = set(policy) - {"kind", "min_cell", "base"}
        if unknown:
            raise ValueError(f"unknown disclosure policy settings {sorted(unknown)}; use kind, min_cell, base")
        policy = Policy(**policy)
    elif not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, 'suppress', 'round' or a mapping, got {type(policy).__name__}")
    if min_cell is not None and int(min_cell) != policy.min_cell:
        policy = Policy(kind=policy.kind, min_cell=validate_min_cell(min_cell), base=policy.base)
    return policy


def round_counts(df: pd.DataFrame, *, count_columns: Sequence[str], value_columns: Sequence[str] | None = None,
                 rule_column: str | None = None, min_cell: int = MIN_CELL_DEFAULT, base: int = 5,
                 marker: str = SUPPRESSED_MARKER) -> pd.DataFrame:
    """The rounding policy (see :class:`Policy`): redact small cells, round the other counts to ``base``."""
    m = validate_min_cell(min_cell)
    count_columns, value_columns, _ = _default_columns(df, count_columns, value_columns, None)
    rule_column = rule_column or next((c for c in ("persons", "events") if c in count_columns), count_columns[0])
    counts, upstream = _rule_counts(df, rule_column, "suppressed")
    small = flag_small_cells(pd.Series(counts, index=df.index, name=rule_column), min_cell=m) | upstream
    out = df.astype(object).copy()
    for col in count_columns:
        values = pd.to_numeric(df[col], errors="coerce")
        rounded = (np.floor(values / base + 0.5) * base).astype("Int64")
        out[col] = rounded.astype(object).where(values.notna(), marker)
    derived = [c for c in value_columns if str(c).casefold() in DERIVED_FROM_COUNTS]
    for col in derived:
        out[col] = marker
    for col in (*count_columns, *value_columns):
        out.loc[small, col] = marker
    return out


def protect(df: pd.DataFrame, *, min_cell: int = MIN_CELL_DEFAULT, count_columns: Sequence[str] | None = None,
            value_columns: Sequence[str] | None = None, keys: Sequence[str] | None = None,
            group_totals: Mapping[str, object] | None = None, rule_column: str | None = None,
            missing_counts: str = "error", extra_relations=None, policy: Policy | str | Mapping | None = None,
            unpublished=None) -> pd.DataFrame:
    """The table as it may be exported: small cells (and the cells that would reveal them) replaced by the
    marker. A table without any count column describes no persons cell by cell (model coefficients,
    rate ratios) and is returned unchanged. Count columns are recognised as the checker recognises them
    (:func:`is_count_column`: ``persons``, ``events``, ``Antal personer`` …). ``policy``: suppression
    (default) or rounding (:class:`Policy`). A ``suppress`` column (which cells are below the threshold)
    is dropped: the published table must not tell primary from secondary suppression. ``unpublished``
    rows (see :func:`suppress`) take part in the protection and are dropped from the result."""
    policy = as_policy(policy, min_cell=min_cell)
    df = df.drop(columns=[c for c in ("suppress",) if c in df.columns])
    detected = [c for c in df.columns if is_count_column(c)]
    if count_columns is None and not detected:
        return df
    count_columns = list(count_columns) if count_columns is not None else detected
    drop = (pd.Series(False, index=df.index) if unpublished is None
            else pd.Series(unpublished, index=df.index).fillna(False).astype(bool))
    if policy.kind == "round":
        return round_counts(df[~drop], count_columns=count_columns, value_columns=value_columns,
                            rule_column=rule_column, min_cell=policy.min_cell, base=policy.base)
    res = suppress(df, count_columns=count_columns, value_columns=value_columns, min_cell=policy.min_cell,
                   group_totals=group_totals, keys=keys, rule_column=rule_column, missing_counts=missing_counts,
                   extra_relations=extra_relations, unpublished=drop if drop.any() else None)
    out = res.marked() if res.n_suppressed else df
    return out[~drop.to_numpy()]


def write_protected_csv(df: pd.DataFrame, path, *, min_cell: int = MIN_CELL_DEFAULT, **kwargs) -> Path:
    """Write a result table for export with disclosure control applied (see :func:`protect`), atomically.

    This is how every table that leaves the toolkit as a file is written, so that ``lumbarstats
    check-disclosure`` passes on any output folder. Keyword arguments go to :func:`protect`.
    """
    from lumbarstats import io as _io

    return _io.write_csv(protect(df, min_cell=min_cell, **kwargs), path)
