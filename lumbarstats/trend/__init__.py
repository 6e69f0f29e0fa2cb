"""Trend models, joinpoint regression, interrupted time series and controlled designs.

- :func:`apc`, :func:`fit_trend` — log-linear count GLMs (Poisson, quasi-Poisson, negative binomial)
  with a log-population offset; annual percent change.
- :func:`joinpoint`, :class:`JoinpointFitter` — NCI Joinpoint-style segmented log-linear regression.
- :func:`its`, :class:`ITSResult` — interrupted time series (segmented regression); :func:`its_multi` with
  several interventions, phase-in and explicit COVID-19 terms (:data:`COVID_PERIODS`).
- :func:`controlled_its`, :func:`synthetic_control` — designs with the other regions as controls,
  with placebo (permutation across regions) inference.
- :func:`staggered_did`, :func:`event_study` — Callaway & Sant'Anna (2021) staggered DiD and event study.
- :func:`randomization_inference`, :func:`wild_cluster_bootstrap` — honest inference with few regions.
- :func:`write_evaluation` — the tables (CSV) and figure of an evaluation, written atomically.
"""

from __future__ import annotations

from .controlled import ControlledITSResult, SyntheticControlResult, controlled_its, synthetic_control
from .inference import (
    RandomizationResult,
    WildBootstrapResult,
    randomization_inference,
    wild_cluster_bootstrap,
)
from .its import COVID_PERIODS, ITSResult, MultiITSResult, its, its_multi
from .joinpoint import JoinpointFitter, default_max_joinpoints, joinpoint
from .models import TrendFit, apc, fit_trend
from .outputs import slug, write_evaluation
from .staggered import EventStudyResult, StaggeredDiDResult, event_study, staggered_did

__all__ = [
    "apc", "fit_trend", "TrendFit",
    "joinpoint", "JoinpointFitter", "default_max_joinpoints",
    "its", "ITSResult", "its_multi", "MultiITSResult", "COVID_PERIODS",
    "controlled_its", "ControlledITSResult", "synthetic_control", "SyntheticControlResult",
    "write_evaluation", "slug",
    "staggered_did", "StaggeredDiDResult", "event_study", "EventStudyResult",
    "randomization_inference", "RandomizationResult", "wild_cluster_bootstrap", "WildBootstrapResult",
]
