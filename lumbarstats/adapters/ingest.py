"""``lumbarstats ingest``: raw register extracts -> canonical register directory.

All joins and filters run in DuckDB on the files themselves (a DuckDB database file in a staging
folder inside ``out_dir`` lets DuckDB spill to disk), so extracts larger than memory work. Every input
row of every register is classified exactly once: kept (into a canonical table or as a look-up row) or
dropped with a reason; the report counts both, and :meth:`IngestReport.balance` checks
``rows_in == kept + dropped`` against an independent row count of each register.

Outputs are written to the staging folder and moved into place with ``os.replace`` only after every
step succeeded; nothing is written if the input fails validation.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from pathlib import Path

import duckdb
import pandas as pd

from lumbarstats import dictionary
from lumbarstats import io as _io

from . import cci as cci_mod
from .layout import Layout, RegisterSpec, load_layout
from .report import ROW_COLUMNS, IngestReport
from .sources import install_macros, register_view, sql_literal

__all__ = ["ingest", "CANONICAL_TABLES"]

CANONICAL_TABLES = ("population", "examinations", "surgery", "exits")
PROCEDURE_REGISTERS = ("lpr2_sksube", "lpr2_sksopr", "minipas_sksube", "minipas_sksopr",
                       "lpr3_procedurer_andre", "lpr3_procedurer_kirurgi")
PARENT_REGISTERS = ("lpr2_adm", "minipas_adm", "lpr3_kontakter")
DIAGNOSIS_REGISTERS = ("lpr2_diag", "lpr3_diagnoser")
MODALITY_FROM_SKS = {"MR": "MR", "X-ray": "XRAY", "CT": "CT"}


def _key(value) -> str:
    """Normalise a code the way SQL ``norm_key`` does (integers without decimals, text upper-case)."""
    s = str(value).strip()
    try:
        f = float(s)
        if f.is_integer():
            return str(int(f))
    except ValueError:
        pass
    return s.upper()


class _Run:
    """State of one ingest run (connection, layout, accumulated report rows)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, layout: Layout, dd, raw_dir: Path, staging: Path):
        self.con, self.layout, self.dd, self.raw_dir, self.staging = con, layout, dd, raw_dir, staging
        self.y0, self.y1 = layout.years(dd)
        self.adult = layout.adult_min_age(dd)
        self.report_rows: list[pd.DataFrame] = []
        self.unparseable_dates = layout.options.get("unparseable_procedure_dates", "error") or "error"
        if self.unparseable_dates not in ("error", "contact_date", "drop"):
            raise ValueError("options.unparseable_procedure_dates must be 'error', 'contact_date' or 'drop', "
                             f"got {self.unparseable_dates!r}")
        self.rows_in: dict[str, int] = {}
        self.notes: list[pd.DataFrame] = []
        self.files: dict[str, list[str]] = {}
        self.present: set[str] = set()

    # -- helpers --------------------------------------------------------------------------------
    def q(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def table(self, name: str, df: pd.DataFrame) -> None:
        self.con.register("_tmp_df", df)
        self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _tmp_df")
        self.con.unregister("_tmp_df")

    def load_register(self, name: str) -> bool:
        reg = self.layout.register(name)
        files = register_view(self.con, reg, self.raw_dir, self.staging)
        self.files[name] = [str(f) for f in files]
        if files:
            self.present.add(name)
            self.rows_in[name] = int(self.con.execute(f"SELECT count(*) FROM raw_{name}").fetchall()[0][0])
        return bool(files)

    def account(self, register: str, table: str, *, year: str = "year", target: str = "''") -> None:
        df = self.q(f"""
            SELECT {sql_literal(register)} AS register, CAST({year} AS INTEGER) AS year,
                   CASE WHEN reason IS NULL THEN 'kept' ELSE 'dropped' END AS status,
                   CASE WHEN reason IS NULL THEN {target} ELSE '' END AS target,
                   COALESCE(reason, '') AS reason, count(*) AS rows
            FROM {table} GROUP BY ALL""")
        self.report_rows.append(df)

    def note(self, register: str, sql: str) -> None:
        df = self.q(sql)
        if len(df):
            df.insert(0, "register", register)
            self.notes.append(df[["register", "year", "note", "rows"]])

    def payer_rules(self, reg: RegisterSpec) -> tuple[list[tuple[str, dict[str, str]]], str | None]:
        """The payer rules of a register: ``([(logical column, {normalised value: payer}), ...], default)``.

        The layout names the register's ``payer.source`` (LPR2, MiniPas, LPR3) and the logical ``columns``
        to read, in priority order; the value -> payer group mapping comes from the data dictionary,
        ``codelists/payer_source_codes.csv`` (the one place; code ``(missing)`` with an empty column is the
        group of a record whose columns are all empty). A config may still give explicit ``rules``
        (``[{column, map}]``) and/or a ``default``; these replace the code list's columns/default.
        """
        spec = reg.get("payer") or {}
        payers = set(self.dd.codes("payer"))
        codes = pd.read_csv(self.layout.codelist_path("payer_source_codes"), dtype=str, keep_default_na=False)
        source = spec.get("source")
        if source is not None and source not in set(codes["source"]):
            raise ValueError(f"register {reg.name!r}: payer source {source!r} is not in codelists/payer_source_codes.csv "
                             f"(sources {sorted(set(codes['source']))})")
        own = codes[codes["source"] == source] if source is not None else codes.iloc[0:0]
        rules: list[tuple[str, dict[str, str]]] = []
        if "rules" in spec:
            for rule in spec.get("rules") or []:
                rules.append((rule.get("column"), {_key(v): p for v, p in (rule.get("map") or {}).items()}))
        else:
            for col in spec.get("columns") or []:
                rows = own[own["column"] == col]
                if rows.empty:
                    raise ValueError(f"register {reg.name!r}: codelists/payer_source_codes.csv has no rows for "
                                     f"source {source!r}, column {col!r}")
                rules.append((col, {_key(c): p for c, p in zip(rows["code"], rows["payer"], strict=True)}))
        default = spec.get("default")
        if default is None:
            miss = own.loc[(own["code"] == "(missing)") & (own["column"] == ""), "payer"]
            default = miss.iloc[0] if len(miss) else None
        if default is not None and default not in payers:
            raise ValueError(f"register {reg.name!r}: payer default {default!r} is not a payer code {sorted(payers)}")
        for col, mapping in rules:
            if col not in reg.columns:
                raise KeyError(f"register {reg.name!r}: payer rule column {col!r} is not a logical column "
                               f"{sorted(reg.columns)}")
            bad = {v: p for v, p in mapping.items() if p not in payers}
            if bad:
                raise ValueError(f"register {reg.name!r}: payer rule for column {col!r} maps {bad} to unknown payers; "
                                 f"use one of {sorted(payers)}")
        return rules, default

    def payer_sql(self, reg: RegisterSpec) -> str:
        """SQL expression (over ``raw_<register> r``) giving each record's payer group: the first listed column
        with a value decides; all empty -> the default."""
        rules, default = self.payer_rules(reg)
        unknown_other = (self.layout.options.get("unknown_payer_codes") or "error") == "other"
        parts = []
        for col, mapping in rules:
            whens = [f"WHEN norm_key(r.{col}) = {sql_literal(v)} THEN {sql_literal(p)}" for v, p in mapping.items()]
            if unknown_other:  # a value outside the code list is counted as other (check_payer_codes notes it)
                whens.append(f"WHEN norm_key(r.{col}) IS NOT NULL THEN 'other'")
            if whens:
                parts.append(f"CASE {' '.join(whens)} END")
        parts.append(sql_literal(default) if default is not None else "NULL")
        return "COALESCE(" + ", ".join(parts) + ")" if len(parts) > 1 else parts[0]

    def check_payer_codes(self, reg: RegisterSpec) -> None:
        """A value of a payer column that is not in the code list: one error naming the register, file,
        raw column and values (``options.unknown_payer_codes: error``, the default), or — with ``other`` —
        the record counted as payer ``other`` and the values noted in the ingest report."""
        rules, _ = self.payer_rules(reg)
        policy = self.layout.options.get("unknown_payer_codes", "error") or "error"
        if policy not in ("error", "other"):
            raise ValueError(f"options.unknown_payer_codes must be 'error' or 'other', got {policy!r}")
        for col, mapping in rules:
            known = ", ".join(sql_literal(v) for v in mapping) or "NULL"
            bad = self.q(f"""SELECT _source AS file, CAST(r.{col} AS VARCHAR) AS value, count(*) AS rows
                FROM raw_{reg.name} r WHERE norm_key(r.{col}) IS NOT NULL AND norm_key(r.{col}) NOT IN ({known})
                GROUP BY ALL ORDER BY rows DESC""")
            if bad.empty:
                continue
            raw_col = reg.columns.get(col)
            if policy == "error":
                raise ValueError(
                    f"register {reg.name!r}, column {raw_col!r} (payer rule {col!r}): {int(bad['rows'].sum())} record(s) "
                    f"with values not in data_dictionary/codelists/payer_source_codes.csv (source "
                    f"{reg.get('payer', {}).get('source')!r}): add them to the code list with their payer group, or set "
                    f"options.unknown_payer_codes: other to count them as 'other'. Values:\n"
                    f"{bad.head(10).to_string(index=False)}")
            self.note(reg.name, f"""SELECT year(norm_date(r.date)) AS year,
                      'payer_code_not_in_codelist_counted_as_other_' || {sql_literal(col)} AS note, count(*) AS rows
                      FROM raw_{reg.name} r WHERE norm_key(r.{col}) IS NOT NULL AND norm_key(r.{col}) NOT IN ({known})
                      GROUP BY ALL""")

    # -- code lists -----------------------------------------------------------------------------
    def install_codelists(self) -> None:
        dd, lay = self.dd, self.layout
        mun = pd.read_csv(lay.codelist_path("municipality_region"), dtype={"code": "int64", "region": "int64"})
        self.table("municipality", mun[["code", "region"]])
        reg = dd.codelist("region")
        regmap = pd.concat([
            pd.DataFrame({"value": reg["code"].astype("int64"), "region": reg["code"].astype("int64")}),
            pd.DataFrame({"value": reg["bef_reg_code"].astype("int64"), "region": reg["code"].astype("int64")}),
        ])
        self.table("regmap", regmap)
        sexes = {_key(k): v for k, v in (lay.register("bef").get("sex_codes") or {}).items()}
        sexes.update({_key(c): c for c in dd.codes("sex")})
        self.table("sexmap", pd.DataFrame({"value": list(sexes), "sex": list(sexes.values())}))
        emp = dd.codelist("employment")
        rows = [(_key(s), r.code) for r in emp.itertuples() for s in str(r.socio13).split(";") if s.strip()]
        self.table("socio13map", pd.DataFrame(rows, columns=["value", "employment"]))
        sec = pd.read_csv(lay.codelist_path("db07_section"), dtype=str)
        ind = dd.codelist("industry")
        sec_to_group = {s.strip(): r.code for r in ind.itertuples() for s in str(r.db07_sections).split(";")}
        sec["industry"] = sec["section"].map(sec_to_group)
        if sec["industry"].isna().any():
            raise ValueError(f"db07_section.csv has sections without an industry group: {sorted(sec.loc[sec.industry.isna(), 'section'])}")
        self.table("db07map", sec[["division", "industry"]])
        self.industry_unknown = sec_to_group.get("X", "19")
        # procedure codes: exact codes, with optional letterless variants
        include_related = bool(lay.options.get("include_related_codes", True))
        counted = dd.counted_procedure_codes(include_related=include_related)
        sks = dd.codelist("sks_spine_imaging_codes")
        letters = lay.options.get("procedure_class_letter") or {}
        rows = []
        for r in sks.itertuples():
            modality = MODALITY_FROM_SKS.get(r.modality)
            is_counted = modality is not None and r.kode in counted.get(modality, [])
            rows.append((r.kode, r.kode, "examinations", modality, is_counted))
        for code in dd.codelist("sks_spine_surgery_codes")["kode"]:
            rows.append((code, code, "surgery", None, True))
        extra = []
        for _raw_code, code, target, modality, is_counted in rows:
            letter = letters.get(target)
            if letter and code.startswith(letter):
                extra.append((code[len(letter):], code, target, modality, is_counted))
        pc = pd.DataFrame(rows + extra, columns=["raw_code", "code", "target", "modality", "counted"])
        self.table("proc_codes", pc.drop_duplicates("raw_code", keep="first"))
        cci_opts = lay.options.get("cci", {}) or {}
        codes = cci_mod.charlson_codes(icd8=bool(cci_opts.get("icd8", True)),
                                       icd10_file=lay.codelist_path("charlson_icd10"),
                                       icd8_file=lay.codelist_path("charlson_icd8"))
        cci_mod.install_charlson_table(self.con, codes)

    def education_classification(self) -> pd.DataFrame:
        spec = self.layout.register("udda").spec
        cls = spec.get("classification") or {}
        fname = cls.get("file")
        if not fname:
            raise ValueError("registers.udda.classification.file must name the HFAUDD classification CSV")
        p = Path(fname)
        candidates = [p] if p.is_absolute() else [self.raw_dir / p, self.layout.dictionary_root / "codelists" / p]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            raise FileNotFoundError(f"HFAUDD classification {fname!r} not found (looked in {[str(c) for c in candidates]})")
        try:
            df = pd.read_csv(path, dtype=str, sep=None, engine="python", encoding="utf-8")
        except UnicodeDecodeError:
            df = pd.read_csv(path, dtype=str, sep=None, engine="python", encoding="latin-1")
        lower = {c.lower(): c for c in df.columns}
        code_col, level_col = lower.get(str(cls.get("code_column", "HFAUDD")).lower()), lower.get(str(cls.get("level_column", "H1")).lower())
        if code_col is None or level_col is None:
            raise ValueError(f"HFAUDD classification {path}: needs columns {cls.get('code_column')!r} and "
                             f"{cls.get('level_column')!r}; found {list(df.columns)}")
        level_map = {_key(k): v for k, v in (spec.get("level_map") or {}).items()}
        bad = set(level_map.values()) - set(self.dd.codes("education"))
        if bad:
            raise ValueError(f"registers.udda.level_map maps to unknown education codes {sorted(bad)}")
        out = pd.DataFrame({"value": df[code_col].map(_key), "level": df[level_col].map(_key)}).dropna()
        out["education"] = out["level"].map(level_map)
        unmapped = sorted(out.loc[out["education"].isna(), "level"].unique())
        if unmapped:
            raise ValueError(f"HFAUDD classification {path}: levels {unmapped} are not in registers.udda.level_map")
        dups = out[out["value"].duplicated(keep=False)]
        if len(dups):
            raise ValueError(f"HFAUDD classification {path}: codes listed more than once: {sorted(dups['value'].unique())[:10]}")
        return out[["value", "education"]]

    # -- population -----------------------------------------------------------------------------
    def build_population(self) -> None:
        bef = self.layout.register("bef")
        self.load_register("bef")
        age_from = bef.get("age_from", "birth_date")
        if age_from not in ("birth_date", "age"):
            raise ValueError(f"registers.bef.age_from must be 'birth_date' or 'age', got {age_from!r}")
        age_expr = ("CAST(r._file_year - year(norm_date(r.birth_date)) AS INTEGER)" if age_from == "birth_date"
                    else "CAST(norm_int(r.age) AS INTEGER)")
        fallback = "TRUE" if bef.get("region_fallback_to_reg", True) else "FALSE"
        self.con.execute(f"""
        CREATE TABLE bef_c AS
        WITH b AS (
            SELECT norm_person(r.person) AS pkey, r._file_year AS snap, r._file_year + 1 AS year,
                   s.sex, {age_expr} AS age, m.region AS kom_region,
                   CASE WHEN {fallback} THEN g.region END AS reg_region, r._source,
                   row_number() OVER () AS _rowno
            FROM raw_bef r
            LEFT JOIN sexmap s ON s.value = norm_key(r.sex)
            LEFT JOIN municipality m ON m.code = norm_int(r.municipality)
            LEFT JOIN regmap g ON g.value = norm_int(r.region)
        ), pre AS (
            SELECT *, COALESCE(kom_region, reg_region) AS region, CASE
                WHEN snap IS NULL THEN 'no_snapshot_year_in_file_name'
                WHEN year < {self.y0} OR year > {self.y1} THEN 'outside_study_years'
                WHEN pkey IS NULL THEN 'missing_person_id'
                WHEN sex IS NULL THEN 'invalid_sex_code'
                WHEN age IS NULL THEN 'missing_age'
                WHEN age < {self.adult} THEN 'under_adult_age'
                WHEN COALESCE(kom_region, reg_region) IS NULL THEN 'unknown_municipality'
            END AS reason0 FROM b
        )
        SELECT *, CASE WHEN reason0 IS NOT NULL THEN reason0
            WHEN row_number() OVER (PARTITION BY year, pkey, reason0 IS NULL ORDER BY _rowno) > 1
            THEN 'duplicate_person_in_snapshot' END AS reason
        FROM pre""")
        self.account("bef", "bef_c")
        self.note("bef", """SELECT year, 'region_from_REG_municipality_unknown' AS note, count(*) AS rows
                  FROM bef_c WHERE reason IS NULL AND kom_region IS NULL GROUP BY year""")
        # person ids: the PNR itself when every PNR is an integer, otherwise a dense number by sorted PNR
        non_numeric = self.con.execute(
            "SELECT count(*) FROM bef_c WHERE pkey IS NOT NULL AND TRY_CAST(pkey AS BIGINT) IS NULL").fetchall()[0][0]
        self.person_id_mode = "pnr_integer" if non_numeric == 0 else "dense_rank_of_pnr"
        pid = "CAST(pkey AS BIGINT)" if non_numeric == 0 else "dense_rank() OVER (ORDER BY pkey)"
        self.con.execute(f"CREATE TABLE persons AS SELECT pkey, {pid} AS person_id FROM "
                         "(SELECT DISTINCT pkey FROM bef_c WHERE pkey IS NOT NULL)")
        self.con.execute("""CREATE TABLE pop_keys AS SELECT b.pkey, b.year, p.person_id FROM bef_c b
                            JOIN persons p USING (pkey) WHERE b.reason IS NULL""")
        n = self.con.execute("SELECT count(*) FROM pop_keys").fetchall()[0][0]
        if n == 0:
            raise ValueError(f"no population rows: no BEF row is an adult ({self.adult}+) in population years "
                             f"{self.y0}-{self.y1} (snapshot years {self.y0 - 1}-{self.y1 - 1}); check the BEF files "
                             "and their {year} in the file names")
        self._snapshot_register("udda", self._udda_select())
        self._snapshot_register("akm", self._akm_select())
        emp_missing = self.layout.register("akm").get("missing_employment", "other")
        if emp_missing not in self.dd.codes("employment"):
            raise ValueError(f"registers.akm.missing_employment {emp_missing!r} is not an employment code")
        udda_join = ("LEFT JOIN udda_c u ON u.reason IS NULL AND u.pkey = k.pkey AND u.year = k.year"
                     if "udda" in self.present else "LEFT JOIN (SELECT NULL AS education) u ON FALSE")
        akm_join = ("LEFT JOIN akm_c a ON a.reason IS NULL AND a.pkey = k.pkey AND a.year = k.year"
                    if "akm" in self.present else "LEFT JOIN (SELECT NULL AS employment, NULL AS industry) a ON FALSE")
        self.con.execute(f"""
        CREATE TABLE pop0 AS SELECT k.person_id, CAST(k.year AS SMALLINT) AS year, CAST(b.region AS SMALLINT) AS region,
               b.sex, CAST(b.age AS SMALLINT) AS age, COALESCE(u.education, 'unknown') AS education,
               COALESCE(a.employment, {sql_literal(emp_missing)}) AS employment,
               CASE WHEN COALESCE(a.employment, {sql_literal(emp_missing)}) = 'employed' THEN a.industry END AS industry
        FROM pop_keys k JOIN bef_c b ON b.pkey = k.pkey AND b.year = k.year AND b.reason IS NULL
        {udda_join} {akm_join}""")
        for reg, _col, note in (("udda", "education", "no_udda_row_education_unknown"),
                               ("akm", "employment", f"no_akm_row_employment_{emp_missing}")):
            sub = (f"NOT EXISTS (SELECT 1 FROM {reg}_c x WHERE x.reason IS NULL AND x.pkey = k.pkey AND x.year = k.year)"
                   if reg in self.present else "TRUE")
            self.note(reg, f"SELECT year, '{note}' AS note, count(*) AS rows FROM pop_keys k WHERE {sub} GROUP BY year")

    def _udda_select(self) -> str | None:
        if not self.load_register("udda"):
            return None
        self.table("hfaudd", self.education_classification())
        return """SELECT norm_person(r.person) AS pkey, r._file_year + 1 AS year, norm_key(r.hfaudd) AS hfaudd,
                         COALESCE(h.education, 'unknown') AS education, h.value IS NULL AS unmatched
                  FROM raw_udda r LEFT JOIN hfaudd h ON h.value = norm_key(r.hfaudd)"""

    def _akm_select(self) -> str | None:
        if not self.load_register("akm"):
            return None
        unk = sql_literal(self.industry_unknown)
        emp_missing = sql_literal(self.layout.register("akm").get("missing_employment", "other"))
        return f"""
            WITH a AS (SELECT r.*, norm_key(r.db07) AS db07k,
                       CASE WHEN norm_int(r.db07) IS NOT NULL THEN lpad(CAST(norm_int(r.db07) AS VARCHAR), 6, '0')
                            ELSE norm_code(r.db07) END AS db07c FROM raw_akm r)
            SELECT norm_person(a.person) AS pkey, a._file_year + 1 AS year, norm_key(a.socio13) AS socio13,
                   COALESCE(s.employment, {emp_missing}) AS employment, s.value IS NULL AS unmatched,
                   CASE WHEN a.db07c IS NULL THEN NULL
                        WHEN a.db07c IN ('999999', '000000') THEN {unk}
                        ELSE COALESCE(d.industry, {unk}) END AS industry,
                   a.db07c IS NOT NULL AND a.db07c NOT IN ('999999', '000000') AND d.industry IS NULL AS db07_unmatched
            FROM a LEFT JOIN socio13map s ON s.value = norm_key(a.socio13)
            LEFT JOIN db07map d ON d.division = left(a.db07c, 2)"""

    def _snapshot_register(self, name: str, select: str | None) -> None:
        if select is None:
            return
        self.con.execute(f"""
        CREATE TABLE {name}_c AS
        WITH x AS (SELECT *, row_number() OVER () AS _rowno FROM ({select})),
        pre AS (SELECT x.*, CASE
                WHEN x.year IS NULL THEN 'no_snapshot_year_in_file_name'
                WHEN x.year < {self.y0} OR x.year > {self.y1} THEN 'outside_study_years'
                WHEN x.pkey IS NULL THEN 'missing_person_id'
                WHEN NOT EXISTS (SELECT 1 FROM pop_keys k WHERE k.pkey = x.pkey AND k.year = x.year) THEN 'no_population_row'
            END AS reason0 FROM x)
        SELECT *, CASE WHEN reason0 IS NOT NULL THEN reason0
            WHEN row_number() OVER (PARTITION BY year, pkey, reason0 IS NULL ORDER BY _rowno) > 1
            THEN 'duplicate_person_in_snapshot' END AS reason FROM pre""")
        self.account(name, f"{name}_c")
        var = "HFAUDD" if name == "udda" else "SOCIO13"
        self.note(name, f"""SELECT year, '{var}_not_in_classification_or_missing' AS note, count(*) AS rows
                  FROM {name}_c WHERE reason IS NULL AND unmatched GROUP BY year""")
        if name == "akm":
            self.note(name, """SELECT year, 'DB07_division_unknown_industry_19' AS note, count(*) AS rows
                      FROM akm_c WHERE reason IS NULL AND db07_unmatched AND employment = 'employed' GROUP BY year""")

    # -- patient register -----------------------------------------------------------------------
    def build_parents(self) -> None:
        for name in PARENT_REGISTERS:
            reg = self.layout.register(name)
            if not self.load_register(name):
                continue
            key = reg.get("key")
            self.check_payer_codes(reg)
            payer = self.payer_sql(reg)
            extra_reason, repsys = "", "CAST(NULL AS VARCHAR)"
            if name == "lpr3_kontakter":
                keep = reg.get("reporting_systems")
                if keep is None:
                    rep = pd.read_csv(self.layout.codelist_path("lpr3_reporting"), dtype=str)
                    keep = rep.loc[rep["counted"].str.lower() == "true", "code"].tolist()
                repsys = "norm_key(r.reporting_system)"
                if keep != "all":
                    n_sys = self.con.execute(
                        "SELECT count(*) FILTER (WHERE reporting_system IS NOT NULL), count(*) FROM raw_lpr3_kontakter"
                    ).fetchall()[0]
                    if n_sys[1] and not n_sys[0]:
                        raise ValueError("lpr3_kontakter: the reporting-system column "
                                         f"{reg.columns.get('reporting_system')!r} is missing or empty, so LPR3 records "
                                         "cannot be told from converted LPR2 records; map registers.lpr3_kontakter."
                                         "columns.reporting_system, or set reporting_systems: all to keep every contact")
                    keep_sql = ", ".join(sql_literal(_key(k)) for k in keep) or "NULL"
                    extra_reason = (f"WHEN {repsys} IS NULL OR {repsys} NOT IN ({keep_sql}) "
                                    "THEN 'reporting_system_excluded'")
            self.con.execute(f"""
            CREATE TABLE {name}_c AS SELECT norm_key(r.{key}) AS rkey, norm_person(r.person) AS pkey,
                   norm_date(r.date) AS pdate, {payer} AS payer, {repsys} AS repsys, CASE
                   WHEN norm_key(r.{key}) IS NULL THEN 'missing_key'
                   WHEN norm_person(r.person) IS NULL THEN 'missing_person_id'
                   {extra_reason}
                   END AS reason
            FROM raw_{name} r""")
            dups = self.q(f"SELECT rkey, count(*) AS n FROM {name}_c WHERE rkey IS NOT NULL GROUP BY rkey HAVING n > 1 LIMIT 5")
            if len(dups):
                raise ValueError(f"register {name!r}: key column {reg.columns[key]!r} is not unique "
                                 f"(e.g. {dups['rkey'].tolist()}); child rows would be counted twice. Fix the extract.")
            self.account(name, f"{name}_c", year="year(pdate)", target="'lookup'")
            if name == "lpr3_kontakter":
                self.note(name, """SELECT year(pdate) AS year, 'reporting_system_' || COALESCE(repsys, 'missing') AS note,
                          count(*) AS rows FROM lpr3_kontakter_c GROUP BY ALL""")

    def _child_base(self, name: str) -> str | None:
        reg = self.layout.register(name)
        parent = reg.get("parent")
        if not self.load_register(name):
            return None
        if parent not in self.present:
            raise FileNotFoundError(f"register {name!r} needs its parent register {parent!r}, whose files were not found")
        key = self.layout.register(parent).get("key")
        no_match = "no_matching_contact" if parent == "lpr3_kontakter" else "no_matching_admission"
        # a record's own date that is present but unreadable is never silently replaced by the contact date:
        # bad_date marks it (see _check_unparseable_dates for what happens then)
        if "date" in reg.columns:
            bad = "(nullif(trim(r.date), '') IS NOT NULL AND norm_date(r.date) IS NULL)"
            fallback = "p.pdate" if self.unparseable_dates == "contact_date" else "NULL"
            edate = f"CASE WHEN {bad} THEN {fallback} ELSE COALESCE(norm_date(r.date), p.pdate) END"
        else:
            bad, edate = "FALSE", "p.pdate"
        return f"""
            SELECT r.*, norm_key(r.{key}) AS rkey, p.pkey, p.reason AS parent_reason, p.payer,
                   {edate} AS edate, {bad} AS bad_date, p.rkey IS NOT NULL AS matched,
                   '{no_match}' AS no_match, {sql_literal(reg.get('era', ''))} AS era
            FROM raw_{name} r LEFT JOIN {parent}_c p ON p.rkey = norm_key(r.{key})"""

    def _check_unparseable_dates(self, name: str) -> None:
        """Own dates that are present but not a date: an error naming register, file, column and rows
        (default), or — with ``options.unparseable_procedure_dates`` ``contact_date`` / ``drop`` — the contact
        date used / the row dropped, counted per year in the ingest report."""
        # only rows that would otherwise be kept matter (a record dropped for its code needs no date)
        which = "bad_date AND reason0 = 'unparseable_date'" if self.unparseable_dates != "contact_date" \
            else "bad_date AND reason0 IS NULL"
        bad = self.con.table(f"{name}_c").filter(which)  # relational API: no values in SQL text
        n = int(bad.aggregate("count(*)").fetchall()[0][0])
        if not n:
            return
        if self.unparseable_dates == "error":
            rows = bad.project("_source AS file, date AS raw_date, code").limit(5).df()
            column = self.layout.register(name).columns.get("date")
            raise ValueError(
                f"register {name!r}, column {column!r}: {n} date(s) that are not dates (rule: ISO YYYY-MM-DD, "
                f"YYYYMMDD, DDMONYYYY or options.date_format); they are never replaced by the contact date "
                f"silently. Fix the file, or set options.unparseable_procedure_dates to 'contact_date' or "
                f"'drop' (counted in the ingest report). First rows:\n{rows.to_string(index=False)}")
        if self.unparseable_dates == "contact_date":
            notes = bad.aggregate("CAST(year(edate) AS INTEGER) AS year, count(*) AS rows",
                                  "CAST(year(edate) AS INTEGER)").df()
            notes.insert(0, "register", name)
            notes["note"] = "unparseable_date_contact_date_used"
            self.notes.append(notes[["register", "year", "note", "rows"]])

    def build_procedures(self) -> None:
        req = self.layout.options.get("require_population_row", {}) or {}
        parts = []
        for name in PROCEDURE_REGISTERS:
            base = self._child_base(name)
            if base is None:
                continue
            self.con.execute(f"""
            CREATE TABLE {name}_c AS
            WITH b AS ({base}), c AS (
                SELECT b.*, norm_code(b.code) AS code0, pc.code AS pcode, pc.target, pc.modality, pc.counted,
                       ps.person_id
                FROM b LEFT JOIN proc_codes pc ON pc.raw_code = norm_code(b.code)
                LEFT JOIN persons ps ON ps.pkey = b.pkey)
            SELECT {sql_literal(name)} AS register, c.*, CASE
                WHEN NOT matched THEN no_match
                WHEN parent_reason IS NOT NULL THEN 'parent_' || parent_reason
                WHEN code0 IS NULL THEN 'missing_code'
                WHEN pcode IS NULL THEN 'code_not_in_dictionary'
                WHEN NOT counted THEN 'code_not_counted'
                WHEN bad_date AND edate IS NULL THEN 'unparseable_date'
                WHEN edate IS NULL THEN 'missing_date'
                WHEN year(edate) < {self.y0} OR year(edate) > {self.y1} THEN 'outside_study_years'
                WHEN person_id IS NULL THEN 'person_not_in_bef'
                WHEN (target = 'examinations' AND {str(bool(req.get('examinations', True))).upper()}
                      OR target = 'surgery' AND {str(bool(req.get('surgery', True))).upper()})
                     AND NOT EXISTS (SELECT 1 FROM pop_keys k WHERE k.person_id = c.person_id AND k.year = year(c.edate))
                     THEN 'no_population_row'
            END AS reason0
            FROM c""")
            self._check_unparseable_dates(name)
            parts.append(f"SELECT register, era, person_id, edate, pcode, code0, target, modality, payer, reason0 FROM {name}_c")
        if not parts:
            self.con.execute("""CREATE TABLE proc_all (register VARCHAR, era VARCHAR, person_id BIGINT, edate DATE,
                                pcode VARCHAR, code0 VARCHAR, target VARCHAR, modality VARCHAR, payer VARCHAR,
                                reason0 VARCHAR, reason VARCHAR)""")
            return
        dedup = bool(self.layout.options.get("dedup_across_eras", True))
        self.con.execute(f"""
        CREATE TABLE proc_all AS WITH u AS ({' UNION ALL '.join(parts)})
        SELECT u.*, CASE WHEN reason0 IS NOT NULL THEN reason0
            WHEN {str(dedup).upper()} AND era = 'lpr2' AND EXISTS (
                SELECT 1 FROM u v WHERE v.era = 'lpr3' AND v.reason0 IS NULL AND v.person_id = u.person_id
                  AND v.pcode = u.pcode AND v.edate = u.edate AND v.target = u.target)
            THEN 'duplicate_reported_in_lpr3' END AS reason
        FROM u""")
        for name in PROCEDURE_REGISTERS:
            if name in self.present:
                self.account(name, f"(SELECT * FROM proc_all WHERE register = '{name}')", year="year(edate)",
                             target="target")
        bad = self.q("SELECT count(*) AS n FROM proc_all WHERE reason IS NULL AND (payer IS NULL OR person_id IS NULL)")
        if int(bad["n"].iloc[0]):
            raise ValueError(f"{int(bad['n'].iloc[0])} procedure rows have no payer; set a payer default in the layout")

    def build_diagnoses(self) -> None:
        opts = self.layout.options.get("cci", {}) or {}
        types = opts.get("diagnosis_types")
        type_sql = ("FALSE" if not types else
                    f"norm_code(b.type) IS NOT NULL AND norm_code(b.type) NOT IN ({', '.join(sql_literal(str(t).upper()) for t in types)})")
        parts = []
        for name in DIAGNOSIS_REGISTERS:
            base = self._child_base(name)
            if base is None:
                continue
            self.con.execute(f"""
            CREATE TABLE {name}_c AS
            WITH b AS ({base}), c AS (
                SELECT b.*, replace(replace(norm_code(b.code), '.', ''), ' ', '') AS dcode, ps.person_id,
                       {type_sql} AS type_excluded
                FROM b LEFT JOIN persons ps ON ps.pkey = b.pkey)
            SELECT c.*, CASE
                WHEN NOT matched THEN no_match
                WHEN parent_reason IS NOT NULL THEN 'parent_' || parent_reason
                WHEN dcode IS NULL THEN 'missing_code'
                WHEN type_excluded THEN 'diagnosis_type_excluded'
                WHEN edate IS NULL THEN 'missing_date'
                WHEN NOT EXISTS (SELECT 1 FROM charlson_prefix p WHERE starts_with(c.dcode, p.prefix)) THEN 'not_charlson_code'
                WHEN person_id IS NULL THEN 'person_not_in_bef'
            END AS reason FROM c""")
            self.account(name, f"{name}_c", year="year(edate)", target="'cci_diagnoses'")
            parts.append(f"SELECT person_id, edate AS date, dcode AS code FROM {name}_c WHERE reason IS NULL")
        sql = " UNION ALL ".join(parts) if parts else "SELECT CAST(NULL AS BIGINT) AS person_id, CAST(NULL AS DATE) AS date, CAST(NULL AS VARCHAR) AS code WHERE FALSE"
        self.con.execute(f"CREATE TABLE dx_kept AS {sql}")
        lookback = int(opts.get("lookback_years", 10))
        self.con.execute("CREATE TABLE pop_index AS SELECT person_id, year FROM pop0")
        self.con.execute(f"CREATE TABLE cci_scores AS {cci_mod.charlson_score_sql('dx_kept', 'pop_index', lookback_years=lookback)}")
        self.con.execute("""CREATE TABLE population AS SELECT p.person_id, p.year, p.region, p.sex, p.age, p.education,
                            p.employment, p.industry, CAST(c.cci AS SMALLINT) AS cci
                            FROM pop0 p JOIN cci_scores c USING (person_id, year)""")

    def build_exits(self) -> None:
        req = bool((self.layout.options.get("require_population_row", {}) or {}).get("exits", False))
        parts = []
        for name in ("dod", "vnds"):
            reg = self.layout.register(name)
            if not self.load_register(name):
                continue
            if name == "vnds":
                em, im = sql_literal(_key(reg.get("emigration_value", "U"))), sql_literal(_key(reg.get("immigration_value", "I")))
                dir_reason = (f"WHEN norm_key(r.direction) = {im} THEN 'immigration_record' "
                              f"WHEN norm_key(r.direction) IS NULL OR norm_key(r.direction) <> {em} THEN 'unknown_direction'")
                etype = "'emigration'"
            else:
                dir_reason, etype = "", "'death'"
            popreq = ("WHEN NOT EXISTS (SELECT 1 FROM pop_keys k WHERE k.person_id = ps.person_id AND k.year = year(norm_date(r.date))) "
                      "THEN 'no_population_row'") if req else ""
            self.con.execute(f"""
            CREATE TABLE {name}_c AS SELECT ps.person_id, norm_date(r.date) AS date, {etype} AS exit_type, CASE
                WHEN norm_person(r.person) IS NULL THEN 'missing_person_id'
                {dir_reason}
                WHEN norm_date(r.date) IS NULL THEN 'missing_date'
                WHEN year(norm_date(r.date)) < {self.y0} OR year(norm_date(r.date)) > {self.y1} THEN 'outside_study_years'
                WHEN ps.person_id IS NULL THEN 'person_not_in_bef'
                {popreq}
            END AS reason
            FROM raw_{name} r LEFT JOIN persons ps ON ps.pkey = norm_person(r.person)""")
            self.account(name, f"{name}_c", year="year(date)", target="'exits'")
            parts.append(f"SELECT person_id, date, exit_type FROM {name}_c WHERE reason IS NULL")
        sql = " UNION ALL ".join(parts) if parts else "SELECT CAST(NULL AS BIGINT) AS person_id, CAST(NULL AS DATE) AS date, CAST(NULL AS VARCHAR) AS exit_type WHERE FALSE"
        self.con.execute(f"CREATE TABLE exits AS {sql}")

    # -- output ---------------------------------------------------------------------------------
    def write_outputs(self, out_dir: Path) -> dict[str, Path]:
        queries = {
            "population": "SELECT person_id, year, region, sex, age, education, employment, industry, cci "
                          "FROM population ORDER BY person_id, year",
            "examinations": "SELECT person_id, edate AS date, modality, pcode AS procedure_code, payer FROM proc_all "
                            "WHERE reason IS NULL AND target = 'examinations' ORDER BY person_id, date, procedure_code, payer",
            "surgery": "SELECT person_id, edate AS date, pcode AS procedure_code FROM proc_all "
                       "WHERE reason IS NULL AND target = 'surgery' ORDER BY person_id, date, procedure_code",
            "exits": "SELECT person_id, date, exit_type FROM exits ORDER BY person_id, date, exit_type",
        }
        staged = {}
        self.outputs = {}
        for name, sql in queries.items():
            tmp = self.staging / f"{name}.parquet"
            self.con.execute(f"COPY ({sql}) TO {sql_literal(tmp)} (FORMAT parquet)")
            self.outputs[name] = int(self.con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0])
            staged[f"{name}.parquet"] = tmp
        return staged


