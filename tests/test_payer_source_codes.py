"""Issue 15 item 5: payer groups as the report defines them, from the data dictionary.

The report (section 4.1, box 4.1) counts insurance-financed and self-paid examinations as privately
financed ("privatfinansieret, enten via et forsikringsselskab eller egenbetaling") and examinations at
private hospitals paid by the region as public. The LPR2, MiniPas and LPR3 source codes are mapped to
the groups through ``data_dictionary/codelists/payer_source_codes.csv``; a code that is not listed is one
clear error naming the register, file, column and value (or, if asked, a counted ``other``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from test_adapters import _read, make_raw

from lumbarstats import dictionary
from lumbarstats.adapters import ingest

OPTS = {"years": [2018, 2020], "require_population_row": {"examinations": False}}
D18, D19, D20 = dt.date(2018, 6, 1), dt.date(2019, 6, 1), dt.date(2020, 1, 2)


def _codes() -> pd.DataFrame:
    root = dictionary.load().root
    return pd.read_csv(root / "codelists" / "payer_source_codes.csv", dtype=str, keep_default_na=False)


def test_code_list_is_complete_and_follows_the_report():
    c = _codes()
    assert set(c["payer"]) <= set(dictionary.load().codes("payer"))
    assert set(c["source"]) == {"LPR2", "MiniPas", "LPR3"}
    assert set(c["basis"]) <= {"report", "assumed"}
    assert not c.duplicated(["source", "column", "code"]).any()
    for source, g in c.groupby("source"):  # every source says what a record without payer information is
        assert ((g["code"] == "(missing)") & (g["column"] == "")).sum() == 1, source
    lpr3 = c[(c["source"] == "LPR3") & (c["column"] == "financing")].set_index("code")["payer"]
    assert lpr3["forsikring"] == "private" and lpr3["selvbetaler"] == "private"   # box 4.1
    assert lpr3["offentlig"] == "public" and lpr3["andet"] == "other"
    assert (c["label_da"] != "").all() and (c["label_en"] != "").all() and (c["note"] != "").all()


def _payers(out) -> dict:
    ex = _read(out, "examinations")
    ex["date"] = pd.to_datetime(ex["date"]).dt.date
    return {(r.person_id, r.date.year): r.payer for r in ex.itertuples()}


def test_hand_built_records_get_the_report_payer_groups(tmp_path):
    lpr3 = [  # (contact, person, date, code, ownership, financing, reporting system)
        (11, 1, D20, "UXME30", "privat", "offentlig", "LPR3"),      # region pays at a private hospital: public
        (12, 2, D20, "UXME30", "privat", "forsikring", "LPR3"),     # insurance: private (was 'other')
        (13, 3, D20, "UXME30", "privat", "Selvbetaler", "LPR3"),    # self-pay (any case): private
        (14, 4, D20, "UXME30", "offentlig", "andet", "LPR3"),       # other payer
        (15, 1, D20, "UXRE30", "offentlig", None, "LPR3"),          # no financing: ownership decides
        (16, 2, D20, "UXRE30", "privat", None, "LPR3"),
        (17, 3, D20, "UXRE30", None, None, "LPR3"),                 # nothing known: other
    ]
    raw = make_raw(tmp_path / "raw", lpr2_ube=[(1, 1, D19, "UXME30")],
                   minipas=[(101, 1, D18, "UXME30", "1"), (102, 2, D18, "UXME30", "0"),
                            (103, 3, D18, "UXME30", None), (104, 4, D18, "UXME30", "9")],
                   lpr3_proc=lpr3)
    ingest(raw, tmp_path / "out", config={"options": OPTS})
    ex = _read(tmp_path / "out", "examinations")
    ex["date"] = pd.to_datetime(ex["date"]).dt.date
    got = {(r.person_id, r.procedure_code, r.date.year): r.payer for r in ex.itertuples()}
    assert got[(1, "UXME30", 2019)] == "public"                        # LPR2
    assert [got[(p, "UXME30", 2018)] for p in (1, 2, 3, 4)] == ["public", "private", "private", "other"]  # MiniPas
    assert [got[(p, "UXME30", 2020)] for p in (1, 2, 3, 4)] == ["public", "private", "private", "other"]  # LPR3
    assert [got[(p, "UXRE30", 2020)] for p in (1, 2, 3)] == ["public", "private", "other"]


@pytest.mark.parametrize(("register", "raw_column", "kwargs"), [
    ("lpr3_kontakter", "FINANSIERING",
     {"lpr3_proc": [(11, 1, D20, "UXME30", "privat", "kommunen?", "LPR3")]}),
    ("minipas_adm", "OFFHENV", {"minipas": [(101, 1, D18, "UXME30", "7")]}),
])
def test_unknown_payer_code_is_one_clear_error(tmp_path, register, raw_column, kwargs):
    raw = make_raw(tmp_path / "raw", **kwargs)
    with pytest.raises(ValueError) as err:
        ingest(raw, tmp_path / "out", config={"options": OPTS})
    msg = str(err.value)
    assert register in msg and raw_column in msg and "payer_source_codes.csv" in msg
    assert ("kommunen?" in msg) if raw_column == "FINANSIERING" else ("7" in msg)
    assert ".parquet" in msg  # the file
    assert not (tmp_path / "out" / "examinations.parquet").exists()


def test_unknown_payer_code_counted_as_other_when_asked(tmp_path):
    raw = make_raw(tmp_path / "raw", lpr3_proc=[(11, 1, D20, "UXME30", "offentlig", "kommunen", "LPR3"),
                                                (12, 2, D20, "UXME30", "privat", "forsikring", "LPR3")])
    rep = ingest(raw, tmp_path / "out", config={"options": {**OPTS, "unknown_payer_codes": "other"}})
    got = _payers(tmp_path / "out")
    assert got[(1, 2020)] == "other"      # not silently decided by the ownership column
    assert got[(2, 2020)] == "private"
    notes = rep.notes.groupby(["register", "note"])["rows"].sum()
    assert notes[("lpr3_kontakter", "payer_code_not_in_codelist_counted_as_other_financing")] == 1


def test_explicit_rules_in_a_config_still_override_the_code_list(tmp_path):
    raw = make_raw(tmp_path / "raw", lpr3_proc=[(12, 2, D20, "UXME30", "privat", "forsikring", "LPR3")])
    cfg = {"options": OPTS, "registers": {"lpr3_kontakter": {"payer": {
        "rules": [{"column": "financing", "map": {"forsikring": "other"}}], "default": "other"}}}}
    ingest(raw, tmp_path / "out", config=cfg)
    assert _payers(tmp_path / "out")[(2, 2020)] == "other"
