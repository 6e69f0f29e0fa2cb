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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from lumbarstats import dictionary
from lumbarstats.io import sql_literal

__all__ = ["Cohort", "build_cohort", "OUTCOMES"]

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
# reading the canonical tables (DuckDB over Parquet, or over DataFrames given in a dict)
# ------------------------------------------------------------------------------------------------
class _Source:
    def __init__(self, data_dir_or_tables):
        self.con = duckdb.connect()
        self.tables: dict[str, str] = {}
        if isinstance(data_dir_or_tables, Mapping):
            for name, df in data_dir_or_tables.items():
                if not isinstance(df, pd.DataFrame):
                    raise TypeError(f"table {name!r} must be a pandas DataFrame, got {type(df).__name__}")
                view = f"src_{name}"
                self.con.register(view, df)
                self.tables[name] = view
        else:
            root = Path(data_dir_or_tables)
            if not root.is_dir():
                raise FileNotFoundError(f"register directory {root} does not exist")
            for name in ("population", "examinations", "surgery", "exits"):
                file = root / f"{name}.parquet"
                if file.is_file():
                    self.tables[name] = f"read_parquet({sql_literal(file)})"
                elif file.is_dir():
                    self.tables[name] = f"read_parquet({sql_literal(file.as_posix() + '/**/*.parquet')})"

    def require(self, name: str, columns: Sequence[str]) -> str:
        if name not in self.tables:
            raise KeyError(
                f"the canonical table {name!r} is missing (expected {name}.parquet in the register directory "
                "or a key in the dict of tables)"
            )
        have = [r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {self.tables[name]}").fetchall()]
        missing = [c for c in columns if c not in have]
        if missing:
            raise KeyError(f"table {name!r} has no column(s) {missing}; it has {have}")
        return self.tables[name]

    def query(self, sql: str, params=None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


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
# the builder
# ------------------------------------------------------------------------------------------------
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
    data_dir_or_tables : register directory (``population.parquet`` …) or dict of DataFrames with keys
        ``population``, ``examinations``, ``surgery`` (needed for ``outcome="surgery"`` or
        ``exclude_prior_surgery``), ``exits``.
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
    region : restrict to persons resident (index year) in this region (name or DST code); ``None`` or
        ``"Landsplan"`` for the whole country.
    max_follow_up_days : censor follow-up after this many days (e.g. 365 for one-year risks).
    exclude_prior_surgery : exclude persons with lumbar surgery before the index date.
    include_related_codes : also count the dictionary's lumbar-related imaging codes.
    """
    dd = data_dictionary or dictionary.load()
    # -------- arguments
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
    exit_types = dd.codes("exit_type")
    if isinstance(competing, str):
        if competing == "censor":
            competing_codes: dict[str, int] = {}
        elif competing == "any_exit":
            competing_codes = {x: 2 for x in exit_types}
        elif competing in exit_types:
            competing_codes = {competing: 2}
        else:
            raise ValueError(f"competing must be a tuple of {exit_types}, 'any_exit' or 'censor'; got {competing!r}")
    else:
        unknown = [c for c in competing if c not in exit_types]
        if unknown:
            raise ValueError(f"unknown exit type(s) {unknown} in competing; use {exit_types}")
        competing_codes = {c: i + 2 for i, c in enumerate(dict.fromkeys(competing))}
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
    if region is not None and str(region) != dd.whole_country_name:
        region_code = dd.region_code(region)

    counted = dd.counted_procedure_codes(include_related=include_related_codes)
    all_codes = sorted({c for codes in counted.values() for c in codes})
    modalities = list(counted)
    index_mods = modalities if index_modality == "any" else [index_modality]

    src = _Source(data_dir_or_tables)
    # -------- counted examinations (only the columns needed)
    exams_sql = src.require("examinations", ["person_id", "date", "modality", "procedure_code", "payer"])
    ex = src.query(
        f"""SELECT CAST(person_id AS BIGINT) AS person_id, CAST(date AS DATE) AS date, CAST(modality AS VARCHAR) AS modality,
                   CAST(payer AS VARCHAR) AS payer
            FROM {exams_sql}
            WHERE procedure_code IN ({_sql_list(all_codes)}) AND CAST(date AS DATE) <= ?""",
        [end.date()],
    )
    ex["date"] = _days(ex["date"])
    ex["modality"] = ex["modality"].astype("category")
    ex["counted"] = True if payers is None else ex["payer"].isin(payers)
    washout_ex = ex if washout_all_payers else ex.loc[ex["counted"]]

    cand = ex.loc[ex["counted"] & ex["modality"].isin(index_mods) & (ex["date"] >= start)]
    persons_step0 = cand["person_id"].nunique()
    # one row per person-day; modalities of the day
    cand_days = _modalities_per_day(cand, modalities)
    earliest_index = start + pd.Timedelta(days=washout_days)
    late = cand_days.loc[cand_days["date"] >= earliest_index].sort_values("date")
    wdays = washout_ex[["person_id", "date"]].drop_duplicates().sort_values("date")
    wdays = wdays.rename(columns={"date": "prev_date"})
    late = pd.merge_asof(
        late, wdays, left_on="date", right_on="prev_date", by="person_id", allow_exact_matches=False,
        direction="backward",
    )
    gap = (late["date"] - late["prev_date"]).dt.days
    late["eligible"] = late["prev_date"].isna() | (gap > washout_days)
    idx = (
        late.loc[late["eligible"]]
        .sort_values(["person_id", "date"])
        .drop_duplicates("person_id")
        .rename(columns={"date": "index_date", "modality": "index_modality"})[["person_id", "index_date", "index_modality"]]
    )
    n_late = late["person_id"].nunique()
    steps = [
        (0, "persons_with_examination", f"persons with a counted {index_modality} examination "
         f"({'any payer' if payers is None else '/'.join(payers)}) {start.date()}–{end.date()}", 0, persons_step0),
        (1, "index_in_left_truncation_window", EXCLUSION_REASONS["index_in_left_truncation_window"],
         persons_step0 - n_late, n_late),
        (2, "imaging_within_washout_before_index", EXCLUSION_REASONS["imaging_within_washout_before_index"],
         n_late - len(idx), len(idx)),
    ]

    # -------- covariates of the index year (population read only for index persons)
    pop_sql = src.require("population", ["person_id", "year", *COVARIATES])
    idx["year"] = idx["index_date"].dt.year.astype(np.int64)
    src.con.register("idx_keys", idx[["person_id", "year"]])
    pop = src.query(
        f"""SELECT CAST(p.person_id AS BIGINT) AS person_id, CAST(p.year AS BIGINT) AS year,
                   {", ".join(f"p.{c}" for c in COVARIATES)}
            FROM {pop_sql} p JOIN idx_keys k ON p.person_id = k.person_id AND p.year = k.year"""
    )
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
    step = 5
    if region_code is not None:
        here = cohort["region"].astype(int) == region_code
        steps.append((step, "resident_in_other_region",
                      EXCLUSION_REASONS["resident_in_other_region"] + f" (kept {dd.region_names()[region_code]})",
                      int((~here).sum()), int(here.sum())))
        cohort = cohort.loc[here]
        step += 1

    # -------- lumbar surgery (outcome and/or prior-surgery exclusion)
    need_surgery = outcome == "surgery" or exclude_prior_surgery
    surgery_first = None
    if need_surgery:
        surg_sql = src.require("surgery", ["person_id", "date", "procedure_code"])
        src.con.register("cohort_keys", cohort[["person_id", "index_date"]])
        surg = src.query(
            f"""SELECT CAST(s.person_id AS BIGINT) AS person_id, CAST(s.date AS DATE) AS date
                FROM {surg_sql} s JOIN cohort_keys k ON CAST(s.person_id AS BIGINT) = k.person_id
                WHERE s.procedure_code IN ({_sql_list(dd.lumbar_surgery_codes())}) AND CAST(s.date AS DATE) <= ?""",
            [end.date()],
        )
        surg["date"] = _days(surg["date"])
        surg = surg.merge(cohort[["person_id", "index_date"]], on="person_id")
        if exclude_prior_surgery:
            prior = set(surg.loc[surg["date"] < surg["index_date"], "person_id"])
            keep = ~cohort["person_id"].isin(prior)
            steps.append((step, "prior_lumbar_surgery", EXCLUSION_REASONS["prior_lumbar_surgery"],
                          int((~keep).sum()), int(keep.sum())))
            cohort = cohort.loc[keep]
        surgery_first = surg.loc[surg["date"] >= surg["index_date"]].groupby("person_id")["date"].min()

    # -------- outcome date
    if outcome == "surgery":
        outcome_date = surgery_first
    else:
        later = ex.loc[ex["counted"], ["person_id", "date", "modality"]].merge(
            cohort[["person_id", "index_date", "index_modality"]], on="person_id"
        )
        later = later.loc[later["date"] > later["index_date"]]
        if outcome != "repeat_any":
            padded = "+" + later["index_modality"].astype(str) + "+"
            same = np.zeros(len(later), dtype=bool)
            for m in modalities:
                same |= (later["modality"] == m).to_numpy() & padded.str.contains(f"+{m}+", regex=False).to_numpy()
            later = later.loc[same if outcome == "repeat_same" else ~same]
        outcome_date = later.groupby("person_id")["date"].min()

    # -------- exits (first exit on or after the index day)
    exits_sql = src.require("exits", ["person_id", "date", "exit_type"])
    src.con.register("cohort_keys2", cohort[["person_id", "index_date"]])
    exits = src.query(
        f"""SELECT CAST(x.person_id AS BIGINT) AS person_id, CAST(x.date AS DATE) AS date, CAST(x.exit_type AS VARCHAR) AS exit_type
            FROM {exits_sql} x JOIN cohort_keys2 k ON CAST(x.person_id AS BIGINT) = k.person_id
            WHERE CAST(x.date AS DATE) >= CAST(k.index_date AS DATE)"""
    )
    exits["date"] = _days(exits["date"])
    first_exit = exits.sort_values(["person_id", "date"]).drop_duplicates("person_id").set_index("person_id")

    out = cohort.reset_index(drop=True)
    pid = out["person_id"]
    o_date = pid.map(outcome_date) if outcome_date is not None else pd.Series(pd.NaT, index=out.index)
    o_date = pd.to_datetime(o_date)
    x_date = pd.to_datetime(pid.map(first_exit["date"]))
    x_type = pid.map(first_exit["exit_type"])
    censor = pd.Series(end, index=out.index)
    if max_follow_up_days is not None:
        censor = np.minimum(censor, out["index_date"] + pd.Timedelta(days=int(max_follow_up_days)))
        censor = pd.Series(censor, index=out.index)
    o_ok = o_date.notna() & (o_date <= censor) & (x_date.isna() | (o_date <= x_date))
    x_ok = ~o_ok & x_date.notna() & (x_date <= censor)
    end_date = censor.where(~x_ok, x_date).where(~o_ok, o_date)
    event = np.zeros(len(out), dtype=np.int64)
    event[o_ok.to_numpy()] = 1
    x_code = x_type.map(competing_codes).fillna(0).astype(np.int64).to_numpy()
    event[x_ok.to_numpy()] = x_code[x_ok.to_numpy()]
    out["end_date"] = end_date
    out["duration"] = (end_date - out["index_date"]).dt.days.astype(np.int64)
    out["event"] = event
    out["event_type"] = pd.Series(event).map(event_codes).to_numpy()
    out["region"] = out["region"].astype(np.int64)
    out["region_name"] = out["region"].map(dd.region_names())
    out["age"] = out["age"].astype(np.int64)
    out["cci"] = out["cci"].astype(np.int64)
    out["age_band"] = dd.age_band(out["age"]).to_numpy()
    if split is None:
        out["period"] = "all"
    else:
        out["period"] = np.where(out["index_date"] < split, "before", "after")
    columns = ["person_id", "index_date", "index_modality", "region", "region_name", "sex", "age", "age_band",
               "education", "employment", "cci", "period", "end_date", "duration", "event", "event_type"]
    out = out[columns].sort_values("person_id").reset_index(drop=True)
    out["age_band"] = dd.age_band(out["age"])

    exclusions = pd.DataFrame(steps, columns=["step", "reason", "description", "n_excluded", "n_remaining"])
    parameters = dict(
        index_modality=index_modality, washout_days=washout_days, outcome=outcome,
        competing=competing if isinstance(competing, str) else tuple(competing),
        period_split=None if split is None else str(split.date()), end_of_data=str(end.date()),
        start_of_data=str(start.date()), payer=payers, washout_all_payers=washout_all_payers,
        region=None if region_code is None else dd.region_names()[region_code],
        max_follow_up_days=max_follow_up_days, exclude_prior_surgery=exclude_prior_surgery,
        include_related_codes=include_related_codes,
    )
    return Cohort(data=out, exclusions=exclusions, event_codes=event_codes, parameters=parameters)


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
