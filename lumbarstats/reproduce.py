"""The report pipeline behind ``lumbarstats reproduce`` and ``make reproduce``.

1. Check the register (a missing folder is an error, not a reason to generate one); generate the
   synthetic register only where asked (``synthesize=True`` / ``--synthesize``, or the default path
   ``data/synthetic``); refuse a synthetic register of another scale or seed than requested.
2. Execute the report notebooks with papermill (each executed copy is written under a temporary
   name and renamed when complete): 01 annual and period rates (MR, X-ray), 02 population groups,
   03 patient profiles, 04 intervention evaluation (Region Syddanmark, both modalities), and 05
   time-to-event through the batch runner, once per region and for the whole country.
3. Compare every published cell with the reproduced one (``output/comparison.csv``).
4. Export the report's tables in Word, Excel, HTML and LaTeX from the templates, with disclosure
   control applied (``output/publication/``).
5. Run the disclosure check over the output folder.

A failing step is reported and the others still run; the return value says whether all succeeded.
File safety: the output folder carries the toolkit's marker (a foreign non-empty folder is refused unless
``force``); ``OUT/INCOMPLETE.txt`` is written first and removed only when every step succeeded, so an
interrupted or failed run is visible; logs, partial copies of failed notebooks and the disclosure report
go to the sibling folder ``OUT.logs/``, outside what is published; a killed run's temporaries are removed
by the next run. An output that cannot be written (disk full, read-only) stops the run with one line.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lumbarstats import io as _io

__all__ = ["run", "STEPS", "notebooks_dir", "execute_notebook", "comparison_table", "logs_dir", "DEFAULT_DATA",
           "INCOMPLETE_NAME"]

STEPS = ("annual", "groups", "profiles", "intervention", "time_to_event", "products", "comparison", "export", "report",
         "disclosure")

DEFAULT_DATA = Path("data/synthetic")  # the one place where reproduce generates a register unasked
OUTPUT_KIND, LOGS_KIND = "output", "logs"
INCOMPLETE_NAME = "INCOMPLETE.txt"
STEP_TIMES_NAME = "steps.json"  # in OUT.logs: step, label, status, seconds of the last run
INCOMPLETE_TEXT = ("This output is INCOMPLETE: do not publish it.\n"
                   "lumbarstats reproduce started {started} and has not completed every step: {detail}.\n"
                   "The file is removed when a run completes every step.\n")
# names reproduce writes into OUT (an output folder from before the marker holds only these)
OUTPUT_ENTRIES = {"tables", "figures", "notebooks", "publication", "time_to_event", "comparison.csv", "logs",
                  INCOMPLETE_NAME, "rapport.docx", "rapport.html"}
_FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_FATAL_WORDS = ((errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system"),
                (errno.EDQUOT, "Disk quota exceeded"))

SYNTHETIC_SOURCE = {
    "da": "Syntetisk register (lumbarstats), kalibreret til Benchmarkingenhedens tal (maj 2024); egne beregninger.",
    "en": "Synthetic register (lumbarstats), calibrated to the Benchmarking Unit's figures (May 2024); own calculations.",
}

TEMPLATE_FILES = {  # template name -> long-format CSV under output/tables
    "table1": "table1_mr_annual.csv", "table2": "table2_xray_annual.csv",
    "table5_1": "table5_1_mr_periods.csv", "table5_2": "table5_2_xray_periods.csv",
    "table5_3": "table5_3_mr_groups.csv", "table5_4": "table5_4_xray_groups.csv",
    "table4_1": "table4_1_profiles.csv",
}


def notebooks_dir() -> Path:
    """The report notebooks (``notebooks/`` of the repository, installed as ``lumbarstats.notebooks``)."""
    from importlib import resources

    cand = Path(str(resources.files("lumbarstats.notebooks")))
    if (cand / "01_annual_rates.ipynb").exists():
        return cand
    raise FileNotFoundError(f"report notebooks not found in {cand}; reinstall lumbarstats or pass notebooks=…")


def execute_notebook(notebook: Path, output: Path, parameters: dict, kernel: str,
                     failed_dir: Path | None = None) -> Path:
    """Execute a notebook with papermill into ``output`` atomically (temporary name, then rename).

    A notebook that fails is not an output: its partly executed copy (it shows the failing cell) goes to
    ``failed_dir / <name>.failed.ipynb`` — by default the logs folder beside the output folder
    (:func:`logs_dir` of ``output``'s grandparent), outside what is published.
    """
    import papermill as pm

    output = Path(output)
    failed_dir = Path(failed_dir) if failed_dir is not None else logs_dir(output.parent.parent)
    with _io.atomic_path(output, suffix=".ipynb") as tmp:
        try:
            pm.execute_notebook(str(notebook), str(tmp), parameters=parameters, kernel_name=kernel,
                                progress_bar=False, log_output=False, cwd=str(Path.cwd()))
        except Exception:
            if tmp.exists() and tmp.stat().st_size:
                with contextlib.suppress(OSError):  # the copy is a help; the notebook's error is what counts
                    _io.write_bytes(tmp.read_bytes(), _logs(failed_dir) / (output.stem + ".failed.ipynb"))
            raise
    return output


def comparison_table(out: Path, data: Path) -> pd.DataFrame:
    """Every published cell beside the reproduced one: :func:`lumbarstats.comparison.comparison_table`."""
    from lumbarstats import comparison

    return comparison.comparison_table(out, data)


@dataclass
class _Context:
    """What every step of one reproduce run needs."""

    data: Path
    out: Path
    logs: Path
    nb_dir: Path
    kernel: str
    seed: int | None
    formats: Sequence[str]
    lang: str
    regions_time_to_event: str
    started: str = ""
    results: dict = field(default_factory=dict)  # comparison, exported files, disclosure violations


def run(data, out, *, scale: float | None = None, seed: int | None = None, synthesize: bool | None = None,
        force: bool = False, kernel: str = "lumbarstats", only: Sequence[str] | None = None,
        formats: Sequence[str] = ("docx", "xlsx", "html", "tex"), notebooks: Path | None = None,
        regions_time_to_event: str = "all", lang: str = "da") -> bool:
    """Reproduce the report into ``out``; returns True if every step succeeded.

    data : the register folder. A register is generated only where asked: with ``synthesize=True``, or at the
        default path ``data/synthetic`` (``synthesize=None``); a missing folder elsewhere is an error and
        nothing is created. A synthetic register whose scale or seed (``metadata.json``) differ from the
        requested ``scale`` / ``seed`` is refused (None: any).
    out : the output folder; a non-empty folder that lumbarstats did not make is refused unless ``force``
        (files lumbarstats did not write are never deleted). ``OUT/INCOMPLETE.txt`` is written first and
        removed only when every step succeeded. Logs and partial copies of failed notebooks go to the
        sibling folder ``OUT.logs/`` — outside the publishable output.
    """
    t_start = time.perf_counter()
    data, out = Path(data).resolve(), Path(out).resolve()
    steps = _check_steps(only)
    logs = logs_dir(out)
    _io.check_folder(out, OUTPUT_KIND, force, _is_legacy_output)  # before a (long) generation
    _io.check_folder(logs, LOGS_KIND, force)
    _prepare_register(data, scale=scale, seed=seed, synthesize=synthesize)
    ctx = _Context(data=data, out=out, logs=logs, nb_dir=Path(notebooks) if notebooks else notebooks_dir(),
                   kernel=kernel, seed=seed, formats=formats, lang=lang,
                   regions_time_to_event=regions_time_to_event, started=_start_output(out, force))
    from lumbarstats import synth

    print(synth.summarize(data), flush=True)
    jobs = [j for j in _jobs(ctx) if j[0] in steps]
    from lumbarstats import batch

    with batch.kernel_for_run(kernel) as ctx.kernel:  # no registered kernel: the running interpreter
        failures = _run_jobs(ctx, jobs)
    _finish_output(ctx, failures)
    with contextlib.suppress(OSError):  # the time of every step, for bench/ (not an output)
        _io.write_json({"started": ctx.started, "steps": ctx.results.get("steps", [])},
                       _logs(logs) / STEP_TIMES_NAME)
    _print_summary(ctx, failures, time.perf_counter() - t_start)
    return not failures


def _check_steps(only: Sequence[str] | None) -> list[str]:
    if isinstance(only, str):
        only = [only]
    steps = list(only) if only else list(STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; choose from {list(STEPS)}")
    return steps


def logs_dir(out) -> Path:
    """Where a reproduce run of ``out`` keeps its logs, failed notebooks and the disclosure report:
    the sibling folder ``OUT.logs`` — never inside the publishable output."""
    out = Path(out)
    return out.with_name(out.name + ".logs")


def _is_legacy_output(folder: Path) -> bool:
    """An output folder written by reproduce before the folder marker existed: only names reproduce writes."""
    names = {p.name for p in folder.iterdir()}
    return bool(names) and names <= OUTPUT_ENTRIES and bool(names & {"tables", "notebooks"})


def _prepare_register(data: Path, *, scale: float | None, seed: int | None, synthesize: bool | None) -> None:
    """Generate the synthetic register only where asked; refuse a missing folder elsewhere (a typo) and a
    synthetic register of another scale or seed."""
    from lumbarstats import synth

    if not (data / "population.parquet").exists():
        default = DEFAULT_DATA.resolve()
        if not (synthesize or (synthesize is None and data == default)):
            what = "the folder does not exist" if not data.exists() else "it has no population.parquet"
            raise FileNotFoundError(f"no register in {data} ({what}); check --data, or pass --synthesize to "
                                    "generate the synthetic register there")
        scale, seed = 1.0 if scale is None else scale, 2024 if seed is None else seed
        print(f"no register in {data}: generating the synthetic register (scale {scale}, seed {seed}) …", flush=True)
        synth.generate(data, scale=scale, seed=seed)
        return
    if synth.is_synthetic_register(data):
        _check_synthetic(data, scale, seed)
    _validate_register(data)


def _check_synthetic(data: Path, scale: float | None, seed: int | None) -> None:
    meta = json.loads((data / "metadata.json").read_text(encoding="utf-8"))
    if (_io.read_marker(data) or {}).get("state", "complete") != "complete":
        raise ValueError(f"the synthetic register in {data} is incomplete (an earlier `lumbarstats synth` was "
                         "interrupted); generate it again with `lumbarstats synth --out DATA --force`")
    wrong = [f"{k} {meta.get(k)} (asked: {v})" for k, v in (("scale", scale), ("seed", seed))
             if v is not None and meta.get(k) != v]
    if wrong:
        raise ValueError(f"{data} holds a synthetic register with {' and '.join(wrong)}; use the register's "
                         f"--scale {meta.get('scale')} --seed {meta.get('seed')}, another --data, or regenerate "
                         "it with `lumbarstats synth --out DATA --scale S --seed N --force`")


def _validate_register(data: Path) -> None:
    """Validate the register once before any step (``ls.Register``, where this version has it)."""
    try:
        from lumbarstats.register import Register
    except ImportError:
        return
    with Register(data):  # raises one clear error for an invalid register; a passed validation is remembered
        pass


def _start_output(out: Path, force: bool) -> str:
    """Claim the output folder, remove a killed run's temporaries, and mark the output incomplete first."""
    _io.claim_folder(out, OUTPUT_KIND, force=force, recognise=_is_legacy_output)
    removed = _io.clean_stale_temporaries(out, recursive=True)
    if (out / INCOMPLETE_NAME).exists() or removed:
        print(f"note: an earlier run into {out} did not complete ({len(removed)} temporary file(s) it left removed);"
              " this run writes every output again", flush=True)
    started = _dt.datetime.now().isoformat(timespec="seconds")
    _io.write_text(INCOMPLETE_TEXT.format(started=started, detail="it is still running or was interrupted"),
                   out / INCOMPLETE_NAME)
    for sub in ("tables", "figures", "notebooks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    return started


def _finish_output(ctx: _Context, failures: list) -> None:
    """Remove the incomplete marker only if every step succeeded; otherwise say which failed."""
    marker = ctx.out / INCOMPLETE_NAME
    if not failures:
        marker.unlink(missing_ok=True)
        return
    detail = "these steps failed: " + ", ".join(dict.fromkeys(f[0] for f in failures)) + f" (logs in {ctx.logs})"
    _io.write_text(INCOMPLETE_TEXT.format(started=ctx.started, detail=detail), marker)


def _jobs(ctx: _Context) -> list[tuple[str, str, Callable[[], None]]]:
    """The report's steps in order: (step, label, function)."""
    jobs: list[tuple[str, str, Callable[[], None]]] = []

    def nb(step, name, out_name, params):
        jobs.append((step, out_name, lambda: execute_notebook(
            ctx.nb_dir / name, ctx.out / "notebooks" / out_name,
            {"data_dir": str(ctx.data), "out_dir": str(ctx.out), **params}, ctx.kernel, failed_dir=ctx.logs)))

    for m in ("MR", "XRAY"):
        nb("annual", "01_annual_rates.ipynb", f"01_annual_rates_{m.lower()}.ipynb", {"modality": m})
    for m in ("MR", "XRAY"):
        nb("groups", "02_population_groups.ipynb", f"02_population_groups_{m.lower()}.ipynb",
           {"modality": m, "region": "Landsplan"})
    nb("profiles", "03_patient_profiles.ipynb", "03_patient_profiles.ipynb", {"region": "Landsplan"})
    for m in ("MR", "XRAY"):  # the notebook's own views; the overview of every region is the job below
        nb("intervention", "04_intervention_evaluation.ipynb", f"04_intervention_syddanmark_{m.lower()}.ipynb",
           {"modality": m, "region": "Syddanmark", "overview": False})
    jobs.append(("intervention", "interventions overview (every region x intervention x design)",
                 lambda: _interventions(ctx)))
    jobs.append(("time_to_event", "05_time_to_event (batch, every region)", lambda: _time_to_event(ctx)))
    jobs.append(("products", "figures 4.1-5.2, boxes 4.1/5.1, Bilag 1", lambda: _products(ctx)))
    jobs.append(("comparison", "comparison.csv", lambda: _comparison(ctx)))
    jobs.append(("export", "publication tables", lambda: _export(ctx)))
    jobs.append(("report", "rapport.docx/.html (national and per region)", lambda: _report(ctx)))
    jobs.append(("disclosure", "disclosure check", lambda: _disclosure(ctx)))
    return jobs


def _time_to_event(ctx: _Context) -> None:
    from lumbarstats import batch

    # regions whose parameters and input (register, notebook) are unchanged are not run again
    runs = batch.run_batch(ctx.nb_dir / "05_time_to_event.ipynb", ctx.out / "time_to_event",
                           regions=ctx.regions_time_to_event, parameters={"data_dir": str(ctx.data)},
                           kernel=ctx.kernel, progress=False, failed_dir=ctx.logs / "time_to_event")
    failed = runs[runs["status"] == "failed"]
    if len(failed):
        raise RuntimeError("time-to-event failed for " + ", ".join(
            f"{r.region} ({r.error})" for r in failed.itertuples()))


def _interventions(ctx: _Context) -> None:
    """Every region's interventions (data_dictionary/interventions.csv) with every design: the overview
    table per region and combined, and an event-study figure per region."""
    from lumbarstats import interventions

    interventions.interventions_all_regions(ctx.data, ctx.out, lang=ctx.lang)


def _products(ctx: _Context) -> None:
    """The report's remaining figures and Bilag 1, cut from the protected tables the steps before wrote."""
    from lumbarstats import products

    products.report_products_step(ctx.data, ctx.out, lang=ctx.lang)
    products.bilag1_step(ctx.data, ctx.out, region="all", lang=ctx.lang)


def _report(ctx: _Context) -> None:
    """The whole report as one document (rapport.docx/.html) and one per region (Bilag 1), from the
    protected files of this run only; a failed step shows as a visibly missing product."""
    from lumbarstats import report_document

    steps = ctx.results.get("steps", [])
    failed = [s["label"] for s in steps if s["status"] != "ok"]
    kw = {"lang": ctx.lang, "allow_missing": bool(failed), "steps": steps,
          "incomplete": ("failed: " + ", ".join(failed)) if failed else False}
    written = report_document.write_report(ctx.out, ctx.data, **kw)
    written += report_document.write_region_reports(ctx.out, ctx.data, **kw)
    ctx.results["report"] = written


def _comparison(ctx: _Context) -> None:
    comp = comparison_table(ctx.out, ctx.data)
    _io.write_csv(comp, ctx.out / "comparison.csv")
    ctx.results["comp"] = comp


def _export(ctx: _Context) -> None:
    from lumbarstats import disclosure, tables

    meta = ctx.data / "metadata.json"
    source = ({"da": "syntetisk register (lumbarstats.synth)", "en": "synthetic register (lumbarstats.synth)"}
              if meta.exists() else str(ctx.data))
    # period, unit, method and standard differ between tables: each table states its own (tables.Provenance)
    prov = tables.Provenance(
        data_source=source,
        data_hash=tables.data_hash([meta] if meta.exists() else [ctx.data / "population.parquet"]),
        parameters={"seed": ctx.seed} if meta.exists() and ctx.seed is not None else {})
    exported = ctx.results.setdefault("exported", [])
    for name, fname in TEMPLATE_FILES.items():
        path = ctx.out / "tables" / fname
        if not path.exists():
            continue
        df = pd.read_csv(path, na_values=[disclosure.SUPPRESSED_MARKER])
        exported.extend(tables.export_report_table(name, df, ctx.out / "publication", formats=ctx.formats,
                                                   lang=ctx.lang, provenance=prov,
                                                   source=SYNTHETIC_SOURCE if meta.exists() else None))


def _disclosure(ctx: _Context) -> None:
    from lumbarstats import disclosure

    # the whole output folder, as `lumbarstats check-disclosure OUT` checks it before anything leaves
    v = disclosure.check_directory(ctx.out)
    ctx.results["violations"] = v
    if len(v):
        # outside the output: the report names the offending values and must not be exported
        report = _io.write_text(v.to_string(index=False), _logs(ctx.logs) / "disclosure_violations.txt")
        raise RuntimeError(f"{len(v)} disclosure violation(s) in {ctx.out}; see {report}")


def _logs(logs: Path) -> Path:
    return _io.claim_folder(logs, LOGS_KIND, force=True)


# steps that only read the register and write their own files: they run side by side (each notebook in its
# own kernel process), the time-to-event batch (the longest) first; the steps after them read their files
INDEPENDENT_STEPS = ("time_to_event", "annual", "groups", "profiles", "intervention")


def _run_jobs(ctx: _Context, jobs, workers: int = 2) -> list[tuple[str, str, str]]:
    """Run the jobs (the independent ones ``workers`` at a time); a failing step is logged and the others
    still run. An output that cannot be written (disk full, read-only) stops the run: every later step
    would fail the same way."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm.auto import tqdm

    failures: list[tuple[str, str, str]] = []
    bar = tqdm(total=len(jobs), desc="reproduce", unit="step", dynamic_ncols=True)
    first = sorted((j for j in jobs if j[0] in INDEPENDENT_STEPS), key=lambda j: INDEPENDENT_STEPS.index(j[0]))
    rest = [j for j in jobs if j[0] not in INDEPENDENT_STEPS]
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(_timed, job) for job in first]
            try:
                for fut in as_completed(futures):
                    _record(ctx, bar, failures, *fut.result())
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        for job in rest:
            _record(ctx, bar, failures, *_timed(job))
    finally:
        bar.close()
    return failures


def _timed(job) -> tuple[str, str, BaseException | None, str, float]:
    step, label, fn = job
    t0 = time.perf_counter()
    try:
        fn()
        return step, label, None, "", time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - one failing step must not lose the others
        return step, label, exc, traceback.format_exc(), time.perf_counter() - t0


def _record(ctx: _Context, bar, failures: list, step: str, label: str, exc: BaseException | None, tb: str,
            seconds: float) -> None:
    """Note one finished step (in the main thread); raise at once for an output that cannot be written."""
    from tqdm.auto import tqdm

    status = "ok"
    if exc is not None:
        fatal = _output_error(exc)
        if fatal is not None:
            with contextlib.suppress(OSError):
                _finish_output(ctx, [(step, label, str(fatal))])
            raise fatal from None
        status = "FAILED"
        failures.append((step, label, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]))
        _write_log(ctx.logs, label, tb)
    ctx.results.setdefault("steps", []).append({"step": step, "label": label, "status": status,
                                                "seconds": round(seconds, 2)})
    bar.update(1)
    bar.set_postfix_str(label)
    tqdm.write(f"  {status:<6} {label} ({seconds:.1f} s)")


def _output_error(exc: BaseException) -> OSError | None:
    """The output error behind a failed step (also one raised inside a notebook's kernel), or None."""
    if isinstance(exc, _io.OutputError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _FATAL_ERRNOS:
        return _io.as_output_error(exc, exc.filename or "the output")
    text = str(exc)  # a notebook's error arrives as text (papermill)
    for errno_, words in _FATAL_WORDS:
        if words in text:
            return _io.as_output_error(OSError(errno_, words), "the output (in a notebook)")
    return None


def _write_log(logs: Path, label: str, text: str) -> None:
    try:
        _io.write_text(text, _logs(logs) / f"{label.split()[0]}.log")
    except OSError as exc:  # the log is a help, not a result: say so and go on
        print(f"  (could not write the log of {label}: {_io.describe_os_error(exc)})", flush=True)


def _print_summary(ctx: _Context, failures: list, seconds: float) -> None:
    out = ctx.out
    print("\nSummary")
    print(f"  register:     {ctx.data}")
    print(f"  output:       {out}")
    # everything written, the time-to-event runs (out/time_to_event/<region>/...) included
    written = [p for p in out.rglob("*") if p.is_file() and "publication" not in p.relative_to(out).parts]
    tables_n = sum(p.suffix == ".csv" and p.parent.name == "tables" for p in written)
    pngs = sum(p.suffix == ".png" and p.parent.name == "figures" for p in written)
    svgs = sum(p.suffix == ".svg" and p.parent.name == "figures" for p in written)
    notebooks_n = sum(p.suffix == ".ipynb" for p in written)
    print(f"  tables (CSV): {tables_n} in {out / 'tables'} and {out / 'time_to_event'}/<region>/tables")
    print(f"  figures:      {pngs} PNG (300 dpi) + {svgs} SVG in {out / 'figures'} and "
          f"{out / 'time_to_event'}/<region>/figures")
    print(f"  notebooks:    {notebooks_n} executed in {out / 'notebooks'} and {out / 'time_to_event'}/<region>")
    exported = ctx.results.get("exported")
    if exported:
        print(f"  publication:  {len(exported)} files ({', '.join(ctx.formats)}) in {out / 'publication'}")
    if (out / "comparison.csv").exists():
        print(f"  comparison:   {out / 'comparison.csv'}")
        from lumbarstats import comparison

        for line in comparison.summary_lines(ctx.results.get("comp", pd.DataFrame())):
            print(line)
    if ctx.results.get("report"):
        docs = sorted({p.name for p in ctx.results["report"]})
        print(f"  report:       {out / 'rapport.docx'}, {out / 'rapport.html'} and {len(docs) - 2} region files")
    if "violations" in ctx.results:
        print(f"  disclosure:   {len(ctx.results['violations'])} violation(s)")
    print(f"  time:         {seconds:.0f} s")
    for step, label, msg in failures:
        print(f"  FAILED {step}: {label}: {msg}")
    if failures:
        print(f"  status:       INCOMPLETE — see {out / INCOMPLETE_NAME} and the logs in {ctx.logs}")
    else:
        print("  status:       complete")
