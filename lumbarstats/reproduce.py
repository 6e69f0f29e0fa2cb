"""The report pipeline behind ``lumbarstats reproduce`` and ``make reproduce``.

1. Generate the synthetic register if the data folder holds none.
2. Execute the report notebooks with papermill (each executed copy is written under a temporary
   name and renamed when complete): 01 annual and period rates (MR, X-ray), 02 population groups,
   03 patient profiles, 04 intervention evaluation (Region Syddanmark, both modalities), and 05
   time-to-event through the batch runner, once per region and for the whole country.
3. Compare every published cell with the reproduced one (``output/comparison.csv``).
4. Export the report's tables in Word, Excel, HTML and LaTeX from the templates, with disclosure
   control applied (``output/publication/``).
5. Run the disclosure check over the output folder.

A failing step is reported and the others still run; the return value says whether all succeeded.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lumbarstats import io as _io

__all__ = ["run", "STEPS", "notebooks_dir", "execute_notebook", "comparison_table"]

STEPS = ("annual", "groups", "profiles", "intervention", "time_to_event", "comparison", "export", "disclosure")

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


def execute_notebook(notebook: Path, output: Path, parameters: dict, kernel: str) -> Path:
    """Execute a notebook with papermill into ``output`` atomically (temporary name, then rename)."""
    import shutil

    import papermill as pm

    with _io.atomic_path(output, suffix=".ipynb") as tmp:
        try:
            pm.execute_notebook(str(notebook), str(tmp), parameters=parameters, kernel_name=kernel,
                                progress_bar=False, log_output=False, cwd=str(Path.cwd()))
        except Exception:
            # keep the partly executed notebook (it shows the failing cell) beside the log, not as output
            if tmp.exists() and tmp.stat().st_size:
                failed = output.parent.parent / "logs" / (output.stem + ".failed.ipynb")
                failed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(tmp, failed)
            raise
    return output


def _ensure_register(data: Path, scale: float, seed: int) -> None:
    from lumbarstats import synth

    if (data / "population.parquet").exists():
        return
    print(f"no register in {data}: generating the synthetic register (scale {scale}, seed {seed}) …", flush=True)
    synth.generate(data, scale=scale, seed=seed)


def _register_scale(data: Path) -> float:
    meta = data / "metadata.json"
    if meta.exists():
        return float(json.loads(meta.read_text(encoding="utf-8")).get("scale", 1.0))
    return 1.0


def comparison_table(out: Path, data: Path) -> pd.DataFrame:
    """Every published cell beside the reproduced one: table, modality, region, cell, measure,
    published, reproduced, difference (plus interval where there is one)."""
    from lumbarstats import disclosure, groups, rates

    def read(path):  # suppressed cells (the marker) compare as missing
        return pd.read_csv(path, na_values=[disclosure.SUPPRESSED_MARKER])

    tables = out / "tables"
    parts = []
    annual = [read(tables / f).assign(modality=m) for m, f in rates.ANNUAL_FILES.items() if (tables / f).exists()]
    if annual:
        parts.append(rates.compare_annual(pd.concat(annual)))
    per = [read(tables / f).assign(modality=m) for m, f in rates.PERIOD_FILES.items() if (tables / f).exists()]
    if per:
        p = pd.concat(per)
        p["is_compare"] = p["period"] == "2021-2023"
        parts.append(rates.compare_periods(p))
    grp = [read(tables / f) for f in ("table5_3_mr_groups.csv", "table5_4_xray_groups.csv")
           if (tables / f).exists()]
    if grp:
        c = groups.compare_with_reference(pd.concat(grp), kind="groups")
        parts.append(_normalize(c, "table5_3_5_4"))
    if (tables / "table4_1_profiles.csv").exists():
        c = groups.compare_with_reference(read(tables / "table4_1_profiles.csv"), kind="profiles")
        parts.append(_normalize(c, "table4_1"))
    if (tables / "persons_vs_exams.csv").exists():
        c = groups.compare_with_reference(read(tables / "persons_vs_exams.csv"), kind="national",
                                          scale=_register_scale(data))
        parts.append(_normalize(c, "national_figures"))
    if not parts:
        return pd.DataFrame()
    cols = ["table", "modality", "region", "cell", "measure", "published", "reproduced", "difference"]
    res = pd.concat(parts, ignore_index=True)
    extra = [c for c in res.columns if c not in cols]
    return res[[c for c in cols if c in res.columns] + extra]


def _normalize(c: pd.DataFrame, table: str) -> pd.DataFrame:
    c = c.copy()
    c.insert(0, "table", table)
    rename = {"published_value": "published", "reproduced_value": "reproduced", "reference": "published",
              "published_share": "published", "reproduced_share": "reproduced",
              "value": "reproduced"}
    c = c.rename(columns={k: v for k, v in rename.items() if k in c.columns and v not in c.columns})
    if "cell" not in c.columns:
        keys = [k for k in ("variable", "group", "figure", "rank", "period") if k in c.columns]
        c["cell"] = c[keys].astype(str).agg(" | ".join, axis=1) if keys else ""
    if "difference" not in c.columns and {"published", "reproduced"} <= set(c.columns):
        c["difference"] = c["reproduced"] - c["published"]
    return c


def _summary_lines(comp: pd.DataFrame) -> list[str]:
    lines = []
    if comp.empty:
        return lines
    for table, g in comp.groupby("table", sort=False):
        rel = "relative_difference_pct" in g and g["relative_difference_pct"].notna().any()
        d = pd.to_numeric(g["relative_difference_pct" if rel else "difference"], errors="coerce").abs()
        unit = " %" if rel else ""
        if d.notna().any():
            lines.append(f"  {table:<18} {len(g):>4} cells  mean |diff| {d.mean():6.2f}{unit}  "
                         f"max |diff| {d.max():6.2f}{unit}")
    return lines


def run(data, out, *, scale: float = 1.0, seed: int = 2024, kernel: str = "lumbarstats",
        only: Sequence[str] | None = None, formats: Sequence[str] = ("docx", "xlsx", "html", "tex"),
        notebooks: Path | None = None, regions_time_to_event: str = "all", lang: str = "da") -> bool:
    """Reproduce the report into ``out``; returns True if every step succeeded."""
    from tqdm.auto import tqdm

    data, out = Path(data).resolve(), Path(out).resolve()
    steps = list(only) if only else list(STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; choose from {list(STEPS)}")
    t_start = time.perf_counter()
    _ensure_register(data, scale, seed)
    from lumbarstats import synth

    print(synth.summarize(data), flush=True)
    nb_dir = Path(notebooks) if notebooks else notebooks_dir()
    for sub in ("tables", "figures", "notebooks"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    jobs: list[tuple[str, str, callable]] = []

    def nb(step, name, out_name, params):
        def _run():
            execute_notebook(nb_dir / name, out / "notebooks" / out_name,
                             {"data_dir": str(data), "out_dir": str(out), **params}, kernel)
        jobs.append((step, out_name, _run))

    for m in ("MR", "XRAY"):
        nb("annual", "01_annual_rates.ipynb", f"01_annual_rates_{m.lower()}.ipynb", {"modality": m})
    for m in ("MR", "XRAY"):
        nb("groups", "02_population_groups.ipynb", f"02_population_groups_{m.lower()}.ipynb",
           {"modality": m, "region": "Landsplan"})
    nb("profiles", "03_patient_profiles.ipynb", "03_patient_profiles.ipynb", {"region": "Landsplan"})
    for m in ("MR", "XRAY"):
        nb("intervention", "04_intervention_evaluation.ipynb", f"04_intervention_syddanmark_{m.lower()}.ipynb",
           {"modality": m, "region": "Syddanmark"})

    def _tte():
        from lumbarstats import batch

        runs = batch.run_batch(nb_dir / "05_time_to_event.ipynb", out / "time_to_event",
                               regions=regions_time_to_event, parameters={"data_dir": str(data)}, kernel=kernel,
                               force=True,  # reproduce recomputes everything: the register may have changed
                               progress=False)
        failed = runs[runs["status"] == "failed"]
        if len(failed):
            raise RuntimeError("time-to-event failed for " + ", ".join(
                f"{r.region} ({r.error})" for r in failed.itertuples()))
    jobs.append(("time_to_event", "05_time_to_event (batch, every region)", _tte))

    comp_holder: dict = {}

    def _comparison():
        comp = comparison_table(out, data)
        _io.write_csv(comp, out / "comparison.csv")
        comp_holder["comp"] = comp
    jobs.append(("comparison", "comparison.csv", _comparison))

    exported: list[Path] = []

    def _export():
        from lumbarstats import disclosure, tables

        meta = data / "metadata.json"
        source = "synthetic register (lumbarstats.synth)" if meta.exists() else str(data)
        prov = tables.Provenance(
            data_source=source, data_hash=tables.data_hash([meta] if meta.exists() else [data / "population.parquet"]),
            period="2014-2023", standard="Danish adult population pooled 2014-2023, sex x age band (register)",
            method="direct standardization, gamma intervals (Fay & Feuer 1997)",
            parameters={"seed": seed} if meta.exists() else {})
        for name, fname in TEMPLATE_FILES.items():
            path = out / "tables" / fname
            if not path.exists():
                continue
            df = pd.read_csv(path, na_values=[disclosure.SUPPRESSED_MARKER])
            exported.extend(tables.export_report_table(name, df, out / "publication", formats=formats, lang=lang,
                                                       provenance=prov, source=SYNTHETIC_SOURCE if meta.exists()
                                                       else None))
    jobs.append(("export", "publication tables", _export))

    violations_holder: dict = {}

    def _disclosure():
        from lumbarstats import disclosure

        # the whole output folder, as `lumbarstats check-disclosure OUT` checks it before anything leaves
        v = disclosure.check_directory(out)
        violations_holder["v"] = v
        report = out / "logs" / "disclosure_violations.txt"
        if len(v):
            # not a CSV in the output: the report names the offending values and must not be exported
            report.parent.mkdir(exist_ok=True)
            report.write_text(v.to_string(index=False), encoding="utf-8")
            raise RuntimeError(f"{len(v)} disclosure violation(s) in {out}; see {report}")
    jobs.append(("disclosure", "disclosure check", _disclosure))

    jobs = [j for j in jobs if j[0] in steps]
    failures = []
    bar = tqdm(jobs, desc="reproduce", unit="step", dynamic_ncols=True)
    for step, label, fn in bar:
        bar.set_postfix_str(label)
        t0 = time.perf_counter()
        try:
            fn()
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - one failing step must not lose the others
            status = "FAILED"
            failures.append((step, label, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]))
            (out / "logs").mkdir(exist_ok=True)
            (out / "logs" / f"{label.split()[0]}.log").write_text(traceback.format_exc(), encoding="utf-8")
        tqdm.write(f"  {status:<6} {label} ({time.perf_counter() - t0:.1f} s)")

    print("\nSummary")
    print(f"  register:     {data}")
    print(f"  output:       {out}")
    n_tables = len(list((out / "tables").glob("*.csv")))
    n_fig = len(list((out / "figures").glob("*.png")))
    print(f"  tables (CSV): {n_tables} in {out / 'tables'}")
    print(f"  figures:      {n_fig} in {out / 'figures'}")
    print(f"  notebooks:    {len(list((out / 'notebooks').glob('*.ipynb')))} executed in {out / 'notebooks'}")
    if exported:
        print(f"  publication:  {len(exported)} files ({', '.join(formats)}) in {out / 'publication'}")
    if (out / "comparison.csv").exists():
        print(f"  comparison:   {out / 'comparison.csv'}")
        for line in _summary_lines(comp_holder.get("comp", pd.DataFrame())):
            print(line)
    if "v" in violations_holder:
        print(f"  disclosure:   {len(violations_holder['v'])} violation(s)")
    print(f"  time:         {time.perf_counter() - t_start:.0f} s")
    for step, label, msg in failures:
        print(f"  FAILED {step}: {label}: {msg}")
    return not failures
