"""Synthetic Danish register, calibrated to the Benchmarking Unit's published figures.

Why a synthetic register: the real person-level registers live on Statistics Denmark's research
servers. Everywhere else — tests, notebooks, CI, teaching — the toolkit needs data that behaves like
them. This module generates the canonical tables (see ``data_dictionary/tables.yaml``):

``population.parquet``, ``examinations.parquet``, ``surgery.parquet``, ``exits.parquet``,
``metadata.json`` and ``model/`` (the rate model's factors, so that expectations can be checked).
Below scale 0.1 each table is one Parquet file; from 0.1 on (or ``layout="folder"``) each is a folder
``<table>.parquet/`` of files ``part-<region>-<first birth year of the band>.parquet`` (partition =
region x birth-cohort band, ``cohort_band`` years), which :class:`lumbarstats.register.Register` reads
like one file.

Streaming (bounded memory): persons never change region or birth year, so the population falls into
closed *units* (region x 5 birth years x shard; a shard is at most ``SHARD_SCALE`` of the Danish cohorts).
Every random draw of a unit comes from streams keyed by (seed, purpose, unit), so a unit is the same in
whatever partition or order it is generated. A first pass simulates the units and keeps only the
calibration's aggregated cells; the calibration runs on those; a second pass simulates every unit
again with its examinations, surgery and exits and writes it out. Peak memory is one unit plus the
cells, whatever the scale; the same seed gives the same rows in any layout and partitioning.

Model (documented choices)
--------------------------
*Population* (2014–2023, adults 18+ on 31 December of the year before). A panel of persons is
simulated forward from 31 Dec 2013: each year persons age one year, die (Gompertz mortality, men
x1.25, women x0.8) or emigrate (1.5 %/year at 18–34, 0.6 % at 35–49, 0.2 % after), and the year's
18-year-olds and immigrants (ages 18–70) enter so that the adult total follows Denmark's (4.749
million in 2022 — US Census Bureau IDB, ``population_denmark_2022_by_age_sex.csv`` — growing
0.9 %/year; the immigrants of a year are set from an aggregate projection of the expected deaths and
emigrations, so the realised total follows the target up to Poisson noise). Regions follow Statistics Denmark's published shares (``population_regions.csv``,
interpolated between 2019 and 2024), with a younger capital region and older Nordjylland/Sjælland.

*Covariates* come from person-level latent normal variables (Gaussian copula) so that they persist
over the years and depend on each other realistically: education by birth cohort and region;
employment by age and education, pensions from 60; comorbidity (Charlson score) rising with age and
correlated with weak labour-market attachment and short education; industry (DB07, 19 groups, by
sex) only for the employed.

*Examinations* follow a multiplicative Poisson rate model per person-year and modality::

    rate = base[region, year] x age_band x sex x education x employment x industry x cci_category

with region-specific group factors raked (iterative proportional fitting) so that 2021–23 group
rates match the report's tables 5.3–5.4 (crude for age and sex, sex- and age-standardized for the
others), a national interaction factor for the five most frequent patient profiles of table 4.1 (so
that they are the top five with the published shares; no other profile may outrank the fifth), and
``base`` solved so that the **expected** sex- and age-standardized rate under the package's default
standard population (the national adult population pooled over 2014–2023 by sex x age band) equals
the published tables 1–2 for every region, year and modality — exactly, given the realised
population. Public examinations arrive in *episodes*: single-modality episodes and combined
X-ray-then-MR episodes, each with a few repeat examinations, and a person-level gamma frailty (mean 1,
variance 1) that makes imaging recur in some persons. The number of episodes in each region x year x
sex x age-band stratum is its expectation (stochastically rounded) and the episodes are allocated to
persons in proportion to rate x frailty (a Poisson process conditioned on its total), so realised
standardized rates stay within about 0.1 per 1,000 of the published ones at full scale.
Privately paid examinations (about 8 % of all, mostly MR, rising over time) and a few
"other"-payer ones are added on top; rates count public examinations only, as the report does.
CT examinations are generated at about 15 % of the X-ray rate.

*Surgery* (lumbar SKS codes): after an imaging episode with probability depending on modality
(MR 6 %, X-ray only 1.5 %), higher in Syddanmark after its 2019 guideline (imaged patients are more
selected: x1.3), plus a small background rate; date 2–26 weeks after the episode. *Exits*: the
deaths and emigrations of the population simulation, with dates.

*Intervention effects* (``SynthConfig.intervention_effects`` / ``generate(intervention_effects=...)``):
known multiplicative effects on a region's public examinations of one modality from a start date
(optional end and linear phase-in), applied on top of the calibration by thinning (effect < 1) or
extra examinations (> 1) from a separate stream, and written to ``metadata.json`` — the truth that
evaluations of interventions can be tested against. None by default: the published annual rates the
register is calibrated to already contain Region Syddanmark's guideline effect (2018–19) and the other
regions' interventions (``INTERVENTION_NOTE``).

Everything is deterministic given ``seed`` (numpy ``Generator(PCG64)`` streams per purpose and unit).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import ndtri

from lumbarstats import __version__
from lumbarstats import dictionary as _dictionary
from lumbarstats import io as _io
from lumbarstats import reference as _reference

__all__ = ["generate", "summarize", "SynthConfig", "InterventionEffect", "normalize_effects",
           "expected_standardized_rates", "TABLE_FILES", "table_source"]

TABLE_FILES = {
    "population": "population.parquet",
    "examinations": "examinations.parquet",
    "surgery": "surgery.parquet",
    "exits": "exits.parquet",
}

ADULTS_2022 = 4_748_990  # population_denmark_2022_by_age_sex.csv
ANNUAL_GROWTH = 0.009  # Danish adults grew about 0.9 %/year 2014-2023 (Statistics Denmark FOLK1A)
MODALITIES = ("MR", "XRAY")
MAX_SCALE = 100.0          # generation streams by unit: memory does not grow with the scale
BIRTH_BLOCK = 5            # a unit holds the persons of one region and BIRTH_BLOCK birth years ...
SHARD_SCALE = 0.5          # ... split into shards of at most this scale (memory does not grow with the scale)
FOLDER_LAYOUT_FROM = 0.1   # layout "auto": one file per table below this scale, partitioned folders from it

INTERVENTION_NOTE = (
    "The register is calibrated to the published annual rates (tables 1-2), which already contain the effect of "
    "Region Syddanmark's referral guideline (2018-19) and of every other region's interventions; "
    "intervention_effects are applied on top of that calibration (an effect of 0.7 makes the region's public "
    "examinations of that modality 30 % fewer than published after the start). Empty: no effect beyond the "
    "published rates.")


@dataclass(frozen=True)
class InterventionEffect:
    """A known effect built into the synthetic register (the truth an evaluation should recover).

    region : DST region code (1081-1085). modality : ``MR`` or ``XRAY``. start : first day with the effect
    (``datetime.date`` or ISO text). effect : multiplicative effect on the rate of publicly financed
    examinations of the modality (0.9 = -10 %, 1.2 = +20 %). end : first day without it (None: to the end
    of the data). phase_in_months : months over which the effect grows linearly from none to ``effect``.
    """

    region: int
    modality: str
    start: dt.date
    effect: float
    end: dt.date | None = None
    phase_in_months: float = 0.0

    def __post_init__(self):
        def day(v, what):
            if v is None or isinstance(v, dt.date):
                return v.date() if isinstance(v, dt.datetime) else v
            try:
                return dt.date.fromisoformat(str(v))
            except ValueError:
                raise ValueError(f"intervention effect: {what} {v!r} is not a date (YYYY-MM-DD)") from None
        object.__setattr__(self, "region", int(self.region))
        object.__setattr__(self, "modality", str(self.modality).upper())
        object.__setattr__(self, "start", day(self.start, "start"))
        object.__setattr__(self, "end", day(self.end, "end"))
        object.__setattr__(self, "effect", float(self.effect))
        object.__setattr__(self, "phase_in_months", float(self.phase_in_months or 0.0))
        if self.modality not in MODALITIES:
            raise ValueError(f"intervention effect: modality must be one of {MODALITIES}, got {self.modality!r}")
        if not 1081 <= self.region <= 1085:
            raise ValueError(f"intervention effect: region must be a DST region code 1081-1085, got {self.region}")
        if not (self.effect >= 0 and math.isfinite(self.effect)):
            raise ValueError(f"intervention effect: effect must be a finite factor >= 0, got {self.effect}")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"intervention effect: end {self.end} is not after start {self.start}")
        if self.phase_in_months < 0:
            raise ValueError(f"intervention effect: phase_in_months must be >= 0, got {self.phase_in_months}")

    def as_dict(self) -> dict:
        return {"region": self.region, "modality": self.modality, "start": self.start.isoformat(),
                "end": self.end.isoformat() if self.end else None, "phase_in_months": self.phase_in_months,
                "effect": self.effect}


def normalize_effects(effects) -> tuple:
    """``InterventionEffect`` objects or dicts (its fields) -> a tuple of ``InterventionEffect``."""
    if effects is None:
        return ()
    if isinstance(effects, (InterventionEffect, dict)):
        effects = [effects]
    out = []
    for e in effects:
        if isinstance(e, InterventionEffect):
            out.append(e)
        elif isinstance(e, dict):
            unknown = set(e) - {f.name for f in dataclasses.fields(InterventionEffect)}
            if unknown:
                raise ValueError(f"intervention effect: unknown field(s) {sorted(unknown)} in {e}")
            out.append(InterventionEffect(**e))
        else:
            raise TypeError(f"intervention effect must be an InterventionEffect or a dict, got {type(e).__name__}")
    return tuple(out)


@dataclass(frozen=True)
class SynthConfig:
    """Tunable constants of the synthetic register (defaults reproduce the report)."""

    frailty_variance: float = 1.0      # person-level gamma frailty of imaging (mean 1)
    repeat_single_mr: float = 0.005    # extra examinations per single-modality episode (Poisson mean)
    repeat_single_xray: float = 0.035
    repeat_both: float = 0.16          # extra examinations per modality in a combined episode
    both_share: float = 0.15           # scale of combined X-ray+MR episodes
    private_mr: tuple = (0.09, 0.15)   # private MR per public MR, 2014 -> 2023 (linear)
    private_xray: tuple = (0.02, 0.03)
    other_payer: float = 0.006
    ct_per_xray: float = 0.15
    surgery_after_mr: float = 0.06
    surgery_after_xray: float = 0.015
    surgery_background: float = 0.0004  # per person-year, without imaging
    guideline_region: int = 1083
    guideline_year: int = 2019
    guideline_surgery_factor: float = 1.3
    rake_outer: int = 4
    rake_sweeps: int = 6
    intervention_effects: tuple = ()   # InterventionEffect, applied on top of the calibration (INTERVENTION_NOTE)


# --------------------------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------------------------

def _rng(seed: int, purpose: str) -> np.random.Generator:
    """Independent, reproducible stream per purpose (adding a stream never shifts another)."""
    key = int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:8], "little")
    return np.random.Generator(np.random.PCG64(key))


def _thresholds(probs: np.ndarray) -> np.ndarray:
    """Cumulative probabilities (..., k) -> k-1 normal thresholds for a Gaussian-copula category."""
    cum = np.cumsum(probs, axis=-1)[..., :-1]
    return ndtri(np.clip(cum, 1e-12, 1 - 1e-12))


def _categorize(z: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Category index of z given per-row thresholds (n, k-1)."""
    return (z[:, None] > thresholds).sum(axis=1).astype(np.int8)


