"""Person-level register -> stratum counts, as Ibis expressions over the Parquet files (DuckDB or Spark).

A national register (about 47 million person-years) never has to fit in a pandas DataFrame: the engine
(DuckDB by default, Apache Spark with ``Register(path, engine="spark")``; :mod:`lumbarstats.engines`)
scans ``population.parquet`` and ``examinations.parquet`` and returns one row per stratum. The register
is opened and validated once through :class:`lumbarstats.register.Register` (pass a path or a Register);
the counting rule is :meth:`lumbarstats.register.Register.counted_examinations`, the one definition.

Definitions (the report's, section 3.1):

- An examination belongs to the calendar year of its date and is attributed to the person's region
  and covariates in the population row of that year (residence and covariates on 31 December of the
  year before). Examinations of persons without a population row that year (children, persons who
  moved to Denmark during the year) do not count; with ``count_unmatched=True`` their number is in
  ``result.attrs["unmatched"]``.
- By default only publicly financed examinations with the modality's core SKS code count
  (``UXME30``, ``UXRE30``, ``UXCE30``, exact match); ``include_related`` adds the related lumbar codes.
- ``population`` is person-years: one per population row. For ``month`` cells it is the year's
  person-years / 12, so that rates per 1,000 person-years are comparable across months.

Queries are Ibis expressions (user values reach the engine as typed literals compiled by Ibis, never as
SQL text); the same code runs on DuckDB and Spark (``tests/test_spark.py`` compares the two).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pandas as pd

from lumbarstats import dictionary as _dictionary
from lumbarstats.register import as_register

__all__ = ["NOT_MISSING", "strata_counts", "distinct_persons", "default_standard", "population_counts", "report_periods", "VARIABLES",
           "WHERE_COLUMNS"]

# variables available in `by`; the derived ones are computed from the data dictionary
VARIABLES = (
    "region", "region_name", "year", "period", "month", "sex", "age", "age_band", "age_group_profile",
    "education", "education_profile", "employment", "employment_profile", "industry", "cci", "cci_category",
    "modality", "payer",
)
_EXAM_ONLY = {"month", "modality", "payer"}
# columns a structured `where` may restrict (population columns and the derived population variables)
WHERE_COLUMNS = tuple(v for v in VARIABLES if v not in _EXAM_ONLY and v != "period")
_WHERE_EXAMPLE = 'where={"age": (18, 64), "sex": "F", "education": ["primary", "upper_secondary"]}'


class _NotMissing:
    """``where={"industry": NOT_MISSING}``: the value is present (SQL ``IS NOT NULL``)."""

    def __repr__(self) -> str:
        return "NOT_MISSING"


NOT_MISSING = _NotMissing()


def report_periods(dd=None) -> dict[str, tuple[int, int]]:
    """The report's pooled periods (``2014-2016``, ``2017-2020``, ``2021-2023``)."""
    dd = dd or _dictionary.load()
    return {k: (int(v[0]), int(v[1])) for k, v in dd.spec["report_periods"].items()}


# ------------------------------------------------------------------------------------------------
# the query: arguments checked and normalised into a hashable description (the cache key)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Query:
    by: tuple
    modalities: tuple
    payers: tuple | None
    years: tuple | None
    periods: tuple | None
    include_related: bool
    cci_cutpoints: tuple
    where: tuple
    with_total: bool
    count_unmatched: bool


def _as_list(x) -> list | None:
    if x is None:
        return None
    if isinstance(x, str):
        return [x]
    return list(x)


def _check_by(by: Sequence[str]) -> tuple:
    by = list(by)
    unknown = [b for b in by if b not in VARIABLES]
    if unknown:
        raise ValueError(f"unknown stratum variable(s) {unknown}; choose from {list(VARIABLES)}")
    if len(set(by)) != len(by):
        raise ValueError(f"duplicate variables in by={by}")
    return tuple(by)


def _year_list(years) -> tuple | None:
    if years is None:
        return None
    ys = [int(y) for y in ([years] if isinstance(years, (int, str)) else years)]
    if len(ys) == 2 and ys[0] > ys[1]:
        raise ValueError(f"years={tuple(years)}: give (first, last) with first <= last")
    # (first, last) is an inclusive range; three or more years are taken as listed
    return tuple(range(ys[0], ys[1] + 1)) if len(ys) == 2 else tuple(sorted(set(ys)))


