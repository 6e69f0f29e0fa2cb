"""Reading and validating register files; atomic writes.

Statistics Denmark delivers SAS files (SAS7BDAT, XPT); the toolkit also reads CSV and Parquet.
Every canonical table is validated against the data dictionary (``data_dictionary/tables.yaml``)
with pandera schemas built from it. Bad input raises one :class:`RegisterValidationError` that names
the file, the column, the rule and up to five offending rows — never a silent wrong number. Nothing
is written when input fails: writers go through :func:`atomic_path` (temporary name, then rename).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from lumbarstats import dictionary as _dictionary

__all__ = ["RegisterValidationError", "read_table", "validate", "load_register_table", "validate_register",
           "atomic_path", "write_parquet", "write_csv", "schema_for", "sql_literal"]

MAX_ROWS_SHOWN = 5


def sql_literal(value) -> str:
    """A SQL string literal for DuckDB: paths as POSIX (works on Windows too), quotes escaped, so that a
    folder such as ``O'Brien`` or ``C:\\data`` never breaks (or injects into) a query."""
    text = Path(value).as_posix() if isinstance(value, Path) else str(value)
    return "'" + text.replace("'", "''") + "'"


def _textlike(s: pd.Series) -> bool:
    """Object or string dtype (pandas 2 and 3)."""
    return pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)


class RegisterValidationError(ValueError):
    """Input that breaks a rule of the data dictionary.

    Attributes: ``file``, ``column``, ``rule``, ``rows`` (DataFrame with up to five offending rows,
    with their row numbers in the file, 1-based after the header), ``n_failed``.
    """

    def __init__(self, file, column, rule, rows: pd.DataFrame | None = None, n_failed: int | None = None,
                 hint: str | None = None):
        self.file, self.column, self.rule = str(file), column, rule
        self.rows = rows if rows is not None else pd.DataFrame()
        self.n_failed = n_failed
        msg = f"{self.file}: column {column!r} breaks rule: {rule}"
        if n_failed is not None:
            msg += f" ({n_failed:,} row(s))"
        if len(self.rows):
            msg += f"\nfirst offending rows (row = line number in the data, 1 = first data row):\n{self.rows.to_string()}"
        if hint:
            msg += f"\nhint: {hint}"
        super().__init__(msg)


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

