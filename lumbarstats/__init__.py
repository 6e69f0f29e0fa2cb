"""lumbarstats — lumbar spine imaging (MR, X-ray) in the Danish registers.

``import lumbarstats as ls`` then use the submodules, loaded on first use:

- ``ls.Register``    a register folder, opened and validated once (``ls.register``); pass it (or a path)
  to every analysis
- ``ls.dictionary``  data dictionary (code lists, labels, bands; regions: ``resolve_region``)
- ``ls.io``          loading and validating register files (rules: ``ls.validation``)
- ``ls.synth``       the calibrated synthetic register
- ``ls.aggregate``   person-level Parquet -> stratum counts (DuckDB)
- ``ls.standardize`` direct/indirect standardization, rate ratios
- ``ls.groups``, ``ls.profiles``   population groups and patient profiles
- ``ls.trend``       trend models, joinpoint, interrupted time series, controlled designs
- ``ls.survival``    cohorts after first imaging, Kaplan–Meier, Cox, Aalen–Johansen, RMST
- ``ls.tables``, ``ls.disclosure``  publication tables and disclosure control
- ``ls.batch``       papermill batch runs per region
- ``ls.reference``   the report's published figures; ``ls.comparison`` reproduced beside published
- ``ls.products``    the report's figures and Bilag 1; ``ls.report_document`` the whole report (docx/html)
- ``ls.interventions`` the regions' interventions as data and their evaluation
- ``ls.engines``     query engines (DuckDB default, Apache Spark)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "dictionary", "io", "synth", "aggregate", "standardize", "groups", "profiles", "trend",
    "survival", "tables", "disclosure", "batch", "reference", "plots", "reproduce", "adapters",
    "monthly", "cohort", "rates", "export", "pipeline", "register", "validation", "project", "formatting",
    "comparison", "products", "report_document", "interventions", "engines",
}


def _map_checkout_data_packages() -> None:
    """Give a source checkout the data subpackages an install has.

    pyproject.toml installs ``data_dictionary/``, ``templates/`` and ``notebooks/`` (beside the package in
    the repository) as ``lumbarstats.data_dictionary`` etc. An editable install maps them too; but when
    Python imports the checkout's ``lumbarstats/`` directly (``python -m lumbarstats`` or a notebook kernel
    started in the checkout, with lumbarstats installed non-editable or not at all) they would be missing.
    """
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():  # installed: the subpackages are inside the package
        return
    for name in ("data_dictionary", "templates", "notebooks"):
        full, init = f"{__name__}.{name}", root / name / "__init__.py"
        if full in sys.modules or not init.is_file() or importlib.util.find_spec(full) is not None:
            continue
        spec = importlib.util.spec_from_file_location(full, init, submodule_search_locations=[str(init.parent)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)


_map_checkout_data_packages()


def __getattr__(name: str):
    # Lazy submodule import keeps ``import lumbarstats`` fast in a notebook.
    if name == "Register":  # ls.Register("data/synthetic"): the register every analysis reads through
        return importlib.import_module(f"{__name__}.register").Register
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'lumbarstats' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES) + ["Register"])
