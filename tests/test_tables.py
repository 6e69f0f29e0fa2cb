"""Tests of lumbarstats.tables: publication tables in docx/xlsx/html/tex, Danish formatting, templates.

Input data are the report's published figures (lumbarstats/reference/, copied from the Benchmarking
Unit report of May 2024 and its reprint by the Danish Health Authority) with made-up counts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import docx
import numpy as np
import openpyxl
import pandas as pd
import pytest

import lumbarstats
from lumbarstats import disclosure, tables

REF = Path(lumbarstats.__file__).parent / "reference"
REGIONS = ["Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland", "Landsplan"]
YEARS = list(range(2014, 2024))
# adults per region (made up, about the right size); Landsplan is their sum
POP = {"Nordjylland": 480_000, "Midtjylland": 1_070_000, "Syddanmark": 980_000, "Hovedstaden": 1_480_000,
       "Sjælland": 670_000}


@pytest.fixture(scope="module")
def published_table1() -> pd.DataFrame:
    return pd.read_csv(REF / "table1_mr_annual_standardized.csv").set_index("region")


@pytest.fixture(scope="module")
def table1_long(published_table1) -> pd.DataFrame:
    """Published table 1 (region x year) in the pipeline's long format, with made-up counts."""
    long = published_table1.reset_index().melt(id_vars="region", var_name="year", value_name="rate")
    long["year"] = long["year"].astype(int)
    long["population"] = long["region"].map(POP)
    long.loc[long["region"] == "Landsplan", "population"] = sum(POP.values())
    long["events"] = (long["rate"] * long["population"] / 1000).round().astype(int)
    long["persons"] = (long["events"] * 0.85).round().astype(int)
    long["lower"], long["upper"] = long["rate"] - 0.4, long["rate"] + 0.4
    return long[["region", "year", "events", "persons", "population", "rate", "lower", "upper"]]


@pytest.fixture(scope="module")
def provenance() -> tables.Provenance:
    return tables.Provenance(data_source="data/synthetic", data_hash="0123456789ab", period="2014-2023",
                             standard="voksne 18+, 2014-2023", method="gamma (Fay & Feuer 1997)",
                             parameters={"modality": "MR", "payer": "public"}, created="2024-05-01")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, table1_long, provenance):
    out = tmp_path_factory.mktemp("tables")
    paths = tables.export_report_table("table1", table1_long, out, provenance=provenance)
    return {p.suffix[1:]: p for p in paths}


TITLE_DA = "Tabel 1. Køns- og aldersstandardiseret antal MR-scanninger af lænderyggen pr. 1.000 voksne, 2014-2023"
NOTE_DA = "Anm.: Der er tale om offentligt finansieret billeddiagnostiske udredninger af lænderyggen."
SOURCE_DA = "Kilde: Danmarks Statistik, Landspatientsregisteret og egne beregninger."


# ------------------------------------------------------------------------------------------------
# number formatting
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("x", "decimals", "lang", "expected"), [
    (14.7, 1, "da", "14,7"), (14.7, 1, "en", "14.7"),
    (408_300, 0, "da", "408.300"), (408_300, 0, "en", "408,300"),
    (4_748_990, 0, "da", "4.748.990"), (1234.56, 1, "da", "1.234,6"), (1234.56, 1, "en", "1,234.6"),
    (14.65, 1, "da", "14,7"), (0.125, 2, "en", "0.13"), (-7, 0, "da", "-7"), (-0.04, 1, "da", "0,0"),
    (16, 1, "da", "16,0"), (float("nan"), 1, "da", ""), (None, 1, "da", ""),
])
def test_format_number(x, decimals, lang, expected):
    assert tables.format_number(x, decimals, lang) == expected


def test_format_percent():
    # Tabel 5.1 of the report: "39 pct." and "-7 pct."; Tabel 4.1: "8,1 pct."
    assert tables.format_percent(39) == "39 pct."
    assert tables.format_percent(-7) == "-7 pct."
    assert tables.format_percent(8.1, 1) == "8,1 pct."
    assert tables.format_percent(8.1, 1, "en") == "8.1%"


def test_format_number_rejects_bad_input():
    with pytest.raises(ValueError, match="lang"):
        tables.format_number(1.0, 1, "de")
    with pytest.raises(ValueError, match="decimals"):
        tables.format_number(1.0, -1)
    with pytest.raises(ValueError, match="cannot format"):
        tables.format_number("abc")


