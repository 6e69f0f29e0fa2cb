"""Raw register layouts -> canonical tables (lumbarstats.adapters).

Hand-built raw extracts check the rules one at a time (de-duplication around the LPR2 -> LPR3 switch,
exact procedure-code matching, payer rules, covariates as of 31 December the year before, config
overrides, validation); the synthetic register checks the whole path round trip.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from lumbarstats.adapters import ingest, raw_layout

YEARS = {"options": {"years": [2019, 2020]}}


def _pnr(i: int) -> str:
    return f"{i:010d}"


def _write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)


def make_raw(root: Path, *, lpr2_ube=(), lpr3_proc=(), minipas=(), lpr3_extra_contacts=()) -> Path:
    """A tiny raw folder: persons 1-4 adults, 5 a child; snapshots 2018 and 2019 (population 2019, 2020).

    lpr2_ube: (recnum, person, date, code); lpr3_proc: (contact, person, date, code, own, fin, system);
    minipas: (recnum, person, date, code, flag).
    """
    bef = []
    for snap in (2018, 2019):
        bef += [
            (_pnr(1), 1, dt.date(1970, 5, 1), 101, 84, snap),    # Hovedstaden
            (_pnr(2), 2, dt.date(1985, 12, 31), 751, 82, snap),  # Aarhus -> Midtjylland
            (_pnr(3), 2, dt.date(2000, 1, 1), 851, 81, snap),    # Aalborg -> Nordjylland
            (_pnr(4), 1, dt.date(1950, 7, 7), 999, 83, snap),    # unknown KOM -> REG 83 fallback
            (_pnr(5), 1, dt.date(2005, 3, 3), 461, 83, snap),    # child
        ]
    bef = pd.DataFrame(bef, columns=["PNR", "KOEN", "FOED_DAG", "KOM", "REG", "snap"])
    for snap, g in bef.groupby("snap"):
        _write(g.drop(columns="snap"), root / "bef" / f"bef{snap}12.parquet")
    # education: person 1 level 70 (long), 2 level 40 (short/medium), 3 missing row, 4 code not in classification
    for snap in (2018, 2019):
        _write(pd.DataFrame({"PNR": [_pnr(1), _pnr(2), _pnr(4)], "HFAUDD": ["7040", "4010", "123"]}),
               root / "udda" / f"udda{snap}.parquet")
    # employment: person 1 employed (DB07 862100 -> Q -> 17) in 2018, pension (322) in 2019;
    # 2 employed with numeric DB07 11100 (-> 011100 -> A -> 01); 3 unemployed with a DB07 (ignored); 4 none
    _write(pd.DataFrame({"PNR": [_pnr(1), _pnr(2), _pnr(3)], "SOCIO13": [110, 131, 210],
                         "DB07": ["862100", "11100", "471100"]}), root / "akm" / "akm2018.parquet")
    _write(pd.DataFrame({"PNR": [_pnr(1), _pnr(2), _pnr(3)], "SOCIO13": [322, 131, 210],
                         "DB07": [None, "11100", "471100"]}), root / "akm" / "akm2019.parquet")
    # LPR2
    adm = [(r, _pnr(p), "1301", d, "2") for r, p, d, _ in lpr2_ube]
    ube = [(r, c, d) for r, _, d, c in lpr2_ube]
    adm += [(900, _pnr(2), "1301", dt.date(2012, 4, 1), "0")]   # an old diagnosis admission
    adm_df = pd.DataFrame(adm, columns=["RECNUM", "PNR", "C_SGH", "D_INDDTO", "C_PATTYPE"])
    ube_df = pd.DataFrame(ube, columns=["RECNUM", "C_OPR", "D_ODTO"])
    _write(adm_df, root / "lpr2" / "lpr_adm2019.parquet")
    _write(ube_df, root / "lpr2" / "lpr_sksube2019.parquet")
    _write(pd.DataFrame({"RECNUM": [900], "C_DIAG": ["DI219"], "C_DIAGTYPE": ["A"]}), root / "lpr2" / "lpr_diag2012.parquet")
    if minipas:
        _write(pd.DataFrame([(r, _pnr(p), "8800", d, f) for r, p, d, _, f in minipas],
                            columns=["RECNUM", "PNR", "C_SGH", "D_INDDTO", "OFFHENV"]), root / "minipas" / "minipas_adm2018.parquet")
        _write(pd.DataFrame([(r, c, d) for r, _, d, c, _ in minipas], columns=["RECNUM", "C_OPR", "D_ODTO"]),
               root / "minipas" / "minipas_sksube2018.parquet")
    # LPR3
    kon = [(k, _pnr(p), d, "6620", own, fin, sys) for k, p, d, _, own, fin, sys in list(lpr3_proc) + list(lpr3_extra_contacts)]
    kon_df = pd.DataFrame(kon, columns=["DW_EK_KONTAKT", "CPR", "DATO_START", "SORENHED_ANS", "EJERFORHOLD",
                                        "FINANSIERING", "INDBERETNINGSSYSTEM"])
    _write(kon_df, root / "lpr3" / "kontakter.parquet")
    _write(pd.DataFrame([(k, c, d) for k, _, d, c, *_ in lpr3_proc], columns=["DW_EK_KONTAKT", "PROCEDUREKODE", "DATO_START"]),
           root / "lpr3" / "procedurer_andre.parquet")
    _write(pd.DataFrame({"PNR": [_pnr(3)], "DODDATO": [dt.date(2020, 8, 1)]}), root / "dod" / "dod.parquet")
    _write(pd.DataFrame({"PNR": [_pnr(4), _pnr(4)], "HAENDELSESDATO": ["2020-02-02", "2020-09-09"],
                         "INDUD_KODE": ["U", "I"]}), root / "vnds" / "vnds.csv")
    return root


def _read(out: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(out / f"{table}.parquet")


def _assert_balanced(report) -> None:
    bal = report.balance()
    assert (bal["unexplained"] == 0).all(), bal


# -- population ---------------------------------------------------------------------------------------
def test_population_covariates_from_the_year_before(tmp_path):
    raw = make_raw(tmp_path / "raw")
    rep = ingest(raw, tmp_path / "out", config=YEARS)
    pop = _read(tmp_path / "out", "population").set_index(["person_id", "year"])
    assert sorted(pop.index.get_level_values(0).unique()) == [1, 2, 3, 4]   # child 5 dropped
    # age on 31 Dec of the snapshot year (2018 -> population 2019)
    assert pop.loc[(1, 2019), "age"] == 48 and pop.loc[(1, 2020), "age"] == 49
    assert pop.loc[(2, 2019), "age"] == 33 and pop.loc[(3, 2019), "age"] == 18
    assert pop.loc[(1, 2019), "region"] == 1084 and pop.loc[(2, 2019), "region"] == 1082
    assert pop.loc[(3, 2019), "region"] == 1081 and pop.loc[(4, 2019), "region"] == 1083  # REG fallback
    assert pop.loc[(1, 2019), "sex"] == "M" and pop.loc[(2, 2019), "sex"] == "F"
    assert pop.loc[(1, 2019), "education"] == "long_higher"
    assert pop.loc[(2, 2019), "education"] == "short_medium_higher"
    assert pop.loc[(3, 2019), "education"] == "unknown" and pop.loc[(4, 2019), "education"] == "unknown"
    # employment/industry from AKM of the year before: 2019 <- akm2018, 2020 <- akm2019
    assert pop.loc[(1, 2019), "employment"] == "employed" and pop.loc[(1, 2019), "industry"] == "17"
    assert pop.loc[(1, 2020), "employment"] == "pension" and pd.isna(pop.loc[(1, 2020), "industry"])
    assert pop.loc[(2, 2019), "industry"] == "01"                     # numeric 11100 -> 011100 -> A
    assert pop.loc[(3, 2019), "employment"] == "unemployed" and pd.isna(pop.loc[(3, 2019), "industry"])
    assert pop.loc[(4, 2019), "employment"] == "other"                # no AKM row
    # CCI: MI (DI21) on 1 Apr 2012 counts for 2019 (window 2009-2018) and 2020 (2010-2019)
    assert pop.loc[(2, 2019), "cci"] == 1 and pop.loc[(1, 2019), "cci"] == 0
    dropped = rep.dropped().set_index(["register", "reason"])["rows"]
    assert dropped[("bef", "under_adult_age")] == 2
    notes = rep.notes.groupby(["register", "note"])["rows"].sum()
    assert notes[("udda", "HFAUDD_not_in_classification_or_missing")] == 2   # person 4, two years
    assert notes[("bef", "region_from_REG_municipality_unknown")] == 2
    _assert_balanced(rep)
    exits = _read(tmp_path / "out", "exits")
    assert sorted(exits["exit_type"]) == ["death", "emigration"]          # the 'I' record is not an exit
    assert dropped[("vnds", "immigration_record")] == 1


# -- LPR2 / LPR3 switch ---------------------------------------------------------------------------------
def test_examination_reported_in_lpr2_and_lpr3_counts_once(tmp_path):
    d = dt.date(2019, 2, 11)
    raw = make_raw(
        tmp_path / "raw",
        lpr2_ube=[(1, 1, d, "UXME30")],                                    # reported via LPR2 in Feb 2019
        lpr3_proc=[(11, 1, d, "UXME30", "offentlig", "offentlig", "LPR3"),  # and natively in LPR3
                   (12, 2, dt.date(2020, 3, 3), "UXRE30", "offentlig", "offentlig", "LPR3")],
        # an LPR2 record converted into LPR3 (reporting system LPR2): filtered
        lpr3_extra_contacts=[])
    # add a converted copy of a 2019 LPR2-only exam to the LPR3 tables
    kon = pd.read_parquet(raw / "lpr3" / "kontakter.parquet")
    proc = pd.read_parquet(raw / "lpr3" / "procedurer_andre.parquet")
    adm = pd.read_parquet(raw / "lpr2" / "lpr_adm2019.parquet")
    ube = pd.read_parquet(raw / "lpr2" / "lpr_sksube2019.parquet")
    adm.loc[len(adm)] = [2, _pnr(3), "1301", dt.date(2019, 1, 5), "2"]
    ube.loc[len(ube)] = [2, "UXRE30", dt.date(2019, 1, 5)]
    kon.loc[len(kon)] = [13, _pnr(3), dt.date(2019, 1, 5), "6620", "offentlig", "offentlig", "LPR2"]
    proc.loc[len(proc)] = [13, "UXRE30", dt.date(2019, 1, 5)]
    for df, p in ((kon, "lpr3/kontakter.parquet"), (proc, "lpr3/procedurer_andre.parquet"),
                  (adm, "lpr2/lpr_adm2019.parquet"), (ube, "lpr2/lpr_sksube2019.parquet")):
        df.to_parquet(raw / p, index=False)

    rep = ingest(raw, tmp_path / "out", config=YEARS)
    ex = _read(tmp_path / "out", "examinations")
    assert len(ex[(ex.person_id == 1) & (ex.procedure_code == "UXME30")]) == 1
    assert len(ex[(ex.person_id == 3)]) == 1          # LPR2 copy kept, converted LPR3 copy filtered
    assert len(ex) == 3
    dropped = rep.dropped().set_index(["register", "reason"])["rows"]
    assert dropped[("lpr2_sksube", "duplicate_reported_in_lpr3")] == 1
    assert dropped[("lpr3_kontakter", "reporting_system_excluded")] == 1
    assert dropped[("lpr3_procedurer_andre", "parent_reporting_system_excluded")] == 1
    _assert_balanced(rep)
    # switching the de-duplication off counts it twice (the rule is what removes it)
    ingest(raw, tmp_path / "out2", config={**YEARS, "options": {"years": [2019, 2020], "dedup_across_eras": False}})
    ex2 = _read(tmp_path / "out2", "examinations")
    assert len(ex2[(ex2.person_id == 1) & (ex2.procedure_code == "UXME30")]) == 2


# -- exact procedure codes ------------------------------------------------------------------------------
def test_prefix_look_alikes_are_not_core_examinations(tmp_path):
    d = dt.date(2019, 5, 5)
    codes = ["UXRE30", "UXRE35", "UXME30A", "UXRE10", "UXME30X", "UXRE3", " uxre30 ", "UXRE301"]
    raw = make_raw(tmp_path / "raw", lpr2_ube=[(i + 1, 1, d, c) for i, c in enumerate(codes)])
    rep = ingest(raw, tmp_path / "out", config=YEARS)
    ex = _read(tmp_path / "out", "examinations")
    assert sorted(ex["procedure_code"]) == ["UXME30A", "UXRE30", "UXRE30", "UXRE35"]
    core = ex[ex["procedure_code"].isin(["UXME30", "UXRE30", "UXCE30"])]
    assert len(core) == 2                                             # UXRE30 and ' uxre30 ' only
    assert set(ex.loc[ex.procedure_code == "UXRE35", "modality"]) == {"XRAY"}
    assert set(ex.loc[ex.procedure_code == "UXME30A", "modality"]) == {"MR"}
    assert sorted(rep.unknown_codes["code"]) == ["UXME30X", "UXRE3", "UXRE301"]
    dropped = rep.dropped().set_index(["register", "reason"])["rows"]
    assert dropped[("lpr2_sksube", "code_not_counted")] == 1        # UXRE10: cervical, not lumbar
    assert dropped[("lpr2_sksube", "code_not_in_dictionary")] == 3
    # without related codes only the core code survives
    ingest(raw, tmp_path / "core", config={"options": {"years": [2019, 2020], "include_related_codes": False}})
    assert sorted(_read(tmp_path / "core", "examinations")["procedure_code"]) == ["UXRE30", "UXRE30"]


def test_class_letter_option_adds_letter_then_matches_exactly(tmp_path):
    d = dt.date(2019, 5, 5)
    raw = make_raw(tmp_path / "raw", lpr2_ube=[(1, 1, d, "XRE30"), (2, 1, d, "XRE3"), (3, 1, d, "UXRE30")])
    ingest(raw, tmp_path / "plain", config=YEARS)
    assert sorted(_read(tmp_path / "plain", "examinations")["procedure_code"]) == ["UXRE30"]
    cfg = {"options": {"years": [2019, 2020], "procedure_class_letter": {"examinations": "U"}}}
    ingest(raw, tmp_path / "letter", config=cfg)
    assert sorted(_read(tmp_path / "letter", "examinations")["procedure_code"]) == ["UXRE30", "UXRE30"]


# -- payer rules ------------------------------------------------------------------------------------------
def test_payer_rules_per_era(tmp_path):
    d18, d19 = dt.date(2018, 6, 1), dt.date(2019, 6, 1)
    raw = make_raw(
        tmp_path / "raw",
        lpr2_ube=[(1, 1, d19, "UXME30")],
        minipas=[(101, 1, d18, "UXME30", "1"), (102, 2, d18, "UXME30", "0"), (103, 3, d18, "UXME30", None),
                 (104, 4, d18, "UXME30", "9")],
        lpr3_proc=[(11, 1, dt.date(2020, 1, 2), "UXME30", "privat", "offentlig", "LPR3"),   # public pays at private
                   (12, 2, dt.date(2020, 1, 2), "UXME30", "privat", None, "LPR3"),          # ownership decides
                   (13, 3, dt.date(2020, 1, 2), "UXME30", "privat", "forsikring", "LPR3"),
                   (14, 4, dt.date(2020, 1, 2), "UXME30", "offentlig", None, "LPR3")])
    # population years 2019-2020 only (no BEF 2017 snapshot): keep 2018 examinations without a population row
    opts = {"years": [2018, 2020], "require_population_row": {"examinations": False}}
    ingest(raw, tmp_path / "out", config={"options": opts})
    ex = _read(tmp_path / "out", "examinations")
    ex["date"] = pd.to_datetime(ex["date"]).dt.date
    got = {(r.person_id, r.date.year): r.payer for r in ex.itertuples()}
    assert got[(1, 2018)] == "public" and got[(2, 2018)] == "private"
    assert got[(3, 2018)] == "private" and got[(4, 2018)] == "other"   # no flag -> private (documented default)
    assert got[(1, 2019)] == "public"                                     # LPR2: public hospitals
    assert got[(1, 2020)] == "public" and got[(2, 2020)] == "private"
    assert got[(3, 2020)] == "private" and got[(4, 2020)] == "public"   # insurance: private (box 4.1)
    # configurable: a MiniPas extract without the flag, all examinations private
    cfg = {"options": opts,
           "registers": {"minipas_adm": {"payer": {"rules": [], "default": "other"}}}}
    ingest(raw, tmp_path / "cfg", config=cfg)
    ex = _read(tmp_path / "cfg", "examinations")
    assert set(ex.loc[pd.to_datetime(ex["date"]).dt.year == 2018, "payer"]) == {"other"}


# -- config, validation -----------------------------------------------------------------------------------
def test_config_overrides_columns_files_and_classification(tmp_path):
    raw = make_raw(tmp_path / "raw")
    # the group's extract calls the person column PNR_PSEUDO, keeps UDDA as CSV under another name and
    # supplies its own HFAUDD classification with other column names
    for f in (raw / "bef").glob("*.parquet"):
        df = pd.read_parquet(f).rename(columns={"PNR": "pnr_pseudo"})
        df["ALDER"] = 99
        df.to_parquet(f, index=False)
    for f in (raw / "udda").glob("*.parquet"):
        pd.read_parquet(f).to_csv(raw / "udda" / f"hfaudd_{f.stem[-4:]}.csv", index=False)
        f.unlink()
    pd.DataFrame({"kode": ["7040", "4010", "123"], "niveau": ["10", "10", "80"]}).to_csv(raw / "my_hfaudd.csv", index=False)
    cfg = {"options": {"years": [2019, 2020]},
           "registers": {"bef": {"columns": {"person": "PNR_PSEUDO"}, "age_from": "age"},
                         "udda": {"files": ["udda/hfaudd_{year}.csv"],
                                  "classification": {"file": "my_hfaudd.csv", "code_column": "kode", "level_column": "niveau"}}}}
    rep = ingest(raw, tmp_path / "out", config=cfg)
    pop = _read(tmp_path / "out", "population").set_index(["person_id", "year"])
    assert set(pop["age"]) == {99}
    assert pop.loc[(1, 2019), "education"] == "primary" and pop.loc[(4, 2019), "education"] == "long_higher"
    _assert_balanced(rep)
    # a missing column is named in the error, and nothing is written
    with pytest.raises(ValueError, match="PNR_PSEUDO|PNR"):
        ingest(raw, tmp_path / "bad", config={"options": {"years": [2019, 2020]}})
    assert not (tmp_path / "bad" / "population.parquet").exists()
    with pytest.raises(KeyError, match="unknown registers"):
        ingest(raw, tmp_path / "bad", config={"registers": {"bef2": {}}})


def test_duplicate_admission_key_fails_and_writes_nothing(tmp_path):
    d = dt.date(2019, 5, 5)
    raw = make_raw(tmp_path / "raw", lpr2_ube=[(1, 1, d, "UXRE30"), (1, 2, d, "UXRE30")])
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="not unique"):
        ingest(raw, out, config=YEARS)
    # nothing written: no output folder, and no staging folder left beside it
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_non_numeric_person_ids_get_a_dense_number(tmp_path):
    raw = make_raw(tmp_path / "raw", lpr2_ube=[(1, 1, dt.date(2019, 5, 5), "UXRE30")])
    for sub in ("bef", "udda", "akm", "lpr2"):
        for f in (raw / sub).glob("*.parquet"):
            df = pd.read_parquet(f)
            if "PNR" in df.columns:
                df["PNR"] = "X" + df["PNR"].astype(str)
                df.to_parquet(f, index=False)
    ingest(raw, tmp_path / "out", config=YEARS)
    pop = _read(tmp_path / "out", "population")
    ex = _read(tmp_path / "out", "examinations")
    assert sorted(pop["person_id"].unique()) == [1, 2, 3, 4]
    assert ex["person_id"].tolist() == [1]
    assert json.loads((tmp_path / "out" / "metadata.json").read_text())["person_id"] == "dense_rank_of_pnr"


# -- round trips ------------------------------------------------------------------------------------------------
def _canon(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
        if c == "date":
            df[c] = pd.to_datetime(df[c]).dt.date
        if c in ("person_id", "year", "region", "age", "cci"):
            df[c] = df[c].astype("int64")
        if c == "industry":
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def _hand_canonical(folder: Path) -> Path:
    """Small canonical tables with CCI histories a 10-year look-back can produce (incl. a falling score)."""
    folder.mkdir(parents=True)
    rows = []
    for pid, region, sex, age0, edu, emp, ind, ccis in [
        (10, 1084, "M", 40, "long_higher", "employed", "17", [0, 0, 1, 1, 1, 1, 1, 1, 1, 1]),
        (11, 1082, "F", 70, "primary", "pension", None, [3, 3, 3, 2, 2, 2, 2, 4, 4, 4]),
        (12, 1081, "F", 18, "unknown", "other", None, [0] * 10),
        (13, 1085, "M", 55, "upper_secondary", "disability", None, [8, 8, 8, 8, 8, 8, 8, 8, 8, 8]),
        (14, 1083, "M", 30, "short_medium_higher", "employed", "19", [1, 1, 1]),
    ]:
        for k, c in enumerate(ccis):
            rows.append((pid, 2014 + k, region, sex, age0 + k, edu, emp, ind, c))
    pd.DataFrame(rows, columns=["person_id", "year", "region", "sex", "age", "education", "employment", "industry", "cci"]
                 ).astype({"year": "int16", "region": "int16", "age": "int16", "cci": "int16"}).to_parquet(folder / "population.parquet")
    pd.DataFrame({"person_id": [10, 10, 11, 13, 14, 14], "date": [dt.date(2015, 3, 1), dt.date(2019, 1, 20), dt.date(2021, 5, 5),
                                                             dt.date(2018, 12, 31), dt.date(2016, 2, 2), dt.date(2016, 2, 2)],
                  "modality": ["MR", "XRAY", "CT", "MR", "MR", "MR"],
                  "procedure_code": ["UXME30", "UXRE30", "UXCE30", "UXME30", "UXME30", "UXME30"],
                  "payer": ["public", "public", "private", "other", "public", "public"]}).to_parquet(folder / "examinations.parquet")
    pd.DataFrame({"person_id": [10, 11], "date": [dt.date(2015, 6, 1), dt.date(2022, 1, 1)],
                  "procedure_code": ["KABC16", "KNAG74"]}).to_parquet(folder / "surgery.parquet")
    pd.DataFrame({"person_id": [14], "date": [dt.date(2016, 7, 1)], "exit_type": ["emigration"]}).to_parquet(folder / "exits.parquet")
    return folder


def test_hand_built_canonical_round_trip(tmp_path):
    canon = _hand_canonical(tmp_path / "canon")
    raw = raw_layout.write_raw(canon, tmp_path / "raw", seed=3)
    manifest = json.loads((raw / "raw_manifest.json").read_text())
    assert manifest["cci_not_reproducible"] == []
    rep = ingest(raw, tmp_path / "out")
    _assert_balanced(rep)
    for table in ("population", "surgery", "exits"):
        pd.testing.assert_frame_equal(_canon(_read(tmp_path / "out", table)), _canon(pd.read_parquet(canon / f"{table}.parquet")))
    ex = _canon(_read(tmp_path / "out", "examinations"))
    extra = _canon(pd.DataFrame(manifest["extra_related_examinations"])[ex.columns])
    expected = _canon(pd.concat([pd.read_parquet(canon / "examinations.parquet"), extra], ignore_index=True))
    pd.testing.assert_frame_equal(ex, expected)


def test_encode_cci_history():
    diags, got = raw_layout.encode_cci_history([2014, 2015, 2016, 2017], [2, 2, 1, 1])
    assert got == {2014: 2, 2015: 2, 2016: 1, 2017: 1}
    # falling and rising again at the edges of the observed years is possible ...
    diags, got = raw_layout.encode_cci_history([2014, 2015, 2016], [1, 0, 1])
    assert got == {2014: 1, 2015: 0, 2016: 1} and diags == [(1, 2004), (1, 2015)]
    # ... a one-year bump inside the years is not: a diagnosis counts for 10 consecutive years
    _, got = raw_layout.encode_cci_history([2014, 2015, 2016], [0, 1, 0])
    assert got != {2014: 0, 2015: 1, 2016: 0}


@pytest.fixture(scope="module")
def synthetic_round_trip(tmp_path_factory):
    import lumbarstats as ls

    base = tmp_path_factory.mktemp("rt")
    raw = raw_layout.generate_raw(base / "raw", scale=0.0005, seed=11)
    rep = ingest(raw, base / "ingested")
    canon = ls.synth.generate(base / "canonical", scale=0.0005, seed=11)
    return raw, rep, base / "ingested", Path(canon)


def test_synthetic_raw_round_trip_equals_canonical(synthetic_round_trip):
    raw, rep, out, canon = synthetic_round_trip
    manifest = json.loads((raw / "raw_manifest.json").read_text())
    got, want = _canon(_read(out, "population")), _canon(pd.read_parquet(canon / "population.parquet"))
    assert len(got) == len(want)
    cols = [c for c in want.columns if c != "cci"]
    pd.testing.assert_frame_equal(got[cols], want[cols])
    # CCI: identical except the person-years whose synthetic score no diagnosis history can give
    # (listed by the raw writer); there the ingested score is what the written diagnoses give
    nr = pd.DataFrame(manifest["cci_not_reproducible"], columns=["person_id", "year", "cci", "cci_from_diagnoses"])
    merged = want.merge(got, on=["person_id", "year"], suffixes=("_want", "_got"))
    merged = merged.merge(nr, on=["person_id", "year"], how="left")
    listed = merged["cci_from_diagnoses"].notna()
    assert (merged.loc[~listed, "cci_want"] == merged.loc[~listed, "cci_got"]).all()
    assert (merged.loc[listed, "cci_got"] == merged.loc[listed, "cci_from_diagnoses"]).all()
    assert listed.mean() < 0.25
    # examinations: every canonical examination once (all payers), plus only the listed related-code traps
    ex = _canon(_read(out, "examinations"))
    extra = pd.DataFrame(manifest["extra_related_examinations"])
    expected = _canon(pd.concat([pd.read_parquet(canon / "examinations.parquet").astype(object), extra[ex.columns]],
                                ignore_index=True))
    pd.testing.assert_frame_equal(ex, expected)
    public = ex[(ex.payer == "public") & ex.procedure_code.isin(["UXME30", "UXRE30", "UXCE30"])].reset_index(drop=True)
    want_ex = _canon(pd.read_parquet(canon / "examinations.parquet"))
    pd.testing.assert_frame_equal(public, want_ex[want_ex.payer == "public"].reset_index(drop=True))
    pd.testing.assert_frame_equal(_canon(_read(out, "exits")), _canon(pd.read_parquet(canon / "exits.parquet")))
    # surgery: identical, except rows of persons who never have a population row (hence no BEF row):
    # ingest drops those as person_not_in_bef
    surg = pd.read_parquet(canon / "surgery.parquet")
    in_bef = surg["person_id"].isin(pd.read_parquet(canon / "population.parquet")["person_id"])
    pd.testing.assert_frame_equal(_canon(_read(out, "surgery")), _canon(surg[in_bef]))
    d = rep.dropped()
    assert d.loc[d.reason == "person_not_in_bef", "rows"].sum() == (~in_bef).sum()


def test_synthetic_ingest_report_explains_every_row(synthetic_round_trip):
    raw, rep, out, _ = synthetic_round_trip
    _assert_balanced(rep)
    assert {"bef", "udda", "akm", "lpr2_sksube", "minipas_sksube", "lpr3_procedurer_andre", "dod", "vnds"} <= set(rep.rows_in)
    manifest = json.loads((raw / "raw_manifest.json").read_text())
    dropped = rep.dropped().set_index(["register", "reason"])["rows"]
    traps = manifest["traps"]
    assert dropped[("lpr2_sksube", "duplicate_reported_in_lpr3")] == traps["reported_in_lpr2_and_lpr3"]
    assert dropped[("lpr3_kontakter", "reporting_system_excluded")] == traps["lpr2_converted_in_lpr3"]
    assert dropped[("vnds", "immigration_record")] == traps["immigration_records"]
    assert dropped[("bef", "under_adult_age")] == traps["children_bef_rows"]
    assert set(rep.unknown_codes["code"]) == {"UXME30X", "UXRE3", "UXME301"}
    # the written report: rows in == rows out + dropped for every register and year; SAS file read
    csv = pd.read_csv(out / "ingest_report.csv", keep_default_na=False)
    assert set(csv.columns) == {"register", "year", "status", "target", "reason", "rows"}
    assert (csv.loc[csv.status == "dropped", "reason"] != "").all()
    totals = csv.groupby("register")["rows"].sum()
    assert totals.to_dict() == rep.rows_in
    by_year = rep.by_year()
    assert (by_year["rows_in"] == by_year["rows_out"] + by_year["rows_dropped"]).all()
    assert by_year.groupby("register")["rows_in"].sum().to_dict() == rep.rows_in
    assert "Unexplained row losses: none" in rep.summary_text()
    md = (out / "ingest_report.md").read_text()
    assert "duplicate_reported_in_lpr3" in md and "UXME30X" in md
    assert any(f.endswith("dod.xpt") for f in rep.files["dod"])
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["cci"]["lookback_years"] == 10


def test_cli_ingest_with_yaml_config(tmp_path):
    from typer.testing import CliRunner

    from lumbarstats.cli import app

    raw = make_raw(tmp_path / "raw", lpr2_ube=[(1, 1, dt.date(2019, 5, 5), "UXRE30")])
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text("options:\n  years: [2019, 2020]\n  cci: {lookback_years: 5}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", "--raw", str(raw), "--out", str(tmp_path / "out"), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "Unexplained row losses: none" in result.output
    pop = _read(tmp_path / "out", "population").set_index(["person_id", "year"])
    # 5-year look-back: population 2019 uses 2014-2018, which excludes the 2012 MI (10 years: counted)
    assert pop.loc[(2, 2019), "cci"] == 0
    assert json.loads((tmp_path / "out" / "metadata.json").read_text())["cci"]["lookback_years"] == 5


def test_missing_reporting_system_column_needs_an_explicit_choice(tmp_path):
    d = dt.date(2020, 5, 5)
    raw = make_raw(tmp_path / "raw", lpr3_proc=[(11, 1, d, "UXME30", "offentlig", "offentlig", "LPR3")])
    kon = pd.read_parquet(raw / "lpr3" / "kontakter.parquet").drop(columns="INDBERETNINGSSYSTEM")
    kon.to_parquet(raw / "lpr3" / "kontakter.parquet", index=False)
    with pytest.raises(ValueError, match="reporting-system"):
        ingest(raw, tmp_path / "out", config=YEARS)
    cfg = {"options": {"years": [2019, 2020]}, "registers": {"lpr3_kontakter": {"reporting_systems": "all"}}}
    ingest(raw, tmp_path / "out", config=cfg)
    assert len(_read(tmp_path / "out", "examinations")) == 1
