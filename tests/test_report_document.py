"""The whole report as one document (lumbarstats.report_document) on a hand-built output folder.

The folder holds small protected CSVs (from the report's published tables, counts well above the
threshold) and tiny PNGs under the contracted names, an executed notebook's parameters and a register
folder with a metadata.json: the document must put every product in the report's order with its number,
caption, Anm. and Kilde, generate the method section from the parameters, state the register's hash and
the toolkit's version, name a missing file, and refuse anything the disclosure layer would not pass.
"""

from __future__ import annotations

import io as stdio
import json
import re
import shutil
from pathlib import Path

import docx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import lumbarstats
from lumbarstats import disclosure, tables
from lumbarstats import io as lio
from lumbarstats import report_document as rd
from lumbarstats.register import Register

REF = Path(lumbarstats.__file__).parent / "reference"
REGIONS = ["Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland"]
SLUGS = ["nordjylland", "midtjylland", "syddanmark", "hovedstaden", "sjaelland"]
FIGURES = ["fig4_1_annual_counts", "fig4_2_national_standardized", "box4_1_a_payer_split",
           "box4_1_b_public_private_rates", "fig5_1_regions_mr", "fig5_2_regions_xray", "box5_1_c_syddanmark",
           "fig4_11_industry_mr", "fig4_12_industry_xray", "periods_mr", "periods_xray", "profiles_MR",
           "profiles_XRAY"] + [f"groups_Landsplan_{m}_{v}" for m in ("MR", "XRAY")
                               for v in ("age_group", "sex", "education", "employment", "industry", "cci")]


def _png(color) -> bytes:
    buf = stdio.BytesIO()
    Image.new("RGB", (300, 180), color).save(buf, format="PNG")
    return buf.getvalue()


def _csv(df: pd.DataFrame, path: Path) -> None:
    lio.write_csv(df, path)


def _annual(modality: str, method: str, conf: float) -> pd.DataFrame:
    pub = pd.read_csv(REF / ("table1_mr_annual_standardized.csv" if modality == "MR" else
                             "table2_xray_annual_standardized.csv"))
    long = pub.melt(id_vars="region", var_name="year", value_name="rate")
    long["year"] = long["year"].astype(int)
    long.insert(0, "modality", modality)
    long["events"], long["persons"], long["population"] = 700, 650, 50_000
    long["lower"], long["upper"] = long["rate"] - 0.4, long["rate"] + 0.4
    long["conf_level"], long["method"] = conf, method
    return long


def _periods(modality: str) -> pd.DataFrame:
    ref = pd.read_csv(REF / "table5_1_5_2_period_standardized.csv")
    ref = ref[ref["modality"] == modality].rename(columns={"rate_per_1000": "rate",
                                                           "pct_change_2014_16_to_2021_23": "pct_change"})
    ref["pct_change"] = ref["pct_change"].where(ref["period"] == "2021-2023")
    ref["reference_period"] = "2014-2016"
    ref["events"], ref["persons"] = 900, 800
    return ref


def _groups(modality: str) -> pd.DataFrame:
    g = pd.read_csv(REF / "table5_3_5_4_groups_by_region.csv").rename(columns={"rate_per_1000": "rate"})
    g = g[g["modality"] == modality].copy()
    g["events"], g["persons"] = 600, 500
    g["method"] = ["exact" if v in ("age_group", "sex") else "gamma" for v in g["variable"]]
    g["conf_level"] = 0.95
    return g


def _profiles() -> pd.DataFrame:
    p = pd.read_csv(REF / "table4_1_top_profiles.csv").rename(columns={"share_of_use_pct": "share_pct"})
    p["region"] = "Landsplan"
    p["exams"], p["persons"], p["count"], p["denominator"] = 900, 800, "exams", "profiled"
    return p