def _config_dict(cfg: SynthConfig) -> dict:
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()}
    out["intervention_effects"] = [e.as_dict() for e in normalize_effects(cfg.intervention_effects)]
    return out


REGISTER_KIND = "register"


def is_synthetic_register(folder: Path) -> bool:
    """A folder written by :func:`generate` (also by versions before the folder marker existed)."""
    meta = Path(folder) / "metadata.json"
    try:
        return meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("generator") == "lumbarstats.synth"
    except (OSError, ValueError):
        return False


def _same_register(out: Path, seed: int, scale: float, cfg: SynthConfig, layout: str, cohort_band: int) -> bool:
    """``out`` holds a complete register of this seed, scale, version and configuration."""
    if not is_synthetic_register(out):
        return False
    marker = _io.read_marker(out)
    if marker is not None and marker.get("state", "complete") != "complete":
        return False  # an interrupted install
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    return (meta.get("seed") == seed and meta.get("scale") == scale and meta.get("version") == __version__
            and meta.get("config") == _config_dict(cfg) and meta.get("layout", "file") == layout
            and (layout == "file" or meta.get("partitioning", {}).get("cohort_band") == cohort_band))


# --------------------------------------------------------------------------------------------
# population
# --------------------------------------------------------------------------------------------

_EDU = ["primary", "upper_secondary", "short_medium_higher", "long_higher", "unknown"]
# employment categories in "labour-market attachment" order used by the copula
_EMP = ["employed", "pension", "unemployed", "other", "sickness_benefit", "disability"]
_CCI_SCORES = np.arange(0, 9)


def _edu_probs(birth_year: np.ndarray, region_idx: np.ndarray) -> np.ndarray:
    """P(primary, upper secondary, short/medium higher, long higher) by birth cohort and region."""
    t = np.clip((birth_year - 1930) / 70.0, 0, 1)  # 0 for 1930 cohorts, 1 for 2000
    p_primary = 0.42 - 0.27 * t
    p_long = 0.05 + 0.13 * t
    p_sm = 0.16 + 0.14 * t
    # capital region: more long higher education; Nordjylland/Sjælland fewer
    adj = np.array([-0.03, 0.0, -0.01, 0.05, -0.03])[region_idx]
    p_long = np.clip(p_long + adj, 0.02, 0.4)
    p_primary = np.clip(p_primary - adj, 0.08, 0.6)
    p_upper = 1 - p_primary - p_long - p_sm
    return np.stack([p_primary, p_upper, p_sm, p_long], axis=1)


def _emp_probs(age: np.ndarray) -> np.ndarray:
    """P(employment category in _EMP order) by age."""
    a = age.astype(float)
    pension = np.where(a >= 67, 0.93, np.where(a >= 65, 0.75, np.where(a >= 60, 0.18, 0.0)))
    disability = np.where(a < 30, 0.015, np.where(a < 60, 0.015 + (a - 30) * 0.0022, np.where(a < 65, 0.09, 0.0)))
    sickness = np.where(a < 65, np.where(a < 30, 0.015, 0.035), 0.0)
    unemployed = np.where(a < 65, np.where(a < 30, 0.05, 0.035), 0.0)
    other = np.where(a < 65, np.where(a < 25, 0.06, 0.04), 0.01)
    employed = 1 - pension - disability - sickness - unemployed - other
    return np.stack([employed, pension, unemployed, other, sickness, disability], axis=1)


def _cci_probs(age: np.ndarray) -> np.ndarray:
    """P(CCI score 0..8) by age: comorbidity rises with age."""
    a = age.astype(float)
    p0 = np.clip(0.985 - 0.00012 * np.maximum(a - 18, 0) ** 2, 0.42, 0.99)
    rest = 1 - p0
    # severity shifts upward with age
    s = np.clip((a - 18) / 80, 0, 1)[:, None]
    base = np.array([0.40, 0.22, 0.13, 0.09, 0.07, 0.04, 0.03, 0.02])
    old = np.array([0.30, 0.22, 0.15, 0.11, 0.08, 0.06, 0.045, 0.035])
    w = base * (1 - s) + old * s
    w = w / w.sum(axis=1, keepdims=True)
    return np.concatenate([p0[:, None], rest[:, None] * w], axis=1)


# DB07 19-group employment shares by sex (approximate Danish shares; codes "01".."19")
_IND_MEN = np.array([3.0, 0.3, 14.5, 0.6, 0.8, 12.0, 16.0, 7.0, 4.0, 5.5, 3.0, 2.0, 7.5, 5.0, 5.5, 4.5, 5.0, 3.3, 0.5])
_IND_WOMEN = np.array([1.0, 0.1, 7.0, 0.3, 0.2, 1.5, 15.0, 2.5, 4.5, 3.0, 3.0, 1.8, 6.5, 4.5, 6.5, 10.0, 28.0, 4.1, 0.5])


