"""The one export path: every table and figure that leaves the toolkit is written from a protected table.

- :func:`publish_table` — disclosure control (:func:`lumbarstats.disclosure.protect`, with the table's
  additive relations and the configured :class:`~lumbarstats.disclosure.Policy`), then an atomic CSV
  write (:func:`lumbarstats.io.write_csv`). The ``suppress`` column (which cells are below the threshold)
  never leaves: a published table must not tell primary from secondary suppression.
- :func:`protected_view` — what a notebook may display of a table (the protected table).
- :func:`plottable` — the numbers a figure may draw: a protected table with every hidden cell (the
  marker) as missing, so a figure can never draw a cell its table hides.
- :func:`publish_figure` — atomic save of a figure (:func:`lumbarstats.io.save_figure`);
  :func:`publish_figure_files` — PNG at 300 dpi and SVG beside it.
- :func:`strip_notebook_outputs` — an executed notebook published without its outputs (for notebooks
  whose outputs are not all protected tables).

Publication tables (docx, xlsx, html, tex) go through :func:`lumbarstats.tables.export`, which applies the
same :func:`lumbarstats.disclosure.suppress`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lumbarstats import disclosure as _disclosure
from lumbarstats import io as _io

__all__ = ["publish_table", "protected_view", "plottable", "publish_figure", "publish_figure_files",
           "publication_frame", "write_published_csv",
           "strip_notebook_outputs"]


def publish_table(df: pd.DataFrame, path, *, policy=None, min_cell: int | None = None, **protect_kwargs) -> Path:
    """Protect ``df`` (keyword arguments as :func:`lumbarstats.disclosure.protect`: ``keys``,
    ``group_totals``, ``extra_relations``, ``unpublished`` …) and write it atomically as CSV."""
    safe = _disclosure.protect(df, policy=_disclosure.as_policy(policy, min_cell=min_cell), **protect_kwargs)
    return write_published_csv(safe.drop(columns=[c for c in ("suppress",) if c in safe.columns]), path)


SIGNIFICANT_DIGITS = 4  # 15.63 per 1,000, 63.02 %, HR 1.221, CIF 0.02464, p 0.08008


def _tidy_value(v, digits: int):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (float, np.floating)) or not np.isfinite(v):
        return v
    if float(v).is_integer():
        return int(v)
    return float(f"{v:.{digits}g}")


def publication_frame(df: pd.DataFrame, *, digits: int = SIGNIFICANT_DIGITS) -> pd.DataFrame:
    """``df`` as a published CSV holds it: whole numbers as integers (``785``, not ``785.0``; counts beside
    the disclosure marker ``–`` too), other numbers to ``digits`` significant digits (rates per 1,000 with
    two decimals, a hazard ratio with three). Text is left as it is. Rounding happens here, once, on the
    way out; the computations keep full precision."""
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_bool_dtype(col) or not (pd.api.types.is_float_dtype(col) or col.dtype == object):
            continue
        if pd.api.types.is_float_dtype(col):
            finite = col.dropna()
            if len(finite) and np.isfinite(finite).all() and (finite == finite.round()).all() \
                    and finite.abs().max() < 2**53:
                out[c] = col.astype("Int64")
                continue
        # element by element into an object column: pandas would turn 404 beside 1.093 back into 404.0
        out[c] = pd.Series([None if v is None or (isinstance(v, float) and np.isnan(v)) else _tidy_value(v, digits)
                            for v in col], index=col.index, dtype=object)
    return out


def write_published_csv(df: pd.DataFrame, path) -> Path:
    """Write an already protected table as a published CSV (:func:`publication_frame`), atomically."""
    return _io.write_csv(publication_frame(df), path)


def protected_view(df: pd.DataFrame, *, policy=None, **protect_kwargs) -> pd.DataFrame:
    """What a notebook may display of ``df``: the protected table (as :func:`publish_table` writes it)."""
    safe = _disclosure.protect(df, policy=_disclosure.as_policy(policy), **protect_kwargs)
    return safe.drop(columns=[c for c in ("suppress",) if c in safe.columns])


def plottable(protected: pd.DataFrame, columns=None) -> pd.DataFrame:
    """``protected`` with the marker replaced by missing values in ``columns`` (default: every column that
    holds the marker) and those columns numeric, ready to draw; rows whose value is hidden draw nothing."""
    out = protected.copy()
    marker = _disclosure.SUPPRESSED_MARKER
    cols = columns if columns is not None else [c for c in out.columns if (out[c].astype(str) == marker).any()]
    for c in cols:
        out[c] = pd.to_numeric(out[c].where(out[c].astype(str) != marker, np.nan), errors="coerce")
    return out


def publish_figure(fig, path, **savefig_kwargs) -> Path:
    """Save a figure (drawn from a protected table) atomically."""
    return _io.save_figure(fig, path, **savefig_kwargs)


def publish_figure_files(fig, path, *, formats=("png", "svg"), dpi: int = 300, close: bool = True) -> list[Path]:
    """Save a figure (drawn from a protected table) in every format of ``formats`` beside each other
    (``path`` with each suffix): PNG at ``dpi`` (300, print quality) and SVG for a journal's layout, at
    the figure's true size; closed afterwards unless ``close=False``. Returns the files written."""
    path = Path(path)
    try:
        return [_io.save_figure(fig, path.with_suffix("." + fmt), dpi=dpi, bbox_inches="tight") for fmt in formats]
    finally:
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)


def strip_notebook_outputs(path) -> Path:
    """Remove every output (and execution count) of the notebook at ``path``, atomically."""
    import json

    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return _io.write_text(json.dumps(nb, ensure_ascii=False, indent=1) + "\n", path)
