"""Benchmark of growth (issue 17, Build 4): generation and the register queries as the register grows.

    python bench/bench_scale.py [--scales 0.5,1,2,4] [--spark-scale 1] [--work DIR] [--keep]

For each scale, in child processes (so that every figure is one process's own):

1. generation of the synthetic register (``lumbarstats synth``, streamed by unit): wall time and peak
   resident memory (``ru_maxrss`` of the child, through ``resource.getrusage(RUSAGE_CHILDREN)`` in a
   small wrapper process) — the memory should be flat across scales;
2. on DuckDB: validation, ``strata_counts`` by region x year x sex x age band and the monthly
   standardized series (``monthly_standardized_series``, MR), each with its cost per million
   person-years;
3. at ``--spark-scale`` (default 1) the same two queries on Spark local (``Register(path, engine="spark")``)
   beside DuckDB, with a check that the stratum counts are identical. Without the Spark engine (or Java)
   the JSON says ``"spark": null`` and ``"spark_error"`` why; the bench never crashes on it.

Prints one JSON line at the end. Registers are deleted after each scale unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

QUERY = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import lumbarstats as ls
path, engine = sys.argv[1], sys.argv[2]
meta = json.load(open(path + "/metadata.json"))
kw = {} if engine == "duckdb" else {"engine": engine}
t = time.perf_counter(); reg = ls.Register(path, **kw); validate_s = time.perf_counter() - t
t = time.perf_counter()
sc = ls.aggregate.strata_counts(reg, by=["region", "year", "sex", "age_band"])
strata_s = time.perf_counter() - t
t = time.perf_counter()
ms = ls.monthly.monthly_standardized_series(reg, modality="MR")
monthly_s = time.perf_counter() - t
py = meta["counts"]["population"]
key = sc.sort_values(["region", "year", "sex", "age_band"])[["events", "persons"]].to_numpy().tolist()
print("RESULT " + json.dumps({
    "engine": engine, "person_years": py, "validate_s": round(validate_s, 2),
    "strata_counts_s": round(strata_s, 3), "monthly_series_s": round(monthly_s, 3),
    "strata_counts_s_per_million_py": round(strata_s / py * 1e6, 4),
    "monthly_series_s_per_million_py": round(monthly_s / py * 1e6, 4),
    "strata_rows": len(sc), "monthly_rows": len(ms), "counts": key}))
"""


def _run_child(cmd: list[str], timeout: float | None = None) -> tuple[float, float, str]:
    """Run ``cmd`` in a wrapper; returns (seconds, peak resident memory of the child in GB, stdout)."""
    wrapper = (f"import resource, subprocess, sys, time; t = time.perf_counter(); "
               f"r = subprocess.run({cmd!r}, capture_output=True, text=True, timeout={timeout!r}); "
               f"sys.stdout.write(r.stdout); sys.stderr.write(r.stderr[-4000:]); "
               f"print('BENCH', time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
               f"r.returncode)")
    res = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("BENCH ")]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} did not finish:\n{res.stderr[-3000:]}")
    line = lines[-1].split()
    seconds, peak_kb, code = float(line[1]), float(line[2]), int(line[3])
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {code}):\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return seconds, peak_kb / 1024 / 1024, res.stdout


def _query(path: Path, engine: str, timeout: float | None = None) -> dict:
    seconds, gb, out = _run_child([sys.executable, "-c", QUERY, str(path), engine], timeout=timeout)
    res = json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])
    res["peak_gb"] = round(gb, 2)
    res["process_s"] = round(seconds, 1)
    return res


def _spark_available() -> str | None:
    """Why the Spark engine cannot be used here (None: it can)."""
    try:
        import inspect

        from lumbarstats import engines, register
    except ImportError as exc:
        return f"no Spark engine in this lumbarstats ({exc})"
    if "engine" not in inspect.signature(register.Register).parameters:
        return "Register has no engine= argument"
    if "spark" not in getattr(engines, "ENGINES", ()):
        return "lumbarstats.engines offers no spark engine"
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        return f"pyspark is not installed ({exc})"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="0.5,1,2,4", help="comma-separated scales (e.g. 0.5,1,2,4,10)")
    ap.add_argument("--spark-scale", type=float, default=1.0, help="scale at which Spark runs beside DuckDB "
                    "(0: no Spark)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the registers")
    args = ap.parse_args()
    scales = [float(s) for s in args.scales.split(",") if s.strip()]
    work = args.work or Path(tempfile.mkdtemp(prefix="lumbarstats-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    rows, spark, spark_error = [], None, None
    for scale in scales:
        reg = work / f"scale-{scale:g}"
        gen_s, gen_gb, _ = _run_child([py, "-W", "ignore", "-m", "lumbarstats", "synth", "--scale", str(scale),
                                       "--seed", str(args.seed), "--out", str(reg), "--force"])
        meta = json.loads((reg / "metadata.json").read_text(encoding="utf-8"))
        size = sum(p.stat().st_size for p in reg.rglob("*") if p.is_file())
        duck = _query(reg, "duckdb")
        row = {"scale": scale, "generation_s": round(gen_s, 1), "generation_peak_gb": round(gen_gb, 2),
               "person_years": meta["counts"]["population"], "examinations": meta["counts"]["examinations"],
               "layout": meta.get("layout", "file"), "register_gb": round(size / 1e9, 3),
               "duckdb": {k: v for k, v in duck.items() if k != "counts"}}
        print(f"scale {scale:g}: generation {gen_s:.1f} s, peak {gen_gb:.2f} GB; DuckDB strata_counts "
              f"{duck['strata_counts_s']} s, monthly {duck['monthly_series_s']} s", file=sys.stderr, flush=True)
        if args.spark_scale and scale == args.spark_scale and spark is None and spark_error is None:
            spark_error = _spark_available()
            if spark_error is None:
                try:
                    sres = _query(reg, "spark", timeout=1800)
                    sres["identical_strata_counts"] = sres.pop("counts") == duck["counts"]
                    sres["ratio_to_duckdb_strata_counts"] = round(sres["strata_counts_s"] / duck["strata_counts_s"], 1)
                    spark = {"scale": scale, **sres}
                except Exception as exc:  # noqa: BLE001 - reported, never fatal
                    spark_error = f"{type(exc).__name__}: {str(exc)[-1500:]}"
        rows.append(row)
        # the figures so far, for a run stopped before the last scale
        from lumbarstats import io as ls_io

        ls_io.write_json({"scales": rows, "spark": spark, "spark_error": spark_error},
                         work / "bench_scale.partial.json")
        if not args.keep:
            shutil.rmtree(reg, ignore_errors=True)
    peaks = [r["generation_peak_gb"] for r in rows]
    figures = {"bench": "scale", "cpus": os.cpu_count(), "seed": args.seed, "scales": rows,
               "generation_peak_gb_max_over_min": round(max(peaks) / min(peaks), 2) if peaks else None,
               "spark": spark, "spark_error": spark_error}
    if spark is None and spark_error is None:
        figures["spark_error"] = (f"--spark-scale {args.spark_scale:g} is not among --scales" if args.spark_scale
                                  else "not asked (--spark-scale 0)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
