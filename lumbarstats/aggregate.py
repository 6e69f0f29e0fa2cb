"""Person-level register -> stratum counts, with DuckDB reading the Parquet files directly.

A national register (about 47 million person-years) never has to fit in a pandas DataFrame: DuckDB
scans ``population.parquet`` and ``examinations.parquet`` and returns one row per stratum.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import duckdb
import pandas as pd

from lumbarstats import dictionary as _dictionary

__all__ = ["strata_counts", "default_standard", "population_counts", "report_periods", "VARIABLES"]

# variables available in `by`; the derived ones are computed in SQL from the data dictionary
VARIABLES = (
    "region", "region_name", "year", "period", "month", "sex", "age", "age_band", "age_group_profile",
    "education", "education_profile", "employment", "employment_profile", "industry", "cci", "cci_category",
    "modality", "payer",
)
_EXAM_ONLY = {"month", "modality", "payer"}


def report_periods(dd=None) -> dict[str, tuple[int, int]]:
    """The report's pooled periods (``2014-2016``, ``2017-2020``, ``2021-2023``)."""
    dd = dd or _dictionary.load()
    return {k: (int(v[0]), int(v[1])) for k, v in dd.spec["report_periods"].items()}


def _sql_str(s: str) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def _band_case(column: str, codelist: pd.DataFrame) -> str:
    cl = codelist.sort_values("min_age")
    whens = " ".join(f"WHEN {column} <= {int(r.max_age)} THEN {_sql_str(r.code)}" for r in cl.itertuples())
    return f"CASE WHEN {column} < {int(cl['min_age'].min())} THEN NULL {whens} ELSE NULL END"


def _map_case(column: str, mapping: Mapping) -> str:
    whens = " ".join(f"WHEN {column} = {_sql_str(k)} THEN {_sql_str(v)}" for k, v in mapping.items() if v)
    return f"CASE {whens} ELSE NULL END"


def _derived_sql(dd, cci_cutpoints: Sequence[int] | None, periods: Mapping | None) -> dict[str, str]:
    cci = dd.codelist("cci_category").sort_values("order")
    cuts = list(cci_cutpoints) if cci_cutpoints is not None else dd.cci_cutpoints()
    dd.cci_category([0], cutpoints=cuts)  # validates the cut-points
    cci_case = "CASE " + " ".join(
        f"WHEN cci < {c} THEN {_sql_str(code)}" for c, code in zip(cuts, cci["code"], strict=False)
    ) + f" ELSE {_sql_str(cci['code'].iloc[-1])} END"
    edu = dd.codelist("education")
    emp = dd.codelist("employment")
    region_case = "CASE " + " ".join(f"WHEN region = {k} THEN {_sql_str(v)}" for k, v in dd.region_names().items()) \
        + " ELSE NULL END"
    out = {
        "age_band": _band_case("age", dd.codelist("age_band")),
        "age_group_profile": _band_case("age", dd.codelist("age_group_profile")),
        "cci_category": cci_case,
        "education_profile": _map_case("education", dict(zip(edu["code"], edu["profile_group"], strict=True))),
        "employment_profile": _map_case("employment", dict(zip(emp["code"], emp["profile_group"], strict=True))),
        "region_name": region_case,
    }
    if periods:
        out["period"] = "CASE " + " ".join(
            f"WHEN year BETWEEN {int(a)} AND {int(b)} THEN {_sql_str(name)}" for name, (a, b) in periods.items()
        ) + " ELSE NULL END"
    return out


def _table_path(data_dir: Path, name: str) -> str:
    p = Path(data_dir) / f"{name}.parquet"
    if p.is_dir():
        return (p / "*.parquet").as_posix()
    if not p.exists():
        raise FileNotFoundError(
            f"register directory {data_dir} has no {name}.parquet — generate one with "
            f"`lumbarstats synth --out {data_dir}` or ingest raw extracts with `lumbarstats ingest`")
    return p.as_posix()