# ------------------------------------------------------------------------------------------------
# table 1 in four formats
# ------------------------------------------------------------------------------------------------
def _expected_cell(published, region, year, lang="da"):
    return tables.format_number(published.loc[region, str(year)], 1, lang)


def test_table1_docx(exported, published_table1, provenance):
    doc = docx.Document(str(exported["docx"]))
    paragraphs = [p.text for p in doc.paragraphs]
    assert paragraphs[0] == TITLE_DA
    assert len(doc.tables) == 1
    t = doc.tables[0]
    assert len(t.rows) == 1 + 6 and len(t.columns) == 1 + 10
    header = [c.text for c in t.rows[0].cells]
    assert header == ["Region", *[str(y) for y in YEARS]]
    for row in t.rows[1:]:
        cells = [c.text for c in row.cells]
        region = cells[0]
        assert region in REGIONS
        for year, text in zip(YEARS, cells[1:], strict=True):
            assert text == _expected_cell(published_table1, region, year)
    assert [r.cells[0].text for r in t.rows[1:]] == REGIONS
    # published values, Danish formatting: Landsplan 2014 14,7 and 2023 14,1; Nordjylland 2023 14,7
    assert t.rows[6].cells[1].text == "14,7" and t.rows[6].cells[10].text == "14,1"
    assert t.rows[1].cells[10].text == "14,7"
    assert NOTE_DA in paragraphs and SOURCE_DA in paragraphs
    footer = paragraphs[-1]
    assert footer.startswith("Dokumentation: lumbarstats " + lumbarstats.__version__)
    for part in ("SHA-256 0123456789ab", "Periode: 2014-2023", "Standardpopulation: voksne 18+",
                 "Metode: gamma", "modality=MR", "payer=public", "Dato: 2024-05-01", "Data: data/synthetic"):
        assert part in footer


def test_table1_xlsx(exported, published_table1):
    wb = openpyxl.load_workbook(exported["xlsx"])
    ws = wb.active
    assert ws.title == "Tabel 1"
    assert ws["A1"].value == TITLE_DA
    rows = list(ws.iter_rows(values_only=True))
    h = next(i for i, r in enumerate(rows) if r[0] == "Region")
    assert list(rows[h]) == ["Region", *[str(y) for y in YEARS]]
    body = rows[h + 1:h + 7]
    assert [r[0] for r in body] == REGIONS
    for r in body:
        for year, v in zip(YEARS, r[1:], strict=True):
            assert v == pytest.approx(published_table1.loc[r[0], str(year)])
    # numbers stay numbers; one decimal; shown with Danish marks (14,7), also where Excel's locale is not Danish
    cell = ws.cell(h + 2, 2)
    assert isinstance(cell.value, float) and cell.number_format == "[$-406]#,##0.0"
    texts = [r[0] for r in rows[h + 7:] if r[0]]
    assert NOTE_DA in texts and SOURCE_DA in texts
    assert any(t.startswith("Dokumentation: lumbarstats") and "SHA-256 0123456789ab" in t for t in texts)


def test_table1_html(exported, published_table1):
    text = exported["html"].read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in text and '<html lang="da">' in text
    assert "Tabel 1. Køns- og aldersstandardiseret" in text
    assert NOTE_DA in text and SOURCE_DA in text and "Dokumentation: lumbarstats" in text
    grid = disclosure._grids_html(exported["html"])[0]
    rows = [r for r in grid if r and r[0] in REGIONS]
    assert [r[0] for r in rows] == REGIONS
    assert all(len(r) == 11 for r in rows)
    assert rows[0][1:] == [_expected_cell(published_table1, "Nordjylland", y) for y in YEARS]
    assert rows[-1][1] == "14,7"


def test_table1_tex(exported, published_table1):
    text = exported["tex"].read_text(encoding="utf-8")
    assert "\\begin{tabular" in text and "\\toprule" in text
    assert "Tabel 1. Køns- og aldersstandardiseret" in text
    assert NOTE_DA in text and SOURCE_DA in text and "Dokumentation: lumbarstats" in text
    landsplan = next(line for line in text.splitlines() if line.startswith("Landsplan &"))
    cells = [c.strip(" \\") for c in landsplan.split("&")]
    assert cells[1:] == [_expected_cell(published_table1, "Landsplan", y) for y in YEARS]
    assert "Region & 2014 & 2015" in text


