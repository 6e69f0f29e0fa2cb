"""Command-line interface: ``lumbarstats …`` or ``python -m lumbarstats …``.

Thin by design: each command parses its arguments and calls one function of the package, so that
everything the CLI does is also available from Python (and on Windows, without make or a shell).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="lumbarstats: lumbar spine imaging in the Danish registers (synthetic register, report reproduction, batch runs).",
)

DEFAULT_KERNEL = "lumbarstats"

# errors that describe bad input, a missing file or an output that cannot be written (disk full, read-only,
# permission denied, a file where a folder should be): one line for the user, exit code 2, no traceback
USER_ERRORS = (ValueError, KeyError, LookupError, OSError)


def _fail(exc: BaseException) -> typer.Exit:
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | FileExistsError):
        from lumbarstats import io

        message = io.describe_os_error(exc)
    else:
        message = str(exc)
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Output register directory.")] = Path("data/synthetic"),
    scale: Annotated[float, typer.Option(help="Fraction of the Danish adult population (1.0 = whole country).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical files.")] = 2024,
    raw_layout: Annotated[bool, typer.Option("--raw-layout", help="Write the registers' raw layouts (BEF, UDDA, AKM, LPR2/3, …) instead of the canonical tables.")] = False,
    force: Annotated[bool, typer.Option(help="Regenerate even if OUT already holds this register, and write into a non-empty folder lumbarstats did not make (its other files are never deleted).")] = False,
    layout: Annotated[str, typer.Option(help="auto (one file per table below scale 0.1, else a folder of parts per table), file or folder.")] = "auto",
    cohort_band: Annotated[int, typer.Option(help="Birth years per generated partition (a multiple of 5); memory does not depend on the scale.")] = 10,
    effects: Annotated[Path | None, typer.Option(help="JSON file: a list of intervention effects built into the register, e.g. [{\"region\": 1081, \"modality\": \"MR\", \"start\": \"2023-01-01\", \"effect\": 0.9}] (recorded in metadata.json).")] = None,
) -> None:
    """Generate the calibrated synthetic register."""
    from lumbarstats import synth as synth_mod

    try:
        if raw_layout:
            from lumbarstats.adapters import raw_layout as raw_mod

            path = raw_mod.generate_raw(out, scale=scale, seed=seed, force=force)
        else:
            import json

            built_in = json.loads(effects.read_text(encoding="utf-8")) if effects is not None else None
            path = synth_mod.generate(out, scale=scale, seed=seed, force=force, layout=layout,
                                      cohort_band=cohort_band, intervention_effects=built_in)
    except USER_ERRORS as exc:
        raise _fail(exc) from None
    typer.echo(f"synthetic register written to {path}")


@app.command()
def summary(data: Annotated[Path, typer.Option(help="Register directory.")] = Path("data/synthetic")) -> None:
    """Print a summary of a register directory (rows, years, counts per modality)."""
    from lumbarstats import synth as synth_mod

    try:
        typer.echo(synth_mod.summarize(data))
    except USER_ERRORS as exc:
        raise _fail(exc) from None


@app.command()
def reproduce(
    data: Annotated[Path, typer.Option(help="Register directory (canonical tables).")] = Path("data/synthetic"),
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("output"),
    scale: Annotated[float | None, typer.Option(help="Scale of the synthetic register: used to generate it, and a synthetic register of another scale is refused (default: any; 1.0 when generating).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the synthetic register, as --scale (default: any; 2024 when generating).")] = None,
    synthesize: Annotated[bool | None, typer.Option("--synthesize/--no-synthesize", help="Generate the synthetic register in DATA if it holds none (default: only at data/synthetic; elsewhere a missing DATA is an error).")] = None,
    force: Annotated[bool, typer.Option(help="Write into a non-empty OUT that lumbarstats did not make (its other files are never deleted).")] = False,
    kernel: Annotated[str, typer.Option(help="Jupyter kernel name for the notebooks.")] = DEFAULT_KERNEL,
    only: Annotated[list[str] | None, typer.Option(help="Run only these report steps (repeatable).")] = None,
    formats: Annotated[str, typer.Option(help="Table export formats, comma separated.")] = "docx,xlsx,html,tex",
) -> None:
    """Reproduce the report: tables, figures, executed notebooks and a comparison with the published figures.

    OUT/INCOMPLETE.txt marks an output that is not complete (a run that failed or was interrupted); logs and
    failed notebooks go to OUT.logs/, outside the output."""
    from lumbarstats import reproduce as reproduce_mod

    try:
        ok = reproduce_mod.run(data, out, scale=scale, seed=seed, synthesize=synthesize, force=force,
                               kernel=kernel, only=only,
                               formats=[f.strip() for f in formats.split(",") if f.strip()])
    except USER_ERRORS as exc:
        raise _fail(exc) from None
    raise typer.Exit(code=0 if ok else 1)


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="A reproduce output folder (its protected tables and figures).")] = Path("output"),
    data: Annotated[Path, typer.Option(help="The register the output was made from (cover: its hash).")] = Path("data/synthetic"),
    region: Annotated[str | None, typer.Option(help="One region's own report (its Bilag 1), or 'all' for the five region reports; default: the whole report.")] = None,
    lang: Annotated[str, typer.Option(help="da (default) or en.")] = "da",
    allow_missing: Annotated[bool, typer.Option(help="Write the document with a visible note where a product is missing, instead of stopping.")] = False,
) -> None:
    """Write the report as one document: OUT/rapport.docx and OUT/rapport.html (a region: rapport_<region>.*)."""
    from lumbarstats import report_document

    try:
        if region is not None and region.strip().lower() == "all":
            paths = report_document.write_region_reports(out, data, lang=lang, allow_missing=allow_missing)
        else:
            paths = report_document.write_report(out, data, region=region, lang=lang, allow_missing=allow_missing)
    except (*USER_ERRORS, report_document.ReportDisclosureError) as exc:
        raise _fail(exc) from None
    for p in paths:
        typer.echo(str(p))


@app.command(context_settings={"allow_extra_args": True})
def batch(
    ctx: typer.Context,
    notebook: Annotated[Path, typer.Argument(help="Parameterized notebook (a cell tagged 'parameters').")],
    out: Annotated[Path, typer.Option(help="Output directory; DIR/runs.csv lists the runs.")],
    regions: Annotated[str, typer.Option(help="'all' (five regions and the whole country) or names separated by commas.")] = "all",
    parameter: Annotated[list[str] | None, typer.Option("-p", "--parameter", help="-p NAME VALUE or -p NAME=VALUE (repeatable), as papermill's -p.")] = None,
    force: Annotated[bool, typer.Option(help="Re-run every region (default: only failed, missing or changed ones), and write into a folder lumbarstats did not make.")] = False,
    kernel: Annotated[str, typer.Option(help="Jupyter kernel name.")] = DEFAULT_KERNEL,
) -> None:
    """Run a parameterized notebook once per region (and the whole country) with papermill."""
    from lumbarstats import batch as batch_mod

    try:
        params = batch_mod.parse_parameters(_pair_parameters(parameter or [], list(ctx.args)))
        runs = batch_mod.run_batch(notebook, out, regions=regions, parameters=params, force=force, kernel=kernel)
    except USER_ERRORS as exc:
        raise _fail(exc) from None
    failed = runs[runs["status"] == "failed"]
    typer.echo(runs.to_string(index=False))
    raise typer.Exit(code=1 if len(failed) else 0)


def _pair_parameters(items: list[str], extra: list[str]) -> list[str]:
    """``-p NAME VALUE``: click gives NAME to the option and VALUE as an extra argument, in order."""
    out = []
    extra = list(extra)
    for item in items:
        if "=" in item or " " in item:
            out.append(item)
        elif extra:
            out.append(f"{item}={extra.pop(0)}")
        else:
            raise ValueError(f"parameter {item!r} has no value: use -p {item} VALUE or -p {item}=VALUE")
    if extra:
        raise ValueError(f"unexpected argument(s) {extra}; notebook parameters go as -p NAME VALUE")
    return out


@app.command("check-disclosure")
def check_disclosure(
    directory: Annotated[Path, typer.Argument(help="Output folder to scan.")],
    min_cell: Annotated[int, typer.Option(help="Smallest publishable number of persons (never below 3).")] = 5,
) -> None:
    """Scan an output folder for tables that break disclosure rules; exit code 1 if any."""
    from lumbarstats import disclosure

    try:
        violations = disclosure.check_directory(directory, min_cell=min_cell)
    except USER_ERRORS as exc:
        raise _fail(exc) from None
    if len(violations):
        typer.echo(violations.to_string(index=False))
        typer.echo(f"{len(violations)} disclosure violation(s) in {directory}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"no disclosure violations in {directory}")


@app.command()
def ingest(
    raw: Annotated[Path, typer.Option(help="Folder with raw register extracts.")],
    out: Annotated[Path, typer.Option(help="Output register directory (canonical Parquet).")],
    config: Annotated[Path | None, typer.Option(help="Ingest configuration (YAML); default: the layout of 'synth --raw-layout'.")] = None,
) -> None:
    """Turn raw register extracts (BEF, UDDA, AKM, LPR2/3, …) into the canonical tables."""
    from lumbarstats import adapters, io

    try:
        # the canonical files replace files of the same name in OUT: never in a folder lumbarstats did not make
        io.check_folder(out, "register", recognise=_made_by_lumbarstats)
        report = adapters.ingest(raw, out, config=config)
    except USER_ERRORS as exc:
        raise _fail(exc) from None
    typer.echo(report.summary_text() if hasattr(report, "summary_text") else str(report))


def _made_by_lumbarstats(folder: Path) -> bool:
    """A register folder with lumbarstats' metadata.json (ingest or synth, also from before the marker)."""
    import json

    try:
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and str(meta.get("generator", "")).startswith("lumbarstats")


@app.command("install-kernel")
def install_kernel(
    name: Annotated[str, typer.Option(help="Kernel name.")] = DEFAULT_KERNEL,
    user: Annotated[bool, typer.Option(help="Install for the user instead of the current environment.")] = False,
) -> None:
    """Register this environment as a named Jupyter kernel (used by batch runs and reproduce)."""
    from lumbarstats import batch as batch_mod

    try:
        path = batch_mod.install_kernel(name, user=user)
    except USER_ERRORS as exc:
        raise _fail(exc) from None
    typer.echo(f"kernel {name!r} installed at {path}")


def main(argv: list[str] | None = None) -> None:
    app(args=argv if argv is not None else sys.argv[1:], prog_name="lumbarstats")


if __name__ == "__main__":
    main()
