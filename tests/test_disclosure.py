"""Tests of lumbarstats.disclosure: the small-cell rule, primary/secondary suppression, folder checks."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from lumbarstats import disclosure, tables
from lumbarstats.cli import app

REGIONS = ["Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland"]


def region_table(persons: list[int], year: int = 2023) -> pd.DataFrame:
    """Five regions plus Landsplan (their sum), with events >= persons and a rate."""
    df = pd.DataFrame({"region": REGIONS, "year": year, "persons": persons})
    df = pd.concat([df, pd.DataFrame({"region": ["Landsplan"], "year": [year], "persons": [sum(persons)]})],
                   ignore_index=True)
    df["events"] = df["persons"] + 2
    df["population"] = 100_000.0
    df["rate"] = df["events"] / df["population"] * 1000
    df["lower"], df["upper"] = df["rate"] * 0.9, df["rate"] * 1.1
    return df


# ------------------------------------------------------------------------------------------------
# threshold and small-cell rule
# ------------------------------------------------------------------------------------------------
def test_min_cell_never_below_three():
    assert disclosure.MIN_CELL_DEFAULT == 5
    assert disclosure.validate_min_cell(3) == 3
    with pytest.raises(ValueError, match="minimum of 3"):
        disclosure.validate_min_cell(2)
    with pytest.raises(ValueError, match="whole number"):
        disclosure.validate_min_cell(4.5)
    with pytest.raises(ValueError, match="minimum of 3"):
        disclosure.suppress(region_table([10, 10, 10, 10, 10]), min_cell=1)


def test_flag_small_cells():
    s = pd.Series([0, 1, 2, 3, 4, 5, 6, np.nan], name="persons")
    assert disclosure.flag_small_cells(s).tolist() == [False, True, True, True, True, False, False, False]
    assert disclosure.flag_small_cells(s, min_cell=3).tolist() == [False, True, True] + [False] * 5
    df = pd.DataFrame({"persons": [2, 7]})
    assert disclosure.flag_small_cells(df, "persons").tolist() == [True, False]
    with pytest.raises(KeyError, match="events"):
        disclosure.flag_small_cells(df, "events")
    with pytest.raises(ValueError, match="negative"):
        disclosure.flag_small_cells(pd.Series([-1, 3], name="persons"))
    with pytest.raises(ValueError, match="non-numeric"):
        disclosure.flag_small_cells(pd.Series(["a", 3], name="persons"))


# ------------------------------------------------------------------------------------------------
# suppression
# ------------------------------------------------------------------------------------------------
def test_primary_hides_counts_rates_and_intervals_together():
    df = pd.DataFrame({"sex": ["F", "M"], "events": [40, 12], "persons": [30, 3], "population": [1e4, 1e4],
                       "rate": [4.0, 1.2], "lower": [2.9, 0.6], "upper": [5.4, 2.1]})
    res = disclosure.suppress(df)
    assert res.rule_column == "persons"  # persons decide although events = 12 >= 5
    assert res.mask.tolist() == [False, True] and res.primary.tolist() == [False, True]
    hidden = res.table.loc[1, ["events", "persons", "population", "rate", "lower", "upper"]]
    assert hidden.isna().all()
    assert res.table.loc[0, "rate"] == 4.0 and res.table.loc[0, "persons"] == 30
    table, mask = res  # unpacks
    assert mask.tolist() == [False, True]
    marked = res.marked()
    assert marked.loc[1, "rate"] == disclosure.SUPPRESSED_MARKER and marked.loc[1, "sex"] == "M"


def test_event_count_is_the_fallback_rule():
    df = pd.DataFrame({"sex": ["F", "M"], "events": [40, 4], "rate": [4.0, 0.4]})
    res = disclosure.suppress(df)
    assert res.rule_column == "events" and res.mask.tolist() == [False, True]
    assert "observationer" in res.note("da")


def test_zero_cells_are_published():
    res = disclosure.suppress(pd.DataFrame({"g": ["a", "b"], "persons": [0, 9]}))
    assert not res.mask.any()


def test_secondary_suppression_against_landsplan():
    df = region_table([3, 40, 25, 60, 18])
    res = disclosure.suppress(df, group_totals={"region": "Landsplan"})
    # Nordjylland (3) is primary; the smallest other region (Sjælland, 18) protects it from the total
    assert res.primary.tolist() == [True, False, False, False, False, False]
    assert res.mask.tolist() == [True, False, False, False, True, False]
    assert res.secondary.tolist() == [False, False, False, False, True, False]
    assert not disclosure.determined_cells(df, res.mask, keys=["region", "year"],
                                           group_totals={"region": "Landsplan"}).any()
    assert "Celler med færre end 5 personer" in res.note("da")
    assert "Cells with fewer than 5 persons" in res.note("en")


def test_small_total_hides_a_member_too():
    df = region_table([1, 0, 0, 2, 0])  # Landsplan = 3 is itself small
    res = disclosure.suppress(df, group_totals={"region": "Landsplan"})
    assert res.mask[df["region"] == "Landsplan"].all()
    assert res.mask[df["region"].isin(["Nordjylland", "Hovedstaden"])].all()
    assert not disclosure.determined_cells(df, res.mask, keys=["region", "year"],
                                           group_totals={"region": "Landsplan"}).any()


def test_years_are_not_summed_without_a_total():
    df = pd.concat([region_table([3, 40, 25, 60, 18], 2022), region_table([30, 40, 25, 60, 18], 2023)],
                   ignore_index=True)
    res = disclosure.suppress(df, group_totals={"region": "Landsplan"})
    assert res.mask.sum() == 2 and not res.mask[df["year"] == 2023].any()


def test_external_total_groups():
    # groups of a variable add up to a total published elsewhere: one hidden group needs a partner
    df = pd.DataFrame({"variable": "sex", "group": ["F", "M"], "region": "Nordjylland", "persons": [4, 100],
                       "rate": [1.0, 2.0]})
    res = disclosure.suppress(df, group_totals={"group": None})
    assert res.mask.tolist() == [True, True]


def test_two_way_table_is_protected_by_linear_algebra():
    # 3x3 interior with row and column totals; one small cell in the middle
    vals = np.array([[20, 30, 40], [25, 2, 35], [50, 60, 70]])
    rows = []
    for i in range(4):
        for j in range(4):
            v = vals[i, j] if i < 3 and j < 3 else (vals[i].sum() if i < 3 and j == 3 else
                                                   (vals[:, j].sum() if j < 3 else vals.sum()))
            rows.append({"r": f"r{i}" if i < 3 else "T", "c": f"c{j}" if j < 3 else "T", "persons": int(v)})
    df = pd.DataFrame(rows)
    gt = {"r": "T", "c": "T"}
    res = disclosure.suppress(df, group_totals=gt)
    assert res.mask.sum() == 4  # a 2x2 rectangle: the classic minimal pattern
    assert not disclosure.determined_cells(df, res.mask, keys=["r", "c"], group_totals=gt).any()


def test_degree_rule_alone_is_not_enough(monkeypatch):
    # Found by search: after "two hidden cells per row and column" one hidden cell (r0, c2) was still
    # solvable from the margins (a bridge between two cycles of hidden cells); the null-space step fixes it.
    vals = np.array([[29, 27, 4, 49, 50, 39], [44, 57, 40, 1, 9, 35], [4, 37, 4, 51, 56, 13], [4, 27, 1, 55, 56, 7]])
    rows = []
    for i in range(5):
        for j in range(7):
            v = vals[i, j] if i < 4 and j < 6 else (vals[i].sum() if i < 4 else (vals[:, j].sum() if j < 6 else vals.sum()))
            rows.append({"r": f"r{i}" if i < 4 else "T", "c": f"c{j}" if j < 6 else "T", "persons": int(v)})
    df = pd.DataFrame(rows)
    gt = {"r": "T", "c": "T"}
    res = disclosure.suppress(df, group_totals=gt)
    assert not disclosure.determined_cells(df, res.mask, keys=["r", "c"], group_totals=gt).any()
    with monkeypatch.context() as m:
        m.setattr(disclosure, "_determined", lambda matrix, hidden: np.array([], dtype=int))
        degree_only = disclosure.suppress(df, group_totals=gt).mask
    solvable = disclosure.determined_cells(df, degree_only, keys=["r", "c"], group_totals=gt)
    assert df.loc[solvable, ["r", "c"]].values.tolist() == [["r0", "c2"]]
    assert res.mask.sum() == degree_only.sum() + 2


def test_unprotectable_cell_raises():
    df = pd.DataFrame({"variable": ["sex"], "group": ["F"], "persons": [3]})
    with pytest.raises(ValueError, match="cannot protect"):
        disclosure.suppress(df, group_totals={"group": None})


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="no|count column"):
        disclosure.suppress(pd.DataFrame({"region": ["a"], "rate": [1.0]}))
    with pytest.raises(ValueError, match="not unique"):
        disclosure.suppress(pd.DataFrame({"region": ["a", "a"], "persons": [10, 20]}))
    with pytest.raises(ValueError, match="missing"):
        disclosure.suppress(pd.DataFrame({"region": ["a", "b"], "persons": [10, None]}))
    with pytest.raises(ValueError, match="no row has"):
        disclosure.suppress(region_table([10] * 5), group_totals={"region": "Hele landet"})
    with pytest.raises(KeyError, match="not a key"):
        disclosure.suppress(region_table([10] * 5), group_totals={"sex": "Total"})


# ------------------------------------------------------------------------------------------------
# check_table
# ------------------------------------------------------------------------------------------------
def test_check_table():
    df = region_table([3, 40, 25, 60, 18])
    v = disclosure.check_table(df)
    assert v[["row", "column", "rule"]].values.tolist() == [[0, "persons", "small_cell"]]
    assert v["value"].tolist() == [3]
    hidden = df.astype({"persons": float, "events": float})
    hidden.loc[0, ["persons", "events"]] = np.nan
    v2 = disclosure.check_table(hidden, group_totals={"region": "Landsplan"}, keys=["region", "year"])
    assert set(v2["rule"]) == {"recoverable"} and set(v2["row"]) == {0}
    ok = disclosure.suppress(df, group_totals={"region": "Landsplan"}).table
    assert disclosure.check_table(ok, group_totals={"region": "Landsplan"}, keys=["region", "year"]).empty


def test_is_count_column():
    for name in ("persons", "events", "exams", "n", "Antal personer", "Number of persons, 2021-2023",
                 "antal undersøgelser 2014", "observed"):
        assert disclosure.is_count_column(name), name
    for name in ("population", "rate", "2014", "Antal personer med MR, 2014-2023", "Region", None):
        assert not disclosure.is_count_column(name), name


# ------------------------------------------------------------------------------------------------
# check_directory and the CLI
# ------------------------------------------------------------------------------------------------
def test_check_directory_lists_violations(tmp_path):
    region_table([3, 40, 25, 60, 18]).to_csv(tmp_path / "table1_mr_annual.csv", index=False)
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "danish.csv").write_text("gruppe;personer;population\nA;1.234;2\nB;4;3\n", encoding="utf-8")
    v = disclosure.check_directory(tmp_path)
    assert list(v.columns) == ["file", "row", "column", "value", "rule"]
    got = v[["file", "row", "column", "value", "rule"]].values.tolist()
    assert ["table1_mr_annual.csv", 2, "persons", 3.0, "small_cell"] in got
    assert ["sub/danish.csv", 3, "personer", 4.0, "small_cell"] in got
    assert len(v) == 2  # 1.234 is a Danish thousand; small populations are denominators, not counts
    assert disclosure.check_directory(tmp_path, min_cell=3).empty  # 3 and 4 persons pass a threshold of 3


def test_check_directory_clean_folder_is_empty(tmp_path):
    assert disclosure.check_directory(tmp_path).empty  # empty folder
    df = region_table([3, 40, 25, 60, 18])
    res = disclosure.suppress(df, group_totals={"region": "Landsplan"})
    res.marked().to_csv(tmp_path / "clean.csv", index=False)  # suppressed cells carry the marker
    (tmp_path / "notes.txt").write_text("persons\n1\n", encoding="utf-8")  # not a table format
    v = disclosure.check_directory(tmp_path)
    assert v.empty, v


def test_check_directory_reads_all_table_formats(tmp_path):
    df = pd.DataFrame({"sex": ["F", "M"], "persons": [120, 2], "rate": [4.0, 1.2]})
    tables.export(df, tmp_path / "unsafe", tables.TableSpec(title="t"), disclosure=False)
    v = disclosure.check_directory(tmp_path)
    assert sorted(v["file"]) == ["unsafe.docx", "unsafe.html", "unsafe.tex", "unsafe.xlsx#Tabel"]
    assert set(v["column"]) == {"Antal personer"} and set(v["value"]) == {2.0}
    tables.export(df, tmp_path / "unsafe", tables.TableSpec(title="t"))  # overwrite, now suppressed
    assert disclosure.check_directory(tmp_path).empty


def test_check_directory_xlsx_and_total_row(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Region", "Antal personer"])
    for name, n in [("Nordjylland", "–"), ("Midtjylland", 40), ("Syddanmark", 25), ("Landsplan", 68)]:
        ws.append([name, n])
    wb.save(tmp_path / "wide.xlsx")
    v = disclosure.check_directory(tmp_path)
    assert v[["file", "row", "rule"]].values.tolist() == [["wide.xlsx#Sheet", 2, "recoverable_from_total"]]


def test_check_directory_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        disclosure.check_directory(tmp_path / "nope")


def test_cli_check_disclosure(tmp_path):
    runner = CliRunner()
    bad, good = tmp_path / "bad", tmp_path / "good"
    bad.mkdir()
    good.mkdir()
    region_table([3, 40, 25, 60, 18]).to_csv(bad / "t.csv", index=False)
    r = runner.invoke(app, ["check-disclosure", str(bad)])
    assert r.exit_code == 1 and "small_cell" in r.output
    r = runner.invoke(app, ["check-disclosure", str(good)])
    assert r.exit_code == 0 and "no disclosure violations" in r.output


# ------------------------------------------------------------------------------------------------
# issue 12: unpublished residual cells, independent blocks, one marker, scanned notebooks
# ------------------------------------------------------------------------------------------------
def test_unpublished_small_residual_is_protected_and_dropped():
    # groups A, B published, residual U (2 persons) not published; the three add up to a known total
    df = pd.DataFrame({"group": ["A", "B", "U"], "persons": [40, 30, 2], "events": [40, 30, 2]})
    res = disclosure.suppress(df, keys=["group"], group_totals={"group": None}, unpublished=[False, False, True])
    assert res.mask.tolist() == [False, True, True]  # B hides U: A + B + U is known
    out = disclosure.protect(df, keys=["group"], group_totals={"group": None}, unpublished=[False, False, True])
    assert list(out["group"]) == ["A", "B"] and out.loc[1, "persons"] == disclosure.SUPPRESSED_MARKER


def test_unpublished_large_residual_needs_no_protection():
    df = pd.DataFrame({"group": ["A", "B", "U"], "persons": [40, 30, 20]})
    res = disclosure.suppress(df, keys=["group"], group_totals={"group": None}, unpublished=[False, False, True])
    assert res.mask.tolist() == [False, False, True]


def test_determined_cells_in_independent_blocks():
    # two unrelated tables of regions adding up to a total, stacked: each block is solved alone
    df = pd.DataFrame({"table": ["a"] * 3 + ["b"] * 3, "region": ["X", "Y", "T"] * 2,
                       "persons": [2, 30, 32, 10, 12, 22]})
    res = disclosure.suppress(df, keys=["table", "region"], group_totals={"region": "T"})
    assert res.mask.tolist() == [True, True, False, False, False, False]
    hidden = np.array([True, False, False, True, True, False])
    det = disclosure.determined_cells(df, hidden, keys=["table", "region"], group_totals={"region": "T"})
    assert det.tolist() == [True, False, False, False, False, False]


def test_protect_drops_the_primary_flag_column():
    df = pd.DataFrame({"region": ["X", "Y"], "persons": [3, 30], "suppress": [True, False]})
    out = disclosure.protect(df)
    assert "suppress" not in out.columns and out.loc[0, "persons"] == disclosure.SUPPRESSED_MARKER


def test_check_directory_reads_printed_tables_in_notebooks(tmp_path):
    import json

    table = pd.DataFrame({"region": ["Nordjylland", "Sjælland"], "Antal patienter": [40, 3]})
    nb = {"cells": [{"cell_type": "code", "source": "x", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": table.to_string()}]}]}
    (tmp_path / "x.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    v = disclosure.check_directory(tmp_path)
    assert list(v["value"]) == [3.0] and list(v["column"]) == ["Antal patienter"]
