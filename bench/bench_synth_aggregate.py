"""Benchmark: generating the synthetic register and aggregating it with DuckDB.

Prints generation time, aggregation time and peak memory at the chosen scale (default 1.0, the
whole country), then one JSON line with the figures. Targets on the 2-core, 24 GiB machine:
generation <= 120 s, aggregating all person-years to region x year x sex x age-band strata <= 15 s,
peak memory <= 6 GB. Generation runs in a child process so that its peak memory is its own.

    python bench/bench_synth_aggregate.py [--scale 1.0] [--out /tmp/bench-register] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GEN_CODE = """
import json, resource, sys, time
import lumbarstats as ls
t = time.perf_counter()
ls.synth.generate(sys.argv[1], scale=float(sys.argv[2]), seed=2024, force=True, verbose=False)
sec = time.perf_counter() - t
print(json.dumps({"seconds": sec, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the generated register")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="lumbarstats-bench-")) / "register"

    res = subprocess.run([sys.executable, "-c", GEN_CODE, str(out), str(args.scale)], capture_output=True,
                         text=True, check=True)
    gen = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"generation at scale {args.scale}: {gen['seconds']:.1f} s, peak memory {gen['peak_rss_mb'] / 1024:.2f} GB")

    import lumbarstats as ls

    t = time.perf_counter()
    strata = ls.aggregate.strata_counts(out, by=["region", "year", "sex", "age_band"], modality="MR")
    agg_sec = time.perf_counter() - t
    person_years = int(strata["population"].sum())
    print(f"aggregation of {person_years:,} person-years to {len(strata)} region x year x sex x age-band strata: "
          f"{agg_sec:.1f} s")
    t = time.perf_counter()
    ls.aggregate.strata_counts(out, by=["region", "period", "education", "employment", "cci_category", "sex",
                                        "age_band"], modality="XRAY")
    agg2_sec = time.perf_counter() - t
    print(f"aggregation to region x period x education x employment x CCI x sex x age band: {agg2_sec:.1f} s")
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "bench": "synth_aggregate", "scale": args.scale, "cpus": os.cpu_count(),
        "generation_s": round(gen["seconds"], 2), "generation_peak_gb": round(gen["peak_rss_mb"] / 1024, 3),
        "aggregation_s": round(agg_sec, 2), "aggregation_detailed_s": round(agg2_sec, 2),
        "aggregation_peak_gb": round(peak_self / 1024, 3), "person_years": person_years,
        "targets": {"generation_s": 120, "aggregation_s": 15, "peak_gb": 6},
        "ok": gen["seconds"] <= 120 and agg_sec <= 15 and max(gen["peak_rss_mb"], peak_self) / 1024 <= 6,
    }
    if not args.keep and args.out is None:
        shutil.rmtree(out.parent, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