def _bilag1(region: str) -> dict[str, pd.DataFrame]:
    """Bilag 1's three tables of one region, with the columns lumbarstats.products writes."""
    code = 1081 + REGIONS.index(region)
    label = {"MR": "MR", "XRAY": "Røntgen"}
    annual = pd.DataFrame([{"region": region, "region_code": code, "year": y, "modality": m,
                            "modality_label": label[m], "examinations": 400 + y - 2014, "persons": 380,
                            "population": 40_000, "crude_rate": 10.1, "crude_lower": 9.2, "crude_upper": 11.0,
                            "rate": 10.0 + (y - 2014) / 10, "lower": 9.0, "upper": 11.0}
                           for m in ("MR", "XRAY") for y in range(2014, 2024)])
    groups = pd.DataFrame([{"region": region, "region_code": code, "modality": m, "modality_label": label[m],
                            "variable": "sex", "group_code": s[0], "group": s, "period": "2021-2023",
                            "examinations": 300, "persons": 280, "population": 20_000, "crude_rate": 15.0,
                            "rate": 15.0, "lower": 14.0, "upper": 16.0, "standardized": "no"}
                           for m in ("MR", "XRAY") for s in ("Kvinde", "Mand")])
    payer = pd.DataFrame([{"region": region, "region_code": code, "year": "2021-2023", "modality": m,
                           "modality_label": label[m], "payer": p, "payer_label": pl, "examinations": 100 + 10 * i,
                           "share_pct": 33.3, "share_within_modality_pct": 33.3, "rate": 1.5, "lower": 1.2,
                           "upper": 1.8}
                          for m in ("MR", "XRAY")
                          for i, (p, pl) in enumerate((("public", "Offentlig"), ("private", "Privat"),
                                                       ("other", "Anden")))])
    return {"annual": annual, "groups": groups, "payer": payer}


def _comparison() -> pd.DataFrame:
    rows = []
    for r in REGIONS + ["Landsplan"]:
        for y in (2014, 2023):
            rows.append({"figure_group": "table1", "quantity": f"MR pr. 1.000 voksne {y}", "region": r,
                         "modality": "MR", "published": 14.7, "reproduced": 14.9, "difference": 0.2,
                         "within_interval": True})
    rows.append({"figure_group": "national_figures", "quantity": "MR-scanninger 2021-2023", "region": None,
                 "modality": "MR", "published": 208500, "reproduced": 206093, "difference": -2407,
                 "within_interval": None})
    return pd.DataFrame(rows)


def build_output(root: Path, *, min_cell: int = 7, standard: str = "esp2013", method: str = "tiwari",
                 conf: float = 0.90) -> tuple[Path, Path]:
    """A register folder (metadata + two tiny tables) and an output folder with every contracted product."""
    reg, out = root / "register", root / "output"
    lio.write_parquet(pd.DataFrame({"person_id": np.arange(3, dtype="int64"), "year": np.int16(2020)}),
                      reg / "population.parquet")
    lio.write_parquet(pd.DataFrame({"person_id": np.arange(2, dtype="int64"), "modality": ["MR", "XRAY"]}),
                      reg / "examinations.parquet")
    lio.write_json({"generator": "lumbarstats.synth", "version": lumbarstats.__version__, "seed": 7,
                    "scale": 0.01, "persons": 57_000}, reg / "metadata.json")
    lio.write_marker(out, "output")
    t = out / "tables"
    _csv(_annual("MR", method, conf), t / "table1_mr_annual.csv")
    _csv(_annual("XRAY", method, conf), t / "table2_xray_annual.csv")
    _csv(_periods("MR"), t / "table5_1_mr_periods.csv")
    _csv(_periods("XRAY"), t / "table5_2_xray_periods.csv")
    _csv(_groups("MR"), t / "table5_3_mr_groups.csv")
    _csv(_groups("XRAY"), t / "table5_4_xray_groups.csv")
    _csv(_profiles(), t / "table4_1_profiles.csv")
    for region, slug in zip(REGIONS, SLUGS, strict=True):
        for kind, df in _bilag1(region).items():
            _csv(df, t / "bilag1" / f"bilag1_{slug}_{kind}.csv")
    _csv(_comparison(), out / "comparison.csv")
    for i, name in enumerate(FIGURES):
        lio.write_bytes(_png((40 + 7 * i, 90, 160)), out / "figures" / f"{name}.png")
    nb = {"cells": [], "metadata": {"papermill": {"parameters": {"modality": "MR", "standard": standard,
                                                                 "min_cell": min_cell}}},
          "nbformat": 4, "nbformat_minor": 5}
    lio.write_json(nb, out / "notebooks" / "01_annual_rates_mr.ipynb")
    lio.write_json({"started": "2026-01-01T00:00:00", "steps": [{"step": "annual", "label": "01", "status": "ok",
                                                                "seconds": 1.0}]},
                   out.with_name(out.name + ".logs") / "steps.json")
    return reg, out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_document")
    reg, out = build_output(root)
    paths = rd.write_report(out, reg)
    return {"reg": reg, "out": out, "paths": paths, "root": root}


