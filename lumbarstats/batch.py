"""Fault-tolerant batch runs of a parameterized notebook, once per region (and the whole country).

``lumbarstats batch NOTEBOOK --out DIR --regions all -p NAME=VALUE`` (or :func:`run_batch` from Python)
executes NOTEBOOK with papermill once per region, one after the other, on a named Jupyter kernel
(default ``lumbarstats``; register it with ``python -m lumbarstats install-kernel``).

Contract of a batch notebook
    * a cell tagged ``parameters`` that defines ``region`` (a region's short name such as
      ``"Syddanmark"``, or ``"Landsplan"`` for the whole country);
    * optionally ``out_dir``: when the notebook defines it, the batch injects a per-region folder and
      the notebook writes its tables (CSV, xlsx, …) *inside* that folder only;
    * any other parameter can be set with ``-p NAME=VALUE``.

Layout of DIR::

    DIR/.lumbarstats.json            the marker: a batch folder lumbarstats made (also in each region folder)
    DIR/runs.csv                     region, status, seconds, error, output, started, parameters, input_hash
                                     (one row per region; parameters = the -p values as JSON)
    DIR/<region_slug>/<stem>.ipynb   the executed notebook of a completed run
    DIR/<region_slug>/...            the tables the notebook wrote into its out_dir
    DIR/<region_slug>.failed/        the executed notebook (with the error) of the last failed run
                                     (``failed_dir`` puts these elsewhere; reproduce keeps them outside OUT)

Fault tolerance
    * A failing region is recorded (status ``failed``, ``error`` = the exception's last line, e.g.
      ``ValueError: no examinations in Sjælland``) and the other regions still run.
    * ``runs.csv`` is rewritten atomically (``lumbarstats.io``) after every region, so a crash or a
      killed session loses at most the region that was running.
    * Every region runs in a temporary folder ``DIR/.<region_slug>.lumbarstats-tmp-<pid>-…/`` (that folder
      is the injected ``out_dir``), renamed to ``DIR/<region_slug>/`` only when the run completed; a
      half-written folder is never mistaken for a result, and the next batch removes one left by a killed
      run. A notebook must therefore not store absolute paths to its outputs.
    * ``runs.csv`` records each region's parameters and an input hash (the notebook, the lumbarstats
      version, and the content of the register that a ``data_dir`` parameter points to). A re-run runs
      exactly the regions that failed, are missing, or whose parameters or input changed; the others are
      ``skipped`` (their row stays ``completed``). ``force=True`` re-runs every region.
    * DIR must be empty, new, or a batch folder lumbarstats made; anything else is refused (``force``
      writes into it, never deleting files lumbarstats did not write). One batch writes to one DIR at a
      time; DIR holds the runs of one notebook (a second notebook gets its own DIR).

Parameters given on the command line are YAML scalars, as papermill's ``-y``: ``year=2022`` is an
int, ``alpha=0.05`` a float, ``pooled=true`` a bool, ``years=[2019, 2022]`` a list, ``NAME=`` None.
Anything that YAML would read as a mapping, block list or date stays the literal string
(``title=Rate: MR`` is the string ``"Rate: MR"``, ``start=2020-03-11`` the string ``"2020-03-11"``).

Without a kernel of the default name the batch runs on the running interpreter (:func:`kernel_for_run`);
another kernel name that is not installed stops the batch before any region runs,
with a message saying to run ``python -m lumbarstats install-kernel`` (installing silently could
register an interpreter other than the one the user means to use).

papermill starts the kernel in the batch process's working directory; the report notebooks resolve a
relative ``data_dir``/``out_dir`` from the project root (:mod:`lumbarstats.project`), not from there.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import sys
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lumbarstats import io as _io

RUN_COLUMNS = ["region", "status", "seconds", "error", "output", "started", "parameters", "input_hash"]
BATCH_KIND, REGION_KIND = "batch", "batch-region"
RUNS_FILE = "runs.csv"
DEFAULT_KERNEL = "lumbarstats"
KERNEL_DISPLAY_NAME = "Python (lumbarstats)"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_RESERVED = {"region": "choose regions with --regions / regions=, not as a parameter",
             "out_dir": "the batch sets out_dir per region (DIR/<region>/); choose DIR with --out"}


# -- parameters ---------------------------------------------------------------------------------------
def _yaml_value(name: str, text: str):
    import yaml

    text = text.strip()
    flow = text[:1] in "[{"
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        if flow:
            raise ValueError(f"parameter {name!r}: {text!r} is not a valid YAML list/mapping ({exc.problem})") from None
        return text
    if flow:
        _check_plain(name, value)
        return value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    # "a: b", "- x", dates and the like: keep what the user typed
    return text


def _check_plain(name: str, value) -> None:
    if isinstance(value, list):
        for v in value:
            _check_plain(name, v)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_plain(name, k)
            _check_plain(name, v)
    elif not (value is None or isinstance(value, bool | int | float | str)):
        raise ValueError(f"parameter {name!r}: element {value!r} ({type(value).__name__}) cannot be passed to a "
                         "notebook; quote it to pass a string")


def parse_parameters(items: Iterable[str]) -> dict:
    """Parse ``NAME=VALUE`` items (``NAME VALUE`` also accepted) into a parameter dict.

    Values are read as YAML scalars, as papermill's ``-y`` option does (papermill documentation,
    "Execute via CLI"): ints, floats, bools (``true``/``false``), ``null``, and flow lists or mappings
    (``[2019, 2022]``). A value that YAML reads as something else (a date, ``a: b``) stays a string.
    Raises ValueError on an item without a name or value, a name given twice, or the names the batch sets
    itself (``region``, ``out_dir``).
    """
    if isinstance(items, str):
        items = [items]
    out: dict = {}
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"parameter {item!r} must be a string 'NAME=VALUE'")
        m = re.match(rf"^\s*({_NAME})\s*=(.*)$", item, flags=re.S) or re.match(rf"^\s*({_NAME})\s+(.*)$", item, flags=re.S)
        if not m:
            raise ValueError(f"cannot read parameter {item!r}: write NAME=VALUE with NAME a Python identifier "
                             "(e.g. -p year=2022)")
        name, text = m.group(1), m.group(2)
        if name in _RESERVED:
            raise ValueError(f"parameter {name!r} is set by the batch: {_RESERVED[name]}")
        if name in out:
            raise ValueError(f"parameter {name!r} given twice; give each parameter once")
        out[name] = _yaml_value(name, text)
    return out


# -- regions ------------------------------------------------------------------------------------------
def region_slug(region: str) -> str:
    """Folder name for a region: lower case ASCII (``Sjælland`` -> ``sjaelland``)."""
    s = str(region).strip().casefold()
    for a, b in (("æ", "ae"), ("ø", "oe"), ("å", "aa"), ("ß", "ss")):
        s = s.replace(a, b)
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^a-z0-9]+", "_", s).strip("_")
    if not s:
        raise ValueError(f"region {region!r} gives an empty folder name")
    return s


def resolve_regions(regions: str | Sequence | None = "all") -> list[str]:
    """Region short names to run, in report order.

    ``"all"`` (or None) is the five regions plus the whole country (``Landsplan``); otherwise a
    comma-separated string or a list of names (any case, with or without Danish letters: ``sjaelland``),
    full labels or DST codes (1081–1085). Raises ValueError
    on an unknown region, naming the valid ones.
    """
    from lumbarstats import dictionary

    dd = dictionary.load()
    names = list(dd.region_names().values())
    country = dd.whole_country_name
    if regions is None:
        regions = "all"
    if isinstance(regions, str):
        items = [r.strip() for r in regions.split(",") if r.strip()]
    else:
        items = [str(r).strip() for r in regions if str(r).strip()]
    if not items:
        raise ValueError(f"no regions given; use 'all' or names from {names + [country]}")
    out: list[str] = []
    for item in items:
        if item.casefold() == "all":
            chosen = names + [country]
        elif item.casefold() in {country.casefold(), "denmark", "danmark", "hele landet"}:
            chosen = [country]
        else:
            try:
                chosen = [_short_name(dd, item)]
            except ValueError:
                raise ValueError(f"unknown region {item!r}; use 'all' or any of {names + [country]} "
                                 f"(or codes {list(dd.region_names())})") from None
        out.extend(c for c in chosen if c not in out)
    return out


def _short_name(dd, item: str) -> str:
    """A region's short name from any name or code: the dictionary's one resolver (any case, with or
    without Danish letters, ``Region …``), where this version has it."""
    resolve = getattr(dd, "resolve_region", None)
    code = resolve(item) if resolve is not None else dd.region_code(item)
    if code == getattr(dd, "whole_country_code", None):
        return dd.whole_country_name
    return dd.region_names()[code]


# -- kernel -------------------------------------------------------------------------------------------
# The kernel application's own log stays out of a run's output: its start-up notes (local TCP transport is
# unencrypted) and the "KeyboardInterrupt caught in kernel." that jupyter_client's shutdown causes (it
# interrupts the kernel before asking it to stop). Errors in a notebook's cells still reach papermill.
KERNEL_QUIET = "--IPKernelApp.log_level=CRITICAL"

def kernel_path(name: str = DEFAULT_KERNEL) -> Path | None:
    """Folder of the installed Jupyter kernel ``name``, or None if no such kernel is installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return Path(KernelSpecManager().get_kernel_spec(name).resource_dir)
    except NoSuchKernel:
        return None


