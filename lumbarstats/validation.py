"""The data dictionary's validation rules, checked as Ibis queries — one rule engine for every input.

The rules are data in ``data_dictionary/tables.yaml`` (dtype, required, nullable, min/max,
within_study_years, adult, codelist, primary_key, cross_rules); :func:`rules_for` turns them into
boolean "row breaks the rule" expressions and :func:`check_table` evaluates all of a table's rules in
one scan, then fetches up to five offending rows of the first rule broken. The same expressions check a
Parquet register (:class:`lumbarstats.register.Register` on DuckDB or Spark; row numbers from DuckDB's
``file_row_number`` or Spark's ``_metadata.row_index``) and a DataFrame read from CSV/SAS
(:func:`lumbarstats.io.validate`, on DuckDB), so they can never disagree.

Rules are checked in a fixed order — presence, type (text in a numeric column, fractions in an integer
column, non-ISO dates), missing values, ranges, code lists, cross-column rules, primary key — and the
first one broken is reported: a later rule never reports a row that an earlier rule already explains.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandas as pd

from lumbarstats import dictionary as _dictionary

__all__ = ["Rule", "rules_for", "check_table", "ROW", "MAX_ROWS_SHOWN"]

ROW = "row"              # 1-based row number in the file (added by the caller)
MAX_ROWS_SHOWN = 5
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


@dataclass(frozen=True)
class Rule:
    """One rule: ``bad`` is true on the rows that break it (``None``: known to hold on every row)."""

    column: str
    rule: str
    bad: ir.BooleanValue | None
    kind: str = "row"   # "code": decided from the column's distinct values (code lists, cross rules)


def _error(source, column, rule, rows=None, n_failed=None, hint=None):
    from lumbarstats.io import RegisterValidationError

    return RegisterValidationError(source, column, rule, rows=rows, n_failed=n_failed, hint=hint)


def _allowed_codes(dd, c: dict) -> list:
    if "codelist_column" in c:
        allowed = dd.codelist(c["codelist"])[c["codelist_column"]].tolist()
    else:
        allowed = dd.codes(c["codelist"])
    return [int(a) for a in allowed] if c["dtype"] == "int" else [str(a) for a in allowed]


def _shown(values: list) -> str:
    return ", ".join(map(str, values[:8])) + (", …" if len(values) > 8 else "")


def typed_value(t: ir.Table, name: str, dtype: str) -> ir.Value:
    """The column as its canonical type (text converted with TRY_CAST: NULL where it does not convert)."""
    col = t[name]
    if dtype in ("int", "float"):
        if col.type().is_numeric():
            return col
        if col.type().is_boolean():
            return col.cast("int64")
        return col.cast("string").strip().try_cast("float64")
    if dtype == "date":
        if col.type().is_date():
            return col
        if col.type().is_timestamp():
            return col.date()
        return col.cast("string").strip().try_cast("date")
    return col if col.type().is_string() else col.cast("string")


def rules_for(t: ir.Table, table: str, dd=None, *, years: tuple[int, int] | None = None,
              distinct: dict | None = None) -> list[Rule]:
    """The rules of a canonical table as expressions over ``t`` (columns as in the file).

    ``distinct``: the code-list columns' distinct values (:func:`_distinct_exprs`); with it the
    code-list and cross-column rules compare values once instead of on every row."""
    dd = dd or _dictionary.load()
    spec = dd.table(table)
    first, last = years or dd.study_years
    adult = int(dd.spec["adult_min_age"])
    type_rules, null_rules, value_rules = [], [], []
    for name, c in spec["columns"].items():
        if name not in t.columns:
            continue
        col, dtype = t[name], c["dtype"]
        value = typed_value(t, name, dtype)
        present = col.notnull()
        if dtype in ("int", "float") and not col.type().is_numeric() and not col.type().is_boolean():
            type_rules.append(Rule(name, f"value is a number ({dtype}); found text", present & value.isnull()))
        if dtype == "int" and not col.type().is_integer():
            type_rules.append(Rule(name, "value is a whole number (int); found a fraction — never truncated",
                                   value.notnull() & (value != value.floor())))
        if dtype == "date" and not (col.type().is_date() or col.type().is_timestamp()):
            text = col.cast("string").strip()
            type_rules.append(Rule(name, "value is an ISO date (YYYY-MM-DD); read other formats with an explicit "
                                         "date_format", present & (~text.re_search(_ISO_DATE) | value.isnull())))
        if not c.get("nullable", False):
            null_rules.append(Rule(name, "value is not missing (the column is not nullable)", col.isnull()))
        if "min" in c and "max" in c:
            value_rules.append(Rule(name, f"value between {c['min']} and {c['max']}",
                                    (value < c["min"]) | (value > c["max"])))
        elif "min" in c:
            value_rules.append(Rule(name, f"value >= {c['min']}", value < c["min"]))
        if c.get("within_study_years"):
            yr = value.year() if dtype == "date" else value
            value_rules.append(Rule(name, f"{'date' if dtype == 'date' else 'year'} within the study years "
                                          f"{first}–{last}", (yr < first) | (yr > last)))
        if c.get("adult"):
            value_rules.append(Rule(name, f"value >= adult_min_age ({adult}): the population holds adults only",
                                    value < adult))
        if "codelist" in c:
            allowed = _allowed_codes(dd, c)
            # codes are few: compare the column's distinct values in Python (a long IN list on every
            # row is slow in DuckDB) and flag the rows holding a value outside the list
            found = distinct[name] if distinct is not None else None
            bad_values = None if found is None else [v for v in found if v is not None and v not in allowed]
            v = value.cast("int64") if dtype == "int" else value
            bad = (value.notnull() & ~v.isin(allowed)) if bad_values is None else \
                (v.isin(bad_values) if bad_values else None)
            value_rules.append(Rule(name, f"code in code list {c['codelist']} ({_shown(allowed)})", bad, "code"))
    value_rules += _cross_rules(t, spec, dd, distinct)
    return type_rules + null_rules + value_rules


def _distinct_exprs(t: ir.Table, table: str, dd) -> dict[str, ir.Value]:
    """Distinct values of the code-list columns, as the canonical type; key columns of cross rules are
    read together with their column."""
    spec = dd.table(table)
    exprs = {}
    for name, c in spec["columns"].items():
        if "codelist" in c and name in t.columns:
            v = typed_value(t, name, c["dtype"])
            exprs[name] = (v.cast("int64") if c["dtype"] == "int" else v).collect(distinct=True)
    for cr in spec.get("cross_rules") or []:
        cols = [cr["column"], cr["lookup"]["key_column"]]
        if all(c in t.columns for c in cols):
            pair = ibis.struct({c: typed_value(t, c, "str") for c in cols})
            exprs["__pair__" + "|".join(cols)] = pair.collect(distinct=True)
    return exprs


def _as_values(v) -> list:
    vals = [] if v is None else list(v)
    return [tuple(x.values()) if isinstance(x, dict) else x for x in vals]


def _cross_rules(t: ir.Table, spec: dict, dd, distinct: dict | None) -> list[Rule]:
    out = []
    for cr in spec.get("cross_rules") or []:
        lk = cr["lookup"]
        if cr["column"] not in t.columns or lk["key_column"] not in t.columns:
            continue
        cl = dd.codelist(lk["codelist"])
        vmap = cr.get("value_map") or {}
        mapping = {str(k): vmap.get(v, v) for k, v in zip(cl[lk["key"]], cl[lk["value"]], strict=True)}
        key = typed_value(t, lk["key_column"], "str")
        value = typed_value(t, cr["column"], "str")
        pairs = (distinct or {}).get("__pair__" + "|".join([cr["column"], lk["key_column"]]))
        if pairs is not None:
            # codes outside the code list are reported by the code-list rule, not here
            bad_pairs = [(v, k) for v, k in pairs if k in mapping and v is not None and v != mapping[k]]
            bad = None
            for v, k in bad_pairs:
                this = (value == v) & (key == k)
                bad = this if bad is None else bad | this
        else:
            expected = key.substitute(mapping, else_=ibis.null("string"))
            bad = key.isin(list(mapping)) & value.notnull() & (expected.isnull() | (value != expected))
        out.append(Rule(cr["column"], cr["rule"], bad, "code"))
    return out


def _missing_columns(t: ir.Table, table: str, dd, source) -> None:
    spec = dd.table(table)
    required = [c for c, s in spec["columns"].items() if s.get("required", True)]
    missing = [c for c in required if c not in t.columns]
    if missing:
        shown = [c for c in t.columns if c not in (ROW, "filename")]
        raise _error(source, missing[0], "required column is missing",
                     hint=f"the file has columns {shown}; {table} needs {required}")


def _rows(t: ir.Table, bad: ir.BooleanValue, table: str, dd) -> pd.DataFrame:
    cols = [c for c in dd.columns(table) if c in t.columns] + [c for c in ("filename",) if c in t.columns]
    rows = t.filter(bad).order_by(ROW).select(ROW, *cols).limit(MAX_ROWS_SHOWN).to_pandas()
    return rows.set_index(ROW)


def check_table(t: ir.Table, table: str, *, source, dd=None, years: tuple[int, int] | None = None,
                numbered: ir.Table | None = None) -> int:
    """Check every rule of ``table`` on ``t``; return the number of rows.

    One scan counts the rows breaking each row rule and collects the code columns' distinct values (code
    lists are then checked in Python); the primary key is a second query. ``numbered`` is the same table
    with a 1-based ``row`` column (row number in the file; default ``t`` itself), read only to show the
    offending rows — scanning without row numbers is faster. Raises
    :class:`lumbarstats.io.RegisterValidationError` for the first rule broken (file, column, rule, number
    of rows, up to five rows with their row numbers)."""
    dd = dd or _dictionary.load()
    numbered = t if numbered is None else numbered
    _missing_columns(t, table, dd, source)
    row_rules = [r for r in rules_for(t, table, dd, years=years) if r.kind == "row"]
    sums = {f"__rule{i}": r.bad.fill_null(False).cast("int64").sum() for i, r in enumerate(row_rules)}
    found = t.aggregate(n_rows=t.count(), **sums, **_distinct_exprs(t, table, dd)).to_pandas().iloc[0]
    n_rows = int(found["n_rows"])
    if n_rows == 0:
        raise _error(source, None, "table has no data rows")
    distinct = {k: _as_values(v) for k, v in found.items() if k != "n_rows" and not k.startswith("__rule")}
    rules = rules_for(t, table, dd, years=years, distinct=distinct)
    i_row = 0
    for i, r in enumerate(rules):
        if r.kind == "row":
            n_bad = int(found[f"__rule{i_row}"] or 0)
            i_row += 1
        else:  # decided from the distinct values: count the rows only when a value is outside the list
            n_bad = 0 if r.bad is None else int(t.filter(r.bad).count().to_pandas())
        if n_bad:
            again = rules_for(numbered, table, dd, years=years, distinct=distinct)[i]
            raise _error(source, r.column, r.rule, rows=_rows(numbered, again.bad.fill_null(False), table, dd),
                         n_failed=n_bad)
    _check_primary_key(t, numbered, table, dd, source)
    return n_rows


def _check_primary_key(t: ir.Table, numbered: ir.Table, table: str, dd, source) -> None:
    key = dd.table(table).get("primary_key")
    if not key:
        return
    if not _year_key_has_duplicates(t, key, table, dd):
        return
    dup = t.group_by(key).aggregate(_n=t.count()).filter(lambda d: d._n > 1)
    n_keys = int(dup.count().to_pandas())
    if not n_keys:
        return
    cols = [c for c in dd.columns(table) if c in numbered.columns] + \
        [c for c in ("filename",) if c in numbered.columns]
    dup_rows = numbered.semi_join(dup, key)
    rows = dup_rows.order_by(ROW).select(ROW, *cols).limit(MAX_ROWS_SHOWN).to_pandas().set_index(ROW)
    n_rows = int(dup_rows.count().to_pandas())
    raise _error(source, ", ".join(key), f"no duplicate rows for {key} (one row per {' and '.join(key)}; "
                 f"{n_keys:,} key(s) repeated)", rows=rows, n_failed=n_rows)


def _has_operation(t: ir.Table, op) -> bool:
    try:
        return bool(t._find_backend(use_default=True).has_operation(op))
    except Exception:  # noqa: BLE001 - unknown: take the exact path
        return False


def _year_key_has_duplicates(t: ir.Table, key: list[str], table: str, dd) -> bool:
    """Fast screen for a key such as (person_id, year) whose year is already checked to lie within the
    study years: group by the other key columns only (far fewer groups) and compare the sum with the
    bitwise OR of 2**(year - first) — they differ exactly when a year repeats. Returns True when the key
    may have duplicates (then the exact group-by finds them), or when the screen does not apply (also on an
    engine without the bitwise-OR aggregate, e.g. Spark through Ibis 12: the exact group-by then decides)."""
    cols = dd.table(table)["columns"]
    years = [k for k in key if cols.get(k, {}).get("within_study_years") and cols[k]["dtype"] == "int"]
    first, last = dd.study_years
    if len(years) != 1 or last - first > 60 or not _has_operation(t, ops.BitOr):
        return True
    y = years[0]
    rest = [k for k in key if k != y]
    bit = ibis.literal(1, type="int64") << (typed_value(t, y, "int").cast("int64") - first)
    per = t.group_by(rest).aggregate(_sum=bit.sum(), _or=bit.bit_or()) if rest else \
        t.aggregate(_sum=bit.sum(), _or=bit.bit_or())
    return bool(int(per.filter(per._sum != per._or).count().to_pandas()))
