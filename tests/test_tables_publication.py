"""Publication tables that go straight into a Danish paper (issue 13): the change tables 5.1/5.2 show the
change their title names, Word/Excel page setup and column widths, LaTeX that compiles, provenance
taken from the result, counts as integers.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import docx
import openpyxl
import pandas as pd
import pytest

import lumbarstats
from lumbarstats import disclosure, tables

REGIONS = ["Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland", "Landsplan"]
PERIODS = ["2014-2016", "2017-2020", "2021-2023"]


def _grid(path):
    return [[c.text for c in r.cells] for r in docx.Document(str(path)).tables[0].rows]


def _periods_long(modality_rate: float = 12.0) -> pd.DataFrame:
    """Three periods per region as `rates.period_rates` writes them: the change on each later period's
    row, relative to the reference period 2014-2016 (2017-20: +10 %, 2021-23: +50 % .. +55 %)."""
    rows = []
    for i, region in enumerate(REGIONS):
        base = modality_rate + i
        for period, factor in zip(PERIODS, [1.0, 1.10, 1.50 + i / 100], strict=True):
            rate = base * factor
            pct = None if period == PERIODS[0] else (factor - 1) * 100
            rows.append({"region": region, "period": period, "events": 900 + i, "persons": 800 + i,
                         "population": 70_000, "rate": rate, "lower": rate - 1, "upper": rate + 1,
                         "pct_change": pct, "pct_lower": None if pct is None else pct - 5,
                         "pct_upper": None if pct is None else pct + 5, "reference_period": PERIODS[0],
                         "conf_level": 0.95, "method": "gamma"})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------
# tables 5.1 and 5.2: the change the title names
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["table5_1", "table5_2"])
def test_change_row_is_first_to_last_period_with_three_periods(tmp_path, name):
    long = _periods_long()
    g = _grid(tables.export_report_table(name, long, tmp_path, formats=["docx"])[0])
    title = tables.load_template(name)["title"]["da"]
    assert "2014-2016 til 2021-2023" in title
    assert g[1][0] == "Pr. 1.000 voksne, 2014-2016" and g[2][0] == "Pr. 1.000 voksne, 2021-2023"
    # 2014-16 -> 2021-23 is +50 % .. +55 %; the old code printed the 2014-16 -> 2017-20 change (+10 %)
    assert g[3] == ["Ændring i pct.", "50 pct.", "51 pct.", "52 pct.", "53 pct.", "54 pct.", "55 pct."]


def test_change_row_in_every_format(tmp_path):
    long = _periods_long()
    paths = {p.suffix[1:]: p for p in tables.export_report_table("table5_1", long, tmp_path)}
    ws = openpyxl.load_workbook(paths["xlsx"]).active
    change = next(r for r in ws.iter_rows(values_only=True) if r[0] == "Ændring i pct.")
    assert list(change[1:7]) == pytest.approx([50, 51, 52, 53, 54, 55])
    for fmt in ("html", "tex"):
        text = paths[fmt].read_text(encoding="utf-8")
        assert "50 pct." in text and "55 pct." in text and "10 pct." not in text


def test_ambiguous_measure_row_is_an_error(tmp_path):
    tpl = tables.load_template("table5_1")
    for row in tpl["layout"]["rows"]:
        row.pop("at", None)
    import yaml

    path = tmp_path / "t51.yaml"
    path.write_text(yaml.safe_dump(tpl, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=r"pct_change.*Nordjylland.*at:"):
        tables.export_report_table(path, _periods_long(), tmp_path, formats=["docx"])


# ------------------------------------------------------------------------------------------------
# the report's tables from long tables like the pipeline's (made-up values, realistic labels)
# ------------------------------------------------------------------------------------------------
REF = Path(lumbarstats.__file__).parent / "reference"


@pytest.fixture(scope="module")
def report_tables() -> dict[str, pd.DataFrame]:
    groups = pd.read_csv(REF / "table5_3_5_4_groups_by_region.csv").rename(columns={"rate_per_1000": "rate"})
    groups["persons"] = 500.0  # floats, as a CSV read back gives them
    groups["events"] = 600.0
    groups["method"] = ["exact" if v in ("age_group", "sex") else "gamma" for v in groups["variable"]]
    groups["conf_level"] = 0.95
    profiles = pd.read_csv(REF / "table4_1_top_profiles.csv").rename(columns={"share_of_use_pct": "share_pct"})
    profiles["exams"], profiles["persons"] = 900.0, 800.0
    profiles["count"], profiles["denominator"] = "exams", "profiled"
    years = pd.DataFrame([{"region": r, "year": y, "events": 700 + y - 2000, "persons": 600, "population": 50_000,
                           "rate": 14.65 + i, "lower": 13.0, "upper": 16.0, "conf_level": 0.95, "method": "gamma"}
                          for i, r in enumerate(REGIONS) for y in range(2014, 2024)])
    return {"table1": years, "table4_1": profiles, "table5_1": _periods_long(), "table5_3": groups}


@pytest.fixture(scope="module")
def written(tmp_path_factory, report_tables) -> dict[str, dict[str, Path]]:
    out = tmp_path_factory.mktemp("publication")
    prov = tables.Provenance(data_source={"da": "syntetisk register", "en": "synthetic register"},
                             data_hash="0123456789ab", created="2024-05-01")
    return {name: {p.suffix[1:]: p for p in tables.export_report_table(name, df, out, provenance=prov)}
            for name, df in report_tables.items()}


def _twips(el, tag):
    from docx.oxml.ns import qn

    return int(el.find(qn(tag)).get(qn("w:w")))


# ------------------------------------------------------------------------------------------------
# Word
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["table1", "table4_1", "table5_1", "table5_3"])
def test_docx_page_language_header_rows_and_widths(written, name):
    from docx.oxml.ns import qn

    doc = docx.Document(str(written[name]["docx"]))
    sec = doc.sections[0]
    assert sorted([round(sec.page_width.mm), round(sec.page_height.mm)]) == [210, 297]  # A4, not US Letter
    styles = doc.styles.element
    langs = {el.get(qn("w:val")) for el in styles.iter(qn("w:lang"))}
    assert langs == {"da-DK"}
    table = doc.tables[0]
    rows = table._tbl.tr_lst
    assert rows[0].trPr.find(qn("w:tblHeader")) is not None  # header repeated on every page
    assert all(tr.trPr is not None and tr.trPr.find(qn("w:cantSplit")) is not None for tr in rows)
    assert table._tbl.tblPr.find(qn("w:tblLayout")).get(qn("w:type")) == "fixed"
    usable = (sec.page_width - sec.left_margin - sec.right_margin) / 635  # EMU -> twips
    grid = [int(g.get(qn("w:w"))) for g in table._tbl.tblGrid.iter(qn("w:gridCol"))]
    assert sum(grid) <= usable + len(grid)
    # no word broken: every column is at least as wide as its longest word (bold in the header)
    size = 9.0
    for j in range(len(grid)):
        words = [(w, i == 0) for i, row in enumerate(table.rows) for w in row.cells[j].text.split()
                 if len({c._tc for c in row.cells}) > 1]  # group headings span the table
        need = max(tables._text_width_pt(w, size, bold) for w, bold in words) * 20
        assert grid[j] >= need, (name, j, grid[j], need)
    # numbers right-aligned, labels left
    body = table.rows[-1].cells
    assert body[-1].paragraphs[0].alignment == docx.enum.text.WD_ALIGN_PARAGRAPH.RIGHT
    assert body[0].paragraphs[0].alignment != docx.enum.text.WD_ALIGN_PARAGRAPH.RIGHT


def test_docx_label_column_is_widest_in_table_5_3(written):
    from docx.oxml.ns import qn

    table = docx.Document(str(written["table5_3"]["docx"])).tables[0]
    grid = [int(g.get(qn("w:w"))) for g in table._tbl.tblGrid.iter(qn("w:gridCol"))]
    assert grid[0] == max(grid) and grid[0] > 1.5 * min(grid[1:])


def test_docx_title_note_source_provenance(written):
    paras = [p.text for p in docx.Document(str(written["table4_1"]["docx"])).paragraphs]
    assert paras[0].startswith("Tabel 4.1. Hyppigste patientprofiler")
    assert paras[1].startswith("Anm.: ") and paras[2].startswith("Kilde: ")
    footer = paras[-1]
    # the numbers are shares of examinations 2021-23, not standardized rates 2014-2023
    assert "Periode: 2021-2023" in footer and "2014-2023" not in footer
    assert "Enhed: undersøgelser" in footer and "ustandardiseret" in footer
    assert "gamma" not in footer and "Standardpopulation" not in footer
    assert "Data: syntetisk register" in footer
    for english in ("direct", "standardization", "intervals", "synthetic", "Period:", "Method:"):
        assert english not in footer


def test_provenance_states_each_tables_own_method(written, report_tables):
    foot = {n: [p.text for p in docx.Document(str(written[n]["docx"])).paragraphs][-1] for n in written}
    assert "Periode: 2014-2023" in foot["table1"] and "gammametoden (Fay & Feuer 1997)" in foot["table1"]
    assert "Standardpopulation: den voksne befolkning" in foot["table1"]
    assert "Periode: 2014-2016 og 2021-2023" in foot["table5_1"]
    # table 5.3: crude rates for age and sex, standardized rates for the rest
    assert "eksakt Poisson-95 %-KI" in foot["table5_3"] and "direkte standardisering" in foot["table5_3"]
    assert "Periode: 2021-2023" in foot["table5_3"]
    en = tables.export_report_table("table4_1", report_tables["table4_1"], written["table1"]["docx"].parent,
                                    formats=["docx"], lang="en",
                                    provenance=tables.Provenance(data_source={"da": "syntetisk", "en": "synthetic"}))
    footer = docx.Document(str(en[0])).paragraphs[-1].text
    assert footer.startswith("Provenance: ") and "Period: 2021-2023" in footer and "Data: synthetic" in footer
    assert "Unit: examinations" in footer and "not standardized" in footer


def test_reference_template_is_swappable(tmp_path, report_tables):
    from docx.shared import Pt

    ref = tables.write_reference_docx(tmp_path / "reference.docx")
    doc = docx.Document(str(ref))
    assert set(tables.DOCX_STYLES.values()) <= {s.name for s in doc.styles}
    # a journal's style: Times New Roman 8 pt in the table body
    doc.styles[tables.DOCX_STYLES["body"]].font.name = "Times New Roman"
    doc.styles[tables.DOCX_STYLES["body"]].font.size = Pt(8)
    journal = tmp_path / "journal.docx"
    doc.save(str(journal))
    out = tables.export_report_table("table5_1", report_tables["table5_1"], tmp_path, formats=["docx"],
                                     template=journal)[0]
    result = docx.Document(str(out))
    assert result.styles[tables.DOCX_STYLES["body"]].font.name == "Times New Roman"
    assert result.tables[0].rows[1].cells[1].paragraphs[0].style.name == tables.DOCX_STYLES["body"]
    assert result.paragraphs[0].text.startswith("Tabel 5.1.")  # the template's example text is gone
    assert not any("Table Text (body)" in p.text for p in result.paragraphs)


def test_bad_template_is_one_clear_error(tmp_path, report_tables):
    bad = tmp_path / "notes.docx"
    bad.write_text("not a Word file", encoding="utf-8")
    with pytest.raises(ValueError, match=r"notes\.docx is not a \.docx"):
        tables.export_report_table("table5_1", report_tables["table5_1"], tmp_path, formats=["docx"], template=bad)
    with pytest.raises(FileNotFoundError, match="missing.docx"):
        tables.export_report_table("table5_1", report_tables["table5_1"], tmp_path, formats=["docx"],
                                   template=tmp_path / "missing.docx")
    assert not (tmp_path / "table5_1.docx").exists()


# ------------------------------------------------------------------------------------------------
# Excel
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["table1", "table4_1", "table5_1", "table5_3"])
def test_xlsx_print_setup_and_one_font(written, name):
    ws = openpyxl.load_workbook(written[name]["xlsx"]).active
    assert str(ws.page_setup.paperSize) == str(ws.PAPERSIZE_A4)
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert int(ws.page_setup.fitToWidth) == 1 and int(ws.page_setup.fitToHeight) == 0
    header_row = next(c.row for c in ws["A"] if c.value in ("Region", "Patientprofil"))
    assert ws.print_title_rows.replace("$", "") == f"{header_row}:{header_row}"
    fonts = {c.font.name for row in ws.iter_rows() for c in row if c.value is not None}
    assert fonts == {"Calibri"}  # the title too
    numbers = [c for row in ws.iter_rows(min_row=header_row + 1) for c in row if isinstance(c.value, (int, float))]
    assert numbers and all(c.number_format.startswith("[$-406]") for c in numbers)


def test_xlsx_label_column_is_widest(written):
    ws = openpyxl.load_workbook(written["table5_3"]["xlsx"]).active
    widths = [ws.column_dimensions[c].width for c in "ABCDEFG"]
    assert widths[0] == max(widths)


# ------------------------------------------------------------------------------------------------
# counts and rounding
# ------------------------------------------------------------------------------------------------
def test_counts_are_whole_numbers_and_values_rounded(tmp_path):
    df = pd.DataFrame({"region": ["Nordjylland", "Midtjylland"], "persons": [785.0, 1204.0],
                       "rate": [14.650000000000002, 8.813289]})
    paths = {p.suffix[1:]: p for p in tables.export(df, tmp_path / "t", formats=["docx", "xlsx", "tex", "html"])}
    grid = _grid(paths["docx"])
    assert grid[1][1:] == ["785", "14,7"] and grid[2][1:] == ["1.204", "8,8"]
    ws = openpyxl.load_workbook(paths["xlsx"]).active
    row = next(r for r in ws.iter_rows(values_only=True) if r[0] == "Nordjylland")
    assert row[1] == 785 and isinstance(row[1], int) and row[2] == 14.7
    for fmt in ("tex", "html"):
        text = paths[fmt].read_text(encoding="utf-8")
        assert "785" in text and "785.0" not in text and "785,0" not in text and "8,813" not in text


# ------------------------------------------------------------------------------------------------
# LaTeX
# ------------------------------------------------------------------------------------------------
def test_tex_structure(written):
    short = written["table5_1"]["tex"].read_text(encoding="utf-8")
    assert "\\begin{tabular}" in short and "\\toprule" in short and "longtable" not in short.split("\n", 1)[1]
    long = written["table5_3"]["tex"].read_text(encoding="utf-8")
    assert "\\begin{longtable}" in long and "\\endhead" in long and "(fortsat)" in long
    assert "Sjælland" in long and "\\&" in written["table1"]["tex"].read_text(encoding="utf-8")  # Fay \& Feuer


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_tex_compiles(written, tmp_path):
    for name, paths in written.items():
        doc = tmp_path / f"{name}_doc.tex"
        doc.write_text("\\documentclass[a4paper]{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage[T1]{fontenc}\n"
                       "\\usepackage{array,booktabs,longtable}\n\\usepackage[margin=2cm]{geometry}\n\\begin{document}\n"
                       f"\\input{{{paths['tex'].as_posix()}}}\n\\end{{document}}\n", encoding="utf-8")
        res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (name, res.stdout[-2000:])
        assert (tmp_path / f"{name}_doc.pdf").stat().st_size > 1000


def test_docx_is_a_valid_package(written):
    with zipfile.ZipFile(written["table5_3"]["docx"]) as z:
        assert z.testzip() is None and "word/document.xml" in z.namelist()


def test_run_wide_provenance_does_not_mislabel_table_4_1(tmp_path, report_tables):
    # what `reproduce` passed for every table before: one period, method and standard for the whole run
    run = tables.Provenance(data_source="data/synthetic", period="2014-2023",
                            standard="Danish adult population pooled 2014-2023, sex x age band (register)",
                            method="direct standardization, gamma intervals (Fay & Feuer 1997)")
    out = tables.export_report_table("table4_1", report_tables["table4_1"], tmp_path, formats=["docx"],
                                     provenance=run)[0]
    footer = docx.Document(str(out)).paragraphs[-1].text
    assert "Periode: 2021-2023" in footer and "2014-2023" not in footer
    assert "gamma" not in footer and "standardization" not in footer and "Standardpopulation" not in footer


def test_check_disclosure_reads_long_latex_tables(tmp_path):
    # a long table is written as a longtable; `check-disclosure` must see a small count in it
    rows = [{"region": "Nordjylland", "year": y, "persons": 2 if y == 2001 else 100, "rate": 10.0}
            for y in range(1990, 2024)]
    (path,) = tables.export(pd.DataFrame(rows), tmp_path / "t", tables.TableSpec(title="t"), formats=["tex"],
                            disclosure=False)
    assert "\\begin{longtable}" in path.read_text(encoding="utf-8")
    v = disclosure.check_directory(tmp_path)
    assert len(v) == 1 and v.iloc[0]["value"] == 2 and v.iloc[0]["column"] == "Antal personer"