def require_kernel(name: str = DEFAULT_KERNEL) -> Path:
    """Path of kernel ``name``; raises a clear error (what to run) if it is not installed."""
    path = kernel_path(name)
    if path is None:
        from jupyter_client.kernelspec import KernelSpecManager

        have = sorted(KernelSpecManager().find_kernel_specs())
        hint = "python -m lumbarstats install-kernel" + ("" if name == DEFAULT_KERNEL else f" --name {name}")
        raise LookupError(f"Jupyter kernel {name!r} is not installed (installed: {have}). Register this "
                          f"environment with `{hint}` (in the environment that has lumbarstats), then run again.")
    return path


@contextlib.contextmanager
def kernel_for_run(name: str = DEFAULT_KERNEL):
    """The Jupyter kernel to run notebooks on, as a context: the installed kernel ``name``; or, where no
    kernel of the default name is installed (a plain ``pip install``), the running interpreter, registered
    as ``name`` in a temporary Jupyter folder (``JUPYTER_PATH``) for the duration, with this lumbarstats
    first on the kernel's path so that it imports the same package. Another name that is not installed
    is an error (:func:`require_kernel`)."""
    try:
        require_kernel(name)
    except LookupError:
        if name != DEFAULT_KERNEL:
            raise
    else:
        yield name
        return
    import tempfile

    from ipykernel import kernelspec

    with tempfile.TemporaryDirectory(prefix="lumbarstats-kernel-") as tmp:
        folder = Path(tmp) / "kernels" / name
        kernelspec.write_kernel_spec(str(folder), overrides={
            "display_name": KERNEL_DISPLAY_NAME,
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     KERNEL_QUIET],
            "env": {"PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]),
                                                                os.environ.get("PYTHONPATH", "")) if p)}})
        before = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (tmp, before) if p)
        try:
            yield name
        finally:
            if before is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = before


