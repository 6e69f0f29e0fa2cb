"""Trend models, joinpoint regression, interrupted time series and controlled designs.

- :func:`apc`, :func:`fit_trend` — log-linear count GLMs (Poisson, quasi-Poisson, negative binomial)
  with a log-population offset; annual percent change.
- :func:`joinpoint`, :class:`JoinpointFitter` — NCI Joinpoint-style segmented log-linear regression.
- :func:`its`, :class:`ITSResult` — interrupted time series (segmented regression).
- :func:`controlled_its`, :func:`synthetic_control` — designs with the other regions as controls,
  with placebo (permutation across regions) inference.
- :func:`write_evaluation` — the tables (CSV) and figure of an evaluation, written atomically.
"""

from __future__ import annotations

from .controlled import ControlledITSResult, SyntheticControlResult, controlled_its, synthetic_control
from .its import ITSResult, its
from .joinpoint import JoinpointFitter, default_max_joinpoints, joinpoint
from .models import TrendFit, apc, fit_trend
from .outputs import slug, write_evaluation

__all__ = [
    "apc", "fit_trend", "TrendFit",
    "joinpoint", "JoinpointFitter", "default_max_joinpoints",
    "its", "ITSResult",
    "controlled_its", "ControlledITSResult", "synthetic_control", "SyntheticControlResult",
    "write_evaluation", "slug",
]