def _check_where(where, dd) -> tuple:
    """``{column: value | [values] | (low, high)}`` -> a sorted tuple of (column, kind, values)."""
    if where is None:
        return ()
    if isinstance(where, str):
        raise TypeError(f"where= no longer takes SQL text ({where!r}); pass a structured filter, e.g. "
                        f"{_WHERE_EXAMPLE} (column -> value, list of values, or (low, high) inclusive range)")
    if not isinstance(where, Mapping):
        raise TypeError(f"where must be a dict such as {_WHERE_EXAMPLE}, got {type(where).__name__}")
    out = []
    for column, value in where.items():
        if column not in WHERE_COLUMNS:
            raise ValueError(f"where: unknown column {column!r}; choose from {list(WHERE_COLUMNS)}")
        if isinstance(value, tuple):
            if len(value) != 2:
                raise ValueError(f"where[{column!r}]: a tuple is an inclusive (low, high) range, got {value!r}")
            out.append((column, "range", tuple(value)))
        elif isinstance(value, (list, set, frozenset)):
            out.append((column, "in", tuple(sorted(value, key=str))))
        elif value is NOT_MISSING:
            out.append((column, "present", ()))
        else:
            out.append((column, "eq", (value,)))
    return tuple(sorted(out, key=repr))


def _make_query(reg, *, by, modality, payer, years, periods, include_related, cci_cutpoints, where,
                with_total, count_unmatched) -> _Query:
    dd = reg.dd
    by = _check_by(by)
    if "period" in by and periods is None:
        periods = report_periods(dd)
    mods = list(reg.modalities(modality, include_related))
    if len(mods) > 1 and "modality" not in by:
        raise ValueError("several modalities requested: add 'modality' to `by` (or pass one modality)")
    payers = _as_list(payer)
    if payers is not None:
        allowed = dd.codes("payer")
        bad = [p for p in payers if p not in allowed]
        if bad:
            raise ValueError(f"unknown payer {bad}; choose from {allowed}")
    cuts = list(cci_cutpoints) if cci_cutpoints is not None else dd.cci_cutpoints()
    dd.cci_category([0], cutpoints=cuts)  # validates the cut-points
    return _Query(by=by, modalities=tuple(mods), payers=None if payers is None else tuple(payers),
                  years=_year_list(years),
                  periods=None if not periods else tuple((str(k), (int(a), int(b))) for k, (a, b) in periods.items()),
                  include_related=bool(include_related), cci_cutpoints=tuple(int(c) for c in cuts),
                  where=_check_where(where, dd), with_total=bool(with_total), count_unmatched=bool(count_unmatched))


# ------------------------------------------------------------------------------------------------
# derived variables as Ibis expressions, from the data dictionary
# ------------------------------------------------------------------------------------------------
def _band(age: ir.IntegerValue, codelist: pd.DataFrame) -> ir.StringValue:
    cl = codelist.sort_values("min_age")
    branches = [(age < int(cl["min_age"].min()), ibis.null("string"))]
    branches += [(age <= int(r.max_age), ibis.literal(str(r.code))) for r in cl.itertuples()]
    return ibis.cases(*branches, else_=ibis.null("string"))


def _mapped(column: ir.StringValue, mapping: Mapping) -> ir.StringValue:
    return column.substitute({k: v for k, v in mapping.items() if v}, else_=ibis.null("string"))


def _derived(pop: ir.Table, dd, q: _Query) -> dict[str, ir.Value]:
    cci = dd.codelist("cci_category").sort_values("order")
    cci_case = ibis.cases(*[(pop.cci < c, ibis.literal(code)) for c, code in zip(q.cci_cutpoints, cci["code"],
                                                                                 strict=False)],
                          else_=ibis.literal(cci["code"].iloc[-1]))
    edu, emp = dd.codelist("education"), dd.codelist("employment")
    out = {
        "age_band": _band(pop.age, dd.codelist("age_band")),
        "age_group_profile": _band(pop.age, dd.codelist("age_group_profile")),
        "cci_category": cci_case,
        "education_profile": _mapped(pop.education, dict(zip(edu["code"], edu["profile_group"], strict=True))),
        "employment_profile": _mapped(pop.employment, dict(zip(emp["code"], emp["profile_group"], strict=True))),
        "region_name": pop.region.substitute(dd.region_names(), else_=ibis.null("string")),
    }
    if q.periods:
        out["period"] = ibis.cases(*[(pop.year.between(a, b), ibis.literal(name)) for name, (a, b) in q.periods],
                                   else_=ibis.null("string"))
    return out