def _as_list(x) -> list | None:
    if x is None:
        return None
    if isinstance(x, str):
        return [x]
    return list(x)


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
    where: str | None = None,
    with_total: bool = False,
    threads: int | None = None,
    count_unmatched: bool = False,
) -> pd.DataFrame:
    """Examinations, distinct persons and person-years per stratum.

    Parameters
    ----------
    data_dir : register directory (``population.parquet``, ``examinations.parquet``).
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
    where : an extra SQL condition on population columns (e.g. ``"age BETWEEN 18 AND 64"``).
    with_total : add whole-country rows (region 0 / ``Landsplan``) when ``region`` or
        ``region_name`` is in ``by``.

    Returns
    -------
    DataFrame with the ``by`` columns and ``events``, ``persons``, ``population``. Every
    population stratum appears, with zero events where there are none.
    """
    dd = _dictionary.load()
    by = list(by)
    unknown = [b for b in by if b not in VARIABLES]
    if unknown:
        raise ValueError(f"unknown stratum variable(s) {unknown}; choose from {list(VARIABLES)}")
    if len(set(by)) != len(by):
        raise ValueError(f"duplicate variables in by={by}")
    if "period" in by and periods is None:
        periods = report_periods(dd)
    derived = _derived_sql(dd, cci_cutpoints, periods)

    codes = dd.counted_procedure_codes(include_related=include_related)
    mods = _as_list(modality) or list(codes)
    bad = [m for m in mods if m not in codes]
    if bad:
        raise ValueError(f"unknown modality {bad}; choose from {list(codes)}")
    if len(mods) > 1 and "modality" not in by:
        raise ValueError("several modalities requested: add 'modality' to `by` (or pass one modality)")
    payers = _as_list(payer)
    if payers is not None:
        allowed = dd.codes("payer")
        badp = [p for p in payers if p not in allowed]
        if badp:
            raise ValueError(f"unknown payer {badp}; choose from {allowed}")

    year_list = None
    if years is not None:
        ys = [int(y) for y in ([years] if isinstance(years, (int, str)) else years)]
        if len(ys) == 2 and isinstance(years, tuple | list) and ys[0] > ys[1]:
            raise ValueError(f"years={tuple(years)}: give (first, last) with first <= last")
        # (first, last) is an inclusive range; three or more years are taken as listed
        year_list = list(range(ys[0], ys[1] + 1)) if len(ys) == 2 else sorted(set(ys))

    pop_path = _table_path(data_dir, "population")
    ex_path = _table_path(data_dir, "examinations")

    def select_var(v: str) -> str:
        if v in derived:
            return f"{derived[v]} AS {v}"
        return v

    pop_vars = [v for v in by if v not in _EXAM_ONLY]
    pop_select = ", ".join(["person_id", "year"] + [select_var(v) for v in pop_vars if v != "year"])
    conds = ["TRUE"]
    if year_list is not None:
        conds.append(f"year IN ({', '.join(str(y) for y in year_list)})")
    if "period" in by:
        conds.append(f"({derived['period']}) IS NOT NULL")
    if where:
        conds.append(f"({where})")
    pop_where = " AND ".join(conds)

    code_pairs = [(m, c) for m in mods for c in codes[m]]
    code_case = "CASE " + " ".join(f"WHEN procedure_code = {_sql_str(c)} THEN {_sql_str(m)}" for m, c in code_pairs) \
        + " ELSE NULL END"
    ex_conds = [f"procedure_code IN ({', '.join(_sql_str(c) for _, c in code_pairs)})",
                f"modality IN ({', '.join(_sql_str(m) for m in mods)})"]
    if payers is not None:
        ex_conds.append(f"payer IN ({', '.join(_sql_str(p) for p in payers)})")

    pop_group = ", ".join(pop_vars)
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads TO {int(threads)}")
    con.execute(f"CREATE TEMP VIEW pop AS SELECT {pop_select} FROM read_parquet({_sql_str(pop_path)}) WHERE {pop_where}")
    con.execute(f"""CREATE TEMP VIEW ex AS
        SELECT person_id, CAST(year(date) AS INTEGER) AS year, CAST(month(date) AS INTEGER) AS month,
               {code_case} AS modality, payer
        FROM read_parquet({_sql_str(ex_path)}) WHERE {' AND '.join(ex_conds)}""")
    ex_cols = {"month": "ex.month", "modality": "ex.modality", "payer": "ex.payer"}
    sel_ev = ", ".join(ex_cols.get(v, f"pop.{v}") + f" AS {v}" for v in by)
    group_ev = ", ".join(ex_cols.get(v, f"pop.{v}") for v in by) if by else ""
    ev_sql = f"""SELECT {sel_ev + ', ' if by else ''}count(*) AS events, count(DISTINCT ex.person_id) AS persons
        FROM ex JOIN pop ON ex.person_id = pop.person_id AND ex.year = pop.year
        {'GROUP BY ' + group_ev if by else ''}"""
    events = con.execute(ev_sql).df()
    popc = con.execute(f"SELECT {pop_group + ', ' if pop_vars else ''}count(*) AS population FROM pop "
                       f"{'GROUP BY ' + pop_group if pop_vars else ''}").df()
    unmatched = None
    if count_unmatched:
        yr = f"WHERE ex.year IN ({', '.join(str(y) for y in year_list)})" if year_list is not None else ""
        unmatched = int(con.execute(f"""SELECT count(*) FROM ex ANTI JOIN
            (SELECT person_id, year FROM read_parquet({_sql_str(pop_path)})) p
            ON p.person_id = ex.person_id AND p.year = ex.year {yr}""").fetchone()[0])
    # expand population cells over exam-only variables
    if "month" in by:
        popc = popc.merge(pd.DataFrame({"month": range(1, 13)}), how="cross")
        popc["population"] = popc["population"] / 12.0
    if "modality" in by:
        popc = popc.merge(pd.DataFrame({"modality": mods}), how="cross")
    if "payer" in by:
        popc = popc.merge(pd.DataFrame({"payer": payers or dd.codes("payer")}), how="cross")
    out = popc.merge(events, on=by, how="left") if by else pd.concat([popc, events], axis=1)
    orphan = events.merge(popc[by], on=by, how="left", indicator=True) if by else None
    if orphan is not None and (orphan["_merge"] == "left_only").any():  # cannot happen: events join pop
        raise RuntimeError("internal error: events in strata without population")
    out["events"] = out["events"].fillna(0).astype("int64")
    out["persons"] = out["persons"].fillna(0).astype("int64")
    if "month" not in by:
        out["population"] = out["population"].astype("int64")
    out = out[by + ["events", "persons", "population"]].sort_values(by).reset_index(drop=True)
    if with_total and ("region" in by or "region_name" in by):
        out = _add_total(out, by, dd)
    out.attrs["unmatched"] = unmatched
    out.attrs["query"] = {"modality": mods, "payer": payers, "years": year_list, "include_related": include_related}
    return out


