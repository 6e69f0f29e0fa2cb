"""Reading and validating register files; atomic writes.

Statistics Denmark delivers SAS files (SAS7BDAT, XPT); the toolkit also reads CSV and Parquet.
Every canonical table is validated against the data dictionary (``data_dictionary/tables.yaml``) by one
rule engine, :mod:`lumbarstats.validation`, for DataFrames read here and for Parquet registers
(:class:`lumbarstats.register.Register`) alike. Bad input raises one :class:`RegisterValidationError` that
names the file, the column, the rule and up to five offending rows — never a silent wrong number. Dates
are ISO (``YYYY-MM-DD``) or parsed with an explicit ``date_format``, never guessed. Nothing is written
when input fails: writers go through :func:`atomic_path` (temporary name, then rename).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lumbarstats import dictionary as _dictionary

__all__ = ["RegisterValidationError", "read_table", "validate", "load_register_table", "validate_register",
           "atomic_path", "write_parquet", "write_csv", "sql_literal"]

MAX_ROWS_SHOWN = 5


def sql_literal(value) -> str:
    """A SQL string literal for DuckDB (paths as POSIX, quotes escaped).

    Kept only for code that still assembles SQL text (``synth``'s summaries of its own files); analysis
    queries pass user values as Ibis expressions or bound parameters instead."""
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
    is reported with its rows instead of silently becoming NaN (and a date is never guessed).
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
# validation (the rules: lumbarstats.validation, shared with lumbarstats.register)
# --------------------------------------------------------------------------------------------

def _row_numbers(df: pd.DataFrame) -> np.ndarray:
    """1-based row numbers: the index + 1 for an integer index (callers that read in batches shift it)."""
    if pd.api.types.is_integer_dtype(df.index):
        return np.asarray(df.index, dtype=np.int64) + 1
    return np.arange(1, len(df) + 1, dtype=np.int64)


def _raise_rows(source, df: pd.DataFrame, column, rule: str, mask: np.ndarray):
    rows = df.loc[mask].head(MAX_ROWS_SHOWN).copy()
    rows.index = _row_numbers(df)[mask][:MAX_ROWS_SHOWN]
    rows.index.name = "row"
    raise RegisterValidationError(source, column, rule, rows=rows, n_failed=int(mask.sum())) from None


def _parse_dates(df: pd.DataFrame, name: str, date_format: str, source) -> pd.Series:
    """Dates in an explicit format (e.g. ``%d-%m-%Y``): a value that does not match it is an error."""
    s = df[name]
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    conv = pd.to_datetime(s.astype("string").str.strip(), format=date_format, errors="coerce")
    bad = (conv.isna() & s.notna()).to_numpy()
    if bad.any():
        _raise_rows(source, df, name, f"value is a date in the format {date_format!r}", bad)
    return conv


def _for_engine(df: pd.DataFrame) -> pd.DataFrame:
    """Columns as Arrow can carry them: text-like/mixed columns as strings (missing stays missing)."""
    out = pd.DataFrame(index=range(len(df)))
    for c in df.columns:
        s = df[c].reset_index(drop=True)
        if isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(s):
            s = s.astype("string")
        out[str(c)] = s
    out["row"] = _row_numbers(df)
    return out


def _coerce(df: pd.DataFrame, table: str, dd) -> pd.DataFrame:
    """Columns as the dictionary's types (after validation, so every conversion is known to succeed)."""
    for name, c in dd.table(table)["columns"].items():
        if name not in df.columns:
            continue
        s = df[name]
        if c["dtype"] == "int":
            df[name] = pd.to_numeric(s).astype("int64")
        elif c["dtype"] == "float":
            df[name] = pd.to_numeric(s).astype("float64")
        elif c["dtype"] == "date" and not pd.api.types.is_datetime64_any_dtype(s):
            df[name] = pd.to_datetime(s.astype("string").str.strip(), format="%Y-%m-%d")
        elif c["dtype"] == "str" and not _textlike(s):
            df[name] = s.astype("string").astype(object).where(s.notna(), None)
    return df


def validate(df: pd.DataFrame, table: str, *, source: str = "<DataFrame>", dd=None,
             years: tuple[int, int] | None = None, date_format: str | None = None) -> pd.DataFrame:
    """Validate (and coerce) a canonical table; raise :class:`RegisterValidationError` on the first rule broken.

    The rules are the data dictionary's, checked by :func:`lumbarstats.validation.check_table` exactly as
    for a Parquet register: required columns present; values of the column's type (no text in a numeric
    column, no fraction in an integer column — never truncated); no missing values where not nullable;
    ranges (age 0–120, adults only, years and dates within the study years); codes in their code lists
    (regions 1081–1085, SKS procedure codes exact); modality matching the procedure code; no duplicate
    primary keys (one row per person and year). Dates must be ISO (``YYYY-MM-DD``) unless ``date_format``
    (e.g. ``"%d-%m-%Y"``) says how to read them — a date is never guessed.
    """
    import ibis

    from lumbarstats import validation as _validation

    dd = dd or _dictionary.load()
    spec = dd.table(table)
    df = df.copy()
    for name, c in spec["columns"].items():
        if name not in df.columns:
            continue
        if c["dtype"] == "str" and _textlike(df[name]):
            df[name] = df[name].str.strip()  # exact matching otherwise; never prefixes
        if c["dtype"] == "date" and date_format is not None:
            df[name] = _parse_dates(df, name, date_format, source)
    con = ibis.duckdb.connect()
    try:
        con.con.register("_validate", _for_engine(df))  # a view over the DataFrame (no copy)
        t = con.table("_validate")
        _validation.check_table(t, table, source=source, dd=dd, years=years)
    finally:
        con.disconnect()
    return _coerce(df, table, dd)


def load_register_table(path, table: str, *, encoding: str = "utf-8", years=None,
                        date_format: str | None = None) -> pd.DataFrame:
    """Read and validate one canonical table from a file (Parquet, CSV, SAS7BDAT, XPT).

    ``date_format`` (e.g. ``"%d-%m-%Y"``) reads dates that are not ISO; without it they must be ISO."""
    df = read_table(path, encoding=encoding)
    return validate(df, table, source=str(path), years=years, date_format=date_format)


def validate_register(data_dir, *, tables=("population", "examinations", "surgery", "exits"),
                      batch_rows: int | None = None) -> dict[str, int]:
    """Validate the canonical Parquet tables of a register folder (any size; DuckDB scans the files).

    Returns rows per table. ``population`` and ``examinations`` must exist when asked for; the others are
    optional. The checks are :class:`lumbarstats.register.Register`'s (``batch_rows`` is no longer used:
    the rules run as DuckDB queries over the files).
    """
    from lumbarstats.register import validate_tables

    return validate_tables(data_dir, tables=tables)


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------
# Every file the toolkit writes goes through atomic_path (temporary name in the same folder, then
# os.replace), and every folder it fills carries a marker file (MARKER_NAME) that says the toolkit made it
# and which files in it are its own. A folder without the marker is never emptied or replaced; files the
# toolkit did not write are never deleted, not even with force.

__all__ += ["OutputError", "FolderNotOwnedError", "MARKER_NAME", "TEMP_TAG", "write_text", "write_json",
            "write_bytes", "save_figure", "write_with", "read_marker", "write_marker", "check_folder", "claim_folder",
            "staging_dir", "install_staged", "remove_owned_tree", "clean_stale_temporaries", "describe_os_error",
            "as_output_error"]

MARKER_NAME = ".lumbarstats.json"
# names of temporaries: ".<final name>.lumbarstats-tmp-<pid>-<random>[suffix]"; the pid tells a live run's
# temporary from one left by a killed run
TEMP_TAG = ".lumbarstats-tmp-"
_TEMP_RE = re.compile(r"^\..+" + re.escape(TEMP_TAG) + r"(?P<pid>\d+)-[A-Za-z0-9_]+")
# errno values that mean "cannot write here" (not a bug): one clear line for the user
_WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device (disk full)",
                 errno.EDQUOT: "disk quota exceeded",
                 errno.EROFS: "the file system is read-only",
                 errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted",
                 errno.ENOTDIR: "a path component is a file, not a folder",
                 errno.EEXIST: "a file is in the way",
                 errno.EISDIR: "the path is a folder, not a file"}