def _condition(value: ir.Value, kind: str, values: tuple) -> ir.BooleanValue:
    if kind == "range":
        lo, hi = values
        return value.between(lo, hi)
    if kind == "in":
        return value.isin(list(values))
    if kind == "present":
        return value.notnull()
    return value.isnull() if values[0] is None else value == values[0]


# ------------------------------------------------------------------------------------------------
# the named steps of strata_counts
# ------------------------------------------------------------------------------------------------
def _population_table(reg, q: _Query) -> ir.Table:
    """``person_id, year`` and the population variables of ``by``, restricted by years/period/where."""
    pop = reg.table("population")
    derived = _derived(pop, reg.dd, q)
    cond = []
    if q.years is not None:
        cond.append(pop.year.isin(list(q.years)))
    if "period" in q.by:
        cond.append(derived["period"].notnull())
    for column, kind, values in q.where:
        cond.append(_condition(derived.get(column, pop[column] if column in pop.columns else None), kind, values))
    if cond:
        pop = pop.filter(*cond)
        derived = _derived(pop, reg.dd, q)
    pop_vars = [v for v in q.by if v not in _EXAM_ONLY and v != "year"]
    return pop.select("person_id", "year", **{v: derived[v] if v in derived else pop[v] for v in pop_vars})


def _event_cells(reg, q: _Query, pop: ir.Table) -> pd.DataFrame:
    """Counted examinations and distinct persons per stratum (the counting rule of the Register)."""
    ex = reg.counted_examinations(list(q.modalities), list(q.payers) if q.payers is not None else None,
                                  q.include_related, population=pop)
    agg = dict(events=ex.count(), persons=ex.person_id.nunique())
    res = ex.group_by(list(q.by)).aggregate(**agg) if q.by else ex.aggregate(**agg)
    return res.to_pandas()


def _population_cells(pop: ir.Table, q: _Query, dd) -> pd.DataFrame:
    """Person-years per population stratum, expanded over the examination-only variables."""
    pop_vars = [v for v in q.by if v not in _EXAM_ONLY]
    popc = (pop.group_by(pop_vars).aggregate(population=pop.count()) if pop_vars
            else pop.aggregate(population=pop.count())).to_pandas()
    if "month" in q.by:
        popc = popc.merge(pd.DataFrame({"month": range(1, 13)}), how="cross")
        popc["population"] = popc["population"] / 12.0
    if "modality" in q.by:
        popc = popc.merge(pd.DataFrame({"modality": list(q.modalities)}), how="cross")
    if "payer" in q.by:
        popc = popc.merge(pd.DataFrame({"payer": list(q.payers) if q.payers else dd.codes("payer")}), how="cross")
    return popc


def _unmatched(reg, q: _Query) -> int:
    """Counted examinations without a population row in their year (children, non-residents)."""
    codes = [c for codes in reg.modalities(list(q.modalities), q.include_related).values() for c in codes]
    ex = reg.table("examinations")
    cond = [ex.procedure_code.isin(codes), ex.modality.isin(list(q.modalities))]
    if q.payers is not None:
        cond.append(ex.payer.isin(list(q.payers)))
    ex = ex.filter(*cond).select("person_id", year=ex.date.year().cast("int64"))
    if q.years is not None:
        ex = ex.filter(ex.year.isin(list(q.years)))
    pop = reg.table("population")
    pop = pop.select("person_id", year=pop.year.cast("int64"))
    return int(ex.anti_join(pop, ["person_id", "year"]).count().to_pandas())


