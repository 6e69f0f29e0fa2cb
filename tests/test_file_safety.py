"""File safety (issue 12, Build 3): one atomic writer, folders the toolkit did not make are never emptied or
replaced, killed runs are cleaned up and visible, `reproduce` generates a register only where asked, and
write errors (disk full, read-only, permission denied, a file in the way) are one clear line with nothing
half-written."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import lumbarstats as ls
from lumbarstats.cli import app

NOTEBOOK = Path(__file__).parent / "data" / "batch" / "region_table.ipynb"


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes (to show that nothing was written or deleted)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _thesis(tmp_path: Path) -> Path:
    folder = tmp_path / "thesis"
    (folder / "chapters").mkdir(parents=True)
    (folder / "notes.txt").write_text("three years of work", encoding="utf-8")
    (folder / "chapters" / "intro.tex").write_text("\\section{Intro}", encoding="utf-8")
    return folder


def _one_line_error(res, *words: str) -> None:
    """Exit 2, one line starting with 'error:', no traceback, and the message names ``words``."""
    assert res.exit_code == 2, res.output
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    for w in words:
        assert w in lines[0], (w, lines[0])


def _run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


# -- regression tests of the issue ("Lost files", the `reproduce --data` typo) -------------------------

def test_synth_raw_layout_never_empties_a_foreign_folder(tmp_path):
    """Old: `synth --raw-layout --out DIR` emptied a non-empty DIR (a thesis folder) with exit 0."""
    thesis = _thesis(tmp_path)
    before = _snapshot(thesis)
    res = _run("synth", "--raw-layout", "--out", thesis, "--scale", "0.0005", "--seed", "3")
    _one_line_error(res, str(thesis), "not made by lumbarstats")
    assert _snapshot(thesis) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no temporary left beside it


def test_synth_over_an_earlier_register_keeps_the_users_files(tmp_path):
    """Old: `synth --out DIR` over an earlier register replaced the folder and deleted the user's files."""
    reg = tmp_path / "reg"
    assert _run("synth", "--out", reg, "--scale", "0.001", "--seed", "5").exit_code == 0
    (reg / "my_analysis.R").write_text("# mine", encoding="utf-8")
    (reg / "model" / "my_notes.md").write_text("mine too", encoding="utf-8")
    res = _run("synth", "--out", reg, "--scale", "0.001", "--seed", "6")
    assert res.exit_code == 0, res.output
    assert (reg / "my_analysis.R").read_text(encoding="utf-8") == "# mine"
    assert (reg / "model" / "my_notes.md").read_text(encoding="utf-8") == "mine too"
    assert json.loads((reg / "metadata.json").read_text(encoding="utf-8"))["seed"] == 6
    assert ls.io.read_marker(reg)["state"] == "complete"
    assert not [p for p in tmp_path.iterdir() if p.name != "reg"]


def test_reproduce_data_typo_is_an_error_and_creates_nothing(tmp_path):
    """Old: `reproduce --data` with a typo generated a new register at the typo path and reported on it."""
    typo = tmp_path / "data" / "synthetc"
    out = tmp_path / "output"
    res = _run("reproduce", "--data", typo, "--out", out, "--scale", "0.002", "--only", "comparison")
    _one_line_error(res, str(typo), "does not exist", "--synthesize")
    assert list(tmp_path.iterdir()) == []


# -- killed runs ----------------------------------------------------------------------------------------