class OutputError(OSError):
    """An output that cannot be written (disk full, read-only, permission denied, a file in the way).

    The message is one line naming the path and the cause; nothing half-written is left behind.
    """

    def __init__(self, path, cause: str, errno_: int | None = None):
        self.path = str(path)
        super().__init__(errno_, f"cannot write {self.path}: {cause}")

    def __str__(self) -> str:
        return self.args[1]


class FolderNotOwnedError(FileExistsError):
    """A folder (or file) that the toolkit did not create is in the way; it is left untouched."""


def describe_os_error(exc: OSError, path=None) -> str:
    """One line for an operating-system error on an output path (for the CLI)."""
    if isinstance(exc, OutputError | FolderNotOwnedError):
        return str(exc)
    where = path or exc.filename
    if exc.errno in _WRITE_ERRNOS:
        return f"cannot write {where}: {_WRITE_ERRNOS[exc.errno]}" if where else _WRITE_ERRNOS[exc.errno]
    cause = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}: {cause}" if where else cause


def as_output_error(exc: OSError, path) -> OSError:
    """``exc`` as an :class:`OutputError` naming ``path`` if it means "cannot write here", else ``exc``."""
    if isinstance(exc, OutputError | FolderNotOwnedError) or exc.errno not in _WRITE_ERRNOS:
        return exc
    return OutputError(path, _WRITE_ERRNOS[exc.errno], exc.errno)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _ensure_folder(folder: Path, final: Path) -> None:
    """Create ``folder`` (and parents); a file in the way is one clear error."""
    for p in [folder, *folder.parents]:
        if p.exists():
            if not p.is_dir():
                raise OutputError(final, f"{p} is a file, not a folder", errno.ENOTDIR)
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise as_output_error(exc, final) from None


