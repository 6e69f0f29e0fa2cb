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

    DIR/runs.csv                     region, status, seconds, error, output, started, parameters
                                     (one row per region; parameters = the -p values as JSON)
    DIR/<region_slug>/<stem>.ipynb   the executed notebook of a completed run
    DIR/<region_slug>/...            the tables the notebook wrote into its out_dir
    DIR/<region_slug>.failed/        the executed notebook (with the error) of the last failed run

Fault tolerance
    * A failing region is recorded (status ``failed``, ``error`` = the exception's last line, e.g.
      ``ValueError: no examinations in Sjælland``) and the other regions still run.
    * ``runs.csv`` is rewritten atomically (temporary file + ``os.replace``) after every region, so a
      crash or a killed session loses at most the region that was running.
    * Every region runs in ``DIR/.tmp-<region_slug>/`` (that folder is the injected ``out_dir``), and the
      folder is renamed to ``DIR/<region_slug>/`` only when the run completed; a half-written folder is
      never mistaken for a result. A notebook must therefore not store absolute paths to its outputs.
    * A re-run skips every region whose ``runs.csv`` row says ``completed`` and whose executed notebook
      still exists (reported as ``skipped``; its row in ``runs.csv`` stays ``completed``), unless
      ``force=True``. Failed and missing regions run again. A skipped region whose recorded parameters
      differ from the current ones is named in a ``UserWarning`` (its tables come from the old
      parameters: use ``force`` or another DIR).
    * One batch writes to one DIR at a time; DIR holds the runs of one notebook (a second notebook gets
      its own DIR).

Parameters given on the command line are YAML scalars, as papermill's ``-y``: ``year=2022`` is an
int, ``alpha=0.05`` a float, ``pooled=true`` a bool, ``years=[2019, 2022]`` a list, ``NAME=`` None.
Anything that YAML would read as a mapping, block list or date stays the literal string
(``title=Rate: MR`` is the string ``"Rate: MR"``, ``start=2020-03-11`` the string ``"2020-03-11"``).

The kernel is not installed automatically: a missing kernel stops the batch before any region runs,
with a message saying to run ``python -m lumbarstats install-kernel`` (installing silently could
register an interpreter other than the one the user means to use).

Relative paths inside the notebook resolve against the current working directory of the batch
process (papermill starts the kernel there).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import sys
import time
import unicodedata
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

RUN_COLUMNS = ["region", "status", "seconds", "error", "output", "started", "parameters"]
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
    comma-separated string or a list of names, full labels or DST codes (1081–1085). Raises ValueError
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
                chosen = [dd.region_names()[dd.region_code(item)]]
            except ValueError:
                raise ValueError(f"unknown region {item!r}; use 'all' or any of {names + [country]} "
                                 f"(or codes {list(dd.region_names())})") from None
        out.extend(c for c in chosen if c not in out)
    return out


# -- kernel -------------------------------------------------------------------------------------------
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
    # batch runs start many kernels: keep the kernel application's own start-up warnings (e.g. ipykernel's
    # note that local TCP transport is unencrypted) out of the run log; errors still show
    spec_file = path / "kernel.json"
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    if "--IPKernelApp.log_level=ERROR" not in spec["argv"]:
        spec["argv"].append("--IPKernelApp.log_level=ERROR")
        spec_file.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return path


# -- runs.csv -----------------------------------------------------------------------------------------
def read_runs(out: str | Path) -> pd.DataFrame:
    """The runs recorded in ``out/runs.csv`` (empty frame with the run columns if there are none)."""
    path = Path(out) / RUNS_FILE
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=float if c == "seconds" else object) for c in RUN_COLUMNS})
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    if "parameters" not in df.columns:  # optional: recorded since the parameters column was added
        df["parameters"] = ""
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
    tmp = out / f".{RUNS_FILE}.tmp"
    df.to_csv(tmp, index=False, encoding="utf-8")
    os.replace(tmp, out / RUNS_FILE)


