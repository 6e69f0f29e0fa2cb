"""Offline wheelhouse (tools/wheelhouse.py): the build's own check, and an offline install end to end.

The check tests below are fast and run always (tiny fabricated wheels, no network).
The end-to-end test builds the Linux wheelhouse for the running Python (pip downloads ~230 MB the first
time; pip's cache makes later runs quick), installs it into a fresh virtual environment with
``--no-index`` and pip's configuration switched off, and runs the toolkit from there. It needs network
access to the package index and takes 1–3 minutes, so it runs only with ``LUMBARSTATS_WHEELHOUSE_TEST=1``::

    LUMBARSTATS_WHEELHOUSE_TEST=1 .venv/bin/pytest tests/test_wheelhouse.py -q
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("wheelhouse_tool", ROOT / "tools" / "wheelhouse.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while building the classes
    spec.loader.exec_module(mod)
    return mod


wh = _load_tool()


def _wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any", requires=()) -> Path:
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}.dist-info/METADATA", meta)
        zf.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return path


def _status(check) -> dict:
    return {r["name"]: r["ok"] for r in check.rows}


@pytest.fixture
def house(tmp_path):
    """A wheelhouse whose download ran on Linux: Windows-only requirements absent, Linux-only present."""
    _wheel(tmp_path, "lumbarstats", "0.1.0", requires=[
        "click>=8", "numpy>=1.26", 'tomli>=1; python_version < "3.12"', 'jupyterlab>=4; extra == "notebook"'])
    _wheel(tmp_path, "click", "8.1.7", requires=['colorama; platform_system == "Windows"'])
    _wheel(tmp_path, "numpy", "2.0.0", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    _wheel(tmp_path, "tomli", "2.0.1")
    _wheel(tmp_path, "pexpect", "4.9.0", tag="py2.py3-none-any")  # needed on Linux only
    return tmp_path


def test_check_linux_complete(house):
    check = wh.check_target(house, wh.Target("linux", "3.11"), ["lumbarstats"])
    assert check.ok and check.missing == []
    assert _status(check) == {"click": True, "lumbarstats": True, "numpy": True, "tomli": True}
    assert [p.name for p in check.unused] == ["pexpect-4.9.0-py2.py3-none-any.whl"]


def test_check_windows_reports_marker_and_platform_gaps(house):
    # pip download --platform win_amd64 evaluates markers for the build machine: colorama is missing,
    # and a manylinux numpy wheel is not installable on Windows
    check = wh.check_target(house, wh.Target("windows", "3.11"), ["lumbarstats"])
    assert not check.ok
    assert [m.split()[0] for m in check.missing] == ["colorama"]
    rows = {r["name"]: r for r in check.rows}
    assert rows["numpy"]["ok"] is False and rows["numpy"]["problem"].startswith("incompatible")
    assert rows["click"]["ok"] and rows["tomli"]["ok"]
    # fixed: the Windows wheels are there
    (house / "numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl").unlink()
    _wheel(house, "numpy", "2.0.0", tag="cp311-cp311-win_amd64")
    _wheel(house, "colorama", "0.4.6", tag="py2.py3-none-any")
    assert wh.check_target(house, wh.Target("windows", "3.11"), ["lumbarstats"]).ok


def test_check_python_version_markers_and_abi(house):
    (house / "numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl").unlink()
    _wheel(house, "numpy", "2.0.0", tag="cp39-abi3-manylinux_2_28_x86_64")
    check = wh.check_target(house, wh.Target("linux", "3.12"), ["lumbarstats"])
    assert check.ok  # abi3 from cp39 installs on cp312; glibc 2.28 allowed by default
    assert "tomli" not in _status(check)  # python_version < "3.12" is false for the target
    old_glibc = wh.check_target(house, wh.Target("linux", "3.12", glibc="2.17"), ["lumbarstats"])
    assert _status(old_glibc)["numpy"] is False


def test_check_versions_and_extras(house):
    (house / "click-8.1.7-py3-none-any.whl").unlink()
    _wheel(house, "click", "7.1.0")
    check = wh.check_target(house, wh.Target("linux", "3.11"), ["lumbarstats[notebook]"])
    rows = {r["name"]: r for r in check.rows}
    assert rows["click"]["problem"] == "version 7.1.0 does not satisfy >=8"
    assert [m.split()[0] for m in check.missing] == ["jupyterlab>=4"]


def test_missing_modules(tmp_path):
    pkg = tmp_path / "src" / "lumbarstats"
    (pkg / "trend").mkdir(parents=True)
    for f in ("__init__.py", "cli.py", "trend/__init__.py", "trend/its.py"):
        (pkg / f).write_text("")
    whl = tmp_path / "lumbarstats-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        for f in ("lumbarstats/__init__.py", "lumbarstats/cli.py", "lumbarstats-0.1.0.dist-info/METADATA"):
            zf.writestr(f, "")
    assert wh.missing_modules(pkg, whl) == ["lumbarstats/trend/__init__.py", "lumbarstats/trend/its.py"]


def test_targets_and_bad_input():
    targets = wh.make_targets(["windows", "linux"], ["3.11", "3.12"])
    assert [t.name for t in targets] == ["win_amd64-cp311", "win_amd64-cp312",
                                         "manylinux_x86_64-cp311", "manylinux_x86_64-cp312"]
    linux = wh.Target("linux", "3.11").pip_platforms
    assert {"manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"} <= set(linux)
    assert "manylinux_2_29_x86_64" not in linux
    with pytest.raises(ValueError, match="unknown platform 'macos'"):
        wh.make_targets(["macos"], ["3.11"])
    with pytest.raises(ValueError, match="write it as 3.11"):
        wh.make_targets(["linux"], ["311"])
    with pytest.raises(ValueError, match="no optional dependency group 'gpu'"):
        wh.project_requirements(ROOT, ["gpu"])
    reqs = wh.project_requirements(ROOT, [])
    assert any(r.startswith("papermill") for r in reqs)


# -- end to end -------------------------------------------------------------------------------------
def _run(cmd: list[str], **kw) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    return proc, time.perf_counter() - t0


@pytest.mark.slow
@pytest.mark.wheelhouse
@pytest.mark.skipif(os.environ.get("LUMBARSTATS_WHEELHOUSE_TEST") != "1",
                    reason="builds a wheelhouse with pip (network); set LUMBARSTATS_WHEELHOUSE_TEST=1")
def test_offline_install_end_to_end(tmp_path):
    timings = {}
    out = tmp_path / "wheelhouse"
    proc, timings["build"] = _run([sys.executable, ROOT / "tools" / "wheelhouse.py", "--out", out, "--current",
                                   "--no-check-install"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    target = wh.make_targets(["linux"], [f"{sys.version_info[0]}.{sys.version_info[1]}"])[0]
    folder = out / target.name
    lock = (out / f"requirements-lock-{target.name}.txt").read_text().splitlines()
    pins = [ln for ln in lock if not ln.startswith("#")]
    assert any(ln.startswith("lumbarstats==0.1.0 --hash=sha256:") for ln in pins)
    assert len(pins) == len(list(folder.glob("*.whl")))

    t0 = time.perf_counter()
    py = wh.install_offline(folder, tmp_path / "venv", sys.executable)
    timings["venv+install"] = time.perf_counter() - t0
    env = wh.offline_env()
    work = tmp_path / "work"  # outside the repository: the installed package must carry its data files
    work.mkdir()
    proc, timings["help"] = _run([py, "-m", "lumbarstats", "--help"], cwd=work, env=env)
    assert proc.returncode == 0 and "batch" in proc.stdout, proc.stderr
    proc, _ = _run([py, "-c", "import lumbarstats, sys; print(lumbarstats.__file__)"], cwd=work, env=env)
    assert Path(proc.stdout.strip()).is_relative_to(tmp_path / "venv"), proc.stdout + proc.stderr

    def installed(module: str) -> bool:  # what the wheel carries, not what the work tree has now
        code = f"import importlib.util; print(importlib.util.find_spec('lumbarstats.{module}') is not None)"
        return _run([py, "-c", code], cwd=work, env=env)[0].stdout.strip() == "True"

    if not installed("synth"):
        pytest.skip(f"lumbarstats.synth not written yet; install worked ({timings})")
    data = tmp_path / "synthetic"
    proc, timings["synth"] = _run([py, "-m", "lumbarstats", "synth", "--scale", "0.001", "--out", data],
                                  cwd=work, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (data / "population.parquet").exists()
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()}, flush=True)
    if installed("reproduce"):
        proc, _ = _run([py, "-m", "lumbarstats", "install-kernel"], cwd=work, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        # the report notebooks travel beside the wheelhouse (docs/research-server.md, step 1)
        shutil.copytree(ROOT / "notebooks", work / "notebooks")
        report = tmp_path / "report"
        proc, timings["reproduce"] = _run([py, "-m", "lumbarstats", "reproduce", "--data", data, "--out", report,
                                           "--formats", "html"], cwd=work, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert any(report.rglob("*"))
        print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
    else:
        print("lumbarstats.reproduce not in the wheel yet: reproduce not run")


# -- the wheelhouse takes its wheels from the lock ----------------------------------------------------
def _lock_pins(tmp_path, lines: list[str], target) -> dict:
    text = "".join(f"{ln} --hash=sha256:{'a' * 64}\n" for ln in lines)
    (tmp_path / "requirements.lock").write_text(text, encoding="utf-8")
    return wh.lock.pins_for(wh.lock.read_lock(tmp_path / "requirements.lock"), target.environment)


@pytest.fixture
def index(tmp_path):
    """Wheels a fake ``pip download --no-deps --require-hashes`` serves: exactly the pinned name==version."""
    folder = tmp_path / "index"
    folder.mkdir()
    _wheel(folder, "click", "8.1.7", requires=['colorama; platform_system == "Windows"'])
    _wheel(folder, "click", "8.2.0", requires=['colorama; platform_system == "Windows"'])
    _wheel(folder, "colorama", "0.4.6", tag="py2.py3-none-any")
    _wheel(folder, "numpy", "2.0.0", tag="cp311-cp311-win_amd64")
    _wheel(folder, "numpy", "2.0.0", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    project = tmp_path / "project"
    project.mkdir()
    own = _wheel(project, "lumbarstats", "0.1.0", requires=["click>=8", "numpy>=1.26"])
    return folder, own


def _serve(index_folder: Path, calls: list):
    def download(target, folder, pins, built, log):
        calls.append(sorted(p.name for p in pins))
        for pin in pins:
            for whl in index_folder.glob(f"{pin.name}-{pin.version}-*.whl"):
                if wh._tag_kind(whl, target)[0]:
                    shutil.copy2(whl, folder / whl.name)
    return download


def test_download_takes_the_locked_versions_with_target_markers(tmp_path, index, monkeypatch):
    index_folder, own = index
    calls: list = []
    monkeypatch.setattr(wh, "_download_pins", _serve(index_folder, calls))
    target = wh.Target("windows", "3.11")
    pins = _lock_pins(tmp_path, ["click==8.1.7", "colorama==0.4.6 ; sys_platform == 'win32'", "numpy==2.0.0",
                                 "pytest==9.0.0"], target)
    check = wh.download_target(target, tmp_path / "out", pins, own, tmp_path / "built", tmp_path / "log")
    assert check.ok, wh.format_check(check, verbose=True)
    assert {r["name"]: r["version"] for r in check.rows} == {
        "lumbarstats": "0.1.0", "click": "8.1.7", "colorama": "0.4.6", "numpy": "2.0.0"}
    # round 1: lumbarstats's requirements; round 2: colorama, needed by click on Windows only; never pytest
    assert calls == [["click", "numpy"], ["colorama"]]

    calls.clear()
    linux = wh.Target("linux", "3.11")
    check = wh.download_target(linux, tmp_path / "linux", _lock_pins(tmp_path, ["click==8.1.7", "numpy==2.0.0"],
                               linux), own, tmp_path / "built", tmp_path / "log")
    assert check.ok and calls == [["click", "numpy"]]


def test_download_stops_on_a_requirement_the_lock_lacks(tmp_path, index, monkeypatch):
    index_folder, own = index
    monkeypatch.setattr(wh, "_download_pins", _serve(index_folder, []))
    target = wh.Target("windows", "3.11")
    pins = _lock_pins(tmp_path, ["click==8.1.7", "numpy==2.0.0"], target)  # no colorama for Windows
    with pytest.raises(RuntimeError, match=r"win_amd64-cp311: requirement\(s\) not pinned in the lock: colorama"):
        wh.download_target(target, tmp_path / "out", pins, own, tmp_path / "built", tmp_path / "log")


def test_check_flags_a_wheel_that_is_not_the_locked_version(house, tmp_path):
    target = wh.Target("linux", "3.11")
    pins = _lock_pins(tmp_path, ["click==8.2.0", "numpy==2.0.0", "tomli==2.0.1"], target)
    rows = {r["name"]: r for r in wh.check_target(house, target, ["lumbarstats"], pins).rows}
    assert rows["click"]["problem"] == "the lock pins 8.2.0" and not rows["click"]["ok"]
    assert rows["numpy"]["ok"] and rows["lumbarstats"]["ok"]  # the project itself is not in the lock
    del pins["tomli"]
    rows = {r["name"]: r for r in wh.check_target(house, target, ["lumbarstats"], pins).rows}
    assert rows["tomli"]["problem"] == "not in the lock"


def test_build_refuses_a_lock_that_does_not_satisfy_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\ndependencies = ["numpy>=2"]\n',
                                             encoding="utf-8")
    (tmp_path / "requirements.lock").write_text(f"numpy==1.26.4 --hash=sha256:{'a' * 64}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"(?s)does not satisfy pyproject.toml.*'numpy>=2' \(linux, Python 3.11\): "
                                         r"the lock pins numpy==1.26.4"):
        wh.build(tmp_path / "wheelhouse", wh.make_targets(["linux"], ["3.11"]), project=tmp_path)
    assert not (tmp_path / "wheelhouse").exists()  # nothing built or written
