"""Benchmark of the time-to-event pipeline (lumbarstats.cohort + lumbarstats.survival).

Targets (issue 6): building the cohort and all cumulative-incidence curves from the full-scale synthetic
register (~1.5 million examinations) <= 30 s; a Cox model on 500,000 persons <= 60 s.

    .venv/bin/python bench/bench_survival.py [--data data/synthetic] [--scale 1.0] [--cox-n 500000]

If ``--data`` does not hold a register, one is generated there with ``ls.synth.generate`` at ``--scale``
(seed 1). Prints the figures and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import lumbarstats as ls


def _register(path: Path, scale: float) -> Path:
    if (path / "examinations.parquet").exists() and (path / "population.parquet").exists():
        return path
    print(f"no register in {path}: generating one (scale={scale}, seed=1) ...", flush=True)
    t0 = time.perf_counter()
    ls.synth.generate(path, scale=scale, seed=1)
    print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/synthetic", help="register directory (default data/synthetic)")
    ap.add_argument("--scale", type=float, default=1.0, help="scale when the register must be generated")
    ap.add_argument("--cox-n", type=int, default=500_000, help="persons in the Cox benchmark")
    args = ap.parse_args(argv)
    data = _register(Path(args.data), args.scale)
    _ = ls.cohort, ls.survival  # import (scipy, lifelines) before timing

    import duckdb

    con = duckdb.connect()
    n_exams = con.execute(f"SELECT count(*) FROM read_parquet('{(data / 'examinations.parquet').as_posix()}')").fetchall()[0][0]
    n_py = con.execute(f"SELECT count(*) FROM read_parquet('{(data / 'population.parquet').as_posix()}')").fetchall()[0][0]
    print(f"register {data}: {n_exams:,} examinations, {n_py:,} person-years")

    # 1. cohort + every cumulative-incidence curve (each cause, by period, by region, by region x period)
    t0 = time.perf_counter()
    cohort = ls.cohort.build_cohort(data, index_modality="any", outcome="surgery", period_split="2019-01-01")
    t_cohort = time.perf_counter() - t0
    d = cohort.data
    n_curves = 0
    for cause in sorted(c for c in cohort.event_codes if c > 0):
        for by in (None, "period", "region", ["region", "period"]):
            table = ls.survival.cumulative_incidence(d, duration="duration", event="event", event_of_interest=cause,
                                                     by=by)
            n_curves += 1 if by is None else len(table.drop_duplicates(by if isinstance(by, list) else [by]))
    t_all = time.perf_counter() - t0
    print(f"cohort: {len(d):,} persons in {t_cohort:.1f} s; cohort + {n_curves} CIF curves in {t_all:.1f} s "
          f"(target <= 30 s)")
    print(cohort.exclusions[["reason", "n_excluded", "n_remaining"]].to_string(index=False))

    # 2. Cox model on --cox-n persons (resampled from the cohort when it is smaller)
    rng = np.random.default_rng(1)
    rows = rng.choice(len(d), size=args.cox_n, replace=len(d) < args.cox_n)
    cox_data = d.iloc[rows].reset_index(drop=True)
    covariates = ["sex", "age_band", "region_name", "education", "employment", "cci", "period"]
    t0 = time.perf_counter()
    model = ls.survival.cox(cox_data, duration="duration", event="event", covariates=covariates,
                            reference={"region_name": "Syddanmark", "period": "before"})
    t_cox = time.perf_counter() - t0
    print(f"Cox (cause-specific, {len(model.summary)} terms) on {len(cox_data):,} persons in {t_cox:.1f} s "
          "(target <= 60 s)")

    result = {
        "bench": "survival",
        "examinations": int(n_exams),
        "person_years": int(n_py),
        "cohort_persons": int(len(d)),
        "cohort_seconds": round(t_cohort, 2),
        "cohort_and_cif_seconds": round(t_all, 2),
        "cif_curves": int(n_curves),
        "cif_target_seconds": 30,
        "cox_persons": int(len(cox_data)),
        "cox_seconds": round(t_cox, 2),
        "cox_target_seconds": 60,
        "ok": bool(t_all <= 30 and t_cox <= 60),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
