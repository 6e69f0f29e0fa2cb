"""lumbarstats — lumbar spine imaging (MR, X-ray) in the Danish registers.

``import lumbarstats as ls`` then use the submodules, loaded on first use:

- ``ls.dictionary``  data dictionary (code lists, labels, bands)
- ``ls.io``          loading and validating register files
- ``ls.synth``       the calibrated synthetic register
- ``ls.aggregate``   person-level Parquet -> stratum counts (DuckDB)
- ``ls.standardize`` direct/indirect standardization, rate ratios
- ``ls.groups``, ``ls.profiles``   population groups and patient profiles
- ``ls.trend``       trend models, joinpoint, interrupted time series, controlled designs
- ``ls.survival``    cohorts after first imaging, Kaplan–Meier, Cox, Aalen–Johansen, RMST
- ``ls.tables``, ``ls.disclosure``  publication tables and disclosure control
- ``ls.batch``       papermill batch runs per region
- ``ls.reference``   the report's published figures
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "dictionary", "io", "synth", "aggregate", "standardize", "groups", "profiles", "trend",
    "survival", "tables", "disclosure", "batch", "reference", "plots", "reproduce", "adapters",
    "monthly", "cohort", "rates",
}


def __getattr__(name: str):
    # Lazy submodule import keeps ``import lumbarstats`` fast in a notebook.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'lumbarstats' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
