"""The synthetic register in the registers' raw layouts (``lumbarstats synth --raw-layout``).

:func:`generate_raw` generates the canonical synthetic register (``ls.synth.generate``) and derives the
raw extracts from it deterministically with :func:`write_raw`, so that ``lumbarstats ingest`` can be
tested end to end: ingesting the raw folder gives back the canonical tables.

Derivation (population year *Y* comes from the snapshot of 31 December *Y*-1):

- BEF ``bef/bef{Y-1}12.parquet``: PNR (10-digit text), KOEN 1/2, FOED_DAG in year *Y*-1-age (so the age on
  31 Dec *Y*-1 is the canonical age), KOM a municipality of the region, REG.
- UDDA ``udda/udda{Y-1}.parquet``: an HFAUDD of the person's level from ``hfaudd_example.csv``; education
  ``unknown`` as no row, HFAUDD 9999 (level 90) or a code missing from the classification.
- AKM ``akm/akm{Y-1}.parquet``: a SOCIO13 code of the employment group; DB07 a 6-digit code in the
  industry group (``999999`` for group 19), only for the employed.
- Examinations: public ones before 2019 in LPR2 (``lpr2/lpr_adm{year}``, ``lpr_sksube{year}``), some
  through MiniPas with the public-referral flag; private/other ones before 2019 in MiniPas; from 2019
  in LPR3 (``kontakter``, ``procedurer_andre``) with ownership/financing. Surgery in ``lpr_sksopr`` /
  ``procedurer_kirurgi``.
- Diagnoses (``lpr_diag``, ``diagnoser``) that give each person-year its CCI with a 10-year look-back.
  A score that falls and rises again within 10 years cannot come from any diagnosis history; such
  person-years are listed in ``raw_manifest.json`` (``cci_not_reproducible``) with the score the
  diagnoses give.
- Deaths ``dod/dod.xpt`` (SAS XPORT, to exercise the SAS path), migrations ``vnds/vnds.csv``.
- Traps that ingest must handle (counted in ``raw_manifest.json``): LPR2 records converted into LPR3
  (reporting system ``LPR2``), 2019 examinations reported in both LPR2 and LPR3, look-alike codes
  (``UXRE35`` myelography, ``UXME30A``, non-lumbar ``UXRE10``, unknown ``UXME30X``/``UXRE3``), codes in
  lower case with spaces, examinations of children, procedure rows without admission, immigration
  records, non-Charlson and type-H diagnoses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lumbarstats import dictionary
from lumbarstats import io as _io

__all__ = ["generate_raw", "write_raw", "encode_cci_history", "UNIT_CONDITION_CODES"]

# one ICD-10 (SKS) code per weight-1 Charlson condition; level k of a score uses the k-th condition
UNIT_CONDITION_CODES = ["DI219", "DI500", "DI702", "DI639", "DF009", "DJ449", "DM059", "DK259", "DK703", "DE119"]
LOOKBACK = 10
_EPOCH = dt.date(1970, 1, 1)


def _h(values, salt: int) -> np.ndarray:
    """Deterministic 32-bit hash of integers (Knuth multiplicative + xorshift)."""
    x = (np.asarray(values, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(salt * 97 + 12345)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(2246822519)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(13)
    return x.astype(np.int64)


def _pnr(ids) -> np.ndarray:
    return pd.Series(np.asarray(ids, dtype=np.int64)).astype(str).str.zfill(10).to_numpy(dtype=object)


def _to_date(s) -> pd.Series:
    return pd.to_datetime(pd.Series(s)).dt.date


def encode_cci_history(years: list[int], scores: list[int], lookback: int = LOOKBACK) -> tuple[list[tuple[int, int]], dict[int, int]]:
    """Diagnosis years that give a person's CCI sequence with a ``lookback``-year window.

    Level ``k`` (``score >= k``) is carried by the k-th weight-1 condition; a diagnosis in calendar year
    ``d`` counts for population years ``d+1 .. d+lookback``. Returns ``[(level, diagnosis_year), …]`` and
    the scores these diagnoses give in ``years`` (equal to ``scores`` unless the sequence is impossible).
    """
    obs = sorted(zip(years, scores, strict=True))
    ys = [y for y, _ in obs]
    top = max((s for _, s in obs), default=0)
    if top > len(UNIT_CONDITION_CODES):
        raise ValueError(f"CCI {top} exceeds the {len(UNIT_CONDITION_CODES)} levels the raw writer can encode")
    out: list[tuple[int, int]] = []
    achieved = dict.fromkeys(ys, 0)
    for level in range(1, top + 1):
        inside = [s >= level for _, s in obs]
        i = 0
        while i < len(ys):
            if not inside[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(ys) and inside[j + 1]:
                j += 1
            a, b = ys[i], ys[j]
            prev_ex = ys[i - 1] if i > 0 else -10**6
            ys[j + 1] if j + 1 < len(ys) else 10**6
            if b - a + 1 <= lookback:
                d = max(b - lookback, prev_ex)
                d = min(d, a - 1)
                diag = [d]
            else:
                diag = list(range(a - 1, b - lookback + 1, lookback)) + [b - lookback]
            out += [(level, d) for d in diag]
            i = j + 1
        active = {y: any(d + 1 <= y <= d + lookback for lv, d in out if lv == level) for y in ys}
        for y in ys:
            achieved[y] += int(active[y])
    return sorted(set(out)), achieved


class _Ids:
    """Sequential record numbers / contact ids."""

    def __init__(self, start: int):
        self.n = start

    def take(self, k: int) -> np.ndarray:
        out = np.arange(self.n, self.n + k, dtype=np.int64)
        self.n += k
        return out


def _date_in_year(year, h) -> np.ndarray:
    year = np.asarray(year, dtype=np.int64)
    days = (pd.to_datetime(pd.DataFrame({"year": year, "month": 1, "day": 1})) - pd.Timestamp("1970-01-01")).dt.days.to_numpy()
    return pd.to_datetime(days + (np.asarray(h) % 365), unit="D").date


RAW_KIND = "raw-register"
MANIFEST = "raw_manifest.json"


def is_raw_register(folder: Path) -> bool:
    """A folder written by :func:`write_raw` (also by versions before the folder marker existed)."""
    man = Path(folder) / MANIFEST
    try:
        return man.is_file() and json.loads(man.read_text(encoding="utf-8")).get("generator") == \
            "lumbarstats.adapters.raw_layout"
    except (OSError, ValueError):
        return False


def write_raw(canonical_dir: str | Path, out_dir: str | Path, *, seed: int = 2024, traps: bool = True,
              extra_meta: dict | None = None, force: bool = False) -> Path:
    """Write the raw register layouts derived from a canonical register directory into ``out_dir``.

    Returns ``out_dir``. The files are written in a temporary sibling folder and moved into place; a
    non-empty ``out_dir`` that lumbarstats did not make is refused unless ``force``, and files the toolkit
    did not write are never deleted (see :func:`lumbarstats.io.install_staged`).
    """
    src, out = Path(canonical_dir), Path(out_dir)
    _io.check_folder(out, RAW_KIND, force, is_raw_register)
    dd = dictionary.load()
    pop, exams, surg, exits = _read_canonical(src)
    _io.clean_stale_temporaries(out.parent)
    tmp = _io.staging_dir(out, RAW_KIND)
    try:
        manifest = _write_all(tmp, dd, pop, exams, surg, exits, seed=seed, traps=traps)
        manifest.update({"generator": "lumbarstats.adapters.raw_layout", "seed": seed, "source": str(src),
                         "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
        manifest.update(extra_meta or {})
        _io.write_text(json.dumps(manifest, indent=2, default=str), tmp / MANIFEST)
        _io.install_staged(tmp, out, RAW_KIND, force=force, recognise=is_raw_register, last=(MANIFEST,))
    except BaseException:
        with contextlib.suppress(OSError):
            _io.remove_owned_tree(tmp)
        raise
    return out


def _read_canonical(src: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    pop = pd.read_parquet(src / "population.parquet")
    exams = pd.read_parquet(src / "examinations.parquet")
    surg = pd.read_parquet(src / "surgery.parquet")
    exits = pd.read_parquet(src / "exits.parquet")
    pop = pop[["person_id", "year", "region", "sex", "age", "education", "employment", "industry", "cci"]]
    for df in (exams, surg, exits):
        for c in df.columns:
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = df[c].astype(object).where(df[c].notna(), None)
    return pop.sort_values(["person_id", "year"]).reset_index(drop=True), exams, surg, exits


def _write(df: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        _io.write_csv(df, path)
    elif path.suffix == ".xpt":
        import pyreadstat

        _io.write_with(path, lambda tmp: pyreadstat.write_xport(df, str(tmp), table_name=path.stem.upper()[:8],
                                                                file_format_version=5))
    else:
        _io.write_parquet(df, path)


def _write_by_year(df: pd.DataFrame, year: pd.Series, pattern: str, root: Path) -> None:
    for y, part in df.groupby(np.asarray(year), sort=True):
        _write(part.reset_index(drop=True), root / pattern.format(year=int(y)))


def _write_all(root: Path, dd, pop, exams, surg, exits, *, seed: int, traps: bool) -> dict:
    """Every raw file, in named steps; the order of the steps fixes the record numbers (deterministic)."""
    manifest: dict = {"traps": {}}
    salt = int(seed) % 100000
    child_ids = _write_population_snapshots(root, dd, pop, salt, traps, manifest)
    reg = _PatientRegister()
    _add_examinations(reg, exams, salt, traps, manifest)
    _add_surgery(reg, surg)
    if traps:
        _add_code_traps(manifest, pop, child_ids, salt, reg.add_lpr2, reg.add_lpr3, reg.rec, reg.lpr2_ube)
    _add_cci_diagnoses(reg, pop, salt, traps, manifest)
    _write_patient_register(root, reg, manifest)
    _write_exits(root, exits, traps, manifest)
    return manifest


def _lookups(dd) -> dict:
    """Municipalities per region, HFAUDD codes per education level, SOCIO13 per employment group, DB07 divisions
    per industry group."""
    mun = pd.read_csv(dd.root / "codelists" / "municipality_region.csv")
    mun_by_region = {r: g["code"].to_numpy() for r, g in mun.groupby("region")}
    hf = pd.read_csv(dd.root / "codelists" / "hfaudd_example.csv", dtype=str)
    level_map = {"10": "primary", "20": "upper_secondary", "30": "upper_secondary", "35": "upper_secondary",
                 "40": "short_medium_higher", "50": "short_medium_higher", "60": "short_medium_higher",
                 "65": "short_medium_higher", "70": "long_higher", "80": "long_higher", "90": "unknown"}
    hf["education"] = hf["H1"].map(level_map)
    hf_by_edu = {e: g["HFAUDD"].to_numpy() for e, g in hf.groupby("education")}
    emp = dd.codelist("employment")
    socio_by_emp = {r.code: np.array(str(r.socio13).split(";")) for r in emp.itertuples()}
    sec = pd.read_csv(dd.root / "codelists" / "db07_section.csv", dtype=str)
    ind = dd.codelist("industry")
    div_by_group = {}
    for r in ind.itertuples():
        secs = str(r.db07_sections).split(";")
        div_by_group[r.code] = sec.loc[sec["section"].isin(secs), "division"].to_numpy()
    return {"mun": mun_by_region, "hf": hf_by_edu, "socio": socio_by_emp, "div": div_by_group}


def _write_population_snapshots(root: Path, dd, pop, salt: int, traps: bool, manifest: dict) -> np.ndarray:
    """BEF, UDDA and AKM per snapshot (with children in BEF as a trap); returns the children's ids."""
    lookups = _lookups(dd)
    snaps = sorted(int(y) - 1 for y in pop["year"].unique())
    child = pd.DataFrame(columns=["id", "snap", "by"])
    child_ids = np.array([], dtype=np.int64)
    if traps:  # children (under 18) in BEF; a few of them get examinations below
        ids = pop["person_id"].to_numpy()
        n_child = max(6, int(pd.Series(ids).nunique()) // 200)
        child_ids = (int(ids.max()) if len(ids) else 0) + 1 + np.arange(n_child)
        rows = [(cid, sn, min(snaps) - 17 + (k % 12)) for k, cid in enumerate(child_ids) for sn in snaps
                if 0 <= sn - (min(snaps) - 17 + (k % 12)) < 18]
        child = pd.DataFrame(rows, columns=["id", "snap", "by"])
        manifest["traps"]["children_bef_rows"] = len(child)
    for year, part in pop.groupby("year", sort=True, observed=True):
        ch = child[child["snap"] == int(year) - 1]
        _write_snapshot(root, part, ch, int(year) - 1, salt, lookups)
    return child_ids


class _PatientRegister:
    """The LPR2, MiniPas and LPR3 rows collected before writing, with their record and contact numbers."""

    LPR3_START = dt.date(2019, 1, 1)

    def __init__(self):
        self.rec = _Ids(1_000_001)
        self.kon = _Ids(5_000_001)
        self.lpr2_adm, self.lpr2_ube, self.lpr2_opr, self.lpr2_diag = [], [], [], []
        self.mp_adm, self.mp_ube = [], []
        self.k_rows, self.k_andre, self.k_kir, self.k_diag = [], [], [], []

    def add_lpr2(self, person, date, code, table, sgh="1301"):
        r = self.rec.take(len(person))
        self.lpr2_adm.append(pd.DataFrame({"RECNUM": r, "PNR": _pnr(person), "C_SGH": sgh, "D_INDDTO": date,
                                           "C_PATTYPE": "2"}))
        (self.lpr2_ube if table == "ube" else self.lpr2_opr).append(
            pd.DataFrame({"RECNUM": r, "C_OPR": code, "D_ODTO": date}))
        return r

    def add_minipas(self, person, date, code, flag):
        r = self.rec.take(len(person))
        self.mp_adm.append(pd.DataFrame({"RECNUM": r, "PNR": _pnr(person), "C_SGH": "8800", "D_INDDTO": date,
                                         "OFFHENV": flag}))
        self.mp_ube.append(pd.DataFrame({"RECNUM": r, "C_OPR": code, "D_ODTO": date}))

    def add_lpr3(self, person, date, code, table, own, fin, system="LPR3"):
        c = self.kon.take(len(person))
        self.k_rows.append(pd.DataFrame({"DW_EK_KONTAKT": c, "CPR": _pnr(person), "DATO_START": date,
                                         "SORENHED_ANS": "6620", "EJERFORHOLD": own, "FINANSIERING": fin,
                                         "INDBERETNINGSSYSTEM": system}))
        (self.k_andre if table == "andre" else self.k_kir).append(
            pd.DataFrame({"DW_EK_KONTAKT": c, "PROCEDUREKODE": code, "DATO_START": date}))
        return c


def _add_examinations(reg: _PatientRegister, exams, salt: int, traps: bool, manifest: dict) -> None:
    """Examinations by era and payer: LPR2 / MiniPas before 2019, LPR3 from 2019 (and the traps)."""
    ex = exams.copy()
    ex["date"] = _to_date(ex["date"])
    ex = ex.sort_values(["person_id", "date", "procedure_code", "payer"]).reset_index(drop=True)
    hx = _h(np.arange(len(ex)) + ex["person_id"].to_numpy(), salt + 7)
    code = ex["procedure_code"].astype(str).to_numpy().copy()
    odd = hx % 13 == 0  # stored in lower case with spaces: must still match exactly after normalising
    code[odd] = np.char.add(" ", np.char.lower(code[odd].astype(str)))
    pre = (ex["date"] < reg.LPR3_START).to_numpy()
    payer = ex["payer"].to_numpy()
    pe = ex["person_id"].to_numpy()
    dates = ex["date"].to_numpy()
    m_lpr2 = pre & (payer == "public") & (hx % 10 != 0)
    m_mp_pub = pre & (payer == "public") & (hx % 10 == 0)
    reg.add_lpr2(pe[m_lpr2], dates[m_lpr2], code[m_lpr2], "ube")
    reg.add_minipas(pe[m_mp_pub], dates[m_mp_pub], code[m_mp_pub], "1")
    m = pre & (payer == "private")
    reg.add_minipas(pe[m], dates[m], code[m], np.where(hx[m] % 2 == 0, "0", None))
    m = pre & (payer == "other")
    reg.add_minipas(pe[m], dates[m], code[m], "9")
    post = ~pre
    own = np.where(payer == "public", np.where(hx % 7 == 0, "privat", "offentlig"), "privat")
    # financing values and their payer groups: codelists/payer_source_codes.csv (source LPR3); private
    # examinations are paid privately, by an insurer or by the patient (report box 4.1: all three private)
    private_fin = np.array(["privat", "forsikring", "selvbetaler"], dtype=object)[hx % 5 % 3]
    fin = np.select([payer == "public", payer == "private"], ["offentlig", private_fin], "andet").astype(object)
    fin[(payer == "private") & (hx % 3 == 0)] = None  # no financing: ownership decides
    reg.add_lpr3(pe[post], dates[post], code[post], "andre", own[post], fin[post])
    if traps:
        conv = m_lpr2 & (hx % 11 == 0)  # converted LPR2 records inside LPR3: filtered by reporting system
        reg.add_lpr3(pe[conv], dates[conv], code[conv], "andre", "offentlig", "offentlig", system="LPR2")
        dup = post & (payer == "public") & (ex["date"] < dt.date(2019, 4, 1)).to_numpy() & (hx % 3 == 0)
        reg.add_lpr2(pe[dup], dates[dup], ex["procedure_code"].astype(str).to_numpy()[dup], "ube")
        manifest["traps"]["lpr2_converted_in_lpr3"] = int(conv.sum())
        manifest["traps"]["reported_in_lpr2_and_lpr3"] = int(dup.sum())


def _add_surgery(reg: _PatientRegister, surg) -> None:
    su = surg.copy()
    su["date"] = _to_date(su["date"])
    su = su.sort_values(["person_id", "date", "procedure_code"]).reset_index(drop=True)
    spre = (su["date"] < reg.LPR3_START).to_numpy()
    sp, sd, sc = su["person_id"].to_numpy(), su["date"].to_numpy(), su["procedure_code"].astype(str).to_numpy()
    reg.add_lpr2(sp[spre], sd[spre], sc[spre], "opr")
    reg.add_lpr3(sp[~spre], sd[~spre], sc[~spre], "kirurgi", "offentlig", "offentlig")


def _cci_diagnosis_rows(pop) -> tuple[list, list]:
    """(person, year, code, type) diagnosis rows that give each person-year its CCI, and the person-years
    whose score no diagnosis history can give."""
    not_repro, dx_rows = [], []
    cc = pop[["person_id", "year", "cci"]].astype("int64")
    agg = cc.groupby("person_id").agg(lo=("cci", "min"), hi=("cci", "max"), y0=("year", "min"), y1=("year", "max"))
    # fast path: a constant score over at most `LOOKBACK` years -> levels 1..score diagnosed the year before
    const = agg[(agg.lo == agg.hi) & (agg.hi > 0) & (agg.y1 - agg.y0 < LOOKBACK)]
    if len(const):
        rep = const.loc[const.index.repeat(const["hi"])]
        level = rep.groupby(level=0).cumcount().to_numpy() + 1
        dx_rows += list(zip(rep.index.to_numpy(), rep["y0"].to_numpy() - 1,
                            np.asarray(UNIT_CONDITION_CODES)[level - 1], np.where(level % 2 == 1, "A", "B"), strict=True))
    slow = agg.index[(agg.hi > 0) & ~agg.index.isin(const.index)]
    pos = cc[cc["person_id"].isin(slow)].sort_values(["person_id", "year"])
    for person, g in pos.groupby("person_id", sort=True):
        ys, ss = g["year"].astype(int).tolist(), g["cci"].astype(int).tolist()
        diags, achieved = encode_cci_history(ys, ss)
        for y, s in zip(ys, ss, strict=True):
            if achieved[y] != s:
                not_repro.append({"person_id": int(person), "year": y, "cci": s, "cci_from_diagnoses": achieved[y]})
        for level, d in diags:
            dx_rows.append((person, d, UNIT_CONDITION_CODES[level - 1], "A" if level % 2 else "B"))
    return dx_rows, not_repro


def _add_cci_diagnoses(reg: _PatientRegister, pop, salt: int, traps: bool, manifest: dict) -> None:
    """Diagnoses for the CCI (LPR2 before 2019, LPR3 after), plus non-Charlson and type-H traps."""
    dx_rows, not_repro = _cci_diagnosis_rows(pop)
    dx = pd.DataFrame(dx_rows, columns=["person_id", "year", "code", "type"])
    hd = _h(dx["person_id"].to_numpy() * 31 + dx["year"].to_numpy(), salt + 8)
    dx["date"] = _date_in_year(dx["year"], hd)
    dx_pre = (dx["date"] < reg.LPR3_START).to_numpy()
    r = reg.rec.take(int(dx_pre.sum()))
    reg.lpr2_adm.append(pd.DataFrame({"RECNUM": r, "PNR": _pnr(dx["person_id"][dx_pre]), "C_SGH": "1301",
                                      "D_INDDTO": dx["date"][dx_pre].to_numpy(), "C_PATTYPE": "0"}))
    reg.lpr2_diag.append(pd.DataFrame({"RECNUM": r, "C_DIAG": dx["code"][dx_pre].to_numpy(),
                                       "C_DIAGTYPE": dx["type"][dx_pre].to_numpy()}))
    c = reg.kon.take(int((~dx_pre).sum()))
    reg.k_rows.append(pd.DataFrame({"DW_EK_KONTAKT": c, "CPR": _pnr(dx["person_id"][~dx_pre]),
                                    "DATO_START": dx["date"][~dx_pre].to_numpy(), "SORENHED_ANS": "6620",
                                    "EJERFORHOLD": "offentlig", "FINANSIERING": "offentlig",
                                    "INDBERETNINGSSYSTEM": "LPR3"}))
    reg.k_diag.append(pd.DataFrame({"DW_EK_KONTAKT": c, "DIAGNOSEKODE": dx["code"][~dx_pre].to_numpy(),
                                    "DIAGNOSETYPE": dx["type"][~dx_pre].to_numpy()}))
    manifest["cci_not_reproducible"] = not_repro
    if traps:  # a back-pain diagnosis (not Charlson) and a type-H metastasis code (not counted) on exam contacts
        ube = pd.concat(reg.lpr2_ube, ignore_index=True)
        some = ube["RECNUM"].to_numpy()[::4]
        reg.lpr2_diag.append(pd.DataFrame({"RECNUM": some, "C_DIAG": "DM545", "C_DIAGTYPE": "A"}))
        reg.lpr2_diag.append(pd.DataFrame({"RECNUM": some[::5], "C_DIAG": "DC787", "C_DIAGTYPE": "H"}))
        manifest["traps"]["non_charlson_diagnoses"] = len(some)
        manifest["traps"]["type_h_diagnoses"] = len(some[::5])


def _concat(parts, cols) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def _write_patient_register(root: Path, reg: _PatientRegister, manifest: dict) -> None:
    """LPR2 and MiniPas files per year, LPR3 files whole."""
    adm = _concat(reg.lpr2_adm, ["RECNUM", "PNR", "C_SGH", "D_INDDTO", "C_PATTYPE"])
    adm_year = pd.to_datetime(adm["D_INDDTO"]).dt.year
    rec_year = dict(zip(adm["RECNUM"], adm_year, strict=True))
    _write_by_year(adm, adm_year, "lpr2/lpr_adm{year}.parquet", root)
    for parts, name in ((reg.lpr2_ube, "lpr_sksube"), (reg.lpr2_opr, "lpr_sksopr"), (reg.lpr2_diag, "lpr_diag")):
        df = _concat(parts, ["RECNUM"])
        yrs = df["RECNUM"].map(rec_year)
        orphan = yrs.isna()
        yrs = yrs.fillna(2016).astype(int)  # orphans (no admission) go into the 2016 file
        _write_by_year(df, yrs, f"lpr2/{name}{{year}}.parquet", root)
        if orphan.any():
            manifest["traps"][f"{name}_without_admission"] = int(orphan.sum())
    madm = _concat(reg.mp_adm, ["RECNUM", "PNR", "C_SGH", "D_INDDTO", "OFFHENV"])
    myear = pd.to_datetime(madm["D_INDDTO"]).dt.year
    _write_by_year(madm, myear, "minipas/minipas_adm{year}.parquet", root)
    mube = _concat(reg.mp_ube, ["RECNUM", "C_OPR", "D_ODTO"])
    _write_by_year(mube, mube["RECNUM"].map(dict(zip(madm["RECNUM"], myear, strict=True))),
                   "minipas/minipas_sksube{year}.parquet", root)
    _write(_concat(reg.k_rows, ["DW_EK_KONTAKT"]), root / "lpr3" / "kontakter.parquet")
    _write(_concat(reg.k_andre, ["DW_EK_KONTAKT", "PROCEDUREKODE", "DATO_START"]), root / "lpr3" / "procedurer_andre.parquet")
    _write(_concat(reg.k_kir, ["DW_EK_KONTAKT", "PROCEDUREKODE", "DATO_START"]),
           root / "lpr3" / "procedurer_kirurgi.parquet")
    _write(_concat(reg.k_diag, ["DW_EK_KONTAKT", "DIAGNOSEKODE", "DIAGNOSETYPE"]), root / "lpr3" / "diagnoser.parquet")


def _write_exits(root: Path, exits, traps: bool, manifest: dict) -> None:
    """Deaths (SAS XPORT) and migrations (CSV, with immigration records as a trap)."""
    xt = exits.copy()
    xt["date"] = _to_date(xt["date"])
    xt = xt.sort_values(["person_id", "date", "exit_type"]).reset_index(drop=True)
    deaths = xt[xt["exit_type"] == "death"]
    dod = pd.DataFrame({"PNR": _pnr(deaths["person_id"]).astype(object),
                        "DODDATO": pd.to_datetime(deaths["date"].to_numpy())})
    _write(dod, root / "dod" / "dod.xpt")
    em = xt[xt["exit_type"] == "emigration"]
    vnds = pd.DataFrame({"PNR": _pnr(em["person_id"]), "HAENDELSESDATO": em["date"].to_numpy(), "INDUD_KODE": "U"})
    if traps:  # immigration records are not exits
        imm = pd.DataFrame({"PNR": _pnr(em["person_id"].to_numpy()[::3]),
                            "HAENDELSESDATO": [d - dt.timedelta(days=400) for d in em["date"].to_numpy()[::3]],
                            "INDUD_KODE": "I"})
        vnds = pd.concat([vnds, imm], ignore_index=True)
        manifest["traps"]["immigration_records"] = len(imm)
    _write(vnds, root / "vnds" / "vnds.csv")


def _add_code_traps(manifest, pop, child_ids, salt, add_lpr2, add_lpr3, rec, lpr2_ube) -> None:
    """Look-alike / unknown codes, children's examinations and orphan procedure rows."""
    years = pop["year"].to_numpy()
    people = pop.drop_duplicates("person_id")
    hp = _h(people["person_id"].to_numpy(), salt + 9)
    chosen = people[hp % 50 == 0].head(200)
    if len(chosen) < 6:
        chosen = people.head(6)
    codes = ["UXRE35", "UXME30A", "UXRE10", "UXME30X", "UXRE3", "UXME301"]
    kept_related = []
    for k, row in enumerate(chosen.itertuples(index=False)):
        code = codes[k % len(codes)]
        year = int(row.year)
        date = dt.date(year, 6, 15)
        if date < dt.date(2019, 1, 1):
            add_lpr2(np.array([row.person_id]), [date], [code], "ube")
        else:
            add_lpr3(np.array([row.person_id]), [date], [code], "andre", "offentlig", "offentlig")
        if code in ("UXRE35", "UXME30A"):
            kept_related.append({"person_id": int(row.person_id), "date": date.isoformat(), "procedure_code": code,
                                 "modality": "XRAY" if code.startswith("UXRE") else "MR", "payer": "public"})
    manifest["traps"]["look_alike_codes"] = len(chosen)
    manifest["extra_related_examinations"] = kept_related
    # children's examinations (no population row), one per child
    yrs = sorted(set(years))
    for k, cid in enumerate(child_ids):
        d = dt.date(yrs[k % len(yrs)], 3, 1)
        if d < dt.date(2019, 1, 1):
            add_lpr2(np.array([cid]), [d], ["UXRE30"], "ube")
        else:
            add_lpr3(np.array([cid]), [d], ["UXRE30"], "andre", "offentlig", "offentlig")
    manifest["traps"]["children_examinations"] = len(child_ids)
    # examination rows whose admission is missing
    orphan = rec.take(3)
    lpr2_ube.append(pd.DataFrame({"RECNUM": orphan, "C_OPR": "UXME30", "D_ODTO": dt.date(2016, 5, 5)}))


def generate_raw(out_dir: str | Path, *, scale: float = 0.01, seed: int = 2024, force: bool = False) -> Path:
    """Generate the synthetic register (``ls.synth.generate``) and write it in the raw layouts.

    Skipped when ``out_dir`` already holds a raw register of the same seed and scale (unless ``force``). A
    non-empty folder that lumbarstats did not make is refused before anything is generated; with ``force``
    the raw files are written into it beside the files already there, which are never deleted.
    """
    from lumbarstats import synth

    out = Path(out_dir)
    _io.check_folder(out, RAW_KIND, force, is_raw_register)
    man = out / MANIFEST
    if is_raw_register(out) and not force:
        info = json.loads(man.read_text(encoding="utf-8"))
        complete = (_io.read_marker(out) or {}).get("state", "complete") == "complete"
        if info.get("seed") == seed and info.get("scale") == scale and complete:
            return out
        raise FileExistsError(f"{out} holds a raw register with seed {info.get('seed')} and scale {info.get('scale')}"
                              f"{'' if complete else ' (incomplete)'}; use force=True (--force) to overwrite")
    # the canonical register is made beside OUT (not in the system temp folder), so that a killed run's
    # leftover is found and removed by the next run
    _io.clean_stale_temporaries(out.parent)
    work = _io.staging_dir(out)
    try:
        kwargs = {"verbose": False} if "verbose" in inspect.signature(synth.generate).parameters else {}
        canon = synth.generate(work / "canonical", scale=scale, seed=seed, force=True, **kwargs)
        write_raw(canon, out, seed=seed, extra_meta={"scale": scale}, force=force)
    finally:
        with contextlib.suppress(OSError):
            _io.remove_owned_tree(work)
    return out


def _write_snapshot(root: Path, part: pd.DataFrame, child: pd.DataFrame, snap: int, salt: int, lk: dict) -> None:
    """BEF, UDDA and AKM files of one snapshot (31 Dec ``snap``) from population year ``snap + 1``."""
    part = part.copy()
    for c in part.columns:
        if isinstance(part[c].dtype, pd.CategoricalDtype):
            part[c] = part[c].astype(object).where(part[c].notna(), None)
    pid = part["person_id"].to_numpy()
    hp = _h(pid, salt)
    # -- BEF: birth date in year snap - age, municipality of the region
    birth_year = snap - part["age"].to_numpy().astype(int)
    kom = np.empty(len(part), dtype=np.int64)
    region = part["region"].to_numpy().astype(int)
    for r, codes in lk["mun"].items():
        m = region == r
        kom[m] = codes[hp[m] % len(codes)]
    bef = pd.DataFrame({"PNR": _pnr(pid), "KOEN": np.where(part["sex"].to_numpy() == "M", 1, 2),
                        "FOED_DAG": _date_in_year(birth_year, _h(pid, salt + 1)), "KOM": kom, "REG": region})
    if len(child):
        bef = pd.concat([bef, pd.DataFrame({
            "PNR": _pnr(child["id"]), "KOEN": 1 + (child["id"].to_numpy().astype(int) % 2),
            "FOED_DAG": _date_in_year(child["by"], _h(child["id"], salt + 1)), "KOM": 101, "REG": 1084})],
            ignore_index=True)
    _write(bef, root / "bef" / f"bef{snap}12.parquet")
    # -- UDDA: an HFAUDD of the level; 'unknown' as no row, level 90, or a code missing from the classification
    edu = part["education"].to_numpy()
    hfaudd = np.empty(len(part), dtype=object)
    for e, codes in lk["hf"].items():
        m = edu == e
        hfaudd[m] = codes[_h(pid[m], salt + 2) % len(codes)]
    unknown = edu == "unknown"
    mode = _h(pid, salt + 3) % 3
    hfaudd[unknown & (mode == 2)] = "0017"
    keep = ~(unknown & (mode == 0))
    _write(pd.DataFrame({"PNR": _pnr(pid[keep]), "HFAUDD": hfaudd[keep]}), root / "udda" / f"udda{snap}.parquet")
    # -- AKM: a SOCIO13 of the group; DB07 in the industry group (999999 = not stated), employed only
    empl = part["employment"].to_numpy()
    socio = np.zeros(len(part), dtype=np.int64)
    for e, codes in lk["socio"].items():
        m = empl == e
        socio[m] = codes[_h(pid[m] + snap, salt + 4) % len(codes)].astype(np.int64)
    indus = part["industry"].to_numpy()
    db07 = np.full(len(part), None, dtype=object)
    for g, divs in lk["div"].items():
        m = indus == g
        if not m.any():
            continue
        if g == "19":
            db07[m] = "999999"
            continue
        hh = _h(pid[m], salt + 5)
        db07[m] = [f"{divs[a % len(divs)]}{1000 + b % 9000:04d}" for a, b in zip(hh, hh // 7, strict=True)]
    keep = ~((empl == "other") & (_h(pid, salt + 6) % 4 == 0))  # some 'other' persons lack an AKM row
    _write(pd.DataFrame({"PNR": _pnr(pid[keep]), "SOCIO13": socio[keep], "DB07": db07[keep]}),
           root / "akm" / f"akm{snap}.parquet")