def _validate_outputs(run: _Run) -> None:
    dd = run.dd
    checks = {
        "population region": ("SELECT DISTINCT region FROM population", set(dd.codes("region"))),
        "population education": ("SELECT DISTINCT education FROM population", set(dd.codes("education"))),
        "population employment": ("SELECT DISTINCT employment FROM population", set(dd.codes("employment"))),
        "population industry": ("SELECT DISTINCT industry FROM population WHERE industry IS NOT NULL", set(dd.codes("industry"))),
        "examinations payer": ("SELECT DISTINCT payer FROM proc_all WHERE reason IS NULL", set(dd.codes("payer"))),
    }
    for what, (sql, allowed) in checks.items():
        got = {r[0] for r in run.con.execute(sql).fetchall()}
        bad = got - allowed
        if bad:
            raise ValueError(f"{what}: values {sorted(map(str, bad))} are not in the code list {sorted(map(str, allowed))}")


def ingest(raw_dir: str | Path, out_dir: str | Path, config: str | Path | dict | None = None, *,
           dictionary_path: str | Path | None = None) -> IngestReport:
    """Turn raw register extracts into a canonical register directory.

    Parameters
    ----------
    raw_dir : folder with the raw files (layout: ``data_dictionary/raw_layouts.yaml``).
    out_dir : output register directory: ``population.parquet``, ``examinations.parquet``,
        ``surgery.parquet``, ``exits.parquet``, ``metadata.json``, ``ingest_report.csv``/``.md``.
    config : ingest config (YAML path or dict) merged over the layout (file patterns, column names,
        payer rules, options).

    Returns the :class:`IngestReport`. Raises ``FileNotFoundError``/``KeyError``/``ValueError`` naming
    the register, file and column to fix; nothing is written then.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"raw folder {raw_dir} does not exist")
    layout = load_layout(config, dictionary_path=dictionary_path)
    dd = dictionary.load(dictionary_path)
    _io.clean_stale_temporaries(out_dir.parent)  # a killed ingest's staging folder
    # a marked temporary folder beside OUT (same file system): nothing appears in OUT until every step passed
    staging = _io.staging_dir(out_dir, "ingest-staging")
    con = duckdb.connect(str(staging / "ingest.duckdb"))
    try:
        (staging / "tmp").mkdir()
        con.execute(f"SET temp_directory = {sql_literal(staging / 'tmp')}")
        con.execute("SET preserve_insertion_order = true")
        install_macros(con)
        run = _Run(con, layout, dd, raw_dir, staging)
        run.install_codelists()
        run.build_population()
        run.build_parents()
        run.build_procedures()
        run.build_diagnoses()
        run.build_exits()
        _validate_outputs(run)
        staged = run.write_outputs(out_dir)
        rows = pd.concat(run.report_rows, ignore_index=True) if run.report_rows else pd.DataFrame(columns=ROW_COLUMNS)
        unknown = run.q("""SELECT register, code0 AS code, count(*) AS rows FROM proc_all
                           WHERE reason = 'code_not_in_dictionary' GROUP BY ALL ORDER BY rows DESC, code""")
        notes = (pd.concat(run.notes, ignore_index=True) if run.notes
                 else pd.DataFrame(columns=["register", "year", "note", "rows"]))
        report = IngestReport(rows=rows, rows_in=run.rows_in, unknown_codes=unknown, notes=notes,
                              outputs=run.outputs, files={k: v for k, v in run.files.items() if v}, out_dir=out_dir)
        bal = report.balance()
        if (bal["unexplained"] != 0).any():
            raise RuntimeError(f"internal error: row accounting does not balance:\n{bal[bal.unexplained != 0]}")
        cci_opts = layout.options.get("cci", {}) or {}
        meta = {
            "generator": "lumbarstats.adapters.ingest", "version": _version(),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "raw_dir": str(raw_dir.resolve()), "years": [run.y0, run.y1], "adult_min_age": run.adult,
            "person_id": run.person_id_mode,
            "cci": {"lookback_years": int(cci_opts.get("lookback_years", 10)),
                    "diagnosis_types": cci_opts.get("diagnosis_types"), "icd8": bool(cci_opts.get("icd8", True)),
                    "cutpoints": cci_opts.get("cutpoints") or dd.cci_cutpoints(),
                    "code_list": "Thygesen et al. BMC Med Res Methodol 2011;11:83"},
            "options": layout.options, "files": report.files, "rows": run.outputs,
        }
        (staging / "metadata.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        report.to_frame().to_csv(staging / "ingest_report.csv", index=False)
        (staging / "ingest_report.md").write_text(report.to_markdown(), encoding="utf-8")
        staged.update({n: staging / n for n in ("metadata.json", "ingest_report.csv", "ingest_report.md")})
        con.close()
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, path in staged.items():
            os.replace(path, out_dir / name)
        return report
    finally:
        try:
            con.close()
        except Exception:  # noqa: BLE001 - already closed
            pass
        with contextlib.suppress(OSError):
            _io.remove_owned_tree(staging)


def _version() -> str:
    from lumbarstats import __version__

    return __version__