class _PopulationSimulator:
    """Forward simulation of the adult population panel."""

    def __init__(self, scale: float, seed: int, dd, ref_age_sex: pd.DataFrame, ref_regions: pd.DataFrame):
        self.scale = scale
        self.seed = seed
        self.years = list(range(dd.study_years[0], dd.study_years[1] + 1))
        self.region_codes = np.array(sorted(dd.region_names()))  # 1081..1085
        ages = ref_age_sex["age"].astype(str).str.replace("+", "", regex=False).astype(int).to_numpy()
        self.ref_ages = ages
        self.ref_men = ref_age_sex["men"].to_numpy(float)
        self.ref_women = ref_age_sex["women"].to_numpy(float)
        reg = ref_regions.dropna(subset=["dst_region_code"]).copy()
        reg["dst_region_code"] = reg["dst_region_code"].astype(int)
        reg = reg.set_index("dst_region_code").loc[self.region_codes]
        self.share2019 = (reg["population_1jan2019"] / reg["population_1jan2019"].sum()).to_numpy()
        self.share2024 = (reg["population_1jan2024"] / reg["population_1jan2024"].sum()).to_numpy()

    def target_total(self, year: int) -> int:
        return int(round(ADULTS_2022 * self.scale * (1 + ANNUAL_GROWTH * (year - 2022))))

    def region_shares(self, year: int, ages: np.ndarray) -> np.ndarray:
        """Per-person region probabilities (n, 5) for persons of the given ages."""
        w = np.clip((year - 2019) / 5.0, -1, 2)
        base = self.share2019 + w * (self.share2024 - self.share2019)
        a = ages.astype(float)
        young = ((a >= 20) & (a < 40)).astype(float)
        old = (a >= 65).astype(float)
        # Nordjylland, Midtjylland, Syddanmark, Hovedstaden, Sjælland
        tilt_young = np.array([0.88, 1.0, 0.93, 1.25, 0.82])
        tilt_old = np.array([1.10, 0.98, 1.06, 0.88, 1.12])
        m = 1 + young[:, None] * (tilt_young - 1) + old[:, None] * (tilt_old - 1)
        p = base[None, :] * m
        return p / p.sum(axis=1, keepdims=True)

    def region_share(self, year: int, age: int) -> np.ndarray:
        """Region probabilities (5,) of a person of ``age`` entering in ``year``."""
        return self.region_shares(year, np.array([age]))[0]

    def blocks(self) -> range:
        """First birth years of the units' blocks of ``BIRTH_BLOCK`` birth years."""
        by = self.birth_years()
        return range(by[0] // BIRTH_BLOCK * BIRTH_BLOCK, by[-1] + 1, BIRTH_BLOCK)

    def birth_years(self) -> range:
        """Every birth cohort that can be adult in a study year (the stock's oldest to the last 18-year-olds)."""
        return range(self.years[0] - 1 - int(self.ref_ages.max()), self.years[-1] - 1 - 18 + 1)

    def plan(self) -> dict:
        """Expected entrants from an aggregate cohort-component projection (no persons).

        The year's immigrants fill the adult total up to :meth:`target_total` given the *expected* deaths,
        emigrations and 18-year-olds, so that every unit can draw its own entrants (Poisson) without
        knowing the others; the realised total differs from the target by Poisson noise only.
        Immigrant ages: round(18 + Gamma(4, 2.5)) clipped to 18-70, 48 % women.
        """
        from scipy.stats import gamma

        first = self.years[0]
        by = np.array(self.birth_years())
        ratio = self.target_total(first) / (ADULTS_2022 * self.scale)
        stock = np.zeros((len(by), 2))
        pos = (first - 1 - self.ref_ages) - by[0]
        stock[pos, 0] = self.ref_men * self.scale * ratio
        stock[pos, 1] = self.ref_women * self.scale * ratio
        cdf = gamma.cdf(np.arange(18, 70) - 18 + 0.5, 4.0, scale=2.5)
        p_age = np.diff(np.concatenate([[0.0], cdf, [1.0]]))  # ages 18..70
        imm_ages = np.arange(18, 71)
        n18 = np.array([self.ref_men[0], self.ref_women[0]]) * self.scale
        n_imm = {}
        for year in self.years[:-1]:  # the last year's entrants are in no study population
            age = (year - 1) - by
            q = np.minimum(0.5, 3e-5 * np.exp(0.092 * age))[:, None] * np.array([1.25, 0.8])
            q = np.minimum(1.0, q + np.where(age < 35, 0.015, np.where(age < 50, 0.006, 0.002))[:, None])
            stock *= 1 - q
            n_imm[year] = max(0.0, self.target_total(year + 1) - stock.sum() - n18.sum())
            stock[by == year - 18] += n18
            stock[(year - imm_ages) - by[0]] += n_imm[year] * p_age[:, None] * np.array([0.52, 0.48])
        return {"n_imm": n_imm, "p_imm_age": p_age, "ratio": ratio,
                "age_pos": {int(a): i for i, a in enumerate(self.ref_ages)}}

    def unit(self, plan: dict, r: int, b0: int, shard: int, shards: int) -> tuple[dict, list]:
        """The persons of one unit — region index ``r``, birth years ``b0`` to ``b0 + BIRTH_BLOCK - 1``,
        ``shard`` of ``shards`` — and the indexes of those present in each study year.

        Persons never change region or birth year, so a unit is a closed panel: its entrants (the
        31 Dec 2013 stock, the 18-year-olds and immigrants of each year: Poisson with the expected
        numbers of :meth:`plan`, divided over the shards), their latent covariates, deaths and
        emigrations come from the unit's own random stream. A unit is therefore the same whichever
        partition it is written in, and its size is bounded (a shard holds at most ``SHARD_SCALE`` of
        the Danish cohorts of its block).
        """
        rng = _rng(self.seed, f"population:{r}:{b0}:{shard}")
        first = self.years[0]
        groups = []  # (entry year: present from the next year, birth year, expected men, women, immigrant)
        for b in range(b0, b0 + BIRTH_BLOCK):
            a = first - 1 - b
            if a in plan["age_pos"]:
                i, f = plan["age_pos"][a], self.region_share(first - 1, a)[r] * self.scale * plan["ratio"]
                groups.append((first - 1, b, self.ref_men[i] * f, self.ref_women[i] * f, False))
            for year in self.years[:-1]:
                a = year - b
                if a == 18:
                    f = self.region_share(year, 18)[r] * self.scale
                    groups.append((year, b, self.ref_men[0] * f, self.ref_women[0] * f, False))
                if 18 <= a <= 70 and plan["n_imm"][year] > 0:
                    f = self.region_share(year, a)[r] * plan["n_imm"][year] * plan["p_imm_age"][a - 18]
                    groups.append((year, b, 0.52 * f, 0.48 * f, True))
        counts = rng.poisson(np.array([[g[2], g[3]] for g in groups]).reshape(-1, 2) / shards)
        n_group = counts.sum(axis=1)
        entry = np.repeat(np.array([g[0] for g in groups], dtype=np.int32), n_group)
        birth = np.repeat(np.array([g[1] for g in groups], dtype=np.int16), n_group)
        sex = np.repeat(np.tile(np.array([0, 1], np.int8), len(groups)), counts.ravel())
        immigrant = np.repeat(np.array([g[4] for g in groups], dtype=bool), n_group)
        n = len(entry)
        z = rng.standard_normal((n, 3))
        # correlate latent health/labour-market variables: emp ~ cci (0.35), both with low education
        z_edu = z[:, 0]
        z_emp = 0.35 * (-z_edu) * 0.6 + np.sqrt(1 - 0.21**2) * z[:, 1]
        z_cci = 0.35 * z_emp + 0.15 * (-z_edu) + np.sqrt(1 - 0.35**2 - 0.15**2) * z[:, 2]
        persons = {
            "birth_year": birth, "sex": sex, "region": np.full(n, r, np.int8),
            "z_edu": z_edu.astype(np.float32), "z_emp": z_emp.astype(np.float32), "z_cci": z_cci.astype(np.float32),
            "u_ind": rng.random(n).astype(np.float32), "u_unknown_edu": rng.random(n).astype(np.float32),
            "immigrant": immigrant,
        }
        exit_day = np.full(n, -1, dtype=np.int32)  # days since 1970, -1 = none
        exit_type = np.zeros(n, dtype=np.int8)     # 1 death, 2 emigration
        alive = np.ones(n, dtype=bool)
        present = []
        for year in self.years:
            idx = np.flatnonzero(alive & (entry < year))
            present.append(idx)
            age = (year - 1) - birth[idx].astype(np.int32)
            q_death = np.minimum(0.5, 3e-5 * np.exp(0.092 * age)) * np.where(sex[idx] == 0, 1.25, 0.8)
            q_emig = np.where(age < 35, 0.015, np.where(age < 50, 0.006, 0.002))
            u = rng.random(len(idx))
            dies = u < q_death
            emig = (~dies) & (u < q_death + q_emig)
            leaving = idx[dies | emig]
            start = (dt.date(year, 1, 1) - dt.date(1970, 1, 1)).days
            ndays = 366 if year % 4 == 0 else 365
            # from 2 January: a person present on 31 December has at least one day of the year
            exit_day[leaving] = start + rng.integers(1, ndays, len(leaving))
            exit_type[idx[dies]] = 1
            exit_type[idx[emig]] = 2
            alive[leaving] = False
        persons["exit_day"] = exit_day
        persons["exit_type"] = exit_type
        return persons, present


_EDU_SHIFT_VAR = 0.054  # variance of the employment shift by education over the adult population


@functools.lru_cache(maxsize=1)
def _age_thresholds() -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-copula thresholds of employment and CCI score for ages 0..120 (computed once)."""
    ages = np.arange(0, 121)
    return _thresholds(_emp_probs(ages)), _thresholds(_cci_probs(ages))


def _covariates(persons: dict, idx: np.ndarray, year: int, noise: np.ndarray) -> dict:
    """Covariates of population year `year` (as of 31 Dec year-1) for persons idx; ``noise`` is the
    year's standard normal draw for the employment latent (one value per person in idx)."""
    age = ((year - 1) - persons["birth_year"][idx].astype(np.int32)).astype(np.int16)
    region_idx = persons["region"][idx]
    birth = persons["birth_year"][idx].astype(int)
    # education (fixed per person; unknown more often for immigrants)
    # thresholds per (birth cohort, region) combination, looked up per person
    combo = (birth - 1800) * 5 + region_idx
    lo = int(combo.min()) if len(combo) else 0
    every = np.arange(lo, int(combo.max()) + 1 if len(combo) else lo)  # a table lookup, no sort
    th = _thresholds(_edu_probs(every // 5 + 1800, every % 5))
    edu = _categorize(persons["z_edu"][idx], th[combo - lo])
    unknown = persons["u_unknown_edu"][idx] < np.where(persons["immigrant"][idx], 0.15, 0.012)
    edu = np.where(unknown, 4, edu).astype(np.int8)
    # employment: persistent latent + yearly noise; short education shifts towards weak attachment
    shift = np.array([0.35, 0.05, -0.2, -0.35, 0.1], dtype=np.float32)[edu]
    z = 0.92 * persons["z_emp"][idx] + 0.39 * noise + shift
    # the shift's variance over the national adult population (a constant, so that a person's employment
    # does not depend on who else is simulated with them)
    z = z / np.sqrt(1 + _EDU_SHIFT_VAR)
    emp_th, cci_th = _age_thresholds()
    emp = _categorize(z, emp_th[age])
    # comorbidity (Charlson score) rising with age, correlated with employment latent
    # no yearly noise: chronic conditions persist, and as the thresholds fall with age a person's score
    # never decreases (so that a diagnosis history can produce it exactly; see lumbarstats.adapters)
    cci = _categorize(persons["z_cci"][idx], cci_th[age]).astype(np.int16)
    # industry for the employed only
    u = persons["u_ind"][idx]
    female = persons["sex"][idx] == 1
    cm = np.cumsum(_IND_MEN / _IND_MEN.sum())[:-1]
    cw = np.cumsum(_IND_WOMEN / _IND_WOMEN.sum())[:-1]
    ind = np.where(female, np.searchsorted(cw, u, side="right"), np.searchsorted(cm, u, side="right")).astype(np.int8)
    employed = emp == _EMP.index("employed")
    ind = np.where(employed, ind, -1).astype(np.int8)
    return {"age": age, "region_idx": region_idx, "edu": edu, "emp": emp, "cci": cci, "ind": ind,
            "sex": persons["sex"][idx]}


# --------------------------------------------------------------------------------------------
# rate model and calibration
# --------------------------------------------------------------------------------------------

_AGE_EDGES = np.array([18, 30, 40, 50, 60, 70, 80])


def _age_band_idx(age: np.ndarray) -> np.ndarray:
    return (np.searchsorted(_AGE_EDGES, age, side="right") - 1).astype(np.int8)


def _cci_cat_idx(cci: np.ndarray, cutpoints) -> np.ndarray:
    return np.searchsorted(np.asarray(cutpoints), cci, side="right").astype(np.int8)


_EMP_PROFILE = np.array([0, 4, 1, 1, 2, 3])  # _EMP order -> employment_profile (employed, unemployed, sickness, disability, pension)
_EDU_PROFILE = np.array([0, 0, 1, 2, -1])    # _EDU order -> education_profile (-1: unknown, no profile)
_PROFILE_AGE_EDGES = np.array([18, 35, 66])  # <35, 35-65, >65 (codelists/age_group_profile.csv)


def _profile_key(sex, age, emp, edu, cci_cat) -> np.ndarray:
    """Profile number 0..359 (sex x age group x employment x education x CCI), -1 without a profile."""
    agep = np.searchsorted(_PROFILE_AGE_EDGES, age, side="right") - 1
    e = _EDU_PROFILE[edu]
    key = (((sex.astype(np.int64) * 3 + agep) * 5 + _EMP_PROFILE[emp]) * 3 + np.maximum(e, 0)) * 4 + cci_cat
    return np.where(e < 0, -1, key)


def _profile_targets(dd, ref: pd.DataFrame) -> dict:
    """Published top-five profile shares (table 4.1) as {modality: {profile key: share}}."""
    sex = {"Mand": 0, "Kvinde": 1}
    agep = {v: i for i, v in enumerate(dd.codelist("age_group_profile").sort_values("min_age")["label_da"])}
    emp = {v: i for i, v in enumerate(dd.codelist("employment_profile").sort_values("order")["label_da"])}
    edu = {v.casefold(): i for i, v in enumerate(dd.codelist("education_profile").sort_values("order")["label_da"])}
    cci = {v: i for i, v in enumerate(dd.codelist("cci_category").sort_values("order")["label_da_profile"])}
    out: dict = {"MR": {}, "XRAY": {}}
    for r in ref.itertuples():
        m = "MR" if r.modality == "MR" else "XRAY"
        key = (((sex[r.sex] * 3 + agep[r.age_group]) * 5 + emp[r.employment]) * 3 + edu[r.education.casefold()]) * 4 \
            + cci[r.cci]
        out[m][int(key)] = r.share_of_use_pct / 100.0
    return out


class _RateModel:
    """Multiplicative rate model on the cell table; calibrated by raking + exact base solve."""

    VARS = ["age_band", "sex", "edu", "emp", "ind", "cci_cat"]
    SIZES = {"age_band": 7, "sex": 2, "edu": 5, "emp": 6, "ind": 20, "cci_cat": 4}

    def __init__(self, cells: pd.DataFrame, standard: np.ndarray, years, n_regions: int):
        self.cells = cells  # region, year, age_band, sex, edu, emp, ind(0..19, 19=none), cci_cat, working, pop
        self.standard = standard  # (2, 7) weights sex x age band
        self.years = list(years)
        self.n_regions = n_regions
        self.factors = {m: {v: np.ones((n_regions, self.SIZES[v])) for v in self.VARS} for m in MODALITIES}
        self.base = {m: np.ones((n_regions, len(self.years))) for m in MODALITIES}
        # national profile interaction (table 4.1): factor per profile key 0..359, index 360 = no profile
        self.profile = {m: np.ones(361) for m in MODALITIES}

    def relative(self, m: str, cells: pd.DataFrame | None = None) -> np.ndarray:
        c = self.cells if cells is None else cells
        r = c["region"].to_numpy()
        out = np.ones(len(c))
        for v in self.VARS:
            out *= self.factors[m][v][r, c[v].to_numpy()]
        pk = c["profile"].to_numpy()
        return out * self.profile[m][np.where(pk < 0, 360, pk)]

    def rake_profiles(self, targets: dict, period) -> None:
        """Scale the published top-five profiles so that their national share of profiled examinations
        in ``period`` equals table 4.1 (the other profiles share the rest in proportion)."""
        c = self.cells
        sel = c["year"].between(*period).to_numpy()
        cs = c.loc[sel]
        pk = cs["profile"].to_numpy()
        for m in MODALITIES:
            e = self._expected_sel(m, cs)
            prof = pk >= 0
            tot = e[prof].sum()
            by_key = np.bincount(pk[prof], weights=e[prof], minlength=360)
            for key, share in targets[m].items():
                if by_key[key] > 0:
                    self.profile[m][key] *= share * tot / by_key[key]
            # no other profile may outrank the published fifth: cap the others just below it
            cap = 0.9 * min(targets[m].values()) * tot
            others = np.setdiff1d(np.flatnonzero(by_key > cap), list(targets[m]))
            self.profile[m][others] *= cap / by_key[others]

    def expected(self, m: str) -> np.ndarray:
        c = self.cells
        yi = c["year"].to_numpy() - self.years[0]
        return c["pop"].to_numpy() * self.relative(m) * self.base[m][c["region"].to_numpy(), yi]

    def _dsr(self, e: np.ndarray, n: np.ndarray, groups: np.ndarray, sex: np.ndarray, ab: np.ndarray, ngroups):
        """DSR per group (array over groups) with the standard restricted to strata present."""
        key = (groups * 2 + sex) * 7 + ab
        E = np.bincount(key, weights=e, minlength=ngroups * 14).reshape(ngroups, 2, 7)
        N = np.bincount(key, weights=n, minlength=ngroups * 14).reshape(ngroups, 2, 7)
        w = np.where(N > 0, self.standard[None], 0.0)
        rate = np.divide(E, N, out=np.zeros_like(E), where=N > 0)
        return (w * rate).sum(axis=(1, 2)) / np.maximum(w.sum(axis=(1, 2)), 1e-300)

    def solve_base(self, published: dict) -> None:
        """base[r, y] so that the expected DSR of each region-year equals the published value."""
        c = self.cells
        r = c["region"].to_numpy()
        yi = c["year"].to_numpy() - self.years[0]
        g = r * len(self.years) + yi
        for m in MODALITIES:
            e = c["pop"].to_numpy() * self.relative(m)
            dsr = self._dsr(e, c["pop"].to_numpy(), g, c["sex"].to_numpy(), c["age_band"].to_numpy(),
                            self.n_regions * len(self.years)).reshape(self.n_regions, len(self.years))
            self.base[m] = published[m] / dsr

    def rake(self, targets: pd.DataFrame, period) -> None:
        """One raking sweep per variable toward region-specific 2021–23 group targets.

        Each variable's model rate is computed over the same population as the published (and the
        reproduced, :mod:`lumbarstats.groups`) rate: ``targets["working_age"]`` restricts employment
        *and industry* to working ages. Raking industry over all employed adults instead (70+ strata with
        their large standard weights and high X-ray rates) pushed the industry factors, and through the
        employed factor they share every employed person with, the employment factors below the
        published working-age rates (X-ray 10–20 %, MR a few %; issue 15).
        """
        c = self.cells
        sel = c["year"].between(*period).to_numpy()
        cs = c.loc[sel]
        r = cs["region"].to_numpy()
        for m in MODALITIES:
            t = targets[targets["modality"] == m]
            for v in ["ind", "cci_cat", "edu", "emp", "sex", "age_band"]:
                tv = t[t["var"] == v]
                if tv.empty:
                    continue
                e = self._expected_sel(m, cs)
                n = cs["pop"].to_numpy()
                lev = cs[v].to_numpy()
                k = self.SIZES[v]
                mask = np.ones(len(cs), bool)
                if tv["working_age"].iloc[0]:
                    mask = cs["working"].to_numpy()
                groups = r * k + lev
                if tv["standardized"].iloc[0]:
                    model = self._dsr(e[mask], n[mask], groups[mask], cs["sex"].to_numpy()[mask],
                                      cs["age_band"].to_numpy()[mask], self.n_regions * k)
                else:
                    E = np.bincount(groups, weights=e, minlength=self.n_regions * k)
                    N = np.bincount(groups, weights=n, minlength=self.n_regions * k)
                    model = np.divide(E, N, out=np.zeros_like(E), where=N > 0)
                model = model.reshape(self.n_regions, k)
                f = self.factors[m][v]
                for row in tv.itertuples():
                    if model[row.region, row.level] > 0:
                        f[row.region, row.level] *= row.target / model[row.region, row.level]
                self._tie_untargeted(m, v)

    def _expected_sel(self, m, cs):
        yi = cs["year"].to_numpy() - self.years[0]
        return cs["pop"].to_numpy() * self.relative(m, cs) * self.base[m][cs["region"].to_numpy(), yi]

    def _tie_untargeted(self, m, v):
        f = self.factors[m][v]
        if v == "edu":
            f[:, 4] = f[:, 1]  # unknown education behaves like upper secondary
        if v == "emp":
            f[:, _EMP.index("other")] = f[:, _EMP.index("unemployed")]
            f[:, _EMP.index("pension")] = f[:, _EMP.index("employed")] * 1.15
        if v == "ind":
            f[:, 19] = 1.0  # not employed: no industry effect


def _group_targets(dd, ref_groups: pd.DataFrame, standard_rates_period: dict) -> pd.DataFrame:
    """Region-specific raking targets from tables 5.3/5.4, mapped to model levels.

    Whether a variable's rate is standardized and whether its population is restricted to working ages
    come from :data:`lumbarstats.groups.REPORT_VARIABLES`, the one place that defines how tables 5.3/5.4
    are computed, so that the register is calibrated to exactly the rates the toolkit reproduces.
    Columns: modality, var, level, region, target (per person-year), standardized, working_age.
    """
    from lumbarstats.groups import REPORT_VARIABLES

    region_idx = {name: i for i, name in enumerate(dd.region_names().values())}
    lab = {
        "age_group": ("age_band", {v: i for i, v in enumerate(dd.codelist("age_band")["label_da"])}),
        "sex": ("sex", {"Mand": 0, "Kvinde": 1}),
        "education": ("edu", {v: i for i, v in enumerate(dd.codelist("education")["label_da"])}),
        "cci": ("cci_cat", {v: i for i, v in enumerate(dd.codelist("cci_category")["label_da"])}),
    }
    emp = dd.codelist("employment")
    emp_map = {}
    for _, row in emp.iterrows():
        emp_map[row["label_da"]] = _EMP.index(row["code"])
        if row["label_da_xray"]:
            emp_map[row["label_da_xray"]] = _EMP.index(row["code"])
    lab["employment"] = ("emp", emp_map)
    ind = dd.codelist("industry")
    ind_map = {row["report_label_da"]: int(row["code"]) - 1 for _, row in ind.iterrows() if row["report_label_da"]}
    lab["industry"] = ("ind", ind_map)
    rows = []
    for rec in ref_groups.itertuples():
        var, mapping = lab[rec.variable]
        spec = REPORT_VARIABLES[rec.variable]
        m = "MR" if rec.modality == "MR" else "XRAY"
        rows.append({"modality": m, "var": var, "level": mapping[rec.group], "region": region_idx[rec.region],
                     "target": rec.rate_per_1000 / 1000.0, "standardized": spec.standardized,
                     "working_age": spec.working_age})
    t = pd.DataFrame(rows)
    # industries outside the report's top six: somewhat below the employed rate (report fig. 4.11–4.12)
    extra = []
    top = set(ind_map.values())
    for m in MODALITIES:
        emp_t = t[(t["modality"] == m) & (t["var"] == "emp") & (t["level"] == 0)]
        for rec in emp_t.itertuples():
            for level in range(19):
                if level not in top:
                    factor = 0.92 if level != 18 else 0.9
                    extra.append({"modality": m, "var": "ind", "level": level, "region": rec.region,
                                  "target": rec.target * factor, "standardized": True,
                                  "working_age": REPORT_VARIABLES["industry"].working_age})
    return pd.concat([t, pd.DataFrame(extra)], ignore_index=True)


# --------------------------------------------------------------------------------------------
# examinations, surgery
# --------------------------------------------------------------------------------------------

def _year_bounds(year: int) -> tuple[int, int]:
    start = (dt.date(year, 1, 1) - dt.date(1970, 1, 1)).days
    end = (dt.date(year, 12, 31) - dt.date(1970, 1, 1)).days
    return start, end


_MONTH_WEIGHT = np.array([1.08, 1.05, 1.08, 1.0, 1.02, 0.98, 0.70, 0.92, 1.06, 1.06, 1.05, 0.85])


@functools.lru_cache(maxsize=64)
def _date_cdf(year: int) -> tuple[np.ndarray, np.ndarray]:
    """The days of ``year`` and the cumulative distribution of an examination date over them
    (seasonal month weights, little elective imaging at weekends); cached per year."""
    start, end = _year_bounds(year)
    days = np.arange(start, end + 1)
    months = pd.DatetimeIndex(days.astype("datetime64[D]")).month.to_numpy() - 1
    w = _MONTH_WEIGHT[months]
    dow = (days + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    w = w * np.where(dow >= 5, 0.08, 1.0)
    days.flags.writeable = False
    cdf = np.cumsum(w) / w.sum()
    cdf.flags.writeable = False
    return days, cdf


def _draw_dates(rng, n: int, year: int, last_day: np.ndarray) -> np.ndarray:
    """Seasonal dates within `year`, not after each person's last day in the population."""
    start, end = _year_bounds(year)
    days, cdf = _date_cdf(year)
    d = days[np.searchsorted(cdf, rng.random(n), side="right").clip(0, len(days) - 1)]
    over = d > last_day
    if over.any():  # persons leaving during the year: uniform before their exit
        lo = start
        span = np.maximum(last_day[over] - lo, 0)
        d[over] = _weekday(lo + (rng.random(over.sum()) * (span + 1)).astype(int), lo, last_day[over])
    return d


def _weekday(d: np.ndarray, lo, hi) -> np.ndarray:
    """Move Saturdays to Friday and Sundays to Monday (within [lo, hi]): little elective imaging at weekends."""
    dow = (d + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    d = d - (dow == 5) + (dow == 6)
    d = np.where(d > hi, d - 3, d)
    return np.clip(d, lo, hi)


def _conditional_poisson(rng, rate: np.ndarray, frailty: np.ndarray, stratum: np.ndarray, order: np.ndarray,
                         n_strata: int) -> np.ndarray:
    """Episodes per person: the stratum total is its expectation (stochastically rounded), and the
    episodes are allocated to persons with probability proportional to rate x frailty.

    Given its total, a Poisson process allocates events multinomially in proportion to the
    intensities; fixing the totals of each region x sex x age-band stratum at their expectations
    keeps the realised standardized rates of tables 1–2 within a few hundredths of the published
    ones at full scale, while group, person and repeat patterns keep their randomness.
    Returns the person index (within the year) of each episode.
    """
    expected = np.bincount(stratum, weights=rate, minlength=n_strata)
    total = np.floor(expected).astype(np.int64)
    total += rng.random(n_strata) < (expected - total)
    w = (rate * frailty)[order]
    cum = np.cumsum(w)
    s_sorted = stratum[order]
    ends = np.searchsorted(s_sorted, np.arange(n_strata), side="right")
    starts = np.concatenate([[0], ends[:-1]])
    lo = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
    hi = np.where(ends > 0, cum[np.maximum(ends - 1, 0)], 0.0)
    which = np.repeat(np.arange(n_strata), total)
    u = lo[which] + rng.random(len(which)) * (hi[which] - lo[which])
    pos = np.searchsorted(cum, u, side="right")
    pos = np.clip(pos, starts[which], np.maximum(ends[which] - 1, starts[which]))
    return np.sort(order[pos])


def _shift_within(d0: np.ndarray, offset: np.ndarray, lo: int, hi: np.ndarray) -> np.ndarray:
    """d0 + offset, reflected back before d0 if it passes hi (keeps the examination in its year)."""
    d = d0 + offset
    bad = d > hi
    d[bad] = d0[bad] - offset[bad]
    return _weekday(np.clip(d, lo, hi), lo, hi)


# --------------------------------------------------------------------------------------------
# main entry point
# --------------------------------------------------------------------------------------------

def _dict_array(codes_idx: np.ndarray, labels: list[str]) -> pa.DictionaryArray:
    idx = pa.array(codes_idx.astype(np.int32), mask=codes_idx < 0)
    return pa.DictionaryArray.from_arrays(idx, pa.array(labels))


def _unit_covariates(persons: dict, present: list, years: list, rng, dd, cutpoints) -> list[dict]:
    """Covariates of every population year of one unit (adults only); ``rng`` is the unit's covariate
    stream (one standard normal per person-year, in year order)."""
    out = []
    for year, idx in zip(years, present, strict=True):
        noise = rng.standard_normal(len(idx)).astype(np.float32)
        cov = _covariates(persons, idx, year, noise)
        keep = cov["age"] >= dd.spec["adult_min_age"]
        cov = {k: v[keep] for k, v in cov.items()}
        cov["idx"] = idx[keep]
        cov["age_band"] = _age_band_idx(cov["age"])
        cov["cci_cat"] = _cci_cat_idx(cov["cci"], cutpoints)
        out.append(cov)
    return out


def _calibration_cells(cov: dict, year: int, dd) -> pd.DataFrame:
    """Person counts of one year by region x age band x sex x education x employment x industry x CCI
    category x working age x profile age group (the cells the rate model is raked over)."""
    ind = np.where(cov["ind"] < 0, 19, cov["ind"])
    working = (cov["age"] >= dd.working_age[0]) & (cov["age"] <= dd.working_age[1])
    agep = np.searchsorted(_PROFILE_AGE_EDGES, cov["age"], side="right") - 1
    dims = (5, 7, 2, 5, 6, 20, 4, 2, 3)
    key = np.ravel_multi_index(
        (cov["region_idx"], cov["age_band"], cov["sex"], cov["edu"], cov["emp"], ind, cov["cci_cat"], working,
         agep), dims)
    cnt = np.bincount(key)
    nz = np.flatnonzero(cnt)
    parts = np.unravel_index(nz, dims)
    frame = pd.DataFrame({
        "region": parts[0], "year": year, "age_band": parts[1], "sex": parts[2], "edu": parts[3],
        "emp": parts[4], "ind": parts[5], "cci_cat": parts[6], "working": parts[7].astype(bool),
        "pop": cnt[nz].astype(float)})
    # a representative age of the profile age group is enough to place the cell's profile
    frame["profile"] = _profile_key(parts[2], np.array([18, 35, 66])[parts[8]], parts[4], parts[3], parts[6])
    return frame


def _calibrate(dd, cells: pd.DataFrame, std: np.ndarray, years: list, n_regions: int,
               cfg: SynthConfig) -> tuple[_RateModel, dict]:
    """Solve the rate model: base rates to the published tables 1-2 (exactly, in expectation), group
    factors raked to tables 5.3-5.4 and profile factors to table 4.1. Returns (model, published)."""
    published = {}
    for m, name in (("MR", "table1_mr_annual_standardized"), ("XRAY", "table2_xray_annual_standardized")):
        tab = _reference.load(name).set_index("region").loc[list(dd.region_names().values())]
        published[m] = tab[[str(y) for y in years]].to_numpy(float) / 1000.0
    model = _RateModel(cells, std, years, n_regions)
    targets = _group_targets(dd, _reference.load("table5_3_5_4_groups_by_region"), {})
    ptargets = _profile_targets(dd, _reference.load("table4_1_top_profiles"))
    for _ in range(cfg.rake_outer):
        model.solve_base(published)
        for _ in range(cfg.rake_sweeps):
            model.rake(targets, (2021, 2023))
            model.rake_profiles(ptargets, (2021, 2023))
    model.solve_base(published)
    return model, published


def generate(out_dir, *, scale: float = 1.0, seed: int = 2024, force: bool = False,
             config: SynthConfig | None = None, verbose: bool = True, intervention_effects=None,
             layout: str = "auto", cohort_band: int = 10) -> Path:
    """Generate the synthetic register into ``out_dir`` (atomically; skipped if already there).

    Generation streams by *unit* (region x 5 birth years x shard; persons never leave their unit): a first
    pass simulates the population unit by unit and keeps only the calibration's aggregated cells, the
    rate model is calibrated on them, and a second pass simulates each unit again (same streams) with
    its examinations, surgery and exits and writes it out. Peak memory is that of one unit and the
    aggregated cells, whatever the scale (about 0.4 GB; scale 10 runs on a 24 GB machine).

    Parameters
    ----------
    out_dir : folder to write (``population.parquet``, ``examinations.parquet``, ``surgery.parquet``,
        ``exits.parquet``, ``metadata.json``, ``model/``).
    scale : fraction of the Danish adult population (1.0 ≈ 4.7 million adults a year, 47 million
        person-years, 1.5 million public examinations; 0.01 for tests); at most ``MAX_SCALE``.
    seed : the same seed, scale and configuration give the same register (the same rows in every
        table) in any layout and partitioning, and identical files for the same layout and partitioning.
    force : regenerate even if ``out_dir`` already holds a register with the same seed and scale, and write
        into a non-empty folder that lumbarstats did not make. Without it such a folder is refused (nothing
        changed). Either way only the register's own files are replaced: files the toolkit did not write
        are never deleted (the folder marker ``.lumbarstats.json`` lists the toolkit's files).
    config : :class:`SynthConfig` (default: the report's calibration, no intervention effects).
    intervention_effects : effects built into the register (see :class:`InterventionEffect`): a sequence
        of ``InterventionEffect`` or dicts with its fields; overrides ``config.intervention_effects``.
        Written to ``metadata.json`` (``intervention_effects``) so that analyses can read the truth.
    layout : ``"file"`` (one Parquet file per table), ``"folder"`` (``<table>.parquet/`` folders with one
        file per partition, ``part-<region>-<first birth year of the band>.parquet``), or ``"auto"``:
        files below scale ``FOLDER_LAYOUT_FROM`` (0.1), folders from there on.
    cohort_band : birth years per partition in the folder layout (partition = region x birth-cohort band).
    """
    if not (0 < scale <= MAX_SCALE):
        raise ValueError(f"scale must be in (0, {MAX_SCALE}], got {scale}")
    if layout not in ("auto", "file", "folder"):
        raise ValueError(f"layout must be 'auto', 'file' or 'folder', got {layout!r}")
    if int(cohort_band) < 1 or int(cohort_band) % BIRTH_BLOCK:
        raise ValueError(f"cohort_band must be a positive multiple of {BIRTH_BLOCK} birth years, got {cohort_band}")
    layout = ("folder" if scale >= FOLDER_LAYOUT_FROM else "file") if layout == "auto" else layout
    out = Path(out_dir)
    cfg = config or SynthConfig()
    effects = cfg.intervention_effects if intervention_effects is None else intervention_effects
    cfg = dataclasses.replace(cfg, intervention_effects=normalize_effects(effects))
    # refuse a foreign folder before the (long) generation; nothing is written or deleted
    _io.check_folder(out, REGISTER_KIND, force, is_synthetic_register)
    if not force and _same_register(out, seed, scale, cfg, layout, int(cohort_band)):
        if verbose:
            print(f"synthetic register already present in {out} (seed {seed}, scale {scale}); use force=True to regenerate")
        return out
    _io.clean_stale_temporaries(out.parent)  # left by a killed run
    t0 = time.perf_counter()
    dd = _dictionary.load()
    years = list(range(dd.study_years[0], dd.study_years[1] + 1))
    region_codes = np.array(sorted(dd.region_names()))
    sim = _PopulationSimulator(scale, seed, dd, _reference.load("population_denmark_2022_by_age_sex"),
                               _reference.load("population_regions"))
    plan = sim.plan()
    shards = max(1, math.ceil(scale / SHARD_SCALE))
    units = [(r, b, k) for r in range(len(region_codes)) for b in sim.blocks() for k in range(shards)]
    cells, sizes = _population_cells(sim, plan, units, shards, years, dd)
    # default standard: national adult population pooled over the study years, sex x age band
    std = np.zeros((2, 7))
    np.add.at(std, (cells["sex"].to_numpy(), cells["age_band"].to_numpy()), cells["pop"].to_numpy())
    t_pop = time.perf_counter()
    model, published = _calibrate(dd, cells, std, years, len(region_codes), cfg)
    del cells
    t_cal = time.perf_counter()

    tmp = _io.staging_dir(out, REGISTER_KIND)
    (tmp / "model").mkdir(parents=True)
    try:
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        counts = _write_units(tmp, layout, int(cohort_band), sim, plan, units, shards, offsets, dd, cfg, model,
                              years, region_codes)
        _write_model(tmp / "model", dd, model, std, years, region_codes, published)
        # deterministic metadata (no timestamps): the same seed and scale give identical files
        meta = {
            "generator": "lumbarstats.synth", "version": __version__, "seed": seed, "scale": scale,
            "years": [years[0], years[-1]], "persons": int(sum(sizes)), "counts": counts,
            "config": _config_dict(cfg),
            "standard": "national adult population pooled over the study years by sex x age band (model/standard.csv)",
            "layout": layout,
            "partitioning": {"unit": f"region x {BIRTH_BLOCK} birth years x shard (one random stream each)", "shards": shards,
                             "cohort_band": int(cohort_band),
                             "files": "one file per table" if layout == "file" else
                             "<table>.parquet/part-<region>-<first birth year of the band>.parquet"},
            "intervention_effects": [e.as_dict() for e in cfg.intervention_effects],
            "intervention_note": INTERVENTION_NOTE,
        }
        _io.write_text(json.dumps(meta, indent=2), tmp / "metadata.json")
        _clear_other_layout(out, layout)
        # only the toolkit's own files are replaced; metadata.json moves last, so that an interrupted
        # install is never taken for a complete register
        _io.install_staged(tmp, out, REGISTER_KIND, force=force, recognise=is_synthetic_register,
                           last=("metadata.json",))
    except BaseException:
        with contextlib.suppress(OSError):
            _io.remove_owned_tree(tmp)
        raise
    if verbose:
        print(f"synthetic register: {counts['population']:,} person-years, {counts['examinations']:,} examinations "
              f"in {time.perf_counter() - t0:.1f} s (population {t_pop - t0:.1f} s, calibration {t_cal - t_pop:.1f} s)"
              f" -> {out}")
    return out


def _clear_other_layout(out: Path, layout: str) -> None:
    """Before installing one layout over the other, remove the toolkit's own files of the old one (a table
    file where a folder of the same name goes, or the reverse); files it did not write stay."""
    marker = _io.read_marker(out) if out.is_dir() else None
    owned = set((marker or {}).get("files", []))
    for name in TABLE_FILES.values():
        target = out / name
        if layout == "folder" and target.is_file() and name in owned:
            target.unlink()
        elif layout == "file" and target.is_dir():
            for f in sorted(target.rglob("*")):
                if f.is_file() and f.relative_to(out).as_posix() in owned:
                    f.unlink()
            for d in sorted((d for d in target.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                target.rmdir()
    if marker is not None:  # the removed files are no longer the toolkit's files in this folder
        gone = {f for f in owned if not (out / f).is_file()}
        if gone:
            info = {k: v for k, v in marker.items() if k not in ("tool", "kind", "version", "created", "files")}
            _io.write_marker(out, marker.get("kind", REGISTER_KIND), files=owned - gone, **info)


def _population_cells(sim: _PopulationSimulator, plan: dict, units: list, shards: int, years: list,
                      dd) -> tuple[pd.DataFrame, np.ndarray]:
    """First pass: every unit's population, reduced to the calibration cells (person counts) in batches of
    about ``CELL_BATCH_ROWS`` person-years; returns the cells (summed, in a canonical order) and the number
    of persons per unit."""
    cutpoints = dd.cci_cutpoints()
    sizes = np.zeros(len(units), dtype=np.int64)
    acc: list[pd.DataFrame] = []
    batch: dict[int, list] = {y: [] for y in years}
    rows = 0

    def reduce_batch():
        frames = [_calibration_cells({k: np.concatenate([c[k] for c in covs]) for k in covs[0]}, year, dd)
                  for year, covs in batch.items() if covs]
        for covs in batch.values():
            covs.clear()
        return _sum_cells(acc + frames)

    for u, (r, b, k) in enumerate(units):
        persons, present = sim.unit(plan, r, b, k, shards)
        sizes[u] = len(persons["sex"])
        covs = _unit_covariates(persons, present, years, _rng(sim.seed, f"covariates:{r}:{b}:{k}"), dd, cutpoints)
        for year, cov in zip(years, covs, strict=True):
            if len(cov["idx"]):
                batch[year].append(cov)
                rows += len(cov["idx"])
        if rows >= CELL_BATCH_ROWS:
            acc, rows = [reduce_batch()], 0
    return reduce_batch(), sizes


CELL_BATCH_ROWS = 2_000_000


def _sum_cells(frames: list) -> pd.DataFrame:
    """Sum the person counts (``pop``) of cells with the same keys, sorted by the keys (so that the
    calibration sees the same table whatever the order of the units)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        raise ValueError("the synthetic population is empty; is the scale too small?")
    cells = pd.concat(frames, ignore_index=True)
    keys = [c for c in cells.columns if c != "pop"]
    return cells.groupby(keys, as_index=False, sort=True)["pop"].sum()[cells.columns]


class _TableSink:
    """Buffered Parquet writing of the unit tables: one file per table (``file``) or one file per table and
    partition (``folder``); a row group holds at most ``FLUSH_ROWS`` rows and memory stays bounded."""

    FLUSH_ROWS = 1_000_000

    def __init__(self, root: Path, layout: str):
        self.root, self.layout = root, layout
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.buffers: dict[str, list] = {t: [] for t in TABLE_FILES}
        if layout == "file":
            for t in TABLE_FILES:
                self.writers[t] = pq.ParquetWriter(root / TABLE_FILES[t], _SCHEMAS[t], compression="zstd")

    def open_partition(self, part: str) -> None:
        if self.layout == "folder":
            for t in TABLE_FILES:
                folder = self.root / TABLE_FILES[t]
                folder.mkdir(exist_ok=True)
                self.writers[t] = pq.ParquetWriter(folder / f"part-{part}.parquet", _SCHEMAS[t], compression="zstd")

    def add(self, tables: dict) -> None:
        for t, table in tables.items():
            if table.num_rows:
                self.buffers[t].append(table)
                if sum(x.num_rows for x in self.buffers[t]) >= self.FLUSH_ROWS:
                    self._flush(t)

    def _flush(self, t: str) -> None:
        if self.buffers[t]:
            self.writers[t].write_table(pa.concat_tables(self.buffers[t]), row_group_size=self.FLUSH_ROWS * 2)
            self.buffers[t] = []

    def close_partition(self) -> None:
        if self.layout == "folder":
            self.close()

    def close(self) -> None:
        for t in TABLE_FILES:
            if t in self.writers:
                self._flush(t)
                self.writers.pop(t).close()


def _write_units(tmp: Path, layout: str, cohort_band: int, sim, plan, units, shards, offsets, dd, cfg, model,
                 years, region_codes) -> dict:
    """Second pass: simulate each unit again, draw its examinations, surgery and exits, write it out
    (partition = region x birth-cohort band); returns the row counts."""
    cutpoints = dd.cci_cutpoints()
    counts = dict.fromkeys(("population", "examinations", "public_mr", "public_xray", "surgery", "exits"), 0)
    sink = _TableSink(tmp, layout)
    try:
        for (r, band), group in itertools.groupby(
                enumerate(units), key=lambda x: (x[1][0], x[1][1] // cohort_band * cohort_band)):
            sink.open_partition(f"{int(region_codes[r])}-{band}")
            for u, unit in group:
                tables, n = _unit_tables(sim, plan, unit, shards, int(offsets[u]), dd, cutpoints, cfg, model,
                                         years, region_codes)
                sink.add(tables)
                for key, v in n.items():
                    counts[key] += v
            sink.close_partition()
    finally:
        sink.close()
    return counts


def _unit_tables(sim, plan, unit, shards, offset: int, dd, cutpoints, cfg: SynthConfig, model, years,
                 region_codes) -> tuple[dict, dict]:
    """One unit's rows of the four tables (Arrow tables) and their counts; every draw from the unit's streams."""
    r, b, k = unit
    key = f"{r}:{b}:{k}"
    seed = sim.seed
    persons, present = sim.unit(plan, r, b, k, shards)
    covs = _unit_covariates(persons, present, years, _rng(seed, f"covariates:{key}"), dd, cutpoints)
    n = len(persons["sex"])
    person_id = np.arange(n, dtype=np.int64) + (1_000_001 + offset)
    shape = 1.0 / cfg.frailty_variance
    frailty = _rng(seed, f"frailty:{key}").gamma(shape, 1.0 / shape, n).astype(np.float32)
    ex_rng = _rng(seed, f"examinations:{key}")
    exams: list[np.ndarray] = []     # rows (person_idx, day, modality_idx, payer_idx)
    episodes: list[np.ndarray] = []  # rows (person_idx, day, kind) kind 0 MR-single, 1 XRAY-single, 2 both
    pop_tables = []
    for j, (year, cov) in enumerate(zip(years, covs, strict=True)):
        if not len(cov["idx"]):
            continue
        pop_tables.append(_population_table(cov, year, person_id, region_codes))
        _draw_year_exams(ex_rng, cfg, model, cov, j, year, len(years), persons, frailty, exams, episodes)
    ex = np.concatenate(exams).astype(np.int64) if exams else np.zeros((0, 4), np.int64)
    ex = _apply_effects(ex, cfg.intervention_effects, int(region_codes[r]), persons, seed, key)
    ex = ex[np.lexsort((ex[:, 2], ex[:, 1], ex[:, 0]))]
    ep = np.concatenate(episodes).astype(np.int64) if episodes else np.zeros((0, 3), np.int64)
    surg = _unit_surgery(_rng(seed, f"surgery:{key}"), cfg, ep, persons, covs, years, int(region_codes[r]))
    tables = {
        "population": pa.concat_tables(pop_tables) if pop_tables else _SCHEMAS["population"].empty_table(),
        "examinations": _exam_table(dd, ex, person_id),
        "surgery": _surgery_table(dd, _rng(seed, f"surgery-codes:{key}"), surg, person_id),
        "exits": _exits_table(persons, years, person_id),
    }
    public = ex[:, 3] == 0
    n_rows = {"population": sum(len(c["idx"]) for c in covs), "examinations": int(len(ex)),
              "public_mr": int(((ex[:, 2] == 0) & public).sum()), "public_xray": int(((ex[:, 2] == 1) & public).sum()),
              "surgery": int(len(surg)), "exits": tables["exits"].num_rows}
    return tables, n_rows


def _write_model(folder: Path, dd, model: _RateModel, std, years, region_codes, published) -> None:
    """Save the rate model so that expectations can be recomputed independently (tests)."""
    names = {"age_band": list(dd.codelist("age_band")["code"]), "sex": ["M", "F"], "edu": _EDU, "emp": _EMP,
             "ind": [f"{i:02d}" for i in range(1, 20)] + ["none"],
             "cci_cat": list(dd.codelist("cci_category").sort_values("order")["code"])}
    column = {"age_band": "age_band", "sex": "sex", "edu": "education", "emp": "employment", "ind": "industry",
              "cci_cat": "cci_category"}
    rows = []
    for m in MODALITIES:
        for v, f in model.factors[m].items():
            for r, code in enumerate(region_codes):
                for level, lname in enumerate(names[v]):
                    rows.append({"modality": m, "variable": column[v], "region": int(code), "level": lname,
                                 "factor": float(f[r, level])})
    pd.DataFrame(rows).to_csv(folder / "factors.csv", index=False)
    base_rows = []
    for m in MODALITIES:
        for r, code in enumerate(region_codes):
            for j, y in enumerate(years):
                base_rows.append({"modality": m, "region": int(code), "year": y, "base": float(model.base[m][r, j]),
                                  "published_rate": float(published[m][r, j] * 1000)})
    pd.DataFrame(base_rows).to_csv(folder / "base.csv", index=False)
    agep = list(dd.codelist("age_group_profile").sort_values("min_age")["code"])
    empp = list(dd.codelist("employment_profile").sort_values("order")["code"])
    edup = list(dd.codelist("education_profile").sort_values("order")["code"])
    cats = names["cci_cat"]
    prow = []
    for m in MODALITIES:
        for key in np.flatnonzero(model.profile[m][:360] != 1.0):
            k, cci = divmod(int(key), 4)
            k, edu = divmod(k, 3)
            k, emp = divmod(k, 5)
            sex, age = divmod(k, 3)
            prow.append({"modality": m, "sex": ["M", "F"][sex], "age_group_profile": agep[age],
                         "employment_profile": empp[emp], "education_profile": edup[edu], "cci_category": cats[cci],
                         "factor": float(model.profile[m][key])})
    pd.DataFrame(prow, columns=["modality", "sex", "age_group_profile", "employment_profile", "education_profile",
                                "cci_category", "factor"]).to_csv(folder / "profile_factors.csv", index=False)
    ab = list(dd.codelist("age_band")["code"])
    pd.DataFrame([{"sex": s, "age_band": ab[a], "weight": float(std[i, a])}
                  for i, s in enumerate(["M", "F"]) for a in range(7)]).to_csv(folder / "standard.csv", index=False)


_POPULATION_SCHEMA = pa.schema([
    ("person_id", pa.int64()), ("year", pa.int16()), ("region", pa.int16()),
    ("sex", pa.dictionary(pa.int32(), pa.string())), ("age", pa.int16()),
    ("education", pa.dictionary(pa.int32(), pa.string())), ("employment", pa.dictionary(pa.int32(), pa.string())),
    ("industry", pa.dictionary(pa.int32(), pa.string())), ("cci", pa.int16()),
])
_IND_LABELS = [f"{i:02d}" for i in range(1, 20)]


_DICT = pa.dictionary(pa.int32(), pa.string())
_SCHEMAS = {
    "population": _POPULATION_SCHEMA,
    "examinations": pa.schema([("person_id", pa.int64()), ("date", pa.date32()), ("modality", _DICT),
                               ("procedure_code", _DICT), ("payer", _DICT)]),
    "surgery": pa.schema([("person_id", pa.int64()), ("date", pa.date32()), ("procedure_code", _DICT)]),
    "exits": pa.schema([("person_id", pa.int64()), ("date", pa.date32()), ("exit_type", _DICT)]),
}


def _population_table(cov: dict, year: int, person_id: np.ndarray, region_codes: np.ndarray) -> pa.Table:
    """One year's population rows as an Arrow table (codes as dictionary columns)."""
    idx, n = cov["idx"], len(cov["idx"])
    return pa.table({
        "person_id": pa.array(person_id[idx]),
        "year": pa.array(np.full(n, year, np.int16)),
        "region": pa.array(region_codes[cov["region_idx"]].astype(np.int16)),
        "sex": _dict_array(cov["sex"].astype(np.int32), ["M", "F"]),
        "age": pa.array(cov["age"]),
        "education": _dict_array(cov["edu"].astype(np.int32), _EDU),
        "employment": _dict_array(cov["emp"].astype(np.int32), _EMP),
        "industry": _dict_array(cov["ind"].astype(np.int32), _IND_LABELS),
        "cci": pa.array(cov["cci"]),
    }, schema=_POPULATION_SCHEMA)


def _expected_rates(model: _RateModel, cov: dict, j: int) -> dict[str, np.ndarray]:
    """Each person's expected number of public examinations per modality in year index ``j``."""
    r = cov["region_idx"]
    ind20 = np.where(cov["ind"] < 0, 19, cov["ind"])
    pkey = _profile_key(cov["sex"], cov["age"], cov["emp"], cov["edu"], cov["cci_cat"])
    lam = {}
    for m in MODALITIES:
        f = model.factors[m]
        lam[m] = (model.base[m][r, j] * f["age_band"][r, cov["age_band"]] * f["sex"][r, cov["sex"]]
                  * f["edu"][r, cov["edu"]] * f["emp"][r, cov["emp"]] * f["ind"][r, ind20]
                  * f["cci_cat"][r, cov["cci_cat"]] * model.profile[m][np.where(pkey < 0, 360, pkey)])
    return lam


def _draw_year_exams(ex_rng, cfg: SynthConfig, model: _RateModel, cov: dict, j: int, year: int, n_years: int,
                     persons: dict, frailty: np.ndarray, exams: list, episodes: list) -> None:
    """Draw one year's examinations (public episodes, private/other payers, CT) into ``exams``."""
    idx = cov["idx"]
    lam = _expected_rates(model, cov, j)
    fr = frailty[idx]
    last = persons["exit_day"][idx].astype(np.int64)
    start, end = _year_bounds(year)
    last = np.where((last >= start) & (last <= end), last - 1, end)
    stratum = (cov["region_idx"].astype(np.int64) * 2 + cov["sex"]) * 7 + cov["age_band"]
    _draw_public_episodes(ex_rng, cfg, lam, fr, stratum, idx, year, start, last, exams, episodes)
    _draw_other_exams(ex_rng, cfg, lam, fr, idx, year, last, j / max(n_years - 1, 1), exams)


def _draw_public_episodes(ex_rng, cfg: SynthConfig, lam: dict, fr, stratum, idx, year, start, last,
                          exams: list, episodes: list) -> None:
    """Combined X-ray+MR episodes and single-modality episodes with repeats; expected count = lam."""
    hm = 2 * lam["MR"] * lam["XRAY"] / np.maximum(lam["MR"] + lam["XRAY"], 1e-300)
    b = cfg.both_share * hm
    s_mr = np.maximum(lam["MR"] - b * (1 + cfg.repeat_both), 0) / (1 + cfg.repeat_single_mr)
    s_x = np.maximum(lam["XRAY"] - b * (1 + cfg.repeat_both), 0) / (1 + cfg.repeat_single_xray)
    order = np.argsort(stratum, kind="stable")
    for kind, rate in ((0, s_mr), (1, s_x), (2, b)):
        who = _conditional_poisson(ex_rng, rate, fr, stratum, order, 5 * 2 * 7)
        if len(who) == 0:
            continue
        d0 = _draw_dates(ex_rng, len(who), year, last[who])
        pidx = idx[who]
        episodes.append(np.stack([pidx, d0, np.full(len(who), kind)], axis=1))
        rep = cfg.repeat_both if kind == 2 else cfg.repeat_single_mr if kind == 0 else cfg.repeat_single_xray
        mods = [0] if kind == 0 else [1] if kind == 1 else [1, 0]  # X-ray first in combined episodes
        for mi, mod in enumerate(mods):
            base_day = d0 if mi == 0 else _shift_within(d0, ex_rng.integers(0, 45, len(who)), start, last[who])
            exams.append(np.stack([pidx, base_day, np.full(len(who), mod), np.zeros(len(who))], axis=1))
            extra = ex_rng.poisson(rep, len(who))
            w2 = np.repeat(np.arange(len(who)), extra)
            if len(w2):
                dd2 = _shift_within(base_day[w2], ex_rng.integers(7, 150, len(w2)), start, last[who][w2])
                exams.append(np.stack([pidx[w2], dd2, np.full(len(w2), mod), np.zeros(len(w2))], axis=1))


def _draw_other_exams(ex_rng, cfg: SynthConfig, lam: dict, fr, idx, year, last, t: float, exams: list) -> None:
    """Privately paid and other-payer examinations (not counted in the rates), and CT; ``t`` is the
    position of the year in the study period (0 to 1) for the growing private share."""
    n = len(idx)
    for mod, (lo, hi) in ((0, cfg.private_mr), (1, cfg.private_xray)):
        p_rate = lam[MODALITIES[mod]] * (lo + (hi - lo) * t)
        for payer, rate in ((1, p_rate), (2, lam[MODALITIES[mod]] * cfg.other_payer)):
            k = ex_rng.poisson(rate * fr)
            who = np.repeat(np.arange(n), k)
            if len(who):
                d = _draw_dates(ex_rng, len(who), year, last[who])
                exams.append(np.stack([idx[who], d, np.full(len(who), mod), np.full(len(who), payer)], axis=1))
    k = ex_rng.poisson(lam["XRAY"] * cfg.ct_per_xray * fr)
    who = np.repeat(np.arange(n), k)
    if len(who):
        d = _draw_dates(ex_rng, len(who), year, last[who])
        exams.append(np.stack([idx[who], d, np.full(len(who), 2), np.zeros(len(who))], axis=1))


def _exam_table(dd, ex: np.ndarray, person_id: np.ndarray) -> pa.Table:
    """Examination rows (person_idx, day, modality_idx, payer_idx) as an Arrow table."""
    mod_labels = ["MR", "XRAY", "CT"]
    code_labels = [dd.counted_procedure_codes()[m][0] for m in mod_labels]
    return pa.table({
        "person_id": pa.array(person_id[ex[:, 0]]),
        "date": pa.array(ex[:, 1].astype("datetime64[D]")),
        "modality": _dict_array(ex[:, 2].astype(np.int32), mod_labels),
        "procedure_code": _dict_array(ex[:, 2].astype(np.int32), code_labels),
        "payer": _dict_array(ex[:, 3].astype(np.int32), ["public", "private", "other"]),
    }, schema=_SCHEMAS["examinations"])


def _surgery_table(dd, code_rng, surg: np.ndarray, person_id: np.ndarray) -> pa.Table:
    """Surgery rows (person_idx, day) with common lumbar codes drawn from ``code_rng``."""
    sc = dd.lumbar_surgery_codes()
    common = [c for c in ("KABC16", "KABC56", "KNAG74", "KABC36", "KNAG44", "KABC26") if c in sc]
    weights = np.array([0.35, 0.25, 0.15, 0.1, 0.1, 0.05])[:len(common)]
    code_idx = code_rng.choice(len(common), size=len(surg), p=weights / weights.sum())
    return pa.table({
        "person_id": pa.array(person_id[surg[:, 0]]),
        "date": pa.array(surg[:, 1].astype("datetime64[D]")),
        "procedure_code": _dict_array(code_idx.astype(np.int32), common),
    }, schema=_SCHEMAS["surgery"])


def _exits_table(persons: dict, years, person_id: np.ndarray) -> pa.Table:
    """Deaths and emigrations within the study years."""
    lo, _ = _year_bounds(years[0])
    _, hi = _year_bounds(years[-1])
    ed = persons["exit_day"]
    ex_idx = np.flatnonzero((ed >= lo) & (ed <= hi))
    return pa.table({
        "person_id": pa.array(person_id[ex_idx]),
        "date": pa.array(ed[ex_idx].astype("datetime64[D]")),
        "exit_type": _dict_array((persons["exit_type"][ex_idx] - 1).astype(np.int32), ["death", "emigration"]),
    }, schema=_SCHEMAS["exits"])


def _unit_surgery(rng, cfg: SynthConfig, episodes: np.ndarray, persons: dict, covs: list, years,
                  region_code: int) -> np.ndarray:
    """Lumbar spine surgery of one unit after its imaging episodes, plus background surgery without
    imaging (persons drawn from the unit's population of a study year, dated within that year);
    rows (person_idx, day)."""
    pidx, day, kind = episodes[:, 0], episodes[:, 1], episodes[:, 2]
    p = np.where(kind == 1, cfg.surgery_after_xray, cfg.surgery_after_mr)
    year = (day.astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970)
    p = p * np.where((region_code == cfg.guideline_region) & (year >= cfg.guideline_year),
                     cfg.guideline_surgery_factor, 1.0)
    # older patients are operated somewhat less often
    age = year - 1 - persons["birth_year"][pidx]
    p = p * np.where(age >= 75, 0.5, np.where(age < 30, 0.7, 1.0))
    operated = rng.random(len(p)) < p
    sday = day[operated] + rng.integers(14, 183, operated.sum())
    sp = pidx[operated]
    sizes = np.array([len(c["idx"]) for c in covs])
    n_bg = int(rng.poisson(cfg.surgery_background * sizes.sum()))
    bg_p = np.empty(n_bg, dtype=np.int64)
    bg_day = np.empty(n_bg, dtype=np.int64)
    if n_bg:
        bg_year = rng.choice(len(years), size=n_bg, p=sizes / sizes.sum())
        for j, y in enumerate(years):
            sel = bg_year == j
            bg_p[sel] = covs[j]["idx"][rng.integers(0, sizes[j], sel.sum())] if sizes[j] else 0
            a, b = _year_bounds(y)
            bg_day[sel] = rng.integers(a, b + 1, sel.sum())
    _, hi = _year_bounds(years[-1])
    sp = np.concatenate([sp, bg_p])
    sday = np.concatenate([sday, bg_day])
    # not after exit, not after the data end, adults only
    ed = persons["exit_day"][sp]
    ok = (sday <= hi) & ((ed < 0) | (sday < ed))
    ok &= (sday.astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970 - persons["birth_year"][sp]) >= 19
    out = np.stack([sp[ok], sday[ok]], axis=1).astype(np.int64)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def _apply_effects(ex: np.ndarray, effects, region_code: int, persons: dict, seed: int, key: str) -> np.ndarray:
    """Build the intervention effects of ``region_code`` into one unit's examination rows.

    A public examination of the effect's modality dated in [start, end) is kept with probability
    ``factor(date)`` when the factor is below 1 (independent thinning keeps a Poisson process Poisson
    with the rate times the factor) and gets Poisson(factor - 1) extra examinations of the same person
    within 14 days (same year, before the person's exit) when it is above 1. With ``phase_in_months``
    the factor moves linearly from 1 at the start to ``effect`` after that many months. The draws come
    from the unit's own ``effects`` stream, so a register without effects for a region is unchanged.
    Surgery follows the imaging episodes before the effect (not thinned).
    """
    mine = [e for e in effects if e.region == region_code]
    if not mine or not len(ex):
        return ex
    rng = _rng(seed, f"effects:{key}")
    for e in mine:
        start = (e.start - dt.date(1970, 1, 1)).days
        end = (e.end - dt.date(1970, 1, 1)).days if e.end else np.iinfo(np.int64).max
        day = ex[:, 1]
        hit = (ex[:, 3] == 0) & (ex[:, 2] == MODALITIES.index(e.modality)) & (day >= start) & (day < end)
        factor = np.ones(len(ex))
        if e.phase_in_months:
            ramp = np.clip((day[hit] - start + 1) / (e.phase_in_months * 30.4375), 0.0, 1.0)
            factor[hit] = 1.0 + (e.effect - 1.0) * ramp
        else:
            factor[hit] = e.effect
        keep = np.ones(len(ex), dtype=bool)
        low = hit & (factor < 1)
        keep[low] = rng.random(int(low.sum())) < factor[low]
        high = np.flatnonzero(hit & (factor > 1))
        extra = np.repeat(high, rng.poisson(factor[high] - 1.0))
        rows = ex[keep]
        if len(extra):
            add = ex[extra].copy()
            year = add[:, 1].astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970
            lo = np.array([_year_bounds(int(y))[0] for y in year])
            hi = np.array([_year_bounds(int(y))[1] for y in year])
            ed = persons["exit_day"][add[:, 0]].astype(np.int64)
            hi = np.where((ed >= lo) & (ed <= hi), ed - 1, hi)
            add[:, 1] = _weekday(np.clip(add[:, 1] + rng.integers(-14, 15, len(add)), lo, hi), lo, hi)
            rows = np.concatenate([rows, add])
        ex = rows
    return ex


# --------------------------------------------------------------------------------------------
# expectations and summary
# --------------------------------------------------------------------------------------------

def table_files(data_dir, name: str) -> list[Path]:
    """The Parquet file(s) of canonical table ``name`` in a register folder: ``<name>.parquet`` as a file,
    or every ``*.parquet`` under a folder ``<name>.parquet/`` or ``<name>/`` (hive-style ``key=value/``
    folders included, as Spark writes them); sorted, [] if absent. The rule lives in
    :mod:`lumbarstats.register` (one place)."""
    from lumbarstats.register import _table_files

    return _table_files(Path(data_dir), name)


def table_source(data_dir, name: str) -> list[str]:
    """``table_files`` as a list of paths for DuckDB's ``read_parquet`` (with ``hive_partitioning = true``
    a partition column such as ``year=2021/`` is read back as a column)."""
    files = table_files(data_dir, name)
    if not files:
        raise FileNotFoundError(f"no {name} table in {data_dir} ({name}.parquet or a folder of Parquet files)")
    return [f.as_posix() for f in files]


def expected_standardized_rates(data_dir) -> pd.DataFrame:
    """Expected DSR per region, year and modality, recomputed from the saved model and the population.

    Independent of the generator's internals: reads ``population.parquet`` and ``model/*.csv``,
    computes every person-year's expected rate, aggregates by sex x age band and standardizes to
    ``model/standard.csv``. Returns region, year, modality, expected_rate, published_rate (per 1,000).
    """
    import duckdb

    d = Path(data_dir)
    dd = _dictionary.load()
    factors = pd.read_csv(d / "model" / "factors.csv", dtype={"level": str})
    base = pd.read_csv(d / "model" / "base.csv")
    standard = pd.read_csv(d / "model" / "standard.csv")
    # person-years by the population's own columns (the path is a bound parameter), banded with the dictionary
    cells = duckdb.connect().execute(
        "SELECT region, year, sex, age, education, employment, coalesce(industry, 'none') AS industry, cci, "
        "count(*) AS pop FROM read_parquet($path, hive_partitioning = true) GROUP BY ALL",
        {"path": table_source(d, "population")}).df()
    cells["age_band"] = dd.age_band(cells["age"]).astype(str).to_numpy()
    cells["age_group_profile"] = dd.age_group_profile(cells["age"]).astype(str).to_numpy()
    cells["cci_category"] = dd.cci_category(cells["cci"]).astype(str).to_numpy()
    cells = cells.drop(columns=["age", "cci"]).groupby(
        ["region", "year", "sex", "age_band", "age_group_profile", "education", "employment", "industry",
         "cci_category"], as_index=False, observed=True)["pop"].sum()
    cells["education_profile"] = dd.profile_group("education", cells["education"]).to_numpy()
    cells["employment_profile"] = dd.profile_group("employment", cells["employment"]).to_numpy()
    pf_path = d / "model" / "profile_factors.csv"
    profile_factors = pd.read_csv(pf_path) if pf_path.exists() else None
    pkeys = ["sex", "age_group_profile", "employment_profile", "education_profile", "cci_category"]
    out = []
    for m in MODALITIES:
        c = cells.copy()
        c["lam"] = 1.0
        fm = factors[factors["modality"] == m]
        for var in ["age_band", "sex", "education", "employment", "industry", "cci_category"]:
            fv = fm[fm["variable"] == var][["region", "level", "factor"]].rename(columns={"level": var})
            c = c.merge(fv, on=["region", var], how="left", validate="many_to_one")
            if c["factor"].isna().any():
                raise ValueError(f"model factor missing for {var}")
            c["lam"] *= c.pop("factor")
        if profile_factors is not None:
            pf = profile_factors[profile_factors["modality"] == m].drop(columns="modality")
            c = c.merge(pf, on=pkeys, how="left", validate="many_to_one")
            c["lam"] *= c.pop("factor").fillna(1.0)
        c = c.merge(base[base["modality"] == m][["region", "year", "base", "published_rate"]], on=["region", "year"])
        c["expected"] = c["pop"] * c["lam"] * c["base"]
        g = c.groupby(["region", "year", "sex", "age_band"], as_index=False).agg(
            expected=("expected", "sum"), pop=("pop", "sum"), published_rate=("published_rate", "first"))
        g = g.merge(standard, on=["sex", "age_band"])
        g["wr"] = g["weight"] * g["expected"] / g["pop"]
        r = g.groupby(["region", "year"], as_index=False).agg(wr=("wr", "sum"), w=("weight", "sum"),
                                                               published_rate=("published_rate", "first"))
        r["expected_rate"] = 1000 * r["wr"] / r["w"]
        r["modality"] = m
        out.append(r[["region", "year", "modality", "expected_rate", "published_rate"]])
    res = pd.concat(out, ignore_index=True)
    res["region_name"] = res["region"].map(dd.region_names())
    return res


def summarize(data_dir) -> str:
    """A short text summary of a register directory."""
    import duckdb

    d = Path(data_dir)
    if not table_files(d, "population"):
        raise FileNotFoundError(f"no register in {d} (missing {TABLE_FILES['population']}); run `lumbarstats synth`")
    con = duckdb.connect()
    pop = con.execute("SELECT year, count(*) n FROM read_parquet($path, hive_partitioning = true) "
                      "GROUP BY year ORDER BY year", {"path": table_source(d, "population")}).df()
    ex = con.execute("SELECT year(date) AS year, modality, payer, count(*) n FROM "
                     "read_parquet($path, hive_partitioning = true) GROUP BY ALL ORDER BY ALL",
                     {"path": table_source(d, "examinations")}).df()
    wide = ex[ex["payer"] == "public"].pivot(index="year", columns="modality", values="n")
    lines = [f"Register {d}"]
    meta = d / "metadata.json"
    if meta.exists():
        m = json.loads(meta.read_text(encoding="utf-8"))
        lines.append(f"  generator {m.get('generator')} {m.get('version')}, seed {m.get('seed')}, scale {m.get('scale')}")
    lines.append(f"  person-years: {int(pop['n'].sum()):,} ({pop['year'].min()}–{pop['year'].max()})")
    lines.append("  public examinations per year:")
    lines.append("    " + wide.to_string().replace("\n", "\n    "))
    shares = ex.groupby("payer")["n"].sum() / ex["n"].sum() * 100
    lines.append("  payer shares (%): " + ", ".join(f"{k} {v:.1f}" for k, v in shares.items()))
    return "\n".join(lines)
