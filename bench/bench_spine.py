"""Benchmark of the spine (issue 12, Build 6): generation, the register queries and every reproduce step.

    python bench/bench_spine.py [--scale 1.0] [--work /tmp/lumbarstats-bench] [--keep]

In one run, on one machine, so that the figures are comparable with each other:

1. generation of the synthetic register at ``--scale`` in a child process (time, peak memory);
2. ``bench_register.py`` on it: content hash, validation, and ``strata_counts`` beside a raw DuckDB group-by
   of the same Parquet files (interleaved; their ratio is the figure that matters on a shared machine);
3. ``lumbarstats reproduce`` on the existing register in a child process: the time of every step (from
   ``OUT.logs/steps.json``), the total and the peak memory.

Prints the figures and one JSON line at the end with the targets beside them: reproduce <= 120 s after
the register exists, generation <= 30 s, peak memory <= 4 GB, strata_counts <= 1.2 x the raw scan (all at
scale 1.0 on the 2-core machine).
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

HERE = Path(__file__).resolve().parent
TARGETS = {"reproduce_s": 120, "generation_s": 30, "peak_gb": 4, "strata_counts_ratio": 1.2}

def _run_child(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; returns (seconds, peak resident memory of the child in GB, stdout)."""
    wrapper = (f"import resource, subprocess, sys, time; t = time.perf_counter(); "
               f"r = subprocess.run({cmd!r}, capture_output=True, text=True); "
               f"sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); "
               f"print('BENCH', time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
               f"r.returncode)")
    res = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("BENCH ")][-1].split()
    seconds, peak_kb, code = float(line[1]), float(line[2]), int(line[3])
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    text = "\n".join(ln for ln in res.stdout.splitlines() if not ln.startswith("BENCH "))
    return seconds, peak_kb / 1024 / 1024, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the register and the output")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lumbarstats-bench-"))
    data, out = work / "register", work / "output"

    py = sys.executable
    gen_s, gen_gb, _ = _run_child([py, "-m", "lumbarstats", "synth", "--scale", str(args.scale), "--seed", "2024",
                                   "--out", str(data), "--force"])
    print(f"generation at scale {args.scale}: {gen_s:.1f} s, peak {gen_gb:.2f} GB", flush=True)

    _, _, reg_out = _run_child([py, str(HERE / "bench_register.py"), "--data", str(data)])
    register = json.loads(reg_out.strip().splitlines()[-1])
    print(f"register: validation {register['validate_s']} s, strata_counts {register['strata_counts_s']} s vs raw "
          f"DuckDB {register['raw_duckdb_groupby_s']} s (x{register['ratio']})", flush=True)

    rep_s, rep_gb, _ = _run_child([py, "-m", "lumbarstats", "reproduce", "--data", str(data), "--out", str(out),
                                   "--scale", str(args.scale), "--seed", "2024"])
    steps = json.loads((out.parent / (out.name + ".logs") / "steps.json").read_text(encoding="utf-8"))["steps"]
    step_s = {s["label"]: round(float(s["seconds"]), 1) for s in steps}
    for label, sec in step_s.items():
        print(f"  {sec:7.1f} s  {label}")
    print(f"reproduce: {rep_s:.1f} s, peak {rep_gb:.2f} GB", flush=True)

    peak = max(gen_gb, rep_gb)
    figures = {
        "bench": "spine", "scale": args.scale, "cpus": os.cpu_count(),
        "generation_s": round(gen_s, 1), "generation_peak_gb": round(gen_gb, 2),
        "validate_s": register["validate_s"], "hash_s": register["hash_s"],
        "strata_counts_s": register["strata_counts_s"], "raw_duckdb_groupby_s": register["raw_duckdb_groupby_s"],
        "strata_counts_ratio": register["ratio"],
        "reproduce_s": round(rep_s, 1), "reproduce_peak_gb": round(rep_gb, 2), "reproduce_steps_s": step_s,
        "targets": TARGETS,
        "met": {"reproduce_s": rep_s <= TARGETS["reproduce_s"], "generation_s": gen_s <= TARGETS["generation_s"],
                "peak_gb": peak <= TARGETS["peak_gb"],
                "strata_counts_ratio": register["ratio"] <= TARGETS["strata_counts_ratio"]},
    }
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
