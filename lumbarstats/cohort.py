"""Cohorts after the first lumbar imaging, for time-to-event analysis (:mod:`lumbarstats.survival`).

:func:`build_cohort` turns a register directory (or a dict of the canonical tables) into one row per
person: the index examination, the covariates of the index year, and the time to the outcome (repeat
imaging or lumbar spine surgery) with death and emigration as competing events and administrative
censoring at the end of data.

Definitions (all documented choices; see the parameters of :func:`build_cohort`)
------------------------------------------------------------------------------
* **Counted examinations**: exact core codes ``ls.dictionary.load().counted_procedure_codes()``
  (``UXME30``, ``UXRE30``, ``UXCE30``), never prefixes; index and outcome examinations are those of the
  ``payer`` (default ``"public"``). The wash-out looks at counted examinations of *every* payer
  (``washout_all_payers=True``), so that a private scan before a public one is not a "first" imaging.
* **Index** = a person's first examination of the index modality (``"any"``: MR, X-ray or CT; ``"MR"``;
  ``"XRAY"``) on or after ``start_of_data + washout_days`` with no counted examination in the
  ``washout_days`` days before it (days d−washout … d−1). Examinations in the first ``washout_days`` of
  data cannot be checked for earlier imaging (left truncation) and are never an index.
* Several examinations on the index day form **one** index; ``index_modality`` lists the modalities of
  that day (e.g. ``"MR+XRAY"``). Other examinations on the index day are *not* outcomes: repeat imaging
  must fall on a later day (duration >= 1 day).
* **Outcomes**: ``repeat_any`` — the first counted examination (any modality) on a later day;
  ``repeat_same`` — of a modality of the index day; ``repeat_other`` — of a modality not examined on the
  index day; ``surgery`` — the first lumbar spine operation (``lumbar_surgery_codes()``) on or after the
  index day (an operation on the index day is an event at duration 0).
* **Competing events and censoring**: the first exit (death, emigration) on or after the index day.
  ``competing=("death", "emigration")`` codes them 2 and 3 (codes follow the order given; exit types not
  listed censor follow-up at the exit); ``competing="any_exit"`` codes any exit 2; ``competing="censor"``
  censors at the exit. Administrative censoring at ``end_of_data`` (default 31 Dec of the last study
  year) or after ``max_follow_up_days``. Ties on one day: the outcome wins over an exit, an exit over
  administrative censoring.
* ``event``: 0 censored, 1 outcome, 2.. competing exits (``Cohort.event_codes`` maps codes to labels).
* **Covariates** from the population row of the index year (residence and status on 31 December of the
  year before). Persons without that row, or with a missing covariate, are excluded and counted.

Every excluded person is counted once, at the first step that excludes them, in ``Cohort.exclusions``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lumbarstats import dictionary

__all__ = ["Cohort", "build_cohort", "restrict_to_region", "cached_cohort", "OUTCOMES"]

OUTCOMES = ("repeat_any", "repeat_same", "repeat_other", "surgery")
INDEX_MODALITIES = ("any", "MR", "XRAY", "CT")
COVARIATES = ("region", "sex", "age", "education", "employment", "cci")

EXCLUSION_REASONS = {
    "index_in_left_truncation_window": "only examinations within the wash-out of the data start "
    "(earlier imaging cannot be checked)",
    "imaging_within_washout_before_index": "every eligible examination had lumbar imaging within the wash-out before it",
    "not_in_population_index_year": "no population row in the index year",
    "missing_covariates": "missing covariate(s) in the index year",
    "resident_in_other_region": "resident in another region in the index year",
    "prior_lumbar_surgery": "lumbar spine surgery before the index date",
}


@dataclass
class Cohort:
    """Result of :func:`build_cohort`.

    ``data``: one row per person (``person_id, index_date, index_modality, region, region_name, sex, age,
    age_band, education, employment, cci, period, end_date, duration, event, event_type``);
    ``exclusions``: ``step, reason, description, n_excluded, n_remaining`` (the first row, step 0, is the
    number of persons with an examination of the index modality); ``event_codes``: code -> label;
    ``parameters``: the arguments used.
    """

    data: pd.DataFrame
    exclusions: pd.DataFrame
    event_codes: dict
    parameters: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # pragma: no cover - convenience
        counts = self.data["event_type"].value_counts().to_dict() if len(self.data) else {}
        return f"Cohort({len(self.data)} persons, events {counts}, outcome={self.parameters.get('outcome')!r})"


# ------------------------------------------------------------------------------------------------
# reading the canonical tables (a validated Register, or DataFrames given in a dict), as Ibis tables
# ------------------------------------------------------------------------------------------------
class _Source:
    """The canonical tables as Ibis tables on one connection: a register folder goes through
    :class:`lumbarstats.register.Register` (opened and validated once; DuckDB or Spark, whichever engine
    the Register runs); DataFrames in a dict are in-memory tables on DuckDB (not validated: they are the
    caller's own, e.g. test fixtures). Keys of the cohort go to the engine as Ibis memtables."""

    def __init__(self, data_dir_or_tables):
        from lumbarstats.register import Register, as_register

        self.register = None
        self.frames: dict[str, pd.DataFrame] = {}
        if isinstance(data_dir_or_tables, Mapping):
            for name, df in data_dir_or_tables.items():
                if not isinstance(df, pd.DataFrame):
                    raise TypeError(f"table {name!r} must be a pandas DataFrame, got {type(df).__name__}")
                self.frames[name] = df
            import ibis

            self.con = None  # in-memory tables only: Ibis runs them on its default backend (DuckDB)
            self.tables = {name: ibis.memtable(df) for name, df in self.frames.items()}
        else:
            if not isinstance(data_dir_or_tables, Register) and not Path(data_dir_or_tables).is_dir():
                raise FileNotFoundError(f"register directory {data_dir_or_tables} does not exist")
            self.register = as_register(data_dir_or_tables)
            self.con = self.register.con
        self._n = 0

    def require(self, name: str, columns: Sequence[str]):
        if self.register is not None:
            if not self.register.has_table(name):
                raise KeyError(f"the canonical table {name!r} is missing (expected {name}.parquet in the register "
                               "directory)")
            t = self.register.table(name)
        else:
            if name not in self.frames:
                raise KeyError(f"the canonical table {name!r} is missing (expected a key {name!r} in the dict of "
                               "tables)")
            t = self.tables[name]
        missing = [c for c in columns if c not in t.columns]
        if missing:
            raise KeyError(f"table {name!r} has no column(s) {missing}; it has {list(t.columns)}")
        return t

    def frame(self, df: pd.DataFrame):
        """A DataFrame (keys of the cohort) as an in-memory table the engine joins with the register."""
        import ibis

        self._n += 1
        return ibis.memtable(df)


def _to_date(value, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a date such as '2019-01-01', got {value!r}") from None
    if pd.isna(ts):
        raise ValueError(f"{name} must be a date, got {value!r}")
    return ts.normalize()


def _days(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).astype("datetime64[ns]")


# ------------------------------------------------------------------------------------------------
# the builder, in named steps
# ------------------------------------------------------------------------------------------------
@dataclass
class _Settings:
    """The checked arguments of :func:`build_cohort`."""

    dd: object
    index_modality: str
    washout_days: int
    outcome: str
    competing: object
    competing_codes: dict
    event_codes: dict
    start: pd.Timestamp
    end: pd.Timestamp
    split: pd.Timestamp | None
    payers: list | None
    washout_all_payers: bool
    region_code: int | None
    max_follow_up_days: int | None
    exclude_prior_surgery: bool
    include_related_codes: bool

    @property
    def modalities(self) -> list[str]:
        return list(self.dd.counted_procedure_codes(include_related=self.include_related_codes))

    @property
    def all_codes(self) -> list[str]:
        counted = self.dd.counted_procedure_codes(include_related=self.include_related_codes)
        return sorted({c for codes in counted.values() for c in codes})


def _competing_codes(competing, exit_types: list[str]) -> dict[str, int]:
    if isinstance(competing, str):
        if competing == "censor":
            return {}
        if competing == "any_exit":
            return {x: 2 for x in exit_types}
        if competing in exit_types:
            return {competing: 2}
        raise ValueError(f"competing must be a tuple of {exit_types}, 'any_exit' or 'censor'; got {competing!r}")
    unknown = [c for c in competing if c not in exit_types]
    if unknown:
        raise ValueError(f"unknown exit type(s) {unknown} in competing; use {exit_types}")
    return {c: i + 2 for i, c in enumerate(dict.fromkeys(competing))}


def _settings(dd, *, index_modality, washout_days, outcome, competing, period_split, end_of_data, start_of_data,
              payer, washout_all_payers, region, max_follow_up_days, exclude_prior_surgery,
              include_related_codes) -> _Settings:
    """Check the arguments (one clear error each) and resolve defaults from the data dictionary."""
    if index_modality not in INDEX_MODALITIES:
        raise ValueError(f"index_modality must be one of {INDEX_MODALITIES}, got {index_modality!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    washout_days = int(washout_days)
    if washout_days < 0:
        raise ValueError(f"washout_days must be >= 0, got {washout_days}")
    if max_follow_up_days is not None and int(max_follow_up_days) <= 0:
        raise ValueError(f"max_follow_up_days must be a positive number of days, got {max_follow_up_days}")
    first_year, last_year = dd.study_years
    start = _to_date(start_of_data if start_of_data is not None else dt.date(first_year, 1, 1), "start_of_data")
    end = _to_date(end_of_data if end_of_data is not None else dt.date(last_year, 12, 31), "end_of_data")
    if end <= start:
        raise ValueError(f"end_of_data ({end.date()}) must be after start_of_data ({start.date()})")
    split = _to_date(period_split, "period_split") if period_split is not None else None
    competing_codes = _competing_codes(competing, dd.codes("exit_type"))
    if competing == "any_exit":
        event_codes = {0: "censored", 1: outcome, 2: "competing exit"}
    else:
        event_codes = {0: "censored", 1: outcome, **{code: name for name, code in competing_codes.items()}}
    payers = None if payer is None else ([payer] if isinstance(payer, str) else list(payer))
    if payers is not None:
        bad = [p for p in payers if p not in dd.codes("payer")]
        if bad:
            raise ValueError(f"unknown payer(s) {bad}; use {dd.codes('payer')} or None for all")
    region_code = None
    if region is not None:
        code = dd.resolve_region(region)  # any spelling; the whole country means no restriction
        region_code = None if code == dd.whole_country_code else code
    return _Settings(dd, index_modality, washout_days, outcome, competing, competing_codes, event_codes, start, end,
                     split, payers, washout_all_payers, region_code, max_follow_up_days, exclude_prior_surgery,
                     include_related_codes)


def _counted_examinations(src: _Source, s: _Settings) -> pd.DataFrame:
    """Examinations with a counted (exact) code up to the end of data, every payer; ``counted`` marks
    those of the index/outcome payer(s)."""
    t = src.require("examinations", ["person_id", "date", "modality", "procedure_code", "payer"])
    day = t.date.cast("date")
    ex = t.filter(t.procedure_code.isin(s.all_codes), day <= s.end.date()).select(
        person_id=t.person_id.cast("int64"), date=day, modality=t.modality.cast("string"),
        payer=t.payer.cast("string")).to_pandas()
    ex["date"] = _days(ex["date"])
    ex["modality"] = ex["modality"].astype("category")
    ex["counted"] = True if s.payers is None else ex["payer"].isin(s.payers)
    return ex


def _index_examinations(ex: pd.DataFrame, s: _Settings) -> tuple[pd.DataFrame, list]:
    """Each person's first eligible index day (wash-out, left truncation) and the exclusion steps 0–2."""
    index_mods = s.modalities if s.index_modality == "any" else [s.index_modality]
    washout_ex = ex if s.washout_all_payers else ex.loc[ex["counted"]]
    cand = ex.loc[ex["counted"] & ex["modality"].isin(index_mods) & (ex["date"] >= s.start)]
    persons_step0 = cand["person_id"].nunique()
    cand_days = _modalities_per_day(cand, s.modalities)  # one row per person-day; modalities of the day
    earliest_index = s.start + pd.Timedelta(days=s.washout_days)
    late = cand_days.loc[cand_days["date"] >= earliest_index].sort_values("date")
    wdays = washout_ex[["person_id", "date"]].drop_duplicates().sort_values("date")
    wdays = wdays.rename(columns={"date": "prev_date"})
    late = pd.merge_asof(late, wdays, left_on="date", right_on="prev_date", by="person_id",
                         allow_exact_matches=False, direction="backward")
    gap = (late["date"] - late["prev_date"]).dt.days
    late["eligible"] = late["prev_date"].isna() | (gap > s.washout_days)
    idx = (late.loc[late["eligible"]].sort_values(["person_id", "date"]).drop_duplicates("person_id")
           .rename(columns={"date": "index_date", "modality": "index_modality"})
           [["person_id", "index_date", "index_modality"]])
    n_late = late["person_id"].nunique()
    steps = [
        (0, "persons_with_examination", f"persons with a counted {s.index_modality} examination "
         f"({'any payer' if s.payers is None else '/'.join(s.payers)}) {s.start.date()}–{s.end.date()}", 0,
         persons_step0),
        (1, "index_in_left_truncation_window", EXCLUSION_REASONS["index_in_left_truncation_window"],
         persons_step0 - n_late, n_late),
        (2, "imaging_within_washout_before_index", EXCLUSION_REASONS["imaging_within_washout_before_index"],
         n_late - len(idx), len(idx)),
    ]
    return idx, steps


def _with_covariates(src: _Source, idx: pd.DataFrame, s: _Settings, steps: list) -> pd.DataFrame:
    """Covariates of the index year (population read only for index persons); steps 3–5."""
    pop_t = src.require("population", ["person_id", "year", *COVARIATES])
    idx = idx.assign(year=idx["index_date"].dt.year.astype(np.int64))
    keys = src.frame(idx[["person_id", "year"]])
    p = pop_t.select(person_id=pop_t.person_id.cast("int64"), year=pop_t.year.cast("int64"),
                     **{c: pop_t[c] for c in COVARIATES})
    pop = p.semi_join(keys, ["person_id", "year"]).to_pandas()
    if pop.duplicated(["person_id", "year"]).any():
        dup = pop.loc[pop.duplicated(["person_id", "year"]), "person_id"].head(5).tolist()
        raise ValueError(f"population has several rows for one person-year (person_id e.g. {dup}); fix the table")
    cohort = idx.merge(pop, on=["person_id", "year"], how="left", indicator=True)
    in_pop = cohort["_merge"] == "both"
    steps.append((3, "not_in_population_index_year", EXCLUSION_REASONS["not_in_population_index_year"],
                  int((~in_pop).sum()), int(in_pop.sum())))
    cohort = cohort.loc[in_pop].drop(columns="_merge")
    complete = cohort[list(COVARIATES)].notna().all(axis=1)
    steps.append((4, "missing_covariates", EXCLUSION_REASONS["missing_covariates"],
                  int((~complete).sum()), int(complete.sum())))
    cohort = cohort.loc[complete]
    if s.region_code is not None:
        here = cohort["region"].astype(int) == s.region_code
        steps.append((5, "resident_in_other_region",
                      EXCLUSION_REASONS["resident_in_other_region"] + f" (kept {s.dd.region_name(s.region_code)})",
                      int((~here).sum()), int(here.sum())))
        cohort = cohort.loc[here]
    return cohort


def _surgery(src: _Source, cohort: pd.DataFrame, s: _Settings, steps: list):
    """First lumbar surgery on/after the index day per person; drops persons with prior surgery if asked."""
    if not (s.outcome == "surgery" or s.exclude_prior_surgery):
        return cohort, None
    t = src.require("surgery", ["person_id", "date", "procedure_code"])
    keys = src.frame(cohort[["person_id"]].drop_duplicates())
    day = t.date.cast("date")
    surg = (t.filter(t.procedure_code.isin(s.dd.lumbar_surgery_codes()), day <= s.end.date())
            .select(person_id=t.person_id.cast("int64"), date=day)
            .semi_join(keys, "person_id").to_pandas())
    surg["date"] = _days(surg["date"])
    surg = surg.merge(cohort[["person_id", "index_date"]], on="person_id")
    if s.exclude_prior_surgery:
        prior = set(surg.loc[surg["date"] < surg["index_date"], "person_id"])
        keep = ~cohort["person_id"].isin(prior)
        steps.append((len(steps), "prior_lumbar_surgery", EXCLUSION_REASONS["prior_lumbar_surgery"],
                      int((~keep).sum()), int(keep.sum())))
        cohort = cohort.loc[keep]
    return cohort, surg.loc[surg["date"] >= surg["index_date"]].groupby("person_id")["date"].min()


def _outcome_dates(ex: pd.DataFrame, cohort: pd.DataFrame, surgery_first, s: _Settings):
    """Date of the first outcome per person (repeat imaging on a later day, or surgery)."""
    if s.outcome == "surgery":
        return surgery_first
    later = ex.loc[ex["counted"], ["person_id", "date", "modality"]].merge(
        cohort[["person_id", "index_date", "index_modality"]], on="person_id")
    later = later.loc[later["date"] > later["index_date"]]
    if s.outcome != "repeat_any":
        padded = "+" + later["index_modality"].astype(str) + "+"
        same = np.zeros(len(later), dtype=bool)
        for m in s.modalities:
            same |= (later["modality"] == m).to_numpy() & padded.str.contains(f"+{m}+", regex=False).to_numpy()
        later = later.loc[same if s.outcome == "repeat_same" else ~same]
    return later.groupby("person_id")["date"].min()


def _first_exits(src: _Source, cohort: pd.DataFrame) -> pd.DataFrame:
    """First exit (death, emigration) on or after the index day per person."""
    t = src.require("exits", ["person_id", "date", "exit_type"])
    keys = src.frame(cohort[["person_id", "index_date"]].assign(index_date=lambda d: d["index_date"].dt.date))
    x = t.select(person_id=t.person_id.cast("int64"), date=t.date.cast("date"), exit_type=t.exit_type.cast("string"))
    j = x.join(keys, x.person_id == keys.person_id)
    exits = j.filter(j.date >= j.index_date.cast("date")).select("person_id", "date", "exit_type").to_pandas()
    exits["date"] = _days(exits["date"])
    return exits.sort_values(["person_id", "date"]).drop_duplicates("person_id").set_index("person_id")


def _follow_up(cohort: pd.DataFrame, outcome_date, first_exit: pd.DataFrame, s: _Settings) -> pd.DataFrame:
    """End date, duration and event code per person (outcome beats an exit on the same day, an exit beats
    administrative censoring)."""
    out = cohort.reset_index(drop=True)
    pid = out["person_id"]
    o_date = pid.map(outcome_date) if outcome_date is not None else pd.Series(pd.NaT, index=out.index)
    o_date = pd.to_datetime(o_date)
    x_date = pd.to_datetime(pid.map(first_exit["date"]))
    x_type = pid.map(first_exit["exit_type"])
    censor = pd.Series(s.end, index=out.index)
    if s.max_follow_up_days is not None:
        censor = np.minimum(censor, out["index_date"] + pd.Timedelta(days=int(s.max_follow_up_days)))
        censor = pd.Series(censor, index=out.index)
    o_ok = o_date.notna() & (o_date <= censor) & (x_date.isna() | (o_date <= x_date))
    x_ok = ~o_ok & x_date.notna() & (x_date <= censor)
    end_date = censor.where(~x_ok, x_date).where(~o_ok, o_date)
    event = np.zeros(len(out), dtype=np.int64)
    event[o_ok.to_numpy()] = 1
    x_code = x_type.map(s.competing_codes).fillna(0).astype(np.int64).to_numpy()
    event[x_ok.to_numpy()] = x_code[x_ok.to_numpy()]
    out["end_date"] = end_date
    out["duration"] = (end_date - out["index_date"]).dt.days.astype(np.int64)
    out["event"] = event
    out["event_type"] = pd.Series(event).map(s.event_codes).to_numpy()
    return out


_COLUMNS = ["person_id", "index_date", "index_modality", "region", "region_name", "sex", "age", "age_band",
            "education", "employment", "cci", "period", "end_date", "duration", "event", "event_type"]


def _finish(out: pd.DataFrame, s: _Settings) -> pd.DataFrame:
    """Types, labels (region code beside its name), period and the column order."""
    dd = s.dd
    out["region"] = out["region"].astype(np.int64)
    out["region_name"] = out["region"].map(dd.region_names())
    out["age"] = out["age"].astype(np.int64)
    out["cci"] = out["cci"].astype(np.int64)
    out["period"] = "all" if s.split is None else np.where(out["index_date"] < s.split, "before", "after")
    out = out.assign(age_band=np.nan)[_COLUMNS].sort_values("person_id").reset_index(drop=True)
    out["age_band"] = dd.age_band(out["age"])
    return out


def _parameters(s: _Settings) -> dict:
    return dict(
        index_modality=s.index_modality, washout_days=s.washout_days, outcome=s.outcome,
        competing=s.competing if isinstance(s.competing, str) else tuple(s.competing),
        period_split=None if s.split is None else str(s.split.date()), end_of_data=str(s.end.date()),
        start_of_data=str(s.start.date()), payer=s.payers, washout_all_payers=s.washout_all_payers,
        region=None if s.region_code is None else s.dd.region_names()[s.region_code],
        max_follow_up_days=s.max_follow_up_days, exclude_prior_surgery=s.exclude_prior_surgery,
        include_related_codes=s.include_related_codes,
    )


def build_cohort(
    data_dir_or_tables,
    *,
    index_modality: str = "any",
    washout_days: int = 365,
    outcome: str = "repeat_any",
    competing: str | Sequence[str] = ("death", "emigration"),
    period_split=None,
    end_of_data=None,
    start_of_data=None,
    payer: str | Sequence[str] | None = "public",
    washout_all_payers: bool = True,
    region=None,
    max_follow_up_days: int | None = None,
    exclude_prior_surgery: bool = False,
    include_related_codes: bool = False,
    data_dictionary=None,
) -> Cohort:
    """Build the cohort of persons after their first lumbar imaging (see the module docstring).

    Parameters
    ----------
    data_dir_or_tables : register folder, :class:`lumbarstats.register.Register` (validated once) or dict of
        DataFrames with keys ``population``, ``examinations``, ``surgery`` (needed for ``outcome="surgery"``
        or ``exclude_prior_surgery``), ``exits``.
    index_modality : ``"any"`` (MR, X-ray or CT), ``"MR"``, ``"XRAY"`` or ``"CT"``.
    washout_days : days without counted imaging required before the index (and skipped at the data start).
    outcome : ``"repeat_any"``, ``"repeat_same"``, ``"repeat_other"`` or ``"surgery"``.
    competing : tuple of exit types that compete (codes 2, 3, … in that order), ``"any_exit"`` (code 2 for
        any exit) or ``"censor"``.
    period_split : a date; ``period`` is ``"before"`` for index dates before it and ``"after"`` otherwise
        (``"all"`` when None).
    end_of_data, start_of_data : default 31 Dec of the last / 1 Jan of the first study year of the data
        dictionary.
    payer : payer(s) of index and outcome examinations (``None`` = every payer).
    washout_all_payers : the wash-out looks at examinations of every payer (default) or only ``payer``'s.
    region : restrict to persons resident (index year) in this region (code or name in any spelling,
        :func:`lumbarstats.dictionary.resolve_region`); ``None`` or the whole country (``"Landsplan"``, 0)
        for all.
    max_follow_up_days : censor follow-up after this many days (e.g. 365 for one-year risks).
    exclude_prior_surgery : exclude persons with lumbar surgery before the index date.
    include_related_codes : also count the dictionary's lumbar-related imaging codes.
    """
    s = _settings(data_dictionary or dictionary.load(), index_modality=index_modality, washout_days=washout_days,
                  outcome=outcome, competing=competing, period_split=period_split, end_of_data=end_of_data,
                  start_of_data=start_of_data, payer=payer, washout_all_payers=washout_all_payers, region=region,
                  max_follow_up_days=max_follow_up_days, exclude_prior_surgery=exclude_prior_surgery,
                  include_related_codes=include_related_codes)
    src = _Source(data_dir_or_tables)
    ex = _counted_examinations(src, s)
    idx, steps = _index_examinations(ex, s)
    cohort = _with_covariates(src, idx, s, steps)
    cohort, surgery_first = _surgery(src, cohort, s, steps)
    outcome_date = _outcome_dates(ex, cohort, surgery_first, s)
    out = _finish(_follow_up(cohort, outcome_date, _first_exits(src, cohort), s), s)
    exclusions = pd.DataFrame(steps, columns=["step", "reason", "description", "n_excluded", "n_remaining"])
    return Cohort(data=out, exclusions=exclusions, event_codes=s.event_codes, parameters=_parameters(s))


def restrict_to_region(national: Cohort, region, *, data_dictionary=None) -> Cohort:
    """One region's cohort from the whole country's: the persons resident in the region in the index year,
    with the exclusion step ``resident_in_other_region`` as :func:`build_cohort` (``region=``) adds it.

    Equal to ``build_cohort(..., region=region)`` (tested) because every step before the region step is
    the same for the country and the region, and every person's follow-up is their own; so a batch over
    the regions builds the national cohort once. Not for cohorts with ``exclude_prior_surgery`` (its step
    comes after the region step): build those directly.
    """
    dd = data_dictionary or dictionary.load()
    if national.parameters.get("region") is not None:
        raise ValueError("restrict_to_region needs the whole country's cohort (built with region=None)")
    if national.parameters.get("exclude_prior_surgery"):
        raise ValueError("restrict_to_region cannot follow exclude_prior_surgery; build the region's cohort "
                         "with build_cohort(..., region=...)")
    code = dd.resolve_region(region)
    if code == dd.whole_country_code:
        return national
    here = national.data["region"].astype(int) == code
    data = national.data.loc[here].reset_index(drop=True)
    step = pd.DataFrame([(5, "resident_in_other_region",
                          EXCLUSION_REASONS["resident_in_other_region"] + f" (kept {dd.region_name(code)})",
                          int((~here).sum()), int(here.sum()))], columns=national.exclusions.columns)
    exclusions = pd.concat([national.exclusions, step], ignore_index=True)
    parameters = {**national.parameters, "region": dd.region_names()[code]}
    return Cohort(data=data, exclusions=exclusions, event_codes=dict(national.event_codes), parameters=parameters)


def _cache_key(content_hash: str, rules: str, kwargs: dict) -> str:
    """Register content + data dictionary + arguments + this module's code: a changed input, code list or
    method never meets an old entry."""
    text = json.dumps({"content": content_hash, "dictionary": rules, "arguments": kwargs,
                       "code": hashlib.blake2b(Path(__file__).read_bytes(), digest_size=8).hexdigest()},
                      sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def _with_dtypes(df: pd.DataFrame, dtypes: dict) -> pd.DataFrame:
    """Parquet stores dates in ms: give every column back the dtype it had when it was built."""
    changed = {c: t for c, t in dtypes.items() if c in df.columns and str(df[c].dtype) != t}
    return df.astype(changed) if changed else df


def cached_cohort(data, **kwargs) -> Cohort:
    """:func:`build_cohort` on a register folder or :class:`~lumbarstats.register.Register`, remembered on
    disk by the register's content hash and the arguments (``<register>/.lumbarstats/cache/cohort/``, or the
    user cache when the register folder is read-only). The time-to-event batch runs one notebook per region,
    each in its own process; this builds the national cohort once for all of them."""
    from lumbarstats import io as _io
    from lumbarstats import register as _register

    reg = _register.as_register(data)
    key = _cache_key(reg.content_hash, _register.dictionary_hash(reg.dd), kwargs)
    folders = reg.cache_dirs("cohort")
    for folder in folders:
        entry = folder / key
        try:
            meta = json.loads((entry / "cohort.json").read_text(encoding="utf-8"))
            return Cohort(data=_with_dtypes(pd.read_parquet(entry / "data.parquet"), meta["dtypes"]),
                          exclusions=pd.read_parquet(entry / "exclusions.parquet"),
                          event_codes={int(k): v for k, v in meta["event_codes"].items()},
                          parameters=meta["parameters"])
        except (OSError, ValueError, KeyError):
            continue
    cohort = build_cohort(reg, **kwargs)
    meta = json.dumps({"event_codes": {str(k): v for k, v in cohort.event_codes.items()},
                       "parameters": cohort.parameters,
                       "dtypes": {c: str(t) for c, t in cohort.data.dtypes.items()}}, default=str)
    for folder in folders:
        entry = folder / key
        try:
            _io.write_parquet(cohort.data, entry / "data.parquet")
            _io.write_parquet(cohort.exclusions, entry / "exclusions.parquet")
            _io.write_text(meta, entry / "cohort.json")  # last: an entry without it is never read
            break
        except OSError:
            continue  # read-only register folder (or a full disk): try the user cache, else go on uncached
    return cohort


def _modalities_per_day(cand: pd.DataFrame, modalities: list[str]) -> pd.DataFrame:
    """Vectorised ``"+".join(sorted modalities)`` per person-day for large tables."""
    flags = pd.DataFrame({m: (cand["modality"] == m).to_numpy() for m in modalities})
    flags["person_id"] = cand["person_id"].to_numpy()
    flags["date"] = cand["date"].to_numpy()
    agg = flags.groupby(["person_id", "date"], sort=False)[modalities].any().reset_index()
    label = pd.Series("", index=agg.index)
    for m in modalities:
        label = label.where(~agg[m], np.where(label == "", m, label + "+" + m))
    agg["modality"] = label
    return agg[["person_id", "date", "modality"]]
