"""Benchmark of the register spine: hashing, validation, and ``strata_counts`` beside a raw DuckDB group-by.

    python bench/bench_register.py --data data/synthetic [--repeat 3]

Prints the figures and one JSON line at the end. The raw baseline is hand-written DuckDB SQL over the same
Parquet files giving the same cells (population by region x year x sex x age band, and counted public MR
examinations with distinct persons joined to the population row of their year); ``strata_counts`` is timed
on an opened Register with its cache cleared, so both do the same work.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

RAW_POPULATION = """
SELECT region, year, sex, CASE WHEN age <= 29 THEN '18-29' WHEN age <= 39 THEN '30-39' WHEN age <= 49 THEN '40-49'
       WHEN age <= 59 THEN '50-59' WHEN age <= 69 THEN '60-69' WHEN age <= 79 THEN '70-79' ELSE '80+' END AS age_band,
       count(*) AS population
FROM read_parquet($pop) GROUP BY ALL"""
RAW_EVENTS = """
SELECT p.region, p.year, p.sex, CASE WHEN p.age <= 29 THEN '18-29' WHEN p.age <= 39 THEN '30-39'
       WHEN p.age <= 49 THEN '40-49' WHEN p.age <= 59 THEN '50-59' WHEN p.age <= 69 THEN '60-69'
       WHEN p.age <= 79 THEN '70-79' ELSE '80+' END AS age_band,
       count(*) AS events, count(DISTINCT e.person_id) AS persons
FROM read_parquet($ex) e JOIN read_parquet($pop) p ON p.person_id = e.person_id AND p.year = year(e.date)
WHERE e.procedure_code = 'UXME30' AND e.modality = 'MR' AND e.payer = 'public' GROUP BY ALL"""


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import duckdb

    import lumbarstats as ls

    by = ["region", "year", "sex", "age_band"]
    reg = ls.Register(args.data, validate=False)
    t = time.perf_counter()
    content_hash = reg.content_hash
    hash_s = time.perf_counter() - t
    size_mb = sum(f.stat().st_size for fs in reg.files.values() for f in fs) / 1e6
    t = time.perf_counter()
    rows = reg.validate(force=True)
    validate_s = time.perf_counter() - t
    t = time.perf_counter()
    ls.Register(args.data)  # remembered: hash + state file only
    reopen_s = time.perf_counter() - t

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    params = {"pop": str(args.data / "population.parquet"), "ex": str(args.data / "examinations.parquet")}

    def raw():
        con.execute(RAW_POPULATION, {"pop": params["pop"]}).df()
        con.execute(RAW_EVENTS, params).df()

    def spine():
        reg._memo = {k: v for k, v in reg._memo.items() if k[0] in ("raw", "typed")}  # clear cached results
        ls.aggregate.strata_counts(reg, by=by, modality="MR")

    raw_s, spine_s = [], []
    for _ in range(args.repeat):  # interleaved, so that load on a shared machine hits both alike
        raw_s.append(_best(raw, 1))
        spine_s.append(_best(spine, 1))
    figures = {
        "bench": "register", "data": str(args.data), "cpus": os.cpu_count(), "rows": rows,
        "table_mb": round(size_mb, 1), "hash_s": round(hash_s, 3), "validate_s": round(validate_s, 2),
        "reopen_validated_s": round(reopen_s, 3), "strata_counts_s": round(min(spine_s), 3),
        "raw_duckdb_groupby_s": round(min(raw_s), 3), "ratio": round(min(spine_s) / min(raw_s), 3),
        "content_hash": content_hash[:12], "target_ratio": 1.2,
    }
    print(f"hash {hash_s:.2f} s ({size_mb:.0f} MB), validation {validate_s:.1f} s, reopen {reopen_s:.2f} s; "
          f"strata_counts {min(spine_s):.2f} s vs raw DuckDB {min(raw_s):.2f} s (x{figures['ratio']})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