def test_table1_english(tmp_path, table1_long, published_table1, provenance):
    paths = tables.export_report_table("table1", table1_long, tmp_path, formats=["docx", "html"], lang="en",
                                       provenance=provenance)
    assert [p.name for p in paths] == ["table1_en.docx", "table1_en.html"]
    doc = docx.Document(str(paths[0]))
    paras = [p.text for p in doc.paragraphs]
    assert paras[0].startswith("Table 1. Sex- and age-standardized number of MRI")
    assert any(p.startswith("Note: ") for p in paras) and any(p.startswith("Source: Statistics Denmark") for p in paras)
    assert paras[-1].startswith("Provenance: lumbarstats")
    t = doc.tables[0]
    assert t.rows[6].cells[0].text == "Denmark" and t.rows[1].cells[0].text == "North Denmark Region"
    assert t.rows[6].cells[1].text == "14.7"


def test_exported_table1_passes_disclosure_check(exported):
    folder = exported["docx"].parent
    assert disclosure.check_directory(folder).empty


def test_small_cell_is_suppressed_in_every_format(tmp_path, table1_long):
    df = table1_long.copy()
    small = (df["region"] == "Nordjylland") & (df["year"] == 2014)
    df.loc[small, "persons"] = 3
    paths = {p.suffix[1:]: p for p in tables.export_report_table("table1", df, tmp_path)}
    t = docx.Document(str(paths["docx"])).tables[0]
    row = [c.text for c in t.rows[1].cells]
    assert row[1] == disclosure.SUPPRESSED_MARKER  # the small cell
    # 2014 column: regions add up to Landsplan, so a second region is hidden (the smallest: Nordjylland
    # is gone, next smallest persons in 2014 is Sjælland by the made-up populations)
    col_2014 = [r.cells[1].text for r in t.rows[1:]]
    assert col_2014.count(disclosure.SUPPRESSED_MARKER) == 2
    assert t.rows[5].cells[1].text == disclosure.SUPPRESSED_MARKER
    for fmt in ("html", "tex"):
        assert "Celler med færre end 5 personer er udeladt" in paths[fmt].read_text(encoding="utf-8")
    ws = openpyxl.load_workbook(paths["xlsx"]).active
    values = [c.value for c in ws["B"]]
    assert disclosure.SUPPRESSED_MARKER in values
    assert disclosure.check_directory(tmp_path).empty


# ------------------------------------------------------------------------------------------------
# generic export
# ------------------------------------------------------------------------------------------------
def test_export_generic_table_with_labels_and_counts(tmp_path):
    df = pd.DataFrame({"sex": ["F", "M"], "persons": [408_300, 4], "events": [512_000, 6],
                       "rate": [17.66, 12.04]})
    spec = tables.TableSpec(title="MR efter køn", label="Tabel A", note="Testtabel.",
                            source="Danmarks Statistik og egne beregninger")
    paths = tables.export(df, tmp_path / "sex.docx", spec, formats=("docx", "xlsx"))
    assert [p.name for p in paths] == ["sex.docx", "sex.xlsx"]
    t = docx.Document(str(paths[0])).tables[0]
    assert [c.text for c in t.rows[0].cells] == ["Køn", "Antal personer", "Antal undersøgelser", "Pr. 1.000 voksne"]
    assert [c.text for c in t.rows[1].cells] == ["Kvinde", "408.300", "512.000", "17,7"]
    assert [c.text for c in t.rows[2].cells] == ["Mand", "–", "–", "–"]
    paras = [p.text for p in docx.Document(str(paths[0])).paragraphs]
    assert paras[0] == "Tabel A. MR efter køn"
    assert "Kilde: Danmarks Statistik og egne beregninger" in paras
    assert any(p.startswith("Anm.: Testtabel. Celler med færre end 5 personer") for p in paras)


def test_export_requires_counts_unless_disclosure_off(tmp_path, published_table1):
    rates = published_table1.reset_index()
    with pytest.raises(ValueError, match="no count column"):
        tables.export(rates, tmp_path / "t", formats="html")
    assert not list(tmp_path.iterdir())
    paths = tables.export(rates, tmp_path / "t", formats="html", disclosure=False)
    assert "14,7" in paths[0].read_text(encoding="utf-8")