def _paragraphs(path: Path) -> list[str]:
    return [p.text for p in docx.Document(str(path)).paragraphs]


def _body_items(path: Path) -> list[tuple[str, str, bool]]:
    """(kind, text, has_picture) for every paragraph and table of the document body, in order."""
    d = docx.Document(str(path))
    out = []
    for el in d.element.body.iterchildren():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "p":
            text = "".join(t.text or "" for t in el.iter() if t.tag.endswith("}t"))
            out.append(("p", text, any(x.tag.endswith("}drawing") for x in el.iter())))
        elif tag == "tbl":
            out.append(("tbl", "", False))
    return out


def _html(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _catalogue_figures(cat) -> list[dict]:
    out = []

    def walk(items):
        for it in items:
            if it.get("kind") == "figure":
                out.append(it)
            walk(it.get("items", []))

    for ch in cat["chapters"]:
        for sec in ch["sections"]:
            walk(sec["items"])
    return out


def test_writes_docx_and_html(built):
    assert [p.name for p in built["paths"]] == ["rapport.docx", "rapport.html"]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in built["paths"])


def test_chapter_order(built):
    d = docx.Document(str(built["out"] / "rapport.docx"))
    h1 = [p.text for p in d.paragraphs if p.style.name == "Heading 1"]
    assert [h.split(" ")[0] for h in h1] == ["Indhold", "3", "4", "5", "Bilag", "Appendiks"]
    assert h1[2].startswith("4 Billeddiagnostik af lænderyggen på landsplan")
    assert h1[4] == "Bilag 1 Regionsspecifikke nøgletal"
    h2 = [p.text.split(" ")[0] for p in d.paragraphs if p.style.name == "Heading 2"]
    assert h2[:7] == ["4.1", "4.2", "4.3", "5.1", "5.2", "5.3", "5.4"]
    html = _html(built["out"] / "rapport.html")
    h1_html = re.findall(r"<h1[^>]*>([^<]*)</h1>", html)
    assert [h.split(" ")[0] for h in h1_html] == ["3", "4", "5", "Bilag", "Appendiks"]


def test_every_figure_numbered_captioned_in_place_with_anm_and_kilde(built):
    items = _body_items(built["out"] / "rapport.docx")
    texts = [t for _, t, _ in items]
    figures = _catalogue_figures(rd.load_catalogue())
    positions = []
    for fig in figures:
        words = {"number": fig["number"]["da"], "caption": fig["caption"]["da"], "anm": fig.get("anm", {}).get("da"),
                 "kilde": fig.get("kilde", {}).get("da")}
        words.update(rd._product_wording(fig, rd._products(), "da"))  # lumbarstats.products, where it exists
        number, caption = words["number"], words["caption"]
        i = texts.index(number)  # the number on its own line, the caption under it, then the picture
        assert texts[i + 1] == caption
        assert items[i + 2][2], f"{number}: no picture under the caption"
        positions.append(i)
        in_box = fig["id"].startswith("box")
        if not in_box:
            assert texts[i + 3].startswith("Anm.: ") and texts[i + 4].startswith("Kilde: "), number
            assert words["anm"] in texts[i + 3]
            # synthetic register: the synthetic source first, then the report's wording
            assert "Syntetisk register" in texts[i + 4] and words["kilde"] in texts[i + 4]
    assert positions == sorted(positions), "figures out of the report's order"
    for box, last in (("Boks 4.1", "box4_1_b"), ("Boks 5.1", "box5_1_c")):
        fig = next(f for f in figures if f["id"] == last)
        end_caption = {"number": fig["number"]["da"], **rd._product_wording(fig, rd._products(), "da")}["number"]
        j = texts.index(end_caption, texts.index(box))
        after = texts[j + 3:j + 5]
        assert after[0].startswith("Anm.: ") and after[1].startswith("Kilde: "), box
    html = _html(built["out"] / "rapport.html")
    assert html.count("<figure") == len(figures) == html.count('src="data:image/png;base64,')
    assert html.count('class="anm"') >= len(figures) - 3  # box figures share the box's Anm.