def read_table(path, *, encoding: str = "utf-8", columns: list[str] | None = None) -> pd.DataFrame:
    """Read Parquet, CSV (``,`` or ``;``), SAS7BDAT or XPT into a DataFrame, with clear errors.

    CSV columns are read as text and converted during validation, so that text in a numeric column
    is reported with its rows instead of silently becoming NaN.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_file() and p.stat().st_size == 0:
        raise RegisterValidationError(p, None, "file is empty (0 bytes)")
    suffix = p.suffix.lower()
    try:
        if suffix == ".parquet" or p.is_dir():
            df = pd.read_parquet(p, columns=columns)
        elif suffix in (".csv", ".txt"):
            with open(p, encoding=encoding) as fh:
                head = fh.readline()
            sep = ";" if head.count(";") > head.count(",") else ","
            df = pd.read_csv(p, sep=sep, dtype=str, encoding=encoding, keep_default_na=False, na_values=[""],
                             usecols=columns)
        elif suffix in (".sas7bdat", ".xpt"):
            import pyreadstat

            reader = pyreadstat.read_sas7bdat if suffix == ".sas7bdat" else pyreadstat.read_xport
            kwargs = {"encoding": encoding} if suffix == ".sas7bdat" and encoding else {}
            df, _meta = reader(str(p), usecols=columns, **kwargs)
            df.columns = [c.lower() for c in df.columns]
        else:
            raise ValueError(f"{p}: unsupported file type {suffix!r}; use .parquet, .csv, .sas7bdat or .xpt")
    except UnicodeDecodeError as exc:
        line = _line_of_byte(p, exc.start)
        raise RegisterValidationError(
            p, None, f"file is not valid {encoding} text (byte {exc.start}, line {line}: {exc.reason})",
            hint="save the file as UTF-8, or pass encoding='latin-1' (SAS files from DST are often latin-1)") from None
    except pd.errors.EmptyDataError:
        raise RegisterValidationError(p, None, "file is empty (no header)") from None
    if len(df) == 0:
        raise RegisterValidationError(p, None, "file has a header but no data rows")
    return df


def _line_of_byte(path: Path, offset: int) -> int:
    with open(path, "rb") as fh:
        return fh.read(offset).count(b"\n") + 1


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------

_DTYPES = {"int": "int64", "float": "float64", "str": "str", "date": "datetime64[ns]"}


def schema_for(table: str, dd=None, *, years: tuple[int, int] | None = None) -> pa.DataFrameSchema:
    """A pandera schema for a canonical table, built from the data dictionary."""
    dd = dd or _dictionary.load()
    spec = dd.table(table)
    first, last = years or dd.study_years
    cols = {}
    for name, c in spec["columns"].items():
        checks = []
        if "min" in c and "max" in c:
            checks.append(pa.Check.in_range(c["min"], c["max"], error=f"value between {c['min']} and {c['max']}"))
        elif "min" in c:
            checks.append(pa.Check.ge(c["min"], error=f"value >= {c['min']}"))
        if "codelist" in c:
            allowed = dd.codes(c["codelist"]) if "codelist_column" not in c else \
                dd.codelist(c["codelist"])[c["codelist_column"]].tolist()
            if c["dtype"] == "int":
                allowed = [int(a) for a in allowed]
            checks.append(pa.Check.isin(allowed, error=f"code in code list {c['codelist']} "
                                                       f"({', '.join(map(str, allowed[:8]))}{', …' if len(allowed) > 8 else ''})"))
        if c.get("within_study_years"):
            checks.append(pa.Check.in_range(pd.Timestamp(first, 1, 1), pd.Timestamp(last, 12, 31, 23, 59, 59),
                                            error=f"date within the study years {first}–{last}"))
        cols[name] = pa.Column(_DTYPES[c["dtype"]], checks=checks, nullable=bool(c.get("nullable", False)),
                               required=bool(c.get("required", True)), coerce=True)
    unique = spec.get("primary_key")
    return pa.DataFrameSchema(cols, unique=unique, strict=False, name=table, report_duplicates="all")


def validate(df: pd.DataFrame, table: str, *, source: str = "<DataFrame>", dd=None,
             years: tuple[int, int] | None = None) -> pd.DataFrame:
    """Validate (and coerce) a canonical table; raise :class:`RegisterValidationError` on the first rule broken.

    Checked: required columns present; values convertible to the column's type (no text in a numeric
    column); ranges (age 0–120, …); codes in their code lists (regions 1081–1085, SKS procedure codes
    exact); dates within the study years; no duplicate primary keys (one row per person and year).
    """
    dd = dd or _dictionary.load()
    spec = dd.table(table)
    missing = [c for c, s in spec["columns"].items() if s.get("required", True) and c not in df.columns]
    if missing:
        raise RegisterValidationError(source, missing[0], "required column is missing",
                                      hint=f"the file has columns {list(df.columns)}; {table} needs "
                                           f"{[c for c, s in spec['columns'].items() if s.get('required', True)]}")
    df = df.copy()
    # string code columns: strip whitespace (exact matching otherwise; never prefixes)
    for name, c in spec["columns"].items():
        if name in df.columns and c["dtype"] == "str" and _textlike(df[name]):
            df[name] = df[name].str.strip()
        if name in df.columns and c["dtype"] == "date" and not pd.api.types.is_datetime64_any_dtype(df[name]):
            conv = pd.to_datetime(df[name], errors="coerce")
            bad = conv.isna() & df[name].notna()
            if bad.any():
                _raise_rows(source, df, name, "value is a date (YYYY-MM-DD)", bad.to_numpy())
            df[name] = conv
        if name in df.columns and c["dtype"] in ("int", "float") and _textlike(df[name]):
            conv = pd.to_numeric(df[name], errors="coerce")
            bad = conv.isna() & df[name].notna()
            if bad.any():
                _raise_rows(source, df, name, f"value is a number ({c['dtype']}); found text", bad.to_numpy())
            df[name] = conv
    schema = schema_for(table, dd, years=years)
    try:
        return schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
        first = fc.iloc[0]
        column = first["column"] if pd.notna(first["column"]) else None
        check = str(first["check"])
        sub = fc[(fc["column"] == first["column"]) & (fc["check"] == first["check"])] if column is not None \
            else fc[fc["check"] == first["check"]]
        idx = pd.to_numeric(sub["index"], errors="coerce").dropna().astype(int).unique()
        rule = check
        if "unique" in check or "duplicate" in check.lower():
            key = spec.get("primary_key")
            rule = f"no duplicate rows for {key} (one row per {' and '.join(key)})"
            column = ", ".join(key)
            dup = df.duplicated(subset=key, keep=False).to_numpy()
            _raise_rows(source, df, column, rule, dup)
        if "coerce_dtype" in check or "dtype" in check:
            rule = f"value of type {spec['columns'][column]['dtype']}"
        mask = np.zeros(len(df), bool)
        pos = df.index.get_indexer(idx)
        mask[pos[pos >= 0]] = True
        if not mask.any():
            raise RegisterValidationError(source, column, rule, n_failed=len(sub)) from None
        _raise_rows(source, df, column, rule, mask)


def _raise_rows(source, df: pd.DataFrame, column, rule: str, mask: np.ndarray):
    rows = df.loc[mask].head(MAX_ROWS_SHOWN).copy()
    # row numbers in the file (validate_register shifts the index of later batches)
    rows.index = np.asarray(df.index)[mask][:MAX_ROWS_SHOWN] + 1
    rows.index.name = "row"
    raise RegisterValidationError(source, column, rule, rows=rows, n_failed=int(mask.sum())) from None


def load_register_table(path, table: str, *, encoding: str = "utf-8", years=None) -> pd.DataFrame:
    """Read and validate one canonical table from a file (Parquet, CSV, SAS7BDAT, XPT)."""
    df = read_table(path, encoding=encoding)
    return validate(df, table, source=str(path), years=years)


def validate_register(data_dir, *, tables=("population", "examinations", "surgery", "exits"),
                      batch_rows: int = 4_000_000) -> dict[str, int]:
    """Validate every canonical Parquet file of a register directory in batches (any size).

    Duplicate person-years are checked with DuckDB over the whole file. Returns rows per table.
    """
    import duckdb
    import pyarrow.parquet as pq

    d = Path(data_dir)
    dd = _dictionary.load()
    counts = {}
    for table in tables:
        path = d / f"{table}.parquet"
        if not path.exists():
            if table in ("population", "examinations"):
                raise RegisterValidationError(path, None, "required table file is missing")
            continue
        pf = pq.ParquetFile(path)
        n = 0
        for batch in pf.iter_batches(batch_size=batch_rows):
            df = batch.to_pandas()
            df.index = df.index + n
            spec_key = dd.table(table).get("primary_key")
            schema_df = df
            # duplicates across batches are checked below; within-batch check happens in validate()
            validate(schema_df, table, source=str(path))
            n += len(df)
        key = dd.table(table).get("primary_key")
        if key:
            cols = ", ".join(key)
            dup = duckdb.sql(f"SELECT {cols}, count(*) AS n FROM read_parquet({sql_literal(path)}) "
                             f"GROUP BY {cols} HAVING count(*) > 1 LIMIT {MAX_ROWS_SHOWN}").df()
            if len(dup):
                raise RegisterValidationError(path, cols, f"no duplicate rows for {key}", rows=dup)
            del spec_key
        counts[table] = n
    return counts


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------

def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    A reader never sees a half-written file, and a failure leaves any earlier file untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or ".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give it the permissions a normally created file gets,
        # so that colleagues sharing a project folder can read the outputs
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_csv(df: pd.DataFrame, path, **kwargs) -> Path:
    """Write a CSV atomically (UTF-8, no index)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, encoding="utf-8", **kwargs)
    return Path(path)


def write_parquet(df: pd.DataFrame, path, **kwargs) -> Path:
    """Write a Parquet file atomically."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, **kwargs)
    return Path(path)