def _combine(popc: pd.DataFrame, events: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Every population stratum, with zero events where there are none."""
    if not by:
        out = pd.concat([popc, events], axis=1)
    else:
        for c in by:  # Ibis and the cross joins may give the keys different integer widths
            if pd.api.types.is_integer_dtype(popc[c]) and pd.api.types.is_integer_dtype(events[c]):
                events[c] = events[c].astype(popc[c].dtype)
        orphan = events.merge(popc[by], on=by, how="left", indicator=True)
        if (orphan["_merge"] == "left_only").any():  # cannot happen: events join the population
            raise RuntimeError("internal error: events in strata without population")
        out = popc.merge(events, on=by, how="left")
    out["events"] = out["events"].fillna(0).astype("int64")
    out["persons"] = out["persons"].fillna(0).astype("int64")
    if "month" not in by:
        out["population"] = out["population"].astype("int64")
    return out[by + ["events", "persons", "population"]].sort_values(by).reset_index(drop=True)


def _compute(reg, q: _Query) -> pd.DataFrame:
    by = list(q.by)
    pop = _population_table(reg, q)
    out = _combine(_population_cells(pop, q, reg.dd), _event_cells(reg, q, pop), by)
    if q.with_total and ("region" in by or "region_name" in by):
        out = _add_total(out, by, reg.dd)
    out.attrs["unmatched"] = _unmatched(reg, q) if q.count_unmatched else None
    out.attrs["query"] = {"modality": list(q.modalities), "payer": None if q.payers is None else list(q.payers),
                          "years": None if q.years is None else list(q.years), "include_related": q.include_related}
    return out


def strata_counts(
    data_dir,
    *,
    by: Sequence[str],
    modality: str | Sequence[str] | None = "MR",
    payer: str | Sequence[str] | None = "public",
    years: tuple[int, int] | Sequence[int] | None = None,
    periods: Mapping[str, tuple[int, int]] | None = None,
    include_related: bool = False,
    cci_cutpoints: Sequence[int] | None = None,
    where: Mapping | None = None,
    with_total: bool = False,
    threads: int | None = None,
    count_unmatched: bool = False,
) -> pd.DataFrame:
    """Examinations, distinct persons and person-years per stratum.

    Parameters
    ----------
    data_dir : register folder (path) or :class:`lumbarstats.register.Register`; a path is opened and
        validated (once per content, see ``Register``).
    by : stratum variables, any of :data:`VARIABLES` (derived ones such as ``age_band``,
        ``cci_category``, ``period`` are computed from the data dictionary).
    modality : ``"MR"``, ``"XRAY"``, ``"CT"``, a list, or None for all; with several, put
        ``modality`` in ``by`` to keep them apart.
    payer : ``"public"`` (the report's analyses), a list, or None for all payers.
    years : ``(first, last)`` inclusive range (a pair is always a range), one year, or three or more
        years as listed; default all.
    periods : mapping period name -> (first, last) year, for ``period`` in ``by``; default the
        report's periods. Years outside every period are dropped when ``period`` is in ``by``.
    include_related : also count the related lumbar codes (e.g. ``UXME30A``, ``UXRE35``).
    cci_cutpoints : lower scores of mild/moderate/severe; default the dictionary's ``[1, 3, 5]``.
    where : a structured filter on population variables (:data:`WHERE_COLUMNS`):
        ``{column: value | [values] | (low, high)}`` — a tuple is an inclusive range, a list the allowed
        values, ``None`` missing, :data:`NOT_MISSING` present; e.g. ``{"age": (18, 64), "employment":
        "employed"}``. SQL text is refused (TypeError showing this form).
    with_total : add whole-country rows (region 0 / ``Landsplan``) when ``region`` or
        ``region_name`` is in ``by``.
    threads : DuckDB threads when a path is opened here.

    Returns
    -------
    DataFrame with the ``by`` columns and ``events``, ``persons``, ``population``. Every
    population stratum appears, with zero events where there are none. Identical queries on one
    Register are computed once (the result is cached on the Register).
    """
    reg = as_register(data_dir, threads=threads) if threads else as_register(data_dir)
    q = _make_query(reg, by=by, modality=modality, payer=payer, years=years, periods=periods,
                    include_related=include_related, cci_cutpoints=cci_cutpoints, where=where,
                    with_total=with_total, count_unmatched=count_unmatched)
    out = reg.memo(("strata_counts", q), lambda: _compute(reg, q))
    return out


def distinct_persons(data_dir, *, by: Sequence[str], with_total: bool = False, modality="MR", payer="public",
                     years=None, periods=None, include_related: bool = False, where: Mapping | None = None,
                     cci_cutpoints: Sequence[int] | None = None) -> pd.DataFrame:
    """Distinct persons with at least one counted examination per cell of ``by`` (population variables
    only); with ``with_total`` also exact whole-country rows (a person examined in two regions counts
    once). One query: the distinct (person, cell) pairs are read once and counted at both levels.
    Cells without examinations are absent. Arguments as :func:`strata_counts`."""
    reg = as_register(data_dir)
    q = _make_query(reg, by=by, modality=modality, payer=payer, years=years, periods=periods,
                    include_related=include_related, cci_cutpoints=cci_cutpoints, where=where,
                    with_total=with_total, count_unmatched=False)
    exam_only = [b for b in q.by if b in _EXAM_ONLY]
    if exam_only:
        raise ValueError(f"distinct_persons counts persons per population cell; {exam_only} are not allowed")

    def compute() -> pd.DataFrame:
        pop = _population_table(reg, q)
        ex = reg.counted_examinations(list(q.modalities), list(q.payers) if q.payers is not None else None,
                                      q.include_related, population=pop)
        pairs = ex.select("person_id", *q.by).distinct().to_pandas()
        by = list(q.by)
        out = pairs.groupby(by, observed=True)["person_id"].nunique().rename("persons").reset_index()
        if with_total and ("region" in by or "region_name" in by):
            keys = [b for b in by if b not in ("region", "region_name")]
            tot = (pairs.groupby(keys, observed=True)["person_id"].nunique().rename("persons").reset_index()
                   if keys else pd.DataFrame({"persons": [pairs["person_id"].nunique()]}))
            if "region" in by:
                tot["region"] = reg.dd.whole_country_code
            if "region_name" in by:
                tot["region_name"] = reg.dd.whole_country_name
            out = pd.concat([out, tot[out.columns]], ignore_index=True)
        out["persons"] = out["persons"].astype("int64")
        return out

    return reg.memo(("distinct_persons", q), compute)


def _add_total(df: pd.DataFrame, by: list[str], dd) -> pd.DataFrame:
    """Whole-country rows. Note: ``persons`` of the total is the sum over regions (a person counted in
    two regions in different years is counted twice) — exact distinct counts need a separate query."""
    keys = [b for b in by if b not in ("region", "region_name")]
    tot = df.groupby(keys, as_index=False, observed=True)[["events", "persons", "population"]].sum() if keys \
        else df[["events", "persons", "population"]].sum().to_frame().T
    if "region" in by:
        tot["region"] = dd.whole_country_code
    if "region_name" in by:
        tot["region_name"] = dd.whole_country_name
    return pd.concat([df, tot[df.columns]], ignore_index=True)


def population_counts(data_dir, *, by: Sequence[str], years=None, where: Mapping | None = None) -> pd.DataFrame:
    """Person-years per stratum (no examinations; the population is the only table read)."""
    reg = as_register(data_dir)
    exam_only = [b for b in by if b in _EXAM_ONLY]
    if exam_only:
        raise ValueError(f"population_counts: {exam_only} are examination variables; use strata_counts")
    q = _make_query(reg, by=by, modality="MR", payer="public", years=years, periods=None, include_related=False,
                    cci_cutpoints=None, where=where, with_total=False, count_unmatched=False)

    def compute() -> pd.DataFrame:
        popc = _population_cells(_population_table(reg, q), q, reg.dd)
        by_ = list(q.by)
        popc["population"] = popc["population"].astype("int64")
        return popc[by_ + ["population"]].sort_values(by_).reset_index(drop=True) if by_ else popc

    return reg.memo(("population_counts", q), compute)


def default_standard(data_dir, *, strata: Iterable[str] = ("sex", "age_band"), years=None) -> pd.DataFrame:
    """The package's default standard population: the register's adult population pooled over the
    study years (or ``years``), by sex x age band. Columns: the strata and ``weight`` (person-years).
    Computed once per Register (cached), however many analyses ask for it."""
    reg = as_register(data_dir)
    pc = population_counts(reg, by=list(strata), years=years)
    return pc.rename(columns={"population": "weight"})