def test_tables_in_order_with_anm_and_kilde(built):
    d = docx.Document(str(built["out"] / "rapport.docx"))
    titles = [p.text for p in d.paragraphs if p.style.name == tables.DOCX_STYLES["title"]]
    numbers = [t.split(".")[0] if t.startswith("Tabel B1") is False else t.split(". ")[0] for t in titles]
    order = ["Tabel 4", "Tabel 5", "Tabel 5", "Tabel 5", "Tabel 5", "Tabel 5", "Tabel 1", "Tabel 2"]
    assert [n.rsplit(".", 1)[0] if n.count(".") else n for n in numbers[:8]] == order
    assert titles[0].startswith("Tabel 4.1. Hyppigste patientprofiler")
    assert titles[5].startswith("Tabel 5.5. ")
    b1 = [t.split(". ")[0] for t in titles if t.startswith("Tabel B1")]
    assert b1 == [f"Tabel B1.{k}.{j}" for k in range(1, 6) for j in (1, 2, 3)]
    assert any(t.startswith("Tabel A.1. ") for t in titles)
    items = _body_items(built["out"] / "rapport.docx")
    for k, (kind, _, _) in enumerate(items):
        if kind == "tbl" and not items[k - 1][1].startswith("Tabel A"):
            follow = [t for _, t, _ in items[k + 1:k + 3]]
            assert follow[0].startswith("Anm.: ") and follow[1].startswith("Kilde: "), items[k - 1][1]
    assert len(d.tables) == len(titles)
    # table 5.5 is table 4.1 again, with the report's column heading
    assert "Andel af forbruget på landsplan" in [c.text for c in d.tables[5].rows[0].cells]


def test_method_section_reflects_the_parameters(built):
    paras = _paragraphs(built["out"] / "rapport.docx")
    i = len(paras) - 1 - paras[::-1].index("3 Metode")  # the heading, not the contents line
    method = " ".join(paras[i:i + 12])
    assert "færre end 7 personer" in method  # the notebook's min_cell, not the default 5
    assert "European Standard Population 2013" in method
    assert "90 %-KI" in method and "Tiwari" in method  # the tables' conf_level and method columns
    assert "2014-2023" in method and "2014-2016, 2021-2023" in method
    assert "UXME30" in method and "UXRE30" in method
    assert "seed 7" in method


def test_method_section_changes_with_the_parameters(tmp_path):
    reg, out = build_output(tmp_path, min_cell=5, standard="default", method="gamma", conf=0.95)
    (path,) = rd.write_report(out, reg, formats=("docx",), region="Nordjylland")  # the same method section
    method = " ".join(_paragraphs(path))
    assert "færre end 5 personer" in method and "95 %-KI" in method and "gammametoden" in method
    assert "European Standard Population" not in method


def test_cover_states_register_hash_and_version(built):
    reg_hash = Register(built["reg"], validate=False).content_hash
    paras = _paragraphs(built["out"] / "rapport.docx")
    cover = " ".join(paras[:12])
    assert "Analyse af brugen af billeddiagnostiske undersøgelser af lænderyggen" in cover
    assert reg_hash in cover and f"lumbarstats {lumbarstats.__version__}" in cover
    assert "Syntetisk register" in cover and "seed 7" in cover and "Hele landet" in cover
    html = _html(built["out"] / "rapport.html")
    assert reg_hash in html and f"lumbarstats {lumbarstats.__version__}" in html


def test_real_register_and_incomplete_output_on_the_cover(tmp_path, built):
    reg = tmp_path / "real"
    shutil.copytree(built["reg"], reg)
    (reg / "metadata.json").unlink()
    out = tmp_path / "out"
    shutil.copytree(built["out"], out)
    lio.write_text("This output is INCOMPLETE: do not publish it.\nstill running\n", out / "INCOMPLETE.txt")
    (path,) = rd.write_report(out, reg, formats=("docx",), region="Hovedstaden")
    cover = " ".join(_paragraphs(path)[:12])
    assert "Registerdata" in cover and "Syntetisk" not in cover
    assert Register(reg, validate=False).content_hash in cover
    assert "ufuldstændig" in cover


def test_missing_file_is_one_error_naming_it(tmp_path, built):
    out = tmp_path / "out"
    shutil.copytree(built["out"], out)
    for p in out.glob("rapport*"):
        p.unlink()
    (out / "figures" / "fig5_1_regions_mr.png").unlink()
    with pytest.raises(rd.MissingProductError, match=r"figures/fig5_1_regions_mr\.png") as err:
        rd.write_report(out, built["reg"])
    assert "Figur 5.1" in str(err.value) and "allow_missing" in str(err.value)
    assert not list(out.glob("rapport*"))
    (out / "tables" / "bilag1" / "bilag1_sjaelland_groups.csv").unlink()  # a region report needs its Bilag 1
    with pytest.raises(rd.MissingProductError, match=r"tables/bilag1/bilag1_sjaelland_groups\.csv"):
        rd.write_report(out, built["reg"], region="Sjælland")
    docx_path, html_path = rd.write_report(out, built["reg"], region="Sjælland", allow_missing=True)
    text = " ".join(_paragraphs(docx_path))
    assert "MANGLER: tables/bilag1/bilag1_sjaelland_groups.csv" in text and "1 produkt(er) mangler" in text
    assert 'class="missing"' in _html(html_path) and "bilag1_sjaelland_groups.csv" in _html(html_path)