def _add_total(df: pd.DataFrame, by: list[str], dd) -> pd.DataFrame:
    """Whole-country rows. Note: ``persons`` of the total is the sum over regions (a person counted in
    two regions in different years is counted twice) — exact distinct counts need a separate query."""
    keys = [b for b in by if b not in ("region", "region_name")]
    tot = df.groupby(keys, as_index=False, observed=True)[["events", "persons", "population"]].sum() if keys \
        else df[["events", "persons", "population"]].sum().to_frame().T
    if "region" in by:
        tot["region"] = int(dd.spec["whole_country"]["code"])
    if "region_name" in by:
        tot["region_name"] = dd.whole_country_name
    return pd.concat([df, tot[df.columns]], ignore_index=True)


def population_counts(data_dir, *, by: Sequence[str], years=None, where: str | None = None) -> pd.DataFrame:
    """Person-years per stratum (no examinations)."""
    res = strata_counts(data_dir, by=by, modality="MR", payer="public", years=years, where=where)
    return res.drop(columns=["events", "persons"])


def default_standard(data_dir, *, strata: Iterable[str] = ("sex", "age_band"), years=None) -> pd.DataFrame:
    """The package's default standard population: the register's adult population pooled over the
    study years (or ``years``), by sex x age band. Columns: the strata and ``weight`` (person-years)."""
    pc = population_counts(data_dir, by=list(strata), years=years)
    return pc.rename(columns={"population": "weight"})