def _last_line(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return f"{exc.ename}: {exc.evalue}".strip()
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = lines[-1] if lines else ""
    name = type(exc).__name__
    return f"{name}: {msg}" if msg and not msg.startswith(name) else (msg or name)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


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
) -> pd.DataFrame:
    """Run ``notebook`` once per region with papermill; one failing region does not stop the others.

    Parameters
    ----------
    notebook : parameterized notebook with a ``parameters`` cell that defines ``region``.
    out : output folder; ``out/runs.csv`` records every run, ``out/<region_slug>/`` holds the executed
        notebook and the tables it wrote (injected as ``out_dir`` when the notebook defines that parameter).
    regions : ``"all"`` (five regions + ``Landsplan``), ``"Syddanmark,Nordjylland"`` or a list.
    parameters : further notebook parameters (see :func:`parse_parameters`).
    force : re-run regions that already completed (default: skip them).
    kernel : Jupyter kernel name (see :func:`install_kernel`).
    progress : print one line per region.

    Returns a DataFrame with one row per requested region and columns ``region, status, seconds, error,
    output, started, parameters``: status is ``completed``, ``failed`` or ``skipped`` (completed earlier); ``output`` is
    the executed notebook's path relative to ``out`` (POSIX separators); ``started`` is the local start
    time of the run (ISO 8601); ``parameters`` the run's parameters as JSON. The caller decides the exit code (the CLI exits 1 if any failed).
    """
    import papermill as pm

    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} not found")
    if notebook.suffix != ".ipynb":
        raise ValueError(f"{notebook} is not a Jupyter notebook (.ipynb)")
    params = dict(parameters or {})
    for name in params:
        if name in _RESERVED:
            raise ValueError(f"parameter {name!r} is set by the batch: {_RESERVED[name]}")
    declared = notebook_parameters(notebook)
    if "region" not in declared:
        raise ValueError(f"{notebook} has no 'region' parameter: add `region = \"Landsplan\"` to its cell "
                         f"tagged 'parameters' (declared there: {sorted(declared) or 'nothing'})")
    wants_out_dir = "out_dir" in declared
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"parameters {unknown} are not declared in the 'parameters' cell of {notebook} "
                         f"(declared: {sorted(declared)})")
    names = resolve_regions(regions)
    require_kernel(kernel)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    previous = read_runs(out)
    nb_name = notebook.with_suffix(".ipynb").name
    others = {Path(o).name for o in previous["output"] if o} - {nb_name}
    if others:
        raise ValueError(f"{out} holds batch runs of another notebook ({sorted(others)}); use a separate --out "
                         f"for {nb_name}")
    rows: dict[str, dict] = {r["region"]: {c: r[c] for c in RUN_COLUMNS} for r in previous.to_dict("records")}
    order = resolve_regions("all")
    params_json = json.dumps(params, sort_keys=True, ensure_ascii=False, default=str)
    stale: list[str] = []

    results = []
    for i, region in enumerate(names, start=1):
        slug = region_slug(region)
        final = out / slug
        output_rel = f"{slug}/{nb_name}"
        prior = rows.get(region)
        if (not force and prior is not None and prior["status"] == "completed"
                and prior["output"] == output_rel and (out / output_rel).is_file()):
            results.append({**prior, "status": "skipped"})
            changed = prior["parameters"] != params_json
            if changed:
                stale.append(f"{region} ({prior['parameters'] or '{}'})")
            if progress:
                note = f", with other parameters {prior['parameters'] or '{}'}" if changed else ""
                print(f"[{i}/{len(names)}] {region}: skipped (completed {prior['started']}{note}; force to re-run)",
                      flush=True)
            continue

        tmp = out / f".tmp-{slug}"
        _remove(tmp)
        tmp.mkdir()
        run_params = {**params, "region": region}
        if wants_out_dir:
            run_params["out_dir"] = str(tmp.resolve())
        started = _dt.datetime.now().isoformat(timespec="seconds")
        if progress:
            print(f"[{i}/{len(names)}] {region}: running …", flush=True)
        t0 = time.perf_counter()
        error = ""
        try:
            pm.execute_notebook(str(notebook), str(tmp / nb_name), parameters=run_params, kernel_name=kernel,
                                progress_bar=False, log_output=False)
        except Exception as exc:  # noqa: BLE001 - any failure of one region is recorded, the rest go on
            error = _last_line(exc) or type(exc).__name__
        except BaseException:  # KeyboardInterrupt, SystemExit: leave no half-written folder behind
            _remove(tmp)
            raise
        seconds = round(time.perf_counter() - t0, 2)

        if error:
            failed = out / f"{slug}.failed"
            _remove(failed)
            os.replace(tmp, failed)
            row = {"region": region, "status": "failed", "seconds": seconds, "error": error,
                   "output": f"{slug}.failed/{nb_name}", "started": started, "parameters": params_json}
        else:
            old = out / f".old-{slug}"
            _remove(old)
            if final.exists():
                os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
            _remove(out / f"{slug}.failed")
            row = {"region": region, "status": "completed", "seconds": seconds, "error": "",
                   "output": output_rel, "started": started, "parameters": params_json}
        rows[region] = row
        _write_runs(out, rows, order)
        results.append(row)
        if progress:
            tail = f" — {error}" if error else ""
            print(f"[{i}/{len(names)}] {region}: {row['status']} ({seconds:.1f} s){tail}", flush=True)

    if stale:
        warnings.warn(f"skipped regions completed earlier with other parameters than {params_json}: "
                      f"{'; '.join(stale)}; their outputs in {out} are from those runs (use force=True / --force "
                      "to re-run them, or another output folder)", UserWarning, stacklevel=2)
    df = pd.DataFrame(results, columns=RUN_COLUMNS)
    df["seconds"] = pd.to_numeric(df["seconds"], errors="coerce")
    return df