def install_kernel(name: str = DEFAULT_KERNEL, user: bool = False) -> Path:
    """Register the running interpreter as Jupyter kernel ``name`` (display name "Python (lumbarstats)").

    Installs into this environment (``sys.prefix``/share/jupyter/kernels) unless ``user`` is true, so
    that the kernel travels with the virtual environment. Pure Python (ipykernel's
    ``kernelspec.install``), no shell; works the same on Windows. Returns the kernel's folder.
    """
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name or ""):
        raise ValueError(f"kernel name {name!r}: use letters, digits, '.', '_' or '-'")
    from ipykernel import kernelspec

    display = KERNEL_DISPLAY_NAME if name == DEFAULT_KERNEL else f"Python ({name})"
    path = Path(kernelspec.install(kernel_name=name, display_name=display, user=user,
                                   prefix=None if user else sys.prefix))
    # batch runs start many kernels: keep the kernel application's own log out of the run's output
    spec_file = path / "kernel.json"
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    argv = [a for a in spec["argv"] if not a.startswith("--IPKernelApp.log_level=")] + [KERNEL_QUIET]
    if argv != spec["argv"]:
        spec["argv"] = argv
        _io.write_text(json.dumps(spec, indent=1), spec_file)
    return path


# -- runs.csv -----------------------------------------------------------------------------------------
def read_runs(out: str | Path) -> pd.DataFrame:
    """The runs recorded in ``out/runs.csv`` (empty frame with the run columns if there are none)."""
    path = Path(out) / RUNS_FILE
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=float if c == "seconds" else object) for c in RUN_COLUMNS})
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    for optional in ("parameters", "input_hash"):  # recorded since these columns were added
        if optional not in df.columns:
            df[optional] = ""
    missing = [c for c in RUN_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; it was not written by lumbarstats batch "
                         "(move it away or use another --out)")
    df = df[RUN_COLUMNS].copy()
    df["seconds"] = pd.to_numeric(df["seconds"], errors="coerce")
    return df