def _wait_for(predicate, timeout: float = 120.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_kill_9_during_synth_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    reg = tmp_path / "reg"
    proc = subprocess.Popen([sys.executable, "-m", "lumbarstats", "synth", "--out", str(reg), "--scale", "0.002",
                             "--seed", "9"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the staging folder beside OUT appears once the simulation starts writing
        assert _wait_for(lambda: any(p.name != "reg" for p in tmp_path.iterdir())), "no staging folder appeared"
        proc.send_signal(signal.SIGKILL)  # while it writes the tables
    finally:
        proc.wait(timeout=30)
    left = [p for p in tmp_path.iterdir() if p.name != "reg"]
    assert left and not (reg / "metadata.json").exists()
    assert _run("synth", "--out", reg, "--scale", "0.001", "--seed", "9").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg"]  # the killed run's temporary is gone
    assert (reg / "population.parquet").is_file()


def test_clean_stale_temporaries_removes_only_the_toolkits_dead_ones(tmp_path):
    dead = 2**22 + 12345  # above the usual pid range
    while _pid_exists(dead):
        dead += 1
    stale_file = tmp_path / f".table.csv{ls.io.TEMP_TAG}{dead}-ab12cd34.tmp"
    stale_file.write_text("half", encoding="utf-8")
    live_file = tmp_path / f".other.csv{ls.io.TEMP_TAG}{os.getpid()}-ab12cd34.tmp"
    live_file.write_text("being written", encoding="utf-8")
    stale_dir = tmp_path / f".reg{ls.io.TEMP_TAG}{dead}-00ff00ff"
    stale_dir.mkdir()
    ls.io.write_marker(stale_dir, "register", temporary=True, pid=dead, host=__import__("socket").gethostname())
    (stale_dir / "population.parquet").write_bytes(b"x")
    unmarked = tmp_path / f".user{ls.io.TEMP_TAG}{dead}-deadbeef"  # the right name but no marker: not ours
    unmarked.mkdir()
    (unmarked / "keep.txt").write_text("keep", encoding="utf-8")
    (tmp_path / ".hidden_user_file").write_text("keep", encoding="utf-8")
    removed = ls.io.clean_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([stale_file.name, stale_dir.name])
    assert live_file.exists() and (unmarked / "keep.txt").exists() and (tmp_path / ".hidden_user_file").exists()


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.mark.slow
def test_kill_9_during_reproduce_leaves_a_visible_incomplete_marker(tiny_register, tmp_path):
    out = tmp_path / "output"
    proc = subprocess.Popen([sys.executable, "-m", "lumbarstats", "reproduce", "--data", str(tiny_register),
                             "--out", str(out), "--only", "annual"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert _wait_for(lambda: (out / "notebooks").is_dir()), "reproduce did not start writing"
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its notebook kernels
    finally:
        proc.wait(timeout=30)
    marker = out / ls.reproduce.INCOMPLETE_NAME
    assert marker.is_file() and "INCOMPLETE" in marker.read_text(encoding="utf-8")


def test_reproduce_marks_a_failed_run_incomplete_and_keeps_logs_outside(tiny_register, tmp_path, monkeypatch):
    out = tmp_path / "output"

    def broken(out_, data_):
        raise RuntimeError("deliberate")

    monkeypatch.setattr(ls.reproduce, "comparison_table", broken)
    assert ls.reproduce.run(tiny_register, out, only=["comparison"]) is False
    marker = (out / ls.reproduce.INCOMPLETE_NAME).read_text(encoding="utf-8")
    assert "comparison" in marker and "do not publish" in marker
    logs = ls.reproduce.logs_dir(out)
    assert logs == tmp_path / "output.logs" and "deliberate" in (logs / "comparison.csv.log").read_text()
    assert not (out / "logs").exists()
    monkeypatch.undo()
    assert ls.reproduce.run(tiny_register, out, only=["comparison"]) is True
    assert not (out / ls.reproduce.INCOMPLETE_NAME).exists()  # removed only when every step succeeded
    steps = json.loads((logs / ls.reproduce.STEP_TIMES_NAME).read_text(encoding="utf-8"))["steps"]
    assert [(s["step"], s["status"]) for s in steps] == [("comparison", "ok")] and steps[0]["seconds"] >= 0
    assert ls.io.read_marker(out)["kind"] == "output"


def test_failed_notebook_copy_goes_outside_the_output(tmp_path):
    if ls.batch.kernel_path("lumbarstats") is None:
        ls.batch.install_kernel("lumbarstats")
    out = tmp_path / "output"
    with pytest.raises(Exception, match="deliberate failure"):
        ls.reproduce.execute_notebook(NOTEBOOK, out / "notebooks" / "x.ipynb",
                                      {"region": "Syddanmark", "fail_region": "Syddanmark"}, "lumbarstats")
    assert (tmp_path / "output.logs" / "x.failed.ipynb").is_file()
    assert not (out / "notebooks" / "x.ipynb").exists()
    assert [p.name for p in (out / "notebooks").iterdir()] == []  # no temporary left
    assert not (out / "logs").exists()


# -- reproduce: bad input, nothing written ---------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--scale", "0.01"], ["scale 0.002 (asked: 0.01)"]),
    (["--seed", "12"], ["seed 11 (asked: 12)"]),
    (["--only", "tables_and_stuff"], ["unknown step", "tables_and_stuff"]),
])
def test_reproduce_refuses_bad_requests(tiny_register, tmp_path, args, words):
    before = _snapshot(tiny_register)
    res = _run("reproduce", "--data", tiny_register, "--out", tmp_path / "out", *args)
    _one_line_error(res, *words)
    assert list(tmp_path.iterdir()) == [] and _snapshot(tiny_register) == before


def test_reproduce_refuses_a_foreign_output_folder(tiny_register, tmp_path):
    thesis = _thesis(tmp_path)
    before = _snapshot(thesis)
    res = _run("reproduce", "--data", tiny_register, "--out", thesis, "--only", "comparison")
    _one_line_error(res, str(thesis), "not made by lumbarstats", "--force")
    assert _snapshot(thesis) == before and sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]


def test_reproduce_force_writes_beside_foreign_files(tiny_register, tmp_path):
    thesis = _thesis(tmp_path)
    before = _snapshot(thesis)
    res = _run("reproduce", "--data", tiny_register, "--out", thesis, "--only", "comparison", "--force")
    assert res.exit_code == 0, res.output
    after = _snapshot(thesis)
    assert {k: after[k] for k in before} == before and "comparison.csv" in after


@pytest.mark.parametrize("where", ["out_is_file", "parent_is_file"])
def test_reproduce_output_path_that_is_a_file(tiny_register, tmp_path, where):
    f = tmp_path / "report.docx"
    f.write_bytes(b"my report")
    out = f if where == "out_is_file" else f / "output"
    res = _run("reproduce", "--data", tiny_register, "--out", out, "--only", "comparison")
    _one_line_error(res, str(f), "is a file")
    assert f.read_bytes() == b"my report" and sorted(p.name for p in tmp_path.iterdir()) == ["report.docx"]


@pytest.mark.parametrize("err, words", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_reproduce_read_only_output(tiny_register, tmp_path, monkeypatch, err, words):
    """A read-only file system or a folder without write permission (we run as root, so simulated): one
    line, nothing written."""
    real_mkdir = Path.mkdir

    def refuse(self, *a, **k):
        if tmp_path in self.parents or self == tmp_path:
            raise OSError(err, os.strerror(err), str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", refuse)
    res = _run("reproduce", "--data", tiny_register, "--out", tmp_path / "out", "--only", "comparison")
    _one_line_error(res, words, str(tmp_path / "out"))
    assert list(tmp_path.iterdir()) == []


def test_reproduce_synthesize_generates_where_asked(tmp_path):
    data = tmp_path / "elsewhere" / "reg"
    res = _run("reproduce", "--data", data, "--out", tmp_path / "out", "--synthesize", "--scale", "0.001",
               "--seed", "3", "--only", "comparison")
    assert res.exit_code == 0, res.output
    assert json.loads((data / "metadata.json").read_text(encoding="utf-8"))["scale"] == 0.001
    assert (tmp_path / "out" / "comparison.csv").is_file()


def test_reproduce_full_disk_stops_with_one_line(tiny_register, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ls.io.os, "fsync", full)
    res = _run("reproduce", "--data", tiny_register, "--out", out, "--only", "comparison")
    _one_line_error(res, "no space left")
    assert not [p for p in out.rglob("*") if ls.io.TEMP_TAG in p.name]  # no half-written file


# -- synth and batch: bad input, nothing written -----------------------------------------------------------

def test_synth_foreign_folder_and_file_as_output(tmp_path):
    thesis = _thesis(tmp_path)
    before = _snapshot(thesis)
    _one_line_error(_run("synth", "--out", thesis, "--scale", "0.001"), "not made by lumbarstats")
    assert _snapshot(thesis) == before
    f = tmp_path / "data.csv"
    f.write_text("a,b\n", encoding="utf-8")
    _one_line_error(_run("synth", "--out", f, "--scale", "0.001"), "is a file")
    assert f.read_text(encoding="utf-8") == "a,b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "thesis"]


def test_synth_force_never_overwrites_a_foreign_file_of_the_same_name(tmp_path):
    thesis = _thesis(tmp_path)
    (thesis / "population.parquet").write_bytes(b"the user's own file")
    before = _snapshot(thesis)
    res = _run("synth", "--out", thesis, "--scale", "0.001", "--force")
    _one_line_error(res, "population.parquet", "not written by lumbarstats")
    assert _snapshot(thesis) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]


def test_synth_force_writes_beside_foreign_files(tmp_path):
    thesis = _thesis(tmp_path)
    before = _snapshot(thesis)
    assert _run("synth", "--out", thesis, "--scale", "0.001", "--force").exit_code == 0
    after = _snapshot(thesis)
    assert {k: after[k] for k in before} == before and "population.parquet" in after
    marker = ls.io.read_marker(thesis)
    assert "notes.txt" not in marker["files"] and "population.parquet" in marker["files"]


def test_synth_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ls.io.os, "fsync", full)
    res = _run("synth", "--out", tmp_path / "reg", "--scale", "0.001")
    _one_line_error(res, "no space left")
    assert list(tmp_path.iterdir()) == []


def test_ingest_refuses_a_foreign_output_folder(tmp_path):
    thesis = _thesis(tmp_path)
    (thesis / "population.parquet").write_bytes(b"the user's own file")
    raw = tmp_path / "raw"
    raw.mkdir()
    before = _snapshot(thesis)
    _one_line_error(_run("ingest", "--raw", raw, "--out", thesis), "not made by lumbarstats")
    assert _snapshot(thesis) == before


def test_batch_output_path_that_is_a_file(tmp_path, monkeypatch):
    monkeypatch.setattr(ls.batch, "require_kernel", lambda name: Path("."))
    f = tmp_path / "runs"
    f.write_text("mine", encoding="utf-8")
    _one_line_error(_run("batch", NOTEBOOK, "--out", f, "--regions", "Syddanmark"), "is a file")
    assert f.read_text(encoding="utf-8") == "mine" and [p.name for p in tmp_path.iterdir()] == ["runs"]


def test_batch_refuses_a_foreign_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(ls.batch, "require_kernel", lambda name: Path("."))
    thesis = _thesis(tmp_path)
    before = _snapshot(thesis)
    _one_line_error(_run("batch", NOTEBOOK, "--out", thesis, "--regions", "Syddanmark"), "not made by lumbarstats")
    assert _snapshot(thesis) == before


@pytest.mark.parametrize("args, words", [
    (["-p", "region=Fyn"], ["set by the batch", "--regions"]),
    (["-p", "scale=[1, 2"], ["not a valid YAML"]),
    (["-p", "nosuch=1"], ["not declared"]),
    (["--regions", "Fyn"], ["unknown region 'Fyn'"]),
])
def test_batch_bad_parameters_and_regions(tmp_path, args, words):
    _one_line_error(_run("batch", NOTEBOOK, "--out", tmp_path / "b", *args), *words)
    assert list(tmp_path.iterdir()) == []


def test_batch_region_folder_in_the_way_is_refused(tmp_path, monkeypatch):
    """With --force the batch writes into a foreign folder, but a foreign region folder is never replaced."""
    monkeypatch.setattr(ls.batch, "require_kernel", lambda name: Path("."))
    out = tmp_path / "b"
    (out / "syddanmark").mkdir(parents=True)
    (out / "syddanmark" / "mine.csv").write_text("keep", encoding="utf-8")
    res = _run("batch", NOTEBOOK, "--out", out, "--regions", "Syddanmark", "--force")
    _one_line_error(res, "syddanmark", "not made by lumbarstats")
    assert (out / "syddanmark" / "mine.csv").read_text(encoding="utf-8") == "keep"


def test_batch_accepts_region_names_in_any_form():
    assert ls.batch.resolve_regions("SJAELLAND, sjælland,region nordjylland,Hele landet") == [
        "Sjælland", "Nordjylland", "Landsplan"]


# -- the io writers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("err, words", [
    (errno.ENOSPC, "no space left"), (errno.EROFS, "read-only"), (errno.EACCES, "permission denied"),
    (errno.EDQUOT, "quota"),
])
def test_io_write_errors_are_output_errors_and_keep_the_old_file(tmp_path, monkeypatch, err, words):
    target = tmp_path / "t.csv"
    target.write_text("old", encoding="utf-8")

    def fail(fd):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(ls.io.os, "fsync", fail)
    with pytest.raises(ls.io.OutputError, match=words) as exc:
        ls.io.write_csv(pd.DataFrame({"a": [1]}), target)
    assert str(target) in str(exc.value) and len(str(exc.value).splitlines()) == 1
    assert target.read_text(encoding="utf-8") == "old" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_io_writers_for_every_file_type(tmp_path):
    import matplotlib.pyplot as plt

    df = pd.DataFrame({"a": [1, 2]})
    ls.io.write_csv(df, tmp_path / "x" / "a.csv")
    ls.io.write_parquet(df, tmp_path / "a.parquet")
    ls.io.write_json({"å": 1}, tmp_path / "a.json")
    ls.io.write_text("tekst æøå", tmp_path / "a.txt")
    ls.io.write_bytes(b"\x00\x01", tmp_path / "a.bin")
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    for suffix in ("png", "svg", "pdf"):
        ls.io.save_figure(fig, tmp_path / f"f.{suffix}")
    plt.close(fig)
    from openpyxl import Workbook

    wb = Workbook()
    ls.io.write_with(tmp_path / "a.xlsx", wb.save)
    assert pd.read_csv(tmp_path / "x" / "a.csv")["a"].tolist() == [1, 2]
    assert pd.read_parquet(tmp_path / "a.parquet")["a"].tolist() == [1, 2]
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8")) == {"å": 1}
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    assert b"<svg" in (tmp_path / "f.svg").read_bytes() and (tmp_path / "a.xlsx").read_bytes()[:2] == b"PK"
    assert not [p for p in tmp_path.rglob("*") if ls.io.TEMP_TAG in p.name]
    with pytest.raises(ls.io.OutputError, match="is a folder"):
        ls.io.write_csv(df, tmp_path / "x")
    with pytest.raises(ls.io.OutputError, match="is a file"):
        ls.io.write_csv(df, tmp_path / "a.json" / "b.csv")


def test_remove_owned_tree_refuses_a_folder_without_the_marker(tmp_path):
    thesis = _thesis(tmp_path)
    with pytest.raises(ls.io.FolderNotOwnedError):
        ls.io.remove_owned_tree(thesis)
    assert (thesis / "notes.txt").exists()


def test_legacy_register_and_output_are_recognised(tmp_path, tiny_register):
    """Folders written before the marker existed are still the toolkit's (by their files), nothing else is."""
    import shutil

    legacy = tmp_path / "reg"
    shutil.copytree(tiny_register, legacy)
    (legacy / ls.io.MARKER_NAME).unlink()
    assert ls.synth.is_synthetic_register(legacy)
    ls.io.check_folder(legacy, "register", recognise=ls.synth.is_synthetic_register)
    old_out = tmp_path / "output"
    (old_out / "tables").mkdir(parents=True)
    (old_out / "comparison.csv").write_text("x\n", encoding="utf-8")
    ls.io.check_folder(old_out, "output", recognise=ls.reproduce._is_legacy_output)
    (old_out / "thesis.docx").write_bytes(b"x")
    with pytest.raises(ls.io.FolderNotOwnedError):
        ls.io.check_folder(old_out, "output", recognise=ls.reproduce._is_legacy_output)
