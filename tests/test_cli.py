"""The command line: papermill-style `-p NAME VALUE` for batch runs, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lumbarstats import batch
from lumbarstats.cli import _pair_parameters, app

NOTEBOOK = Path(__file__).parent / "data" / "batch" / "region_table.ipynb"


def test_pair_parameters():
    assert _pair_parameters(["a", "b=2", "c"], ["1", "x y"]) == ["a=1", "b=2", "c=x y"]
    with pytest.raises(ValueError, match="has no value"):
        _pair_parameters(["a"], [])
    with pytest.raises(ValueError, match="unexpected argument"):
        _pair_parameters(["a=1"], ["stray"])


def test_batch_accepts_name_value_pairs(tmp_path):
    if batch.kernel_path("lumbarstats") is None:
        batch.install_kernel("lumbarstats")
    out = tmp_path / "b"
    res = CliRunner().invoke(app, ["batch", str(NOTEBOOK), "--out", str(out), "--regions", "Nordjylland",
                                   "-p", "scale", "3", "-p", "fail_region", "Sjælland"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "nordjylland" / "table.csv")
    assert table["value"].tolist() == [3 * len("Nordjylland")]


def test_batch_bad_parameter_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(app, ["batch", str(NOTEBOOK), "--out", str(tmp_path / "b"), "-p", "scale"])
    assert res.exit_code == 2
    assert "has no value" in res.output


def test_help_lists_commands():
    res = CliRunner().invoke(app, ["--help"])
    for cmd in ("synth", "reproduce", "batch", "check-disclosure", "ingest", "install-kernel"):
        assert cmd in res.output


def test_user_errors_are_one_line_exit_2(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["summary", "--data", str(tmp_path / "none")])
    assert res.exit_code == 2 and "lumbarstats synth" in res.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x", encoding="utf-8")
    res = runner.invoke(app, ["synth", "--out", str(foreign), "--scale", "0.001"])
    assert res.exit_code == 2 and "not empty" in res.output
    assert (foreign / "keep.txt").exists()
    res = runner.invoke(app, ["check-disclosure", str(tmp_path / "nothing-here")])
    assert res.exit_code in (0, 2)
