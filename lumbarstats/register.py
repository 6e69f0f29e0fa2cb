"""``ls.Register``: the one way every analysis reads a register folder.

A register folder holds the canonical tables of ``data_dictionary/tables.yaml`` (``population`` and
``examinations`` required; ``surgery``, ``exits`` optional), each a Parquet file ``<table>.parquet`` or a
folder of Parquet files (hive partitions allowed). :class:`Register`

- opens the folder once and refuses a folder that does not exist or lacks a required table
  (``FileNotFoundError`` naming the path and how to make one; it creates nothing);
- validates every table against the data dictionary before any analysis
  (:mod:`lumbarstats.validation`: one clear :class:`lumbarstats.io.RegisterValidationError` naming file,
  column, rule and up to five rows with their row numbers in the file);
- remembers a passed validation by content hash (BLAKE2b of the table files' bytes, see
  :attr:`Register.content_hash`) in ``<register>/.lumbarstats/validated.json`` — or, where the folder is
  read-only, in ``~/.cache/lumbarstats/`` (``cache_dir=`` or ``LUMBARSTATS_CACHE_DIR``) — so an unchanged
  register is not validated again; any changed byte means revalidation;
- holds one query engine — embedded DuckDB (default) or Apache Spark (``engine="spark"``, a
  ``lumbarstats.toml``, or ``spark=session``; see :mod:`lumbarstats.engines` and ``docs/spark.md``) —
  through Ibis, so every query expression runs unchanged on either; defines the counting rule once
  (:meth:`Register.counted_examinations`), and caches the default standard population and stratum counts.
  The only engine-specific code is :func:`_read_table` (how a table's Parquet files are opened, and
  where row numbers for validation errors come from).

Functions that take a register accept a path or a ``Register`` (:func:`as_register`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd

from lumbarstats import dictionary as _dictionary
from lumbarstats import engines as _engines
from lumbarstats import validation as _validation

__all__ = ["Register", "as_register", "validate_tables", "TABLES", "REQUIRED_TABLES", "STATE_DIR"]

TABLES = ("population", "examinations", "surgery", "exits")
REQUIRED_TABLES = ("population", "examinations")
STATE_DIR = ".lumbarstats"            # toolkit state inside a register folder (never a table)
_STATE_FILE = "validated.json"
_HASH_CHUNK = 1 << 22
_RULES_VERSION = 1                    # bump when the validation engine changes meaning


def _make_hint(path: Path) -> str:
    return (f"generate a synthetic register with `lumbarstats synth --out {path}` or ingest raw extracts with "
            f"`lumbarstats ingest --raw RAW --out {path}`")


def _table_files(root: Path, name: str) -> list[Path]:
    """The Parquet file(s) of a canonical table, sorted; [] if absent."""
    f = root / f"{name}.parquet"
    if f.is_file():
        return [f]
    folder = _table_folder(root, name)
    if folder is None:
        return []
    # a partitioned dataset: every Parquet file below, hive-style ``key=value/`` folders included; hidden
    # and Spark bookkeeping entries (``.part-*.crc``, ``_SUCCESS``, ``_temporary/``) are not data
    return sorted(p for p in folder.rglob("*.parquet") if p.is_file()
                  and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts))


def _table_folder(root: Path, name: str) -> Path | None:
    """The folder of a table stored as a folder of Parquet files (``<name>.parquet/`` as Spark and
    ``lumbarstats synth`` write it, or ``<name>/``); None for a single file or no table."""
    for folder in (root / f"{name}.parquet", root / name):
        if folder.is_dir():
            return folder
    return None


def _read_table(con, engine: str, paths: list[str], *, folder: str | None, row_numbers: bool) -> ir.Table:
    """The one engine-specific step: open a table's Parquet file(s) as an Ibis table.

    ``paths``: the file(s); ``folder``: the table's folder when it is a folder of files (hive partitions
    ``key=value/`` become columns). With ``row_numbers`` the table gets ``row`` (1-based row number within
    its file) and, for a folder, ``filename`` — for validation errors. DuckDB: ``read_parquet`` with
    ``file_row_number``. Spark: the Parquet reader's hidden ``_metadata.row_index`` / ``file_path``
    columns (Spark >= 3.5), so a row number means the same on both engines."""
    if engine == "duckdb":
        opts = {"hive_partitioning": bool(folder)}
        if row_numbers:
            opts.update(file_row_number=True, filename=bool(folder))
        t = con.read_parquet(paths if folder else paths[0], **opts)
        if row_numbers:
            t = t.mutate(**{_validation.ROW: t.file_row_number + 1}).drop("file_row_number")
        return t
    from pyspark.sql import functions as F

    reader = con._session.read
    if folder:
        reader = reader.option("basePath", folder)
    df = reader.parquet(*paths)
    if row_numbers:
        extra = [(F.col("_metadata.row_index") + 1).cast("long").alias(_validation.ROW)]
        if folder:
            extra.append(F.col("_metadata.file_path").alias("filename"))
        df = df.select("*", *extra)
    # a view name is an identifier: Spark's own part files (``part-00000-….snappy``) have hyphens and dots
    name = ibis.util.gen_name("lumbarstats_" + "".join(c if c.isalnum() else "_" for c in Path(paths[0]).stem))
    df.createOrReplaceTempView(name)
    return con.table(name)


def _hash_files(root: Path, files: Sequence[Path]) -> str:
    """BLAKE2b (160 bit) of the files' relative names and bytes, streamed in 4 MiB chunks."""
    h = hashlib.blake2b(digest_size=20)
    for f in files:
        h.update(f.relative_to(root).as_posix().encode("utf-8") + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def _dictionary_hash(dd) -> str:
    """The rules are part of what was validated: a changed data dictionary means revalidation."""
    files = [dd.root / "tables.yaml", *sorted((dd.root / "codelists").glob("*.csv"))]
    return _hash_files(dd.root, files) + f".v{_RULES_VERSION}"


class Register:
    """A validated register folder with one query engine (see the module docstring).

    Parameters
    ----------
    path : the register folder.
    validate : validate the tables now (default). ``False`` only for tools that inspect a register.
    cache_dir : where to remember a passed validation when the register folder is read-only
        (default ``LUMBARSTATS_CACHE_DIR`` or ``~/.cache/lumbarstats``).
    dictionary : a data dictionary (default the installed one).
    threads : DuckDB threads (default DuckDB's).
    engine : ``"duckdb"`` (default) or ``"spark"``; default from ``lumbarstats.toml`` (``config``), else DuckDB.
    spark : a ``SparkSession`` to use (implies ``engine="spark"``; the Register never stops it).
    spark_master, spark_config : for a session made here (:func:`lumbarstats.engines.spark_session`):
        ``"local[2]"`` (default), a cluster URL or a Spark Connect URL ``sc://…``; Spark settings.
    config : path of a ``lumbarstats.toml`` (default ``LUMBARSTATS_CONFIG`` or ``./lumbarstats.toml``).
    """

    def __init__(self, path, *, validate: bool = True, cache_dir=None, dictionary=None,
                 threads: int | None = None, engine: str | None = None, spark=None,
                 spark_master: str | None = None, spark_config=None, config=None):
        self.path = Path(path)
        if not self.path.is_dir():
            what = "is a file, not a register folder" if self.path.exists() else "does not exist"
            raise FileNotFoundError(f"register folder {self.path} {what}; {_make_hint(self.path)}")
        self.dd = dictionary or _dictionary.load()
        self.files = {t: _table_files(self.path, t) for t in TABLES}
        missing = [t for t in REQUIRED_TABLES if not self.files[t]]
        if missing:
            raise FileNotFoundError(
                f"register folder {self.path} has no {', '.join(m + '.parquet' for m in missing)} "
                f"(a Parquet file or a folder of Parquet files); {_make_hint(self.path)}")
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._threads = threads
        self._set_engine(engine, spark, spark_master, spark_config, config)
        self._con = None
        self._content_hash: str | None = None
        self._memo: dict = {}
        self.rows: dict[str, int] = {}
        self.validated = False
        if validate:
            self.validate()

    def __repr__(self) -> str:
        return f"Register({str(self.path)!r}, validated={self.validated}, engine={self.engine!r})"

    # -- connection and tables ------------------------------------------------------------------
    def _set_engine(self, engine, spark, spark_master, spark_config, config) -> None:
        """Arguments first, then ``lumbarstats.toml``, then DuckDB."""
        settings = _engines.load_settings(config) if (engine is None and spark is None) or config else {}
        chosen = "spark" if spark is not None else (engine or settings.get("engine") or "duckdb")
        self.engine = _engines.engine_name(chosen)
        self._spark = spark
        self._spark_master = spark_master or settings.get("spark_master")
        self._spark_config = dict(settings.get("spark_config") or {}) | dict(spark_config or {})

    @property
    def con(self):
        """The Ibis backend (one per Register): DuckDB (``con.con`` is the raw DuckDB connection) or PySpark."""
        if self._con is None:
            self._con = _engines.connect(self.engine, threads=self._threads, spark=self._spark,
                                         spark_master=self._spark_master, spark_config=self._spark_config)
        return self._con

    def has_table(self, name: str) -> bool:
        return bool(self.files.get(name))

    def _source(self, name: str) -> str | list[str]:
        files = self.files.get(name) or []
        if not files:
            raise FileNotFoundError(f"register folder {self.path} has no {name}.parquet")
        return [f.as_posix() for f in files] if _table_folder(self.path, name) else files[0].as_posix()

    def raw_table(self, name: str, *, row_numbers: bool = False) -> ir.Table:
        """A canonical table as stored (no type conversion); ``row_numbers`` adds ``row`` (1-based, per file)
        and, for a folder of files, ``filename``."""
        key = ("raw", name, row_numbers)
        if key not in self._memo:
            source = self._source(name)
            folder = _table_folder(self.path, name)  # a folder of files, maybe hive partitions
            self._memo[key] = _read_table(self.con, self.engine, source if isinstance(source, list) else [source],
                                          folder=folder.as_posix() if folder else None,
                                          row_numbers=row_numbers)
        return self._memo[key]

    def table(self, name: str) -> ir.Table:
        """A validated canonical table with the dictionary's types (whole-number floats as int64,
        ISO text dates as dates); only the dictionary's columns."""
        self._require_valid()
        key = ("typed", name)
        if key not in self._memo:
            t = self.raw_table(name)
            spec = self.dd.table(name)["columns"]
            cols = {}
            for c, s in spec.items():
                if c not in t.columns:
                    continue
                v = _validation.typed_value(t, c, s["dtype"])
                if s["dtype"] == "int" and not t[c].type().is_integer():
                    v = v.cast("int64")
                cols[c] = v.name(c)
            self._memo[key] = t.select(**cols)
        return self._memo[key]

    # -- validation -----------------------------------------------------------------------------
    @property
    def content_hash(self) -> str:
        """BLAKE2b hash of the table files (names and bytes); changes with any byte of any table."""
        if self._content_hash is None:
            files = [f for t in TABLES for f in self.files[t]]
            self._content_hash = _hash_files(self.path, files)
        return self._content_hash

    def _state_paths(self) -> list[Path]:
        env = os.environ.get("LUMBARSTATS_CACHE_DIR")
        user = self._cache_dir or (Path(env) if env else Path.home() / ".cache" / "lumbarstats")
        key = hashlib.blake2b(str(self.path.resolve()).encode("utf-8"), digest_size=10).hexdigest()
        return [self.path / STATE_DIR / _STATE_FILE, user / "validated" / f"{key}.json"]

    def _remembered(self) -> dict | None:
        wanted = {"content_hash": self.content_hash, "rules": _dictionary_hash(self.dd)}
        for p in self._state_paths():
            try:
                state = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if all(state.get(k) == v for k, v in wanted.items()):
                return state
        return None

    def _remember(self) -> None:
        from lumbarstats import io as _io

        state = {"content_hash": self.content_hash, "rules": _dictionary_hash(self.dd), "rows": self.rows,
                 "validated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        for p in self._state_paths():
            try:
                with _io.atomic_path(p) as tmp:
                    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
                return
            except OSError:
                continue  # read-only register folder: try the user cache

    def cache_dirs(self, kind: str) -> list[Path]:
        """Folders for derived data of this register's content (e.g. ``kind="cohort"``), most preferred first:
        ``<register>/.lumbarstats/cache/<kind>/`` and the user cache. Entries are keyed by
        :attr:`content_hash`, so a changed register never meets an old entry."""
        env = os.environ.get("LUMBARSTATS_CACHE_DIR")
        user = self._cache_dir or (Path(env) if env else Path.home() / ".cache" / "lumbarstats")
        return [self.path / STATE_DIR / "cache" / kind, user / "cache" / kind]

    def validate(self, *, force: bool = False) -> dict[str, int]:
        """Validate every table (unless an identical register passed before); return rows per table."""
        if self.validated and not force:
            return self.rows
        state = None if force else self._remembered()
        if state is not None:
            self.rows = {k: int(v) for k, v in state.get("rows", {}).items()}
        else:
            self.rows = {name: self._check(name) for name in TABLES if self.files[name]}
            self._remember()
        self.validated = True
        return self.rows

    def _check(self, name: str) -> int:
        return _validation.check_table(self.raw_table(name), name, source=self.path / f"{name}.parquet",
                                       dd=self.dd, numbered=self.raw_table(name, row_numbers=True))

    def _require_valid(self) -> None:
        if not self.validated:
            self.validate()

    # -- the counting rule ----------------------------------------------------------------------
    def modalities(self, modality, include_related: bool = False) -> dict[str, list[str]]:
        """Requested modality/ies -> their exact counted SKS codes (``None``: all modalities)."""
        codes = self.dd.counted_procedure_codes(include_related=include_related)
        wanted = list(codes) if modality is None else ([modality] if isinstance(modality, str) else list(modality))
        bad = [m for m in wanted if m not in codes]
        if bad:
            raise ValueError(f"unknown modality {bad}; choose from {list(codes)}")
        return {m: codes[m] for m in wanted}

    def counted_examinations(self, modality="MR", payer="public", include_related: bool = False, *,
                             population: ir.Table | None = None) -> ir.Table:
        """THE counting rule of the report (section 3.1), as one Ibis expression.

        An examination counts when its procedure code is one of the modality's exact SKS codes (never a
        prefix; ``include_related`` adds the dictionary's lumbar-related codes), its payer is ``payer``
        (default publicly financed; ``None`` = any payer) and the person has a population row in the year
        of the examination (adults resident on 31 December of the year before; the population holds
        adults only). Each examination gets the covariates of that row. ``population`` restricts the rows
        examinations are attributed to (e.g. a filtered or derived population table with ``person_id``
        and ``year``). Columns: ``person_id, date, year, month, modality, payer`` and the population's
        columns."""
        mods = self.modalities(modality, include_related)
        ex = self.table("examinations")
        all_codes = [c for codes in mods.values() for c in codes]
        cond = ex.procedure_code.isin(all_codes) & ex.modality.isin(list(mods))
        if payer is not None:
            payers = [payer] if isinstance(payer, str) else list(payer)
            bad = [p for p in payers if p not in self.dd.codes("payer")]
            if bad:
                raise ValueError(f"unknown payer {bad}; choose from {self.dd.codes('payer')}")
            cond &= ex.payer.isin(payers)
        pop = population if population is not None else self.table("population")
        # the examination's year in the population's integer type: the large side is joined uncast
        ex = ex.filter(cond).select(
            "person_id", "date", year=ex.date.year().cast(pop.year.type()), month=ex.date.month().cast("int64"),
            modality=ex.modality, payer=ex.payer)
        return ex.join(pop, [ex.person_id == pop.person_id, ex.year == pop.year]).select(
            ex, *[pop[c] for c in pop.columns if c not in ("person_id", "year")])

    # -- cached results -------------------------------------------------------------------------
    def memo(self, key, compute):
        """Cache ``compute()`` under ``key`` on this Register (same query, same answer); returns a copy."""
        if key not in self._memo:
            self._memo[key] = compute()
        value = self._memo[key]
        return value.copy() if isinstance(value, pd.DataFrame) else value

    def default_standard(self, *, strata: Sequence[str] = ("sex", "age_band"), years=None) -> pd.DataFrame:
        """The package's default standard population (computed once per Register)."""
        from lumbarstats import aggregate

        return aggregate.default_standard(self, strata=strata, years=years)

    def strata_counts(self, **kwargs) -> pd.DataFrame:
        """:func:`lumbarstats.aggregate.strata_counts` on this register (cached per identical query)."""
        from lumbarstats import aggregate

        return aggregate.strata_counts(self, **kwargs)

    def close(self) -> None:
        """Close the DuckDB connection. A Spark session is left running (it may be shared: the caller's, or
        the one of the process; stop it with ``session.stop()``)."""
        if self._con is not None:
            if self.engine == "duckdb":
                self._con.disconnect()
            self._con = None
            self._memo.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def validate_tables(path, *, tables: Sequence[str] = TABLES, dictionary=None) -> dict[str, int]:
    """Validate some canonical tables of a folder (always, no remembered state); rows per table.

    ``population`` and ``examinations`` must exist when asked for; missing optional tables are skipped."""
    from lumbarstats.io import RegisterValidationError

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"register folder {root} does not exist; {_make_hint(root)}")
    reg = Register.__new__(Register)
    reg.path, reg.dd = root, dictionary or _dictionary.load()
    reg.files = {t: _table_files(root, t) for t in TABLES}
    reg._threads, reg._con, reg._memo, reg._cache_dir, reg._content_hash = None, None, {}, None, None
    reg._set_engine("duckdb", None, None, None, None)
    reg.validated, reg.rows = False, {}
    try:
        out = {}
        for name in tables:
            if not reg.files.get(name):
                if name in REQUIRED_TABLES:
                    raise RegisterValidationError(root / f"{name}.parquet", None, "required table file is missing",
                                                  hint=_make_hint(root))
                continue
            out[name] = reg._check(name)
        return out
    finally:
        reg.close()


def dictionary_hash(dd) -> str:
    """Hash of the data dictionary's rules and code lists (what validation and derived data depend on)."""
    return _dictionary_hash(dd)


def as_register(data, **kwargs) -> Register:
    """A :class:`Register` from a path (opened and validated) or the Register itself."""
    if isinstance(data, Register):
        return data
    if isinstance(data, (str, os.PathLike)):
        return Register(data, **kwargs)
    raise TypeError(f"expected a register folder (path) or an ls.Register, got {type(data).__name__}")