def test_region_report_holds_only_its_own_bilag1(built):
    paths = rd.write_report(built["out"], built["reg"], region="sjaelland")
    assert [p.name for p in paths] == ["rapport_sjaelland.docx", "rapport_sjaelland.html"]
    d = docx.Document(str(paths[0]))
    titles = [p.text for p in d.paragraphs if p.style.name == tables.DOCX_STYLES["title"]]
    b1 = [t.split(". ")[0] for t in titles if t.startswith("Tabel B1")]
    assert b1 == ["Tabel B1.5.1", "Tabel B1.5.2", "Tabel B1.5.3"]
    text = " ".join(p.text for p in d.paragraphs)
    assert "Region Sjælland" in text and "Figur 4.1" not in text and "Tabel 5.3" not in text
    for other in ("Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden"):
        assert f"Region {other}" not in text
    # the comparison appendix keeps the region's rows only
    grids = [[[c.text for c in r.cells] for r in t.rows] for t in d.tables]
    comp = [g for g in grids if g[0][:2] == ["Størrelse", "Region"]]
    assert comp and {row[1] for g in comp for row in g[1:]} == {"Sjælland"}
    html = _html(paths[1])
    assert "Tabel B1.5.1" in html and "Tabel B1.1.1" not in html


def test_write_region_reports_all_five(tmp_path, built):
    out = tmp_path / "out"
    shutil.copytree(built["out"], out)
    paths = rd.write_region_reports(out, built["reg"], formats=("html",))
    assert [p.name for p in paths] == [f"rapport_{s}.html" for s in SLUGS]
    assert rd.report_stem("Region Sjælland") == "rapport_sjaelland" and rd.report_stem(None) == "rapport"


def test_documents_pass_the_disclosure_check(built):
    v = disclosure.check_directory(built["out"])
    assert v.empty, v.to_string()
    # the document shows the counts of Bilag 1 under count headings the checker reads
    d = docx.Document(str(built["out"] / "rapport.docx"))
    headers = {c.text for t in d.tables for c in t.rows[0].cells}
    assert "Antal undersøgelser" in headers and "Antal personer" in headers


def test_planted_small_count_is_caught(tmp_path, built):
    out = tmp_path / "out"
    shutil.copytree(built["out"], out)
    for p in out.glob("rapport*"):
        p.unlink()
    f = out / "tables" / "bilag1" / "bilag1_syddanmark_annual.csv"
    df = pd.read_csv(f)
    df.loc[3, "persons"], df.loc[3, "examinations"] = 2, 2
    lio.write_csv(df, f)
    with pytest.raises(rd.ReportDisclosureError, match="bilag1_syddanmark_annual.csv"):
        rd.write_report(out, built["reg"])
    assert not list(out.glob("rapport*"))
    # the region report of another region does not read the file and is written
    assert rd.write_report(out, built["reg"], region="Nordjylland", formats=("html",))
    # and a document showing an unprotected count (both formats) is refused before it is written
    model = tables.table_model(df, tables.TableSpec(title="planted"), disclosure=False)
    blocks = [rd.Block("table", {"id": "planted", "model": model, "number": "", "caption": ""})]
    info = {"lang": "da", "title": "t", "subtitle": "s", "missing": [], "region": None, "date": "2026-01-01",
            "register": {"synthetic": True, "metadata": {}, "hash": "0" * 40}, "run": {"incomplete": None}}
    for fmt, build in (("docx", rd._docx_bytes), ("html", rd._html_bytes)):
        with pytest.raises(rd.ReportDisclosureError, match="nothing was written"):
            rd._check_payload(build(blocks, info), f"x.{fmt}", 5)


