"""The report's published figures, copied into the package (``lumbarstats/reference/``).

Source: Benchmarkingenheden, "MR-scanninger og røntgen af lænderyggen" (May 2024), and the Danish
Health Authority's analysis of low back pain, which reprints its tables 1–2; see
``lumbarstats/reference/SOURCE.md``. Shipping them inside the package lets comparisons run on any
machine, including research servers without the repository's ``shared/`` folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

__all__ = ["load", "available", "annual_table", "reference_path"]


def reference_path() -> Path:
    return Path(str(resources.files("lumbarstats.reference")))


def available() -> list[str]:
    """Names of the reference tables."""
    return sorted(p.stem for p in reference_path().glob("*.csv"))


def load(name: str, **read_csv_kwargs) -> pd.DataFrame:
    """A reference table by name (file stem), e.g. ``load("table1_mr_annual_standardized")``; keyword
    arguments go to :func:`pandas.read_csv`."""
    path = reference_path() / f"{name}.csv"
    if not path.exists():
        raise KeyError(f"unknown reference table {name!r}; available: {available()}")
    return pd.read_csv(path, encoding="utf-8", **read_csv_kwargs)


def annual_table(modality: str) -> pd.DataFrame:
    """Published table 1 (MR) or 2 (X-ray) in long format: region, year, rate."""
    names = {"MR": "table1_mr_annual_standardized", "XRAY": "table2_xray_annual_standardized"}
    try:
        wide = load(names[modality.upper()])
    except KeyError:
        raise ValueError(f"modality must be 'MR' or 'XRAY', got {modality!r}") from None
    long = wide.melt(id_vars="region", var_name="year", value_name="rate")
    long["year"] = long["year"].astype(int)
    return long
