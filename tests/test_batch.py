"""Batch runs per region (lumbarstats.batch): parameters, regions, kernel, fault tolerance, re-runs."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from lumbarstats import batch

NOTEBOOK = Path(__file__).parent / "data" / "batch" / "region_table.ipynb"
ALL = ["Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland", "Landsplan"]


# -- parameters ---------------------------------------------------------------------------------------
def test_parse_parameters_yaml_scalars():
    got = batch.parse_parameters([
        "year=2022", "alpha=0.05", "pooled=true", "years=[2019, 2022]", "label=Syddanmark", "empty=",
        "quoted='2022'", "min_cell 5", "title=Rate: MR", "start=2020-03-11", "opts={a: 1}", "text= two words ",
    ])
    assert got == {
        "year": 2022, "alpha": 0.05, "pooled": True, "years": [2019, 2022], "label": "Syddanmark",
        "empty": None, "quoted": "2022", "min_cell": 5, "title": "Rate: MR", "start": "2020-03-11",
        "opts": {"a": 1}, "text": "two words",
    }
    assert isinstance(got["year"], int) and isinstance(got["alpha"], float) and got["pooled"] is True


@pytest.mark.parametrize("item, match", [
    ("year", "NAME=VALUE"),
    ("=3", "NAME=VALUE"),
    ("1x=3", "NAME=VALUE"),
    ("region=Syddanmark", "--regions"),
    ("out_dir=/tmp/x", "--out"),
    ("years=[2019, 2022", "not a valid YAML"),
    ("dates=[2020-03-11]", "quote it"),
])
def test_parse_parameters_bad_input(item, match):
    with pytest.raises(ValueError, match=match):
        batch.parse_parameters([item])


def test_parse_parameters_twice():
    with pytest.raises(ValueError, match="given twice"):
        batch.parse_parameters(["year=2020", "year=2021"])


# -- regions ------------------------------------------------------------------------------------------
def test_resolve_regions():
    assert batch.resolve_regions("all") == ALL
    assert batch.resolve_regions(None) == ALL
    assert batch.resolve_regions("Syddanmark, nordjylland") == ["Syddanmark", "Nordjylland"]
    assert batch.resolve_regions(["1085", 1081, "landsplan", "Sjælland"]) == ["Sjælland", "Nordjylland", "Landsplan"]
    with pytest.raises(ValueError, match="unknown region 'Fyn'"):
        batch.resolve_regions("Syddanmark,Fyn")
    with pytest.raises(ValueError, match="no regions"):
        batch.resolve_regions(" , ")


def test_region_slug():
    assert [batch.region_slug(r) for r in ALL] == [
        "nordjylland", "midtjylland", "syddanmark", "hovedstaden", "sjaelland", "landsplan"]
    assert batch.region_slug("Region Sjælland") == "region_sjaelland"


# -- kernel -------------------------------------------------------------------------------------------
def test_install_kernel_into_prefix(tmp_path, monkeypatch):
    import ipykernel.kernelspec  # noqa: F401 - import (and fix jupyter_core's paths) before sys.prefix changes
    import jupyter_client.kernelspec  # noqa: F401

    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    path = batch.install_kernel("lumbarstats-test")
    assert path == tmp_path / "share" / "jupyter" / "kernels" / "lumbarstats-test"
    spec = json.loads((path / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    assert spec["display_name"] == "Python (lumbarstats-test)"
    with pytest.raises(ValueError, match="kernel name"):
        batch.install_kernel("bad name/")


def test_missing_kernel_says_what_to_run(tmp_path):
    with pytest.raises(LookupError, match="lumbarstats install-kernel --name no-such-kernel-xyz"):
        batch.run_batch(NOTEBOOK, tmp_path / "out", regions="Syddanmark", kernel="no-such-kernel-xyz")
    assert not (tmp_path / "out").exists()


# -- input checks (no kernel started) ---------------------------------------------------------------
def _notebook(path: Path, params_src: str) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook()
    nb.cells = [new_code_cell(params_src, metadata={"tags": ["parameters"]}), new_code_cell("x = 1")]
    nbformat.write(nb, path)
    return path


def test_notebook_without_region_parameter(tmp_path):
    nb = _notebook(tmp_path / "noregion.ipynb", "year = 2022")
    with pytest.raises(ValueError, match="no 'region' parameter"):
        batch.run_batch(nb, tmp_path / "out")


def test_undeclared_parameter(tmp_path):
    with pytest.raises(ValueError, match=r"\['fail_regoin'\] are not declared"):
        batch.run_batch(NOTEBOOK, tmp_path / "out", parameters={"fail_regoin": "Syddanmark"})


def test_missing_notebook(tmp_path):
    with pytest.raises(FileNotFoundError):
        batch.run_batch(tmp_path / "nope.ipynb", tmp_path / "out")


def test_interrupt_keeps_finished_runs(tmp_path, monkeypatch):
    """A run killed mid-batch keeps runs.csv of the finished regions and leaves no temporary folder."""
    import papermill

    calls = []

    def fake_execute(inp, outp, parameters, **kw):
        calls.append(parameters["region"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        Path(outp).write_text("{}")
        (Path(parameters["out_dir"]) / "table.csv").write_text("region\n")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(batch, "require_kernel", lambda name: Path("."))
    with pytest.raises(KeyboardInterrupt):
        batch.run_batch(NOTEBOOK, tmp_path, progress=False)
    runs = batch.read_runs(tmp_path)
    assert runs["region"].tolist() == ["Nordjylland"] and runs["status"].tolist() == ["completed"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nordjylland", "runs.csv"]


def test_other_notebook_in_same_out(tmp_path, monkeypatch):
    pd.DataFrame([{"region": "Syddanmark", "status": "completed", "seconds": 1.0, "error": "",
                   "output": "syddanmark/other.ipynb", "started": ""}]).to_csv(tmp_path / "runs.csv", index=False)
    monkeypatch.setattr(batch, "require_kernel", lambda name: Path("."))
    with pytest.raises(ValueError, match="another notebook"):
        batch.run_batch(NOTEBOOK, tmp_path)


# -- real runs on the lumbarstats kernel ------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel() -> str:
    if batch.kernel_path(batch.DEFAULT_KERNEL) is None:
        batch.install_kernel(batch.DEFAULT_KERNEL)  # into this venv's prefix
    return batch.DEFAULT_KERNEL


def _mtimes(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()
            and p.name != "runs.csv"}


def test_batch_failure_then_rerun(tmp_path, kernel):
    from typer.testing import CliRunner

    from lumbarstats.cli import app

    out = tmp_path / "batch"
    res = CliRunner().invoke(app, ["batch", str(NOTEBOOK), "--out", str(out), "--regions", "all",
                                   "-p", "fail_region=Syddanmark", "-p", "scale 2", "--kernel", kernel])
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), res.exception  # a failed region, not a crash
    runs = batch.read_runs(out)
    assert runs["region"].tolist() == ALL
    status = dict(zip(runs["region"], runs["status"], strict=True))
    assert status == {r: ("failed" if r == "Syddanmark" else "completed") for r in ALL}
    failed = runs.set_index("region").loc["Syddanmark"]
    assert failed["error"] == "RuntimeError: deliberate failure for Syddanmark"
    assert (out / failed["output"]).is_file()
    for region in ALL:
        if region == "Syddanmark":
            assert not (out / "syddanmark").exists()
            continue
        table = pd.read_csv(out / batch.region_slug(region) / "table.csv")
        assert table.to_dict("records") == [{"region": region, "value": 2 * len(region)}]
        assert (out / batch.region_slug(region) / "region_table.ipynb").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folders left
    before = _mtimes(out)

    # re-run without the failure: only Syddanmark runs, the others are skipped and untouched
    with pytest.warns(UserWarning, match=r"other parameters .*Nordjylland \(\{\"fail_region\": \"Syddanmark\""):
        rerun = batch.run_batch(NOTEBOOK, out, regions="all", parameters={"scale": 2}, kernel=kernel,
                                progress=False)
    assert dict(zip(rerun["region"], rerun["status"], strict=True)) == {
        r: ("completed" if r == "Syddanmark" else "skipped") for r in ALL}
    after = _mtimes(out)
    assert {k: v for k, v in after.items() if not k.startswith("syddanmark")} == {
        k: v for k, v in before.items() if not k.startswith("syddanmark")}
    assert not (out / "syddanmark.failed").exists()
    assert pd.read_csv(out / "syddanmark" / "table.csv")["value"].tolist() == [2 * len("Syddanmark")]
    runs = batch.read_runs(out).set_index("region")
    assert set(runs["status"]) == {"completed"} and set(runs["error"]) == {""}
    assert runs.loc["Syddanmark", "parameters"] == '{"scale": 2}'
    assert runs.loc["Hovedstaden", "parameters"] == '{"fail_region": "Syddanmark", "scale": 2}'

    # a deleted output runs again; force re-runs a completed region in place
    import shutil

    shutil.rmtree(out / "nordjylland")
    with pytest.warns(UserWarning, match="Landsplan"):
        third = batch.run_batch(NOTEBOOK, out, regions="Nordjylland,Landsplan,Sjælland", kernel=kernel,
                                progress=False, force=False)
    assert third["status"].tolist() == ["completed", "skipped", "skipped"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same parameters as the completed run: skipped without a warning
        same = batch.run_batch(NOTEBOOK, out, regions="Nordjylland", kernel=kernel, progress=False)
    assert same["status"].tolist() == ["skipped"]
    forced = batch.run_batch(NOTEBOOK, out, regions="Landsplan", kernel=kernel, progress=False, force=True)
    assert forced["status"].tolist() == ["completed"]
    assert (out / "landsplan" / "table.csv").stat().st_mtime_ns > before["landsplan/table.csv"]
    assert pd.read_csv(out / "landsplan" / "table.csv")["value"].tolist() == [len("Landsplan")]
    assert batch.read_runs(out)["region"].tolist() == ALL
