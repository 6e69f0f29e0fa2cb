"""End to end: `lumbarstats reproduce` on a tiny synthetic register writes every promised output,
and the output folder passes the disclosure check."""

from __future__ import annotations

import pandas as pd
import pytest

import lumbarstats as ls

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reproduced(reproduced_0002):
    """Every step, every region, on a 0.2 % register (the session run shared with the attack suite)."""
    return reproduced_0002


def test_all_steps_succeed(reproduced):
    ok, out = reproduced
    logs = ls.reproduce.logs_dir(out)  # outside the output
    assert ok, logs.exists() and [p.read_text()[-2000:] for p in logs.glob("*.log")]
    assert not (out / ls.reproduce.INCOMPLETE_NAME).exists()


@pytest.mark.parametrize("name", [
    "table1_mr_annual.csv", "table2_xray_annual.csv", "table5_1_mr_periods.csv", "table5_2_xray_periods.csv",
    "table5_3_mr_groups.csv", "table5_4_xray_groups.csv", "table4_1_profiles.csv", "persons_vs_exams.csv",
    "payer_shares.csv", "its_syddanmark_mr.csv", "its_syddanmark_xray.csv",
])
def test_tables_written(reproduced, name):
    _, out = reproduced
    assert (out / "tables" / name).is_file()


def test_table1_layout_and_comparison(reproduced):
    _, out = reproduced
    t1 = pd.read_csv(out / "tables" / "table1_mr_annual.csv")
    assert {"region", "year", "events", "population", "rate", "lower", "upper"} <= set(t1.columns)
    assert set(t1["region"]) == {"Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland", "Landsplan"}
    assert sorted(t1["year"].unique()) == list(range(2014, 2024))
    comp = pd.read_csv(out / "comparison.csv")
    assert {"table", "published", "reproduced", "difference"} <= set(comp.columns)
    assert (comp["table"] == "table1").sum() == 60 and (comp["table"] == "table2").sum() == 60
    its = pd.read_csv(out / "tables" / "its_syddanmark_mr.csv")
    assert {"term", "rate_ratio", "lower", "upper", "p_value"} <= set(its.columns)


def test_publication_formats_and_notebooks(reproduced):
    _, out = reproduced
    for fmt in ("docx", "xlsx", "html", "tex"):
        assert (out / "publication" / f"table1.{fmt}").is_file()
    executed = list((out / "notebooks").glob("*.ipynb"))
    assert len(executed) >= 7
    runs = pd.read_csv(out / "time_to_event" / "runs.csv")
    assert set(runs["status"]) == {"completed"}


def test_output_passes_disclosure_check(reproduced):
    _, out = reproduced
    violations = ls.disclosure.check_directory(out)
    assert violations.empty, violations.head(20).to_string()