def test_export_rejects_low_threshold_and_unknown_format(tmp_path, table1_long):
    with pytest.raises(ValueError, match="minimum of 3"):
        tables.export_report_table("table1", table1_long, tmp_path, min_cell=2)
    with pytest.raises(ValueError, match="unknown table format"):
        tables.export_report_table("table1", table1_long, tmp_path, formats=["pdf"])
    with pytest.raises(KeyError, match="unknown table template"):
        tables.export_report_table("table99", table1_long, tmp_path)


def test_render_returns_great_table(table1_long):
    import great_tables as gt

    g = tables.from_template("table1", table1_long)
    assert isinstance(g, gt.GT)
    assert "14,7" in g.as_raw_html()
    g2 = tables.render(table1_long[table1_long["year"] == 2023], tables.TableSpec(title="x"))
    assert isinstance(g2, gt.GT)


# ------------------------------------------------------------------------------------------------
# atomic writes
# ------------------------------------------------------------------------------------------------
def test_failure_while_rendering_writes_nothing(tmp_path, table1_long, monkeypatch):
    def boom(model):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(tables, "_xlsx_bytes", boom)
    with pytest.raises(RuntimeError, match="renderer failed"):
        tables.export_report_table("table1", table1_long, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failure_while_writing_keeps_old_file(tmp_path, table1_long, monkeypatch):
    target = tmp_path / "table1.html"
    target.write_text("old", encoding="utf-8")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        tables.export_report_table("table1", table1_long, tmp_path, formats=["html"])
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table1.html"]  # no temporary file left


# ------------------------------------------------------------------------------------------------
# provenance
# ------------------------------------------------------------------------------------------------
def test_data_hash(tmp_path):
    a = tmp_path / "a.csv"
    a.write_bytes(b"x,y\n1,2\n")
    h1 = tables.data_hash(a)
    assert len(h1) == 12 and h1 == tables.data_hash(a)
    assert h1 == hashlib.sha256(b"a.csv\x00x,y\n1,2\n").hexdigest()[:12]
    a.write_bytes(b"x,y\n1,3\n")
    assert tables.data_hash(a) != h1
    assert tables.data_hash(tmp_path) == tables.data_hash(tmp_path)  # folders: sorted, stable
    assert tables.data_hash("run 2024-05-01") == hashlib.sha256(b"run 2024-05-01\x00").hexdigest()[:12]
    with pytest.raises(FileNotFoundError):
        tables.data_hash(tmp_path / "missing.parquet")
    p = tables.Provenance.from_source(a, period="2014-2023")
    assert p.data_hash == tables.data_hash(a) and p.version == lumbarstats.__version__
    assert "Periode: 2014-2023" in p.text("da") and "Period: 2014-2023" in p.text("en")


# ------------------------------------------------------------------------------------------------
# labels and templates
# ------------------------------------------------------------------------------------------------
def test_labels_from_dictionary():
    assert tables.column_label("education") == "Uddannelsesniveau"
    assert tables.column_label("education", "en") == "Education"
    assert tables.column_label("age_band") == "Aldersgruppe"
    assert tables.code_labels("sex")["F"] == "Kvinde"
    assert tables.code_labels("sex", "en")["Kvinde"] == "Woman"
    assert tables.code_labels("industry", column="report_label_da")["09"] == "Hotel og restauration"
    assert tables.code_labels("region")[1081] == "Nordjylland"
    assert tables.code_labels("region", "en")["Landsplan"] == "Denmark"


def test_all_templates_load():
    names = tables.list_templates()
    assert names == ["table1", "table2", "table4_1", "table5_1", "table5_2", "table5_3", "table5_4"]
    for name in names:
        tpl = tables.load_template(name)
        assert tpl["title"]["da"] and tpl["title"]["en"] and tpl["source"]["da"].startswith("Danmarks Statistik")
        assert tpl["disclosure"]["count_columns"]


def _grid(path):
    return [[c.text for c in r.cells] for r in docx.Document(str(path)).tables[0].rows]


def test_table5_3_and_5_4_from_published_groups(tmp_path):
    ref = pd.read_csv(REF / "table5_3_5_4_groups_by_region.csv").rename(columns={"rate_per_1000": "rate"})
    ref["persons"] = 500 + np.arange(len(ref))
    ref["events"] = ref["persons"] + 100
    p3, x3, h3, t3 = tables.export_report_table("table5_3", ref, tmp_path)
    ws = openpyxl.load_workbook(x3).active
    assert ("Aldersgruppe" in [c.value for c in ws["A"]]) and ws.merged_cells.ranges  # section headings
    assert "Uddannelsesbaggrund" in h3.read_text(encoding="utf-8") and "Uddannelsesbaggrund" in t3.read_text(encoding="utf-8")
    g = _grid(p3)
    assert g[0] == ["Region", "Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland"]
    assert g[1][0] == "Aldersgruppe" and g[2] == ["Under 30 år", "5,8", "6,2", "4,9", "4,4", "7,2"]
    headings = [r[0] for r in g if len(set(r)) == 1]
    assert headings == ["Aldersgruppe", "Køn", "Uddannelsesbaggrund", "Beskæftigelsesstatus",
                        "Arbejdsmarkedsbranche", "Helbredstilstand (CCI)"]
    assert ["Høj sygelighed", "27,9", "38,6", "21,9", "24,7", "39,6"] in g  # Tabel 5.3, last row
    p4 = tables.export_report_table("table5_4", ref, tmp_path, formats=["docx"])[0]
    g4 = _grid(p4)
    assert ["FØP, seniorpension, fleksjob", "21,6", "16,8", "12,0", "15,2", "23,4"] in g4  # Tabel 5.4
    assert docx.Document(str(p4)).paragraphs[0].text.startswith("Tabel 5.4. Køns- og aldersstandardiseret antal røntgen")


def test_table5_1_change_row(tmp_path):
    ref = pd.read_csv(REF / "table5_1_5_2_period_standardized.csv").rename(
        columns={"rate_per_1000": "rate", "pct_change_2014_16_to_2021_23": "pct_change"})
    ref["persons"] = 1000
    mr = ref[ref["modality"] == "MR"].drop(columns="modality")
    g = _grid(tables.export_report_table("table5_1", mr, tmp_path, formats=["docx"])[0])
    assert g[0] == ["Region", "Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland"]
    assert g[-1] == ["Ændring i pct.", "39 pct.", "-7 pct.", "-32 pct.", "-5 pct.", "35 pct."]  # Tabel 5.1
    assert g[1] == ["Pr. 1.000 voksne, 2014-2016", "11,3", "18,3", "18,8", "13,3", "13,0"]
    # a hidden period hides the change derived from it
    mr2 = mr.copy()
    mr2.loc[(mr2["region"] == "Syddanmark") & (mr2["period"] == "2021-2023"), "persons"] = 2
    g2 = _grid(tables.export_report_table("table5_1", mr2, tmp_path, formats=["docx"], stem="t51b")[0])
    assert g2[-1][3] == "–" and g2[2][3] == "–"


def test_table4_1_profiles(tmp_path):
    ref = pd.read_csv(REF / "table4_1_top_profiles.csv").rename(columns={"share_of_use_pct": "share_pct"})
    ref["exams"], ref["persons"] = 900, 800
    g = _grid(tables.export_report_table("table4_1", ref, tmp_path, formats=["docx"])[0])
    assert g[0] == ["Patientprofil", "Køn", "Alder", "Beskæftigelse", "Uddannelse", "Helbred", "Andel af forbruget"]
    assert g[1][0] == "MR-scannede patienter"
    assert g[2] == ["Profil 1", "Kvinde", "35-65 år", "Beskæftiget el. under uddannelse",
                    "Grundskole, gymnasium el. erhvervsuddannelse", "Ingen sygelighed", "8,1 pct."]  # Tabel 4.1
    assert g[7][0] == "Røntgenundersøgte patienter" and g[8][-1] == "10,5 pct."
    en = _grid(tables.export_report_table("table4_1", ref, tmp_path, formats=["docx"], lang="en")[0])
    assert en[2][:3] == ["Profile 1", "Woman", "35-65"] and en[2][-1] == "8.1%"


def test_template_missing_columns_are_named(tmp_path):
    with pytest.raises(KeyError, match="needs columns"):
        tables.export_report_table("table1", pd.DataFrame({"region": ["Nordjylland"], "persons": [10]}), tmp_path)