def _write_runs(out: Path, rows: Mapping[str, dict], order: Sequence[str]) -> None:
    ordered = [r for r in order if r in rows] + [r for r in rows if r not in order]
    df = pd.DataFrame([rows[r] for r in ordered], columns=RUN_COLUMNS)
    _io.write_csv(df, out / RUNS_FILE)


def _last_line(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return f"{exc.ename}: {exc.evalue}".strip()
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = lines[-1] if lines else ""
    name = type(exc).__name__
    return f"{name}: {msg}" if msg and not msg.startswith(name) else (msg or name)


# -- the batch ----------------------------------------------------------------------------------------
def notebook_parameters(notebook: str | Path) -> dict:
    """Parameters declared in the notebook's cell tagged ``parameters``: name -> default (source text).

    Uses papermill's Python translator (``PythonTranslator.inspect``, the code behind
    ``papermill --help-notebook``), reading the cell without starting a kernel; a notebook without
    such a cell declares nothing.
    """
    import nbformat
    from papermill.translators import PythonTranslator

    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return {}
    return {p.name: p.default for p in PythonTranslator.inspect(cells[0])}


def run_batch(
    notebook: str | Path,
    out: str | Path,
    regions: str | Sequence[str] | None = "all",
    parameters: Mapping | None = None,
    force: bool = False,
    kernel: str = DEFAULT_KERNEL,
    progress: bool = True,
    failed_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Run ``notebook`` once per region with papermill; one failing region does not stop the others.

    Parameters
    ----------
    notebook : parameterized notebook with a ``parameters`` cell that defines ``region``.
    out : output folder; ``out/runs.csv`` records every run, ``out/<region_slug>/`` holds the executed
        notebook and the tables it wrote (injected as ``out_dir`` when the notebook defines that parameter).
        A non-empty folder that lumbarstats did not make is refused unless ``force``.
    regions : ``"all"`` (five regions + ``Landsplan``), ``"Syddanmark,Nordjylland"`` or a list (names in any
        case, with or without Danish letters, or codes).
    parameters : further notebook parameters (see :func:`parse_parameters`).
    force : re-run every region (default: only regions that failed, are missing, or whose parameters or
        input changed), and write into a folder lumbarstats did not make (never deleting its files).
    kernel : Jupyter kernel name (see :func:`install_kernel`).
    progress : print one line per region.
    failed_dir : where the executed notebook of a failed region goes (``<slug>.failed/``); default ``out``.

    Returns a DataFrame with one row per requested region and columns ``region, status, seconds, error,
    output, started, parameters, input_hash``: status is ``completed``, ``failed`` or ``skipped`` (completed
    earlier with the same parameters and input); ``output`` is the executed notebook's path relative to
    ``out`` (POSIX separators; for a failed run relative to ``failed_dir``); ``started`` is the local start
    time of the run (ISO 8601); ``parameters`` the run's parameters as JSON; ``input_hash`` a hash of the
    notebook, the lumbarstats version and the register a ``data_dir`` parameter points to. The caller
    decides the exit code (the CLI exits 1 if any failed).
    """
    with kernel_for_run(kernel) as name:
        return _run_batch(notebook, out, regions, parameters, force, name, progress, failed_dir)


def _run_batch(notebook, out, regions, parameters, force, kernel, progress, failed_dir) -> pd.DataFrame:
    notebook = Path(notebook)
    params = dict(parameters or {})
    wants_out_dir = _check_notebook(notebook, params)
    names = resolve_regions(regions)
    out = Path(out)
    _io.claim_folder(out, BATCH_KIND, force=force, recognise=_is_legacy_batch)
    _io.clean_stale_temporaries(out)  # left by a killed run
    failed_dir = Path(failed_dir) if failed_dir is not None else out
    nb_name = notebook.with_suffix(".ipynb").name
    rows = _previous_rows(out, nb_name)
    run = _RunSpec(notebook=notebook, nb_name=nb_name, out=out, failed_dir=failed_dir, kernel=kernel,
                   params=params, params_json=json.dumps(params, sort_keys=True, ensure_ascii=False, default=str),
                   input_hash=input_hash(notebook, params), wants_out_dir=wants_out_dir)
    _check_region_folders(run, names, rows)
    results = []
    for i, region in enumerate(names, start=1):
        prior = rows.get(region)
        reason = "force" if force else _rerun_reason(run, region, prior)
        if reason is None:
            results.append({**prior, "status": "skipped"})
            if progress:
                print(f"[{i}/{len(names)}] {region}: skipped (completed {prior['started']} with the same parameters "
                      "and input)", flush=True)
            continue
        if progress:
            print(f"[{i}/{len(names)}] {region}: running ({reason}) …", flush=True)
        row = _run_region(run, region)
        rows[region] = row
        _write_runs(out, rows, resolve_regions("all"))
        results.append(row)
        if progress:
            tail = f" — {row['error']}" if row["error"] else ""
            print(f"[{i}/{len(names)}] {region}: {row['status']} ({row['seconds']:.1f} s){tail}", flush=True)
    df = pd.DataFrame(results, columns=RUN_COLUMNS)
    df["seconds"] = pd.to_numeric(df["seconds"], errors="coerce")
    return df


@dataclass(frozen=True)
class _RunSpec:
    """One batch: what every region's run needs."""

    notebook: Path
    nb_name: str
    out: Path
    failed_dir: Path
    kernel: str
    params: dict
    params_json: str
    input_hash: str
    wants_out_dir: bool


def _check_notebook(notebook: Path, params: dict) -> bool:
    """Check the notebook and the parameters before anything runs; returns whether it declares ``out_dir``."""
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} not found")
    if notebook.suffix != ".ipynb":
        raise ValueError(f"{notebook} is not a Jupyter notebook (.ipynb)")
    for name in params:
        if name in _RESERVED:
            raise ValueError(f"parameter {name!r} is set by the batch: {_RESERVED[name]}")
    declared = notebook_parameters(notebook)
    if "region" not in declared:
        raise ValueError(f"{notebook} has no 'region' parameter: add `region = \"Landsplan\"` to its cell "
                         f"tagged 'parameters' (declared there: {sorted(declared) or 'nothing'})")
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"parameters {unknown} are not declared in the 'parameters' cell of {notebook} "
                         f"(declared: {sorted(declared)})")
    return "out_dir" in declared