def test_suppressed_cells_show_the_marker(tmp_path, built):
    out = tmp_path / "out"
    shutil.copytree(built["out"], out)
    f = out / "tables" / "bilag1" / "bilag1_midtjylland_payer.csv"
    df = pd.read_csv(f).astype(object)
    df.loc[2, ["examinations", "share_pct", "share_within_modality_pct", "rate", "lower", "upper"]] = \
        disclosure.SUPPRESSED_MARKER  # hidden upstream
    lio.write_csv(df, f)
    (path,) = rd.write_report(out, built["reg"], region="Midtjylland", formats=("docx",))
    d = docx.Document(str(path))
    cells = [c.text for t in d.tables for r in t.rows for c in r.cells]
    assert disclosure.SUPPRESSED_MARKER in cells
    assert disclosure.check_directory(path).empty


def test_products_wording_wins(monkeypatch, built, tmp_path):
    import sys
    import types

    mod = types.ModuleType("lumbarstats.products")
    mod.PRODUCTS = ({"id": "fig4_1", "number_da": "Figur 4.1", "caption_da": "Ny overskrift fra products",
                     "files": ("figures/fig4_1_annual_counts.png",), "anm_da": "Ny anm.", "kilde_da": "Ny kilde.",
                     "chapter": "4"},)
    monkeypatch.setitem(sys.modules, "lumbarstats.products", mod)
    out = tmp_path / "out"
    shutil.copytree(built["out"], out)
    (path,) = rd.write_report(out, built["reg"], formats=("docx",))
    texts = _paragraphs(path)
    i = texts.index("Ny overskrift fra products")
    assert texts[i - 1] == "Figur 4.1" and texts[i + 2] == "Anm.: Ny anm." and "Ny kilde." in texts[i + 3]


def test_bad_arguments(built):
    with pytest.raises(ValueError, match="unknown report format"):
        rd.write_report(built["out"], built["reg"], formats=("pdf",))
    with pytest.raises(ValueError, match="unknown region"):
        rd.write_report(built["out"], built["reg"], region="Atlantis")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rd.write_report(built["out"] / "nope", built["reg"])


def test_catalogue_is_data():
    cat = rd.load_catalogue()
    numbers = [f["number"]["da"] for f in _catalogue_figures(cat)]
    assert numbers[:2] == ["Figur 4.1", "Figur 4.2"] and "Figur 4.14" in numbers and "Figur 5.6" in numbers
    assert json.dumps(cat, ensure_ascii=False).count("Der er tale om offentligt finansieret") >= 1


def test_run_state_from_the_caller(tmp_path, built):
    """Inside reproduce, INCOMPLETE.txt is still there and steps.json is the last run's: the caller says."""
    out = tmp_path / "out"
    shutil.copytree(built["out"], out)
    lio.write_text("This output is INCOMPLETE: do not publish it.\nstill running\n", out / "INCOMPLETE.txt")
    (out / "tables" / "bilag1" / "bilag1_syddanmark_payer.csv").unlink()
    steps = [{"step": "annual", "label": "01", "status": "ok"}, {"step": "products", "label": "p", "status": "FAILED"}]
    (path,) = rd.write_report(out, built["reg"], formats=("docx",), region="Syddanmark", allow_missing=True,
                              steps=steps, incomplete=False)
    text = " ".join(_paragraphs(path))
    assert "ufuldstændig (INCOMPLETE" not in text
    assert ("MANGLER: tables/bilag1/bilag1_syddanmark_payer.csv – trinnet »products« fejlede i den seneste kørsel"
            in text)
    assert "1 af 2 trin gennemført (fejlede: p)" in text


def test_english_region_report(tmp_path, built):
    out = tmp_path / "out"
    shutil.copytree(built["out"], out)
    (path,) = rd.write_report(out, built["reg"], region="Syddanmark", lang="en", formats=("html",))
    assert path.name == "rapport_syddanmark_en.html"
    html = _html(path)
    assert '<html lang="en">' in html and "Appendix 1" in html and "Region of Southern Denmark" in html
    assert "Table A1.3.1" in html and "Synthetic register" in html


def test_cli_report_on_a_folder_without_output_is_one_short_error(tmp_path, tiny_register):
    """`lumbarstats report` on a folder with no reproduce output: exit 2 and one line naming the folder and
    a few missing products (not every one of them), nothing written."""
    from typer.testing import CliRunner

    from lumbarstats.cli import app

    out = tmp_path / "out"
    out.mkdir()
    res = CliRunner().invoke(app, ["report", "--out", str(out), "--data", str(tiny_register)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "missing in" in text and "more" in text and len(text) < 2500
    assert not any(out.iterdir())
