"""Reading raw register files into DuckDB views with the layout's logical column names.

Parquet and CSV files are read by DuckDB directly (nothing is loaded into Python memory). SAS files
(``.sas7bdat``, ``.xpt``) are first converted to Parquet in chunks with ``pyreadstat.read_file_in_chunks``
into a staging folder, so files larger than memory work. Every logical column arrives as VARCHAR; the
SQL macros defined by :func:`install_macros` normalise codes, integers, person ids and dates.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from .layout import RegisterSpec

__all__ = ["install_macros", "register_view", "sql_literal", "SAS_CHUNK_ROWS"]

SAS_CHUNK_ROWS = 250_000


def sql_literal(value) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """SQL helpers: ``norm_code``, ``norm_int``, ``norm_person``, ``norm_date``, ``norm_key``."""
    con.execute("CREATE OR REPLACE MACRO norm_code(v) AS nullif(upper(trim(CAST(v AS VARCHAR))), '')")
    con.execute(
        "CREATE OR REPLACE MACRO norm_int(v) AS CASE WHEN TRY_CAST(trim(CAST(v AS VARCHAR)) AS DOUBLE) "
        "= floor(TRY_CAST(trim(CAST(v AS VARCHAR)) AS DOUBLE)) "
        "THEN CAST(TRY_CAST(trim(CAST(v AS VARCHAR)) AS DOUBLE) AS BIGINT) END"
    )
    con.execute(
        "CREATE OR REPLACE MACRO norm_person(v) AS CASE WHEN norm_int(v) IS NOT NULL "
        "THEN CAST(norm_int(v) AS VARCHAR) ELSE nullif(trim(CAST(v AS VARCHAR)), '') END"
    )
    con.execute(
        "CREATE OR REPLACE MACRO norm_date(v) AS COALESCE("
        "TRY_CAST(left(trim(CAST(v AS VARCHAR)), 10) AS DATE), "
        "CAST(TRY_STRPTIME(upper(trim(CAST(v AS VARCHAR))), '%d%b%Y') AS DATE), "
        "CAST(TRY_STRPTIME(trim(CAST(v AS VARCHAR)), '%Y%m%d') AS DATE))"
    )
    con.execute("CREATE OR REPLACE MACRO norm_key(v) AS CASE WHEN norm_int(v) IS NOT NULL "
                "THEN CAST(norm_int(v) AS VARCHAR) ELSE norm_code(v) END")


def _sas_to_parquet(path: Path, staging: Path) -> list[Path]:
    """Convert a SAS7BDAT/XPT file to Parquet parts (all columns as text) in chunks."""
    import pyreadstat

    reader = pyreadstat.read_sas7bdat if path.suffix.lower() == ".sas7bdat" else pyreadstat.read_xport
    target = staging / "sas" / f"{path.stem}_{abs(hash(str(path))) % 10**8}"
    target.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = []
    for i, (chunk, _meta) in enumerate(pyreadstat.read_file_in_chunks(reader, str(path), chunksize=SAS_CHUNK_ROWS)):
        out = pd.DataFrame(index=chunk.index)
        for col in chunk.columns:
            s = chunk[col]
            if pd.api.types.is_datetime64_any_dtype(s):
                txt = s.dt.strftime("%Y-%m-%d")
            elif s.dtype == object:
                txt = s.map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v))
                            else (v.isoformat()[:10] if hasattr(v, "isoformat") else str(v)))
            else:
                txt = s.map(lambda v: None if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
            out[col] = txt.astype("string")
        p = target / f"part{i:05d}.parquet"
        out.to_parquet(p, index=False)
        parts.append(p)
    if not parts:  # empty file: one empty part keeps the columns
        df, _ = reader(str(path), metadataonly=True)
        p = target / "part00000.parquet"
        df.astype("string").to_parquet(p, index=False)
        parts.append(p)
    return parts


def _source_sql(path: Path, staging: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return f"read_parquet({sql_literal(path)})"
    if suffix == ".csv":
        return f"read_csv({sql_literal(path)}, header=true, all_varchar=true)"
    if suffix in (".sas7bdat", ".xpt"):
        parts = _sas_to_parquet(path, staging)
        return "read_parquet([" + ", ".join(sql_literal(p) for p in parts) + "], union_by_name=true)"
    raise ValueError(f"unsupported raw file type {path} (use Parquet, CSV, SAS7BDAT or XPT)")


def register_view(con: duckdb.DuckDBPyConnection, reg: RegisterSpec, raw_dir: Path, staging: Path) -> list[Path]:
    """Create view ``raw_<register>`` (logical columns as VARCHAR, ``_file_year``, ``_source``).

    Returns the files read; an empty list if none matched (then the view is not created).
    Raises ``FileNotFoundError`` for a required register without files and ``ValueError`` when a file
    lacks a required column (naming the register, the file, the column and the columns present).
    """
    files = reg.files(raw_dir)
    if not files:
        if reg.required:
            raise FileNotFoundError(
                f"register {reg.name!r}: no file matches {reg.get('files')} under {raw_dir}; "
                f"set registers.{reg.name}.files in the ingest config")
        return []
    selects = []
    for path, year in files:
        src = _source_sql(path, staging)
        present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
        lower = {c.lower(): c for c in present}
        exprs = []
        for logical, raw_name in reg.columns.items():
            actual = lower.get(str(raw_name).lower()) if raw_name else None
            if actual is None:
                if logical in reg.optional:
                    exprs.append(f"CAST(NULL AS VARCHAR) AS {_ident(logical)}")
                    continue
                raise ValueError(
                    f"register {reg.name!r}, file {path}: column {raw_name!r} (for {logical!r}) not found; "
                    f"columns present: {present}. Set registers.{reg.name}.columns.{logical} in the ingest config.")
            exprs.append(f"CAST({_ident(actual)} AS VARCHAR) AS {_ident(logical)}")
        yexpr = "CAST(NULL AS INTEGER)" if year is None else str(int(year))
        exprs.append(f"{yexpr} AS _file_year")
        exprs.append(f"{sql_literal(path.name)} AS _source")
        selects.append(f"SELECT {', '.join(exprs)} FROM {src}")
    con.execute(f"CREATE OR REPLACE VIEW raw_{reg.name} AS " + "\nUNION ALL\n".join(selects))
    return [p for p, _ in files]