def _is_legacy_batch(folder: Path) -> bool:
    """A batch folder from before the folder marker: it has a runs.csv with the run columns."""
    try:
        read_runs(folder)
    except (OSError, ValueError, pd.errors.ParserError):
        return False
    return (folder / RUNS_FILE).is_file()


def _previous_rows(out: Path, nb_name: str) -> dict[str, dict]:
    previous = read_runs(out)
    others = {Path(o).name for o in previous["output"] if o} - {nb_name}
    if others:
        raise ValueError(f"{out} holds batch runs of another notebook ({sorted(others)}); use a separate --out "
                         f"for {nb_name}")
    return {r["region"]: {c: r[c] for c in RUN_COLUMNS} for r in previous.to_dict("records")}


def _check_region_folders(run: _RunSpec, names: Sequence[str], rows: Mapping[str, dict]) -> None:
    """A region folder in the way that the batch did not make stops the batch before any region runs."""
    for region in names:
        slug = region_slug(region)
        for folder in (run.out / slug, run.failed_dir / f"{slug}.failed"):
            if folder.exists() and not _owned_region_folder(folder, rows.get(region)):
                raise _io.FolderNotOwnedError(f"{folder} exists and was not made by lumbarstats batch; move it "
                                              "away or choose another --out (nothing was run)")


def _owned_region_folder(folder: Path, prior: dict | None) -> bool:
    if folder.is_dir() and _io.read_marker(folder) is not None:
        return True
    # made by a version before the folder marker: runs.csv names it
    return (folder.is_dir() and prior is not None and bool(prior["output"])
            and prior["output"].split("/")[0] == folder.name)


