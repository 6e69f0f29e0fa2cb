"""Figures in the report's manner: Danish numbers from the locale, Kilde line, one palette, Danish
time-to-event figures, a legend entry for every marker, PNG at 300 dpi with an SVG beside it; published
CSVs with integer counts; notebooks' result objects as rounded HTML; reproduce without a named kernel."""

from __future__ import annotations

import json
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SYD = ls.plots.REGION_COLORS["Syddanmark"]


def _annual():
    rows = []
    for region in ["Nordjylland", "Syddanmark", "Sjælland", "Landsplan"]:
        for year in range(2014, 2024):
            rate = 14.0 + (year - 2014) * 0.35 + (region == "Syddanmark")
            rows.append({"modality": "MR", "region": region, "year": year, "rate": rate, "lower": rate - 1.5,
                         "upper": rate + 1.5})
    return pd.DataFrame(rows)


def _cif():
    rows = []
    for period in ["after", "before"]:  # the order a table may have: the figure still puts før first
        for t, v in [(90, 0.01), (365, 0.021), (730, 0.034)]:
            rows.append({"event_type": "surgery", "grouping": "period", "period": period, "time": t, "cif": v,
                         "lower": v / 2, "upper": v * 1.5})
    for region in ["Syddanmark", "Hovedstaden"]:
        for t, v in [(90, 0.012), (365, 0.025)]:
            rows.append({"event_type": "surgery", "grouping": "region_name", "region_name": region, "time": t,
                         "cif": v, "lower": v / 2, "upper": v * 1.5})
    return pd.DataFrame(rows)


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def test_danish_numbers_come_from_the_locale():
    assert ls.formatting.format_number(1234.5, 1, "da") == "1.234,5"
    assert ls.formatting.format_number(1234.5, 1, "en") == "1,234.5"
    assert ls.formatting.format_number(17.5, None, "da") == "17,5"
    assert ls.formatting.format_number(20.0, None, "da") == "20"
    with pytest.raises(ValueError, match="language 'de'"):
        ls.formatting.format_number(1.0, 1, "de")


def test_annual_figure_has_a_legend_entry_for_the_published_markers_and_a_source_line():
    reference = _annual()[["region", "year", "rate"]].assign(rate=lambda d: d["rate"] + 0.2)
    fig = ls.plots.annual_rate_figure(_annual(), modality="MR", reference=reference, source="Egne beregninger.")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("Offentliggjort" in label for label in labels)  # the open markers are explained
    assert "Kilde: Egne beregninger." in _texts(fig)
    fig.canvas.draw()
    yticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert all("." not in t for t in yticks)
    syd = [line for line in ax.get_lines() if line.get_label() == "Syddanmark"]
    assert matplotlib.colors.to_hex(syd[0].get_color()) == SYD
    plt.close(fig)


def test_english_on_request():
    fig = ls.plots.annual_rate_figure(_annual(), modality="MR", lang="en", source="Own calculations.")
    text = _texts(fig)
    assert "MRI of the lumbar spine" in text and "Source: Own calculations." in text
    plt.close(fig)


def test_time_to_event_figures_are_danish_with_before_first_and_the_palette():
    fig = ls.plots.cif_figure(_cif(), by="period", event_type="surgery", title=ls.plots.event_title("surgery", 0))
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "Periode"
    assert [t.get_text() for t in legend.get_texts()] == ["Før", "Efter"]
    assert "Operation i lænderyggen" in ax.get_title("left") and "Landsplan" in ax.get_title("left")
    assert "År efter" in ax.get_xlabel() and ax.get_ylabel() == "Kumuleret incidens"
    plt.close(fig)
    fig = ls.plots.cif_figure(_cif(), by="region_name", event_type="surgery")
    legend = fig.axes[0].get_legend()
    assert legend.get_title().get_text() == "Region"  # not the column name region_name
    syd = [line for line in fig.axes[0].get_lines() if line.get_label() == "Syddanmark"]
    assert matplotlib.colors.to_hex(syd[0].get_color()) == SYD
    fig.canvas.draw()
    assert any("," in t.get_text() for t in fig.axes[0].get_yticklabels())  # 0,01 not 0.01
    plt.close(fig)


def test_one_colour_per_region_whatever_the_spelling():
    assert ls.plots.region_color("Sjaelland") == ls.plots.region_color("SJÆLLAND") == ls.plots.REGION_COLORS["Sjælland"]
    assert ls.plots.region_color(1083) == SYD
    assert ls.plots.region_color("no such region") is None


