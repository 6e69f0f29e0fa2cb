"""Raw register layouts (BEF, UDDA, AKM, LPR2/MiniPas/LPR3, DOD, VNDS) -> canonical tables.

- :func:`ingest` reads a folder of raw extracts (Parquet, CSV, SAS7BDAT, XPT) as described by
  ``data_dictionary/raw_layouts.yaml`` plus an optional user config, and writes the canonical register
  directory with an ingest report (``lumbarstats ingest --raw DIR --out DIR``).
- :func:`lumbarstats.adapters.raw_layout.generate_raw` writes the synthetic register in those raw
  layouts (``lumbarstats synth --raw-layout``).
- :mod:`lumbarstats.adapters.cci` computes the Charlson comorbidity index from LPR diagnoses.

See docs/ingest.md.
"""

from __future__ import annotations

from .ingest import CANONICAL_TABLES, ingest
from .layout import Layout, load_layout
from .report import IngestReport

__all__ = ["ingest", "IngestReport", "load_layout", "Layout", "CANONICAL_TABLES"]
