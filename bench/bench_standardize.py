"""Benchmark of lumbarstats.standardize.direct: vectorised over groups vs one group at a time.

Builds 10,000 groups x 14 strata (sex x 7 age bands, seeded realistic counts), times ``direct()`` on
the whole table for every method, then a per-group loop (the way R's epitools::ageadjust.direct is
used: one call per group) on a subset, extrapolated to all groups. If a register directory exists
(``--data``, default data/synthetic) and ``ls.aggregate.strata_counts`` is available, also times all
annual regional rates with intervals from it. Prints human-readable lines, then one JSON line.

Usage: .venv/bin/python bench/bench_standardize.py [--groups 10000] [--loop-groups 500] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import lumbarstats.standardize as sd

AGE_BANDS = ["18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+"]
TARGET_SECONDS = 1.0


def build_table(n_groups: int, seed: int = 2024) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    strata = pd.MultiIndex.from_product([["F", "M"], AGE_BANDS], names=["sex", "age_band"]).to_frame(index=False)
    # population by age band roughly like a Danish municipality-year; MR rates rising with age (per person)
    base_pop = np.array([9000, 7000, 7500, 7500, 6500, 5000, 2500] * 2, dtype=float)
    base_rate = np.array([0.010, 0.018, 0.025, 0.030, 0.032, 0.030, 0.020] * 2)
    size = rng.lognormal(0.0, 0.8, n_groups)[:, None]
    pop = np.maximum(1, rng.poisson(base_pop[None, :] * size)).astype(float)
    lam = pop * base_rate[None, :] * rng.lognormal(0.0, 0.15, n_groups)[:, None]
    events = rng.poisson(lam).astype(float)
    return pd.DataFrame({
        "group": np.repeat(np.arange(n_groups), len(strata)),
        "sex": np.tile(strata["sex"].to_numpy(), n_groups),
        "age_band": np.tile(strata["age_band"].to_numpy(), n_groups),
        "events": events.ravel(),
        "population": pop.ravel(),
    })


def timed(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--loop-groups", type=int, default=500)
    ap.add_argument("--data", default="data/synthetic")
    args = ap.parse_args()

    table = build_table(args.groups)
    std = sd.esp2013_weights(AGE_BANDS, sexes=["F", "M"])
    print(f"table: {args.groups} groups x 14 strata = {len(table)} rows")
    res: dict = {"groups": args.groups, "strata": 14, "rows": len(table), "target_seconds": TARGET_SECONDS}

    for method in sd.DIRECT_METHODS:
        t = timed(lambda m=method: sd.direct(table, strata=["sex", "age_band"], standard=std, by="group",
                                             method=m))
        res[f"direct_{method}_seconds"] = round(t, 4)
        print(f"direct(method={method!r}) on all groups: {t:.3f} s "
              f"({'OK' if t <= TARGET_SECONDS else 'SLOWER THAN'} target {TARGET_SECONDS} s)")

    sub = table[table["group"] < args.loop_groups]
    parts = [g.drop(columns="group") for _, g in sub.groupby("group")]
    t0 = time.perf_counter()
    for p in parts:
        sd.direct(p, strata=["sex", "age_band"], standard=std)
    t_loop = time.perf_counter() - t0
    t_loop_all = t_loop * args.groups / max(1, len(parts))
    t_vec = res["direct_gamma_seconds"]
    res.update(loop_groups=len(parts), loop_seconds=round(t_loop, 4),
               loop_extrapolated_seconds=round(t_loop_all, 3),
               speedup_vs_loop=round(t_loop_all / t_vec, 1) if t_vec > 0 else None)
    print(f"per-group loop: {len(parts)} groups in {t_loop:.3f} s -> {t_loop_all:.1f} s extrapolated to "
          f"{args.groups} groups; vectorised is {res['speedup_vs_loop']}x faster")

    t_rr = timed(lambda: sd.rate_ratio(table.assign(period=np.where(table["group"] % 2 == 0, "a", "b"),
                                                    region=table["group"] // 2).drop(columns="group"),
                                       strata=["sex", "age_band"], group="period", reference="a",
                                       by="region", standard=std), repeat=1)
    res["rate_ratio_seconds"] = round(t_rr, 4)
    print(f"rate_ratio on {args.groups // 2} pairs: {t_rr:.3f} s")

    data_dir = Path(args.data)
    res["register"] = None
    if not data_dir.exists():
        print(f"register: {data_dir} not found, skipped (generate with ls.synth.generate)")
    else:
        try:
            import lumbarstats.aggregate as agg
        except ImportError as e:
            print(f"register: lumbarstats.aggregate not available ({e}), skipped")
        else:
            try:
                t0 = time.perf_counter()
                counts = agg.strata_counts(data_dir, by=["region", "year", "sex", "age_band"])
                t_agg = time.perf_counter() - t0
                t0 = time.perf_counter()
                rates = sd.direct(counts, strata=["sex", "age_band"], by=["region", "year"])
                t_std = time.perf_counter() - t0
                res["register"] = {"dir": str(data_dir), "groups": len(rates),
                                   "strata_counts_seconds": round(t_agg, 3), "direct_seconds": round(t_std, 4)}
                print(f"register {data_dir}: strata_counts {t_agg:.2f} s, {len(rates)} annual regional rates "
                      f"with intervals in {t_std:.3f} s")
            except Exception as e:  # the aggregate module may still be unfinished
                print(f"register: could not time annual rates ({type(e).__name__}: {e}), skipped")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