def _rerun_reason(run: _RunSpec, region: str, prior: dict | None) -> str | None:
    """Why a region runs again (None: it completed with the same parameters and input)."""
    if prior is None:
        return "new"
    if prior["status"] != "completed":
        return f"{prior['status'] or 'not completed'} before"
    if not (run.out / prior["output"]).is_file() or prior["output"] != f"{region_slug(region)}/{run.nb_name}":
        return "output missing"
    if prior["parameters"] != run.params_json:
        return f"parameters changed (were {prior['parameters'] or '{}'})"
    if prior.get("input_hash", "") != run.input_hash:
        return "input changed (register, notebook or lumbarstats version)"
    return None


def _run_region(run: _RunSpec, region: str) -> dict:
    """Run one region in a temporary folder; rename it into place when complete, or keep it as
    ``<slug>.failed`` in ``failed_dir``. Returns the region's row of runs.csv."""
    import papermill as pm

    slug = region_slug(region)
    tmp = _io.staging_dir(run.out / slug, REGION_KIND)
    run_params = {**run.params, "region": region}
    if run.wants_out_dir:
        run_params["out_dir"] = str(tmp.resolve())
    started = _dt.datetime.now().isoformat(timespec="seconds")
    t0 = time.perf_counter()
    error = ""
    try:
        pm.execute_notebook(str(run.notebook), str(tmp / run.nb_name), parameters=run_params,
                            kernel_name=run.kernel, progress_bar=False, log_output=False)
    except Exception as exc:  # noqa: BLE001 - any failure of one region is recorded, the rest go on
        error = _last_line(exc) or type(exc).__name__
    except BaseException:  # KeyboardInterrupt, SystemExit: leave no half-written folder behind
        _io.remove_owned_tree(tmp)
        raise
    seconds = round(time.perf_counter() - t0, 2)
    row = {"region": region, "seconds": seconds, "error": error, "started": started,
           "parameters": run.params_json, "input_hash": run.input_hash}
    if error:
        _replace_region_folder(tmp, run.failed_dir / f"{slug}.failed")
        return {**row, "status": "failed", "output": f"{slug}.failed/{run.nb_name}"}
    _replace_region_folder(tmp, run.out / slug)
    _remove_region_folder(run.failed_dir / f"{slug}.failed")
    return {**row, "status": "completed", "output": f"{slug}/{run.nb_name}"}


def _replace_region_folder(tmp: Path, final: Path) -> None:
    """Move a finished run's folder into place (the previous one of this region goes first)."""
    _remove_region_folder(final)
    _io.write_marker(tmp, REGION_KIND)  # no longer a temporary
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)


def _remove_region_folder(folder: Path) -> None:
    """Remove a region folder the batch made (checked by :func:`_check_region_folders` before the run)."""
    if not folder.exists():
        return
    if _io.read_marker(folder) is None:
        _io.write_marker(folder, REGION_KIND)  # made by a version before the marker (runs.csv names it)
    _io.remove_owned_tree(folder)


def input_hash(notebook: str | Path, parameters: Mapping) -> str:
    """A hash of what a region's run reads besides its parameters: the notebook, the lumbarstats version,
    and the register a ``data_dir`` parameter points to (its content hash, ``ls.Register(...).content_hash``
    where this version has it; otherwise the register files' names, sizes and modification times)."""
    from lumbarstats import __version__

    h = hashlib.sha256()
    h.update(Path(notebook).read_bytes())
    h.update(__version__.encode())
    data_dir = parameters.get("data_dir")
    if isinstance(data_dir, str) and data_dir and Path(data_dir).is_dir():
        h.update(register_hash(Path(data_dir)).encode())
    return h.hexdigest()[:16]


def register_hash(data_dir: Path) -> str:
    """The register's content hash (``ls.Register``), or a hash of its files' names, sizes and mtimes."""
    try:
        from lumbarstats.register import Register
    except ImportError:
        Register = None
    if Register is not None:
        return str(Register(data_dir, validate=False).content_hash)  # the notebook validates it
    h = hashlib.sha256()
    files = (q for q in data_dir.rglob("*") if q.is_file()
             and not any(part.startswith(".") for part in q.relative_to(data_dir).parts))  # caches, markers
    for p in sorted(files):
        st = p.stat()
        h.update(f"{p.relative_to(data_dir).as_posix()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