def test_figures_are_published_as_png_at_300_dpi_and_svg(tmp_path):
    from PIL import Image

    fig = ls.plots.annual_rate_figure(_annual(), modality="MR")
    png, svg = ls.export.publish_figure_files(fig, tmp_path / "figures" / "annual_mr.png")
    assert png.suffix == ".png" and svg.suffix == ".svg" and svg.stat().st_size > 1000
    dpi = Image.open(png).info["dpi"]
    assert round(dpi[0]) == 300
    assert Image.open(png).size[0] > 1800  # 17 cm at 300 dpi


def test_published_csv_has_integer_counts_and_rounded_rates(tmp_path):
    df = pd.DataFrame({"modality": ["MR", "MR"], "events": [785.0, "–"], "population": [12345.0, 999.0],
                       "rate": [15.632795311454984, "–"], "p_value": [0.08007581325826132, np.nan],
                       "value": [404.0, 1.0934]})  # a count beside a ratio (persons_vs_exams)
    path = ls.export.write_published_csv(df, tmp_path / "t.csv")
    text = path.read_text(encoding="utf-8")
    assert "785.0" not in text and "785," in text and "12345," in text
    assert "15.63," in text and "0.08008" in text and "–" in text
    assert "15.632795" not in text
    assert "404.0" not in text and ",404\n" in text and ",1.093\n" in text


def test_result_objects_render_as_rounded_html():
    rng = np.random.default_rng(3)
    months = pd.date_range("2014-01-01", periods=72, freq="MS")
    pop = np.full(72, 1000.0)
    events = rng.poisson(15 * np.where(np.arange(72) >= 36, 0.8, 1.0))
    df = pd.DataFrame({"month": months, "events": events, "population": pop})
    res = ls.trend.its(df, time="month", events="events", population="population", intervention_start="2017-01")
    html = res._repr_html_()
    assert "<table" in html and "rate_ratio" in html and "Interrupted time series" in html
    estimates = res.summary["rate_ratio"].round(3).astype(str)
    assert all(e in html for e in estimates)
    full = f"{res.summary['rate_ratio'].iloc[0]!r}"
    assert full not in html  # rounded, not full precision


def test_display_rounded_keeps_markers_and_makes_whole_numbers_integers():
    df = pd.DataFrame({"persons": [12.0, 30.0], "rate": [8.813289e-01, 5761.391582], "n": ["–", 155.0],
                       "rmst_n": pd.Series([155.0, 2.5], dtype=object)})
    out = ls.formatting.display_rounded(df)
    assert out["rmst_n"].tolist() == [155, 2.5] and isinstance(out["rmst_n"].iloc[0], int)
    assert str(out["persons"].dtype) == "Int64"
    assert out["rate"].tolist() == [0.88, 5761.39]
    assert out["n"].tolist() == ["–", 155]


@pytest.mark.slow
def test_notebooks_run_on_the_running_interpreter_without_a_named_kernel(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    import nbformat

    def not_installed(name):
        raise LookupError(f"Jupyter kernel {name!r} is not installed")

    monkeypatch.setattr(ls.batch, "require_kernel", not_installed)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys, lumbarstats\nprint(sys.executable)\n"
                                          "print(lumbarstats.__file__)")]
    nb.metadata["kernelspec"] = {"name": "lumbarstats", "display_name": "Python (lumbarstats)", "language": "python"}
    nbformat.write(nb, tmp_path / "probe.ipynb")
    with ls.batch.kernel_for_run() as kernel:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec(kernel)
        assert spec.argv[0] == sys.executable
        assert ls.batch.KERNEL_QUIET in spec.argv  # no "KeyboardInterrupt caught in kernel." at shutdown
        papermill.execute_notebook(str(tmp_path / "probe.ipynb"), str(tmp_path / "out.ipynb"), kernel_name=kernel,
                                   cwd=str(tmp_path), progress_bar=False)
    out = json.loads((tmp_path / "out.ipynb").read_text(encoding="utf-8"))
    printed = "".join(out["cells"][0]["outputs"][0]["text"]).split("\n")
    assert printed[0] == sys.executable
    assert printed[1] == ls.__file__  # the same lumbarstats
    with pytest.raises(LookupError):  # another kernel name that is not installed is still an error
        with ls.batch.kernel_for_run("no-such-kernel"):
            pass