def _temp_name(final: Path, suffix: str = "") -> str:
    return f".{final.name}{TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}{suffix}"


@contextlib.contextmanager
def atomic_path(path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    A reader never sees a half-written file, and a failure (also a full disk or a killed process) leaves
    any earlier file untouched. The temporary is named ``.<name>.lumbarstats-tmp-<pid>-<random>``, so that
    :func:`clean_stale_temporaries` can remove one left by a killed run. Errors writing (disk full,
    read-only, permission denied, a file where a folder should be) raise :class:`OutputError`.
    """
    final = Path(path)
    if final.is_dir():
        raise OutputError(final, "the path is a folder, not a file", errno.EISDIR)
    _ensure_folder(final.parent, final)
    tmp_path = final.parent / _temp_name(final, suffix if suffix is not None else ".tmp")
    try:
        tmp_path.touch(exist_ok=False)
    except OSError as exc:
        raise as_output_error(exc, final) from None
    try:
        yield tmp_path
        _flush_to_disk(tmp_path)
        # the temporary is private until now; give it the permissions a normally created file gets, so that
        # colleagues sharing a project folder can read the outputs
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, final)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(exc, OSError):
            raise as_output_error(exc, final) from exc
        raise


def _flush_to_disk(path: Path) -> None:
    """fsync, so that a full disk shows here (some file systems report it only on flush), not later."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EBADF):  # a file system without fsync (some network shares)
            return
        raise
    finally:
        os.close(fd)


def write_with(path, writer: Callable[[Path], object], *, suffix: str | None = None) -> Path:
    """Write ``path`` atomically with a library that writes to a path: ``writer(tmp_path)``.

    For documents and formats written by a library (docx ``Document.save``, openpyxl ``Workbook.save``,
    ``pyreadstat.write_xport``, ``nbformat.write``, pyarrow). The temporary keeps the final suffix so that
    libraries that choose the format by suffix choose the right one.
    """
    final = Path(path)
    with atomic_path(final, suffix=final.suffix if suffix is None else suffix) as tmp:
        writer(tmp)
    return final


def write_csv(df: pd.DataFrame, path, **kwargs) -> Path:
    """Write a CSV atomically (UTF-8, no index)."""
    kwargs.setdefault("index", False)
    kwargs.setdefault("encoding", "utf-8")
    return write_with(path, lambda tmp: df.to_csv(tmp, **kwargs))


def write_parquet(df, path, **kwargs) -> Path:
    """Write a DataFrame (or a pyarrow Table) as Parquet atomically."""
    if isinstance(df, pd.DataFrame):
        kwargs.setdefault("index", False)
        return write_with(path, lambda tmp: df.to_parquet(tmp, **kwargs))
    import pyarrow.parquet as pq

    return write_with(path, lambda tmp: pq.write_table(df, tmp, **kwargs))


def write_bytes(data: bytes, path) -> Path:
    """Write bytes atomically."""
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(text: str, path, *, encoding: str = "utf-8") -> Path:
    """Write text atomically (UTF-8 unless told)."""
    return write_with(path, lambda tmp: tmp.write_text(text, encoding=encoding))


def write_json(obj, path, *, indent: int = 2, **kwargs) -> Path:
    """Write JSON atomically (UTF-8, Danish letters kept as they are)."""
    kwargs.setdefault("ensure_ascii", False)
    return write_text(json.dumps(obj, indent=indent, **kwargs) + "\n", path)


def save_figure(fig, path, *, close: bool = False, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically; the format comes from the suffix (.png, .svg, .pdf).

    ``savefig_kwargs`` go to ``Figure.savefig`` (default ``dpi=150, bbox_inches="tight"``); ``close`` closes
    the figure afterwards (batch runs draw many figures).
    """
    final = Path(path)
    fmt = final.suffix.lstrip(".").lower()
    if not fmt:
        raise ValueError(f"{final}: give the figure file a suffix (.png, .svg or .pdf)")
    kwargs = {"dpi": 150, "bbox_inches": "tight", "format": fmt, **savefig_kwargs}
    try:
        return write_with(final, lambda tmp: fig.savefig(tmp, **kwargs))
    finally:
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)


# -- folders the toolkit owns ------------------------------------------------------------------------

def read_marker(folder) -> dict | None:
    """The toolkit's marker of ``folder`` (kind, version, created, files), or None if it has none."""
    p = Path(folder) / MARKER_NAME
    if not p.is_file():
        return None
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("tool") == "lumbarstats" else None


def write_marker(folder, kind: str, *, files: Iterable[str] | None = None, **info) -> Path:
    """Write the marker that says the toolkit made ``folder`` (kind: register, raw-register, output, batch,
    logs, staging) and which files in it are its own (relative POSIX paths)."""
    from lumbarstats import __version__

    old = read_marker(folder) or {}
    marker = {"tool": "lumbarstats", "kind": kind, "version": __version__,
              "created": old.get("created") or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
              **info}
    if files is not None:
        marker["files"] = sorted(set(files))
    return write_json(marker, Path(folder) / MARKER_NAME)


def _entries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name != MARKER_NAME and not _TEMP_RE.match(p.name)]


def check_folder(folder, kind: str, force: bool = False,
                 recognise: Callable[[Path], bool] | None = None) -> dict | None:
    """Raise :class:`FolderNotOwnedError` if the toolkit may not write a ``kind`` folder at ``folder`` (see
    :func:`claim_folder`); change nothing; return the folder's marker (or None)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FolderNotOwnedError(f"{folder} is a file, not a folder; choose another output path")
    existing = next((p for p in folder.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise OutputError(folder, f"{existing} is a file, not a folder", errno.ENOTDIR)
    marker = read_marker(folder) if folder.exists() else None
    if marker is not None and marker.get("kind") == kind:
        return marker
    if folder.exists() and _entries(folder) and not force:
        if marker is not None:
            raise FolderNotOwnedError(f"{folder} holds a lumbarstats {marker.get('kind')} folder, not a {kind} "
                                      "folder; choose another path (or --force to write into it)")
        if recognise is None or not recognise(folder):
            raise FolderNotOwnedError(f"{folder} is not empty and was not made by lumbarstats (no {MARKER_NAME});"
                                      " nothing was changed. Choose an empty or new folder, or use --force to "
                                      "write into it (files lumbarstats did not write are never deleted)")
    return marker


def claim_folder(folder, kind: str, *, force: bool = False,
                 recognise: Callable[[Path], bool] | None = None) -> Path:
    """Make sure the toolkit may write a ``kind`` folder at ``folder``; create it (with its marker) if needed.

    Allowed: a missing or empty folder; a folder with the toolkit's marker of the same kind; a folder that
    ``recognise(folder)`` says the toolkit wrote before markers existed. A file at the path, or a non-empty
    folder the toolkit did not make, raises :class:`FolderNotOwnedError` (nothing is changed) unless
    ``force`` — and force only lets the toolkit write its own files into the folder beside the others.
    """
    folder = Path(folder)
    marker = check_folder(folder, kind, force, recognise)
    if marker is not None and marker.get("kind") == kind:
        return folder
    _ensure_folder(folder, folder / MARKER_NAME)
    write_marker(folder, kind, **({"files": marker.get("files", [])} if marker else {}))
    return folder


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        import psutil

        return psutil.pid_exists(pid)
    except ImportError:  # pragma: no cover - psutil comes with ipykernel
        if os.name != "posix":
            return True  # cannot tell: keep it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def staging_dir(final, kind: str = "staging") -> Path:
    """A new temporary folder beside ``final`` (same file system, so its files move by rename), marked as the
    toolkit's temporary with this process's id. Install it with :func:`install_staged`; a killed run's
    leftover is removed by :func:`clean_stale_temporaries`."""
    final = Path(final)
    _ensure_folder(final.parent, final)
    tmp = final.parent / _temp_name(final)
    try:
        tmp.mkdir()
    except OSError as exc:
        raise as_output_error(exc, final) from None
    try:
        write_marker(tmp, kind, temporary=True, pid=os.getpid(), host=socket.gethostname(), target=final.name)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.rmdir()  # still empty: the marker's own temporary is gone with the failed write
        raise
    return tmp


def _files_of(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != MARKER_NAME)


def install_staged(staging, final, kind: str, *, force: bool = False,
                   recognise: Callable[[Path], bool] | None = None, last: Sequence[str] = ()) -> Path:
    """Move the files of ``staging`` into ``final``, replacing only files the toolkit wrote there before.

    ``final`` must be missing, empty, the toolkit's ``kind`` folder, recognised by ``recognise``, or ``force``
    must be given (see :func:`claim_folder`). A file of the same name that the toolkit did not write stops
    the install before anything moves. Files the toolkit wrote before and the new set lacks are removed;
    files it did not write are never touched. ``last`` names files moved after all others (metadata, so that
    an interrupted install is never taken for a complete one); the marker says ``complete`` only at the end.
    """
    staging, final = Path(staging), Path(final)
    old = check_folder(final, kind, force, recognise) or {}
    legacy = recognise is not None and not old.get("files") and final.is_dir() and recognise(final)
    new_files = _files_of(staging)
    owned = set(old.get("files", [])) | (set(new_files) if legacy else set())
    foreign = [f for f in new_files if (final / f).exists() and f not in owned]
    if foreign:
        raise FolderNotOwnedError(f"{final}: {', '.join(foreign[:5])} exist(s) and were not written by lumbarstats;"
                                  " nothing was changed. Move them away or choose another folder")
    # the marker lists old and new files while moving: an interrupted install leaves them all recognised
    _ensure_folder(final, final / MARKER_NAME)
    clean_stale_temporaries(final, recursive=True)  # a killed install's marker temporaries
    write_marker(final, kind, files=owned | set(new_files), state="installing")
    order = [f for f in new_files if f not in last] + [f for f in last if f in new_files]
    try:
        for f in order:
            target = final / f
            _ensure_folder(target.parent, target)
            os.replace(staging / f, target)
        for f in sorted(owned - set(new_files)):
            with contextlib.suppress(FileNotFoundError):
                (final / f).unlink()
        _remove_empty_dirs(final)
    except OSError as exc:
        raise as_output_error(exc, final) from exc
    write_marker(final, kind, files=new_files, state="complete")
    remove_owned_tree(staging)
    return final


def _remove_empty_dirs(folder: Path) -> None:
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()  # only empty folders go


def remove_owned_tree(path) -> None:
    """Remove a folder the toolkit made (it carries the marker); anything else raises FolderNotOwnedError.

    The one place where the toolkit deletes a folder tree.
    """
    import shutil

    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir() or read_marker(path) is None:
        raise FolderNotOwnedError(f"{path} was not made by lumbarstats (no {MARKER_NAME}); it is left as it is")
    shutil.rmtree(path)


def clean_stale_temporaries(folder, *, recursive: bool = False) -> list[Path]:
    """Remove the toolkit's temporaries that a killed run left in ``folder`` and return them.

    Only entries named ``.<name>.lumbarstats-tmp-<pid>-…`` whose process is no longer running on this
    machine; a folder must also carry the toolkit's temporary marker, or be empty once its own temporaries
    are gone (a run killed before it wrote the marker). Everything else stays.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    candidates = folder.rglob(".*") if recursive else folder.glob(".*")
    for p in sorted(candidates, key=lambda q: len(q.parts)):
        m = _TEMP_RE.match(p.name)
        if not m or not p.exists() or _pid_alive(int(m.group("pid"))):
            continue
        if p.is_dir():
            marker = read_marker(p)
            if marker is None:
                # killed between creating the folder and writing its marker: only an empty folder (after its
                # own temporaries) is removed
                clean_stale_temporaries(p)
                try:
                    p.rmdir()
                except OSError:
                    continue
                removed.append(p)
                continue
            if not marker.get("temporary") or marker.get("host", socket.gethostname()) != socket.gethostname():
                continue
            remove_owned_tree(p)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed.append(p)
    return removed
