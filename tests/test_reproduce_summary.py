"""The reproduce summary counts everything written, the time-to-event runs per region included."""

from __future__ import annotations

from pathlib import Path

from lumbarstats import reproduce


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x", encoding="utf-8")


def test_summary_counts_the_time_to_event_files(tmp_path, capsys):
    out = tmp_path / "output"
    for p in ("tables/table1_mr_annual.csv", "figures/annual_mr.png", "figures/annual_mr.svg",
              "notebooks/01_annual_rates_mr.ipynb", "time_to_event/syddanmark/tables/tte_Syddanmark_surgery_cif.csv",
              "time_to_event/syddanmark/figures/tte_Syddanmark_surgery_cif_period.png",
              "time_to_event/syddanmark/figures/tte_Syddanmark_surgery_cif_period.svg",
              "time_to_event/syddanmark/05_time_to_event.ipynb"):
        _touch(out / p)
    ctx = reproduce._Context(data=tmp_path / "data", out=out, logs=tmp_path / "output.logs", nb_dir=tmp_path,
                             kernel="lumbarstats", seed=None, formats=("docx",), lang="da",
                             regions_time_to_event="all")
    reproduce._print_summary(ctx, [], 1.0)
    text = capsys.readouterr().out
    assert "tables (CSV): 2 " in text
    assert "figures:      2 PNG" in text and "+ 2 SVG" in text
    assert "notebooks:    2 executed" in text
