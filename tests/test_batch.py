"""Batch runs per region (lumbarstats.batch): parameters, regions, kernel, fault tolerance, re-runs."""

from __future__ import annotations

import json
import os
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
    # the folder marker says lumbarstats made the folder; no temporary folder is left
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lumbarstats.json", "nordjylland", "runs.csv"]


def test_killed_run_temporaries_are_removed_by_the_next_batch(tmp_path, monkeypatch):
    """kill -9 leaves the running region's temporary folder; the next batch removes it (and only it)."""
    import papermill

    from lumbarstats import io as _io

    monkeypatch.setattr(batch, "require_kernel", lambda name: Path("."))
    stale = _io.staging_dir(tmp_path / "syddanmark", "batch-region")
    (stale / "half.csv").write_text("x")
    marker = json.loads((stale / _io.MARKER_NAME).read_text())
    marker["pid"] = 2**22 + 7
    (stale / _io.MARKER_NAME).write_text(json.dumps(marker))
    dead = stale.with_name(stale.name.replace(f"-{os.getpid()}-", f"-{2**22 + 7}-"))
    stale.rename(dead)
    (tmp_path / "mine.txt").write_text("keep")

    def fake_execute(inp, outp, parameters, **kw):
        Path(outp).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    batch.run_batch(NOTEBOOK, tmp_path, regions="Nordjylland", progress=False, force=True)
    assert not dead.exists() and (tmp_path / "mine.txt").read_text() == "keep"


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
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".lumbarstats.json"]  # no temporaries
    before = _mtimes(out)

    # re-run with the same parameters and input: only the failed region runs, the others are untouched
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rerun = batch.run_batch(NOTEBOOK, out, regions="all", parameters={"fail_region": "Syddanmark", "scale": 2},
                                kernel=kernel, progress=False)
    assert dict(zip(rerun["region"], rerun["status"], strict=True)) == {
        r: ("failed" if r == "Syddanmark" else "skipped") for r in ALL}
    assert _mtimes(out) == before | {k: v for k, v in _mtimes(out).items() if k.startswith("syddanmark.failed")}

    # other parameters: every region runs again (their tables would come from the old parameters)
    rerun = batch.run_batch(NOTEBOOK, out, regions="all", parameters={"scale": 2}, kernel=kernel, progress=False)
    assert set(rerun["status"]) == {"completed"}
    after = _mtimes(out)
    assert all(after[k] > v for k, v in before.items() if not k.startswith(("syddanmark", ".lumbarstats")))
    assert not (out / "syddanmark.failed").exists()
    assert pd.read_csv(out / "syddanmark" / "table.csv")["value"].tolist() == [2 * len("Syddanmark")]
    runs = batch.read_runs(out).set_index("region")
    assert set(runs["status"]) == {"completed"} and set(runs["error"]) == {""}
    assert set(runs["parameters"]) == {'{"scale": 2}'}
    assert runs["input_hash"].str.fullmatch(r"[0-9a-f]{16}").all()

    # a deleted output runs again; region names in any case and without Danish letters
    import shutil

    shutil.rmtree(out / "nordjylland")
    third = batch.run_batch(NOTEBOOK, out, regions="NORDJYLLAND,landsplan,sjaelland", parameters={"scale": 2},
                            kernel=kernel, progress=False)
    assert third["region"].tolist() == ["Nordjylland", "Landsplan", "Sjælland"]
    assert third["status"].tolist() == ["completed", "skipped", "skipped"]
    # force re-runs a completed region in place
    forced = batch.run_batch(NOTEBOOK, out, regions="Landsplan", kernel=kernel, progress=False, force=True)
    assert forced["status"].tolist() == ["completed"]
    assert (out / "landsplan" / "table.csv").stat().st_mtime_ns > after["landsplan/table.csv"]
    assert pd.read_csv(out / "landsplan" / "table.csv")["value"].tolist() == [len("Landsplan")]
    assert batch.read_runs(out)["region"].tolist() == ALL


def test_changed_input_reruns_only_on_change(tmp_path, kernel):
    """A changed notebook (input hash) re-runs the region; an unchanged one is skipped."""
    import shutil

    nb = tmp_path / "nb" / NOTEBOOK.name
    nb.parent.mkdir()
    shutil.copyfile(NOTEBOOK, nb)
    out = tmp_path / "out"
    first = batch.run_batch(nb, out, regions="Syddanmark", kernel=kernel, progress=False)
    same = batch.run_batch(nb, out, regions="Syddanmark", kernel=kernel, progress=False)
    assert first["status"].tolist() == ["completed"] and same["status"].tolist() == ["skipped"]
    nb.write_text(nb.read_text(encoding="utf-8").replace("len(region) * scale", "len(region) * scale + 1"),
                  encoding="utf-8")
    changed = batch.run_batch(nb, out, regions="Syddanmark", kernel=kernel, progress=False)
    assert changed["status"].tolist() == ["completed"]
    assert changed["input_hash"].iloc[0] != first["input_hash"].iloc[0]
    assert pd.read_csv(out / "syddanmark" / "table.csv")["value"].tolist() == [len("Syddanmark") + 1]
