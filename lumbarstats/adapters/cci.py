"""Charlson comorbidity index (CCI) from Danish National Patient Register diagnoses.

Code list: the Danish adaptation of Thygesen SK, Christiansen CF, Christensen S, Lash TL, Sørensen HT.
"The predictive value of ICD-10 diagnostic coding used to assess Charlson comorbidity index conditions
in the population-based Danish National Registry of Patients." BMC Med Res Methodol 2011;11:83
(Table 1: 19 conditions with ICD-8 and ICD-10 codes and the Charlson weights 1, 2, 3, 6 of
Charlson ME et al., J Chronic Dis 1987;40:373-83). Shipped as ``codelists/charlson_icd10.csv`` and
``codelists/charlson_icd8.csv``, one row per published code or code range.

Rules
-----
- Diagnoses match by **code prefix** (the published definitions are code groups: ``I21`` covers
  ``DI210``, ``DI219`` …). ICD-10 codes in LPR carry the SKS chapter letter ``D`` (``DI21``); ICD-8 codes
  are numeric (``41099``). Dots and whitespace are removed, case is ignored. This is deliberately unlike
  procedure codes, which are matched exactly (an SKS procedure code is a leaf, not a group).
- Look-back: for population year *Y* (covariates as of 31 December *Y*-1) a diagnosis counts if dated
  1 January (*Y* - ``lookback_years``) … 31 December (*Y* - 1), i.e. the ``lookback_years`` whole calendar
  years before *Y* (default 10).
- Each condition counts once per person. Hierarchy (column ``overridden_by``): mild liver disease is not
  counted when moderate/severe liver disease is present, diabetes without complications not when
  diabetes with end-organ damage is, any tumour not when metastatic solid tumour is.
- The score is the sum of the weights of the remaining conditions (0 without any).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from lumbarstats import dictionary

__all__ = ["expand_code_range", "charlson_codes", "charlson_index", "cci_category",
           "install_charlson_table", "charlson_score_sql"]


def expand_code_range(code_from: str, code_to: str) -> list[str]:
    """All codes from ``code_from`` to ``code_to`` with the same letters and number of digits.

    ``expand_code_range("I60", "I69")`` -> ``["I60", …, "I69"]``; ``("K700", "K703")`` -> 4 codes;
    ``("29009", "29019")`` -> 11 codes. A single code is returned unchanged.
    """
    a, b = str(code_from).strip().upper(), str(code_to).strip().upper()
    if a == b:
        return [a]
    ma, mb = re.fullmatch(r"([A-Z]*)(\d+)", a), re.fullmatch(r"([A-Z]*)(\d+)", b)
    if not ma or not mb or ma.group(1) != mb.group(1) or len(ma.group(2)) != len(mb.group(2)):
        raise ValueError(f"cannot expand code range {code_from}-{code_to}: same letters and digit count needed")
    lo, hi, width = int(ma.group(2)), int(mb.group(2)), len(ma.group(2))
    if lo > hi:
        raise ValueError(f"code range {code_from}-{code_to} runs backwards")
    return [f"{ma.group(1)}{n:0{width}d}" for n in range(lo, hi + 1)]


def charlson_codes(*, icd8: bool = True, icd10_letter: str = "D", dictionary_path: str | Path | None = None,
                   icd10_file: str | Path | None = None, icd8_file: str | Path | None = None) -> pd.DataFrame:
    """Expanded Charlson code prefixes: ``prefix, icd_version, condition, weight, overridden_by``.

    ICD-10 prefixes get the SKS chapter letter ``icd10_letter`` (``"D"`` as in LPR; ``""`` for plain ICD-10).
    """
    root = Path(dictionary_path) if dictionary_path else dictionary.dictionary_path()
    files = {"icd10": Path(icd10_file) if icd10_file else root / "codelists" / "charlson_icd10.csv"}
    if icd8:
        files["icd8"] = Path(icd8_file) if icd8_file else root / "codelists" / "charlson_icd8.csv"
    rows = []
    conditions: dict[str, tuple[int, str]] = {}
    for version, path in files.items():
        cl = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"condition", "weight", "overridden_by", "code_from", "code_to"} - set(cl.columns)
        if missing:
            raise ValueError(f"Charlson code list {path} lacks columns {sorted(missing)}")
        for r in cl.itertuples(index=False):
            key = (int(r.weight), r.overridden_by)
            if conditions.setdefault(r.condition, key) != key:
                raise ValueError(f"Charlson condition {r.condition!r} has inconsistent weight/hierarchy in {path}")
            for code in expand_code_range(r.code_from, r.code_to or r.code_from):
                prefix = (icd10_letter + code) if version == "icd10" else code
                rows.append((prefix, version, r.condition, int(r.weight), r.overridden_by or None))
    out = pd.DataFrame(rows, columns=["prefix", "icd_version", "condition", "weight", "overridden_by"])
    bad = set(out["overridden_by"].dropna()) - set(out["condition"])
    if bad:
        raise ValueError(f"Charlson hierarchy names unknown conditions {sorted(bad)}")
    return out.drop_duplicates().reset_index(drop=True)


def install_charlson_table(con: duckdb.DuckDBPyConnection, codes: pd.DataFrame, name: str = "charlson_prefix") -> None:
    """Register the expanded code list as a DuckDB table ``name``."""
    con.register("_charlson_df", codes)
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _charlson_df")
    con.unregister("_charlson_df")


def charlson_score_sql(diagnoses: str, index: str, *, lookback_years: int, prefix_table: str = "charlson_prefix") -> str:
    """SQL giving ``person_id, year, cci`` for every row of ``index`` (``person_id, year``).

    ``diagnoses`` is a table/view with ``person_id, date (DATE), code`` (codes normalised: upper case,
    no dots); matching is by prefix against ``prefix_table``.
    """
    lb = int(lookback_years)
    if lb < 1:
        raise ValueError(f"CCI look-back must be at least 1 year, got {lookback_years}")
    return f"""
    WITH dx AS (
        SELECT DISTINCT d.person_id, d.date, p.condition
        FROM {diagnoses} d JOIN {prefix_table} p ON starts_with(d.code, p.prefix)
    ), present AS (
        SELECT DISTINCT i.person_id, i.year, dx.condition
        FROM {index} i JOIN dx ON dx.person_id = i.person_id
         AND dx.date >= make_date(CAST(i.year AS BIGINT) - {lb}, 1, 1)
         AND dx.date <= make_date(CAST(i.year AS BIGINT) - 1, 12, 31)
    ), cond AS (SELECT DISTINCT condition, weight, overridden_by FROM {prefix_table}),
    kept AS (
        SELECT pr.person_id, pr.year, c.weight FROM present pr JOIN cond c USING (condition)
        WHERE c.overridden_by IS NULL OR NOT EXISTS (
            SELECT 1 FROM present q WHERE q.person_id = pr.person_id AND q.year = pr.year
              AND q.condition = c.overridden_by)
    ), score AS (SELECT person_id, year, SUM(weight) AS cci FROM kept GROUP BY person_id, year)
    SELECT i.person_id, i.year, CAST(COALESCE(s.cci, 0) AS SMALLINT) AS cci
    FROM {index} i LEFT JOIN score s ON s.person_id = i.person_id AND s.year = i.year
    """


def charlson_index(diagnoses: pd.DataFrame, index: pd.DataFrame, *, lookback_years: int = 10, icd8: bool = True,
                   diagnosis_types: Sequence[str] | None = None, dictionary_path: str | Path | None = None) -> pd.DataFrame:
    """Charlson comorbidity index per person and year from a diagnosis history.

    Parameters
    ----------
    diagnoses : DataFrame with ``person_id``, ``date`` and ``code`` (LPR/SKS codes such as ``DI219`` or
        ICD-8 ``41099``); optional ``type`` filtered by ``diagnosis_types`` (e.g. ``["A", "B"]``).
    index : DataFrame with ``person_id`` and ``year`` (population years; covariates as of 31 Dec year-1).
    lookback_years : whole calendar years before ``year`` in which diagnoses count (default 10).
    icd8 : also match numeric ICD-8 codes.

    Returns ``person_id, year, cci`` (one row per index row). Method: Charlson ME et al. J Chronic Dis
    1987;40:373-83 with the Danish ICD-8/ICD-10 definitions of Thygesen SK et al. BMC Med Res Methodol
    2011;11:83; each condition once, hierarchy as in the module docstring.
    """
    for name, frame, cols in (("diagnoses", diagnoses, ["person_id", "date", "code"]), ("index", index, ["person_id", "year"])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise KeyError(f"{name} lacks columns {missing}; it needs {cols}")
    dx = diagnoses.copy()
    if diagnosis_types is not None:
        if "type" not in dx.columns:
            raise KeyError("diagnosis_types given but diagnoses has no 'type' column")
        dx = dx[dx["type"].astype(str).str.strip().str.upper().isin([str(t).upper() for t in diagnosis_types])]
    dx = pd.DataFrame({
        "person_id": dx["person_id"].astype("int64"),
        "date": pd.to_datetime(dx["date"], errors="raise").dt.date,
        "code": dx["code"].astype(str).str.upper().str.replace(r"[\s.]", "", regex=True),
    })
    idx = pd.DataFrame({"person_id": index["person_id"].astype("int64"), "year": index["year"].astype("int64")})
    con = duckdb.connect()
    try:
        install_charlson_table(con, charlson_codes(icd8=icd8, dictionary_path=dictionary_path))
        con.register("dx_in", dx)
        con.register("idx_in", idx)
        con.execute("CREATE TABLE dx AS SELECT person_id, CAST(date AS DATE) AS date, code FROM dx_in")
        con.execute("CREATE TABLE idx AS SELECT row_number() OVER () AS _row, person_id, year FROM idx_in")
        out = con.execute(
            f"SELECT s.person_id, s.year, s.cci FROM ({charlson_score_sql('dx', 'idx', lookback_years=lookback_years)}) s "
            "ORDER BY person_id, year").df()
    finally:
        con.close()
    out = idx.merge(out.drop_duplicates(["person_id", "year"]), on=["person_id", "year"], how="left")
    out["cci"] = out["cci"].astype("int16")
    return out


def cci_category(score, cutpoints: Sequence[int] | None = None) -> pd.Series:
    """CCI score -> category (``none``/``mild``/``moderate``/``severe``); cut-points configurable."""
    return dictionary.load().cci_category(score, cutpoints=cutpoints)
