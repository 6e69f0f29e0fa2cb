"""Build an offline wheelhouse for lumbarstats (research servers without internet; issue 9).

Run on a machine with internet access (``make wheelhouse`` or ``python tools/wheelhouse.py --out wheelhouse``)::

    wheelhouse/
      win_amd64-cp311/        lumbarstats + every dependency as wheels for Windows x86_64, CPython 3.11
      win_amd64-cp312/        ... CPython 3.12
      manylinux_x86_64-cp311/ ... Linux x86_64 (manylinux, glibc >= 2.17; some wheels need up to --glibc)
      manylinux_x86_64-cp312/
      requirements-lock-<target>.txt   exact versions (name==version --hash=sha256:...), also as
                                       <target>/requirements-lock.txt so one folder is self-contained
      check-<target>.txt               the build's own check, one line per distribution

How: ``pip wheel --no-deps`` builds lumbarstats itself (and the build fails if the wheel lacks any module
of the source tree, e.g. a subpackage missing from ``[tool.setuptools] packages``). The dependencies come
from the project's lock, ``requirements.lock`` (tools/lock.py; the same file ``make test`` and ``make
reproduce`` install): nothing is resolved here. Each target gets exactly the locked versions, downloaded
with ``pip download --no-deps --require-hashes --only-binary=:all: --platform … --python-version …
--implementation cp``, so every wheel is checked against the lock's sha256 hashes.

Which locked distributions a target needs follows from the wheels themselves, with markers evaluated for
the *target* (Windows/Linux, Python 3.11/3.12), not for the machine that builds (pip would evaluate
``; sys_platform == "win32"`` for this machine and miss e.g. ``colorama`` on Windows): starting from
lumbarstats's own wheel, the build walks the ``Requires-Dist`` metadata of the downloaded wheels and
downloads, round by round, the locked pin of every requirement not yet present, until nothing is
missing. A requirement the lock does not pin for the target stops the build (regenerate the lock:
``make lock``). The final check verifies that every required distribution is present, in the locked
version, satisfying every specifier, as a wheel compatible with the target
(``win_amd64``/``manylinux``/``abi3``/``none-any``). A dependency that publishes only a source
distribution is built here with ``pip wheel`` from its hash-checked sdist and kept if the result is pure
Python (``py3-none-any``). The command prints the check as a table and exits non-zero if any target
does not resolve completely.

Finally (``--check-install``, on by default where possible) a fresh virtual environment is created for
each Linux target whose Python version matches an interpreter on this machine, and
``pip install --no-index --find-links <target> lumbarstats`` is run in it with pip's configuration
switched off (no index, no extra find-links), followed by ``pip check`` and ``python -m lumbarstats --help``.

Standard library + ``packaging`` only; no shell: works the same on Windows.
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.tags import Tag, compatible_tags, cpython_tags
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version
except ImportError:  # pragma: no cover - pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.tags import Tag, compatible_tags, cpython_tags
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
    from pip._vendor.packaging.version import Version



def _load_lock_tool():
    """tools/lock.py (reading and checking requirements.lock), also when this file is loaded by path."""
    spec = importlib.util.spec_from_file_location("lumbarstats_lock_tool", Path(__file__).with_name("lock.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while building the classes
    spec.loader.exec_module(mod)
    return mod


lock = _load_lock_tool()
ROOT = Path(__file__).resolve().parents[1]
PYTHON_VERSIONS = ("3.11", "3.12")
PLATFORMS = ("windows", "linux")
DEFAULT_GLIBC = "2.28"


# -- targets ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One platform + CPython version of the wheelhouse."""

    system: str  # "windows" | "linux"
    python: str  # "3.11"
    glibc: str = DEFAULT_GLIBC

    @property
    def name(self) -> str:
        plat = "win_amd64" if self.system == "windows" else "manylinux_x86_64"
        return f"{plat}-cp{self.python.replace('.', '')}"

    @property
    def pip_platforms(self) -> list[str]:
        if self.system == "windows":
            return ["win_amd64"]
        major, minor = (int(x) for x in self.glibc.split("."))
        plats = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
        return plats + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]

    @property
    def tags(self) -> set[Tag]:
        """Wheel tags a CPython of this version on this platform installs (packaging.tags)."""
        ver = tuple(int(x) for x in self.python.split("."))
        cp = f"cp{ver[0]}{ver[1]}"
        plats = self.pip_platforms
        tags = set(cpython_tags(ver, abis=[cp, "abi3", "none"], platforms=plats))
        tags |= set(compatible_tags(ver, cp, plats))
        return tags

    @property
    def environment(self) -> dict[str, str]:
        """PEP 508 marker environment of the target (not of the machine that builds the wheelhouse)."""
        return lock.marker_environment(self.system, self.python)


def make_targets(platforms, pythons, glibc: str = DEFAULT_GLIBC) -> list[Target]:
    out = []
    for plat in platforms:
        if plat not in PLATFORMS:
            raise ValueError(f"unknown platform {plat!r}; use any of {PLATFORMS}")
        for py in pythons:
            if not re.fullmatch(r"3\.\d+", py):
                raise ValueError(f"python version {py!r}: write it as 3.11")
            out.append(Target(plat, py, glibc))
    return out


# -- wheel metadata -----------------------------------------------------------------------------------
@dataclass
class Dist:
    name: str  # canonical
    version: str
    path: Path
    requires: list[str] = field(default_factory=list)


def read_wheel(path: Path) -> Dist:
    """Name, version and Requires-Dist of a wheel (from its .dist-info/METADATA)."""
    with zipfile.ZipFile(path) as zf:
        meta = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if not meta:
            raise ValueError(f"{path.name}: no .dist-info/METADATA; not a wheel")
        msg = email.parser.Parser().parsestr(zf.read(meta[0]).decode("utf-8"))
    return Dist(canonicalize_name(msg["Name"]), msg["Version"], path, msg.get_all("Requires-Dist") or [])


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Check:
    """Result of checking one target folder: rows of the table, requirements pip missed, extra wheels."""

    target: Target
    rows: list[dict]
    missing: list[str]
    unused: list[Path]
    missing_names: list[str] = field(default_factory=list)  # canonical names of ``missing``

    @property
    def ok(self) -> bool:
        return not self.missing and all(r["ok"] for r in self.rows)


def _tag_kind(path: Path, target: Target) -> tuple[bool, str]:
    _, _, _, tags = parse_wheel_filename(path.name)
    good = sorted(str(t) for t in tags if t in target.tags)
    if not good:
        return False, "incompatible: " + ",".join(sorted(str(t) for t in tags))
    t = good[0].split("-")
    if t[2] == "any":
        return True, "pure Python (none-any)"
    return True, f"{t[2]}" + (" (abi3)" if t[1] == "abi3" else "")


def check_target(folder: Path, target: Target, roots: list[str], pins: dict | None = None) -> Check:
    """Walk the requirement graph from ``roots`` under the target's markers through the wheels in ``folder``.

    Every reached distribution must have exactly one wheel in ``folder`` whose version satisfies all the
    specifiers that reach it and whose tags the target installs, and, given the lock's ``pins`` for the
    target (name -> lock.Pin), is the locked version. Returns the table rows
    (name, version, wheel, kind, required_by, ok, problem), the requirements with no wheel at all, and the
    wheels no requirement reaches.
    """
    roots_names = {canonicalize_name(Requirement(r).name) for r in roots}
    by_name: dict[str, list[Dist]] = {}
    for whl in sorted(folder.glob("*.whl")):
        d = read_wheel(whl)
        by_name.setdefault(d.name, []).append(d)
    env = target.environment
    seen: dict[str, dict] = {}
    done: set[tuple[str, frozenset]] = set()
    missing: dict[str, str] = {}
    queue: list[tuple[Requirement, str]] = [(Requirement(r), "(root)") for r in roots]
    while queue:
        req, parent = queue.pop(0)
        name = canonicalize_name(req.name)
        dists = by_name.get(name)
        if not dists:
            plain = f"{req.name}{'[' + ','.join(sorted(req.extras)) + ']' if req.extras else ''}{req.specifier}"
            missing.setdefault(name, f"{plain}  (required by {parent})")
            continue
        row = seen.setdefault(name, {"name": name, "required_by": set(), "specs": []})
        row["required_by"].add(parent)
        row["specs"].append(str(req.specifier))
        key = (name, frozenset(req.extras))
        if key in done:
            continue
        done.add(key)
        d = dists[0]
        for line in d.requires:
            sub = Requirement(line)
            extras = [""] + sorted(req.extras)
            if sub.marker is not None and not any(sub.marker.evaluate({**env, "extra": e}) for e in extras):
                continue
            queue.append((sub, d.name))
    rows = []
    for name, info in sorted(seen.items()):
        dists = by_name[name]
        d = dists[0]
        problems = []
        if len(dists) > 1:
            problems.append("several wheels: " + ", ".join(x.path.name for x in dists))
        ok_tag, kind = _tag_kind(d.path, target)
        if not ok_tag:
            problems.append(kind)
        for spec in info["specs"]:
            if spec and not Requirement(f"{name}{spec}").specifier.contains(d.version, prereleases=True):
                problems.append(f"version {d.version} does not satisfy {spec}")
        if pins is not None and name not in roots_names:
            if name not in pins:
                problems.append("not in the lock")
            elif pins[name].version != d.version:
                problems.append(f"the lock pins {pins[name].version}")
        rows.append({"name": name, "version": d.version, "wheel": d.path.name, "kind": kind,
                     "required_by": ",".join(sorted(info["required_by"])), "ok": not problems,
                     "problem": "; ".join(problems)})
    unused = [d.path for n, ds in by_name.items() if n not in seen for d in ds]
    names = sorted(missing)
    return Check(target, rows, [missing[n] for n in names], unused, names)


def format_check(check: Check, verbose: bool = False) -> str:
    rows = check.rows if verbose else [r for r in check.rows if not r["ok"]]
    lines = []
    if rows:
        w = max(len(r["name"]) for r in rows)
        v = max(len(r["version"]) for r in rows)
        for r in rows:
            flag = "ok " if r["ok"] else "BAD"
            lines.append(f"  {flag} {r['name']:<{w}} {r['version']:<{v}} {r['kind']}"
                         + (f"  <- {r['problem']}" if r["problem"] else ""))
    for m in check.missing:
        lines.append(f"  MISSING {m}")
    return "\n".join(lines)


# -- building -----------------------------------------------------------------------------------------
project_requirements = lock.project_requirements


def _pip(args: list[str], log: Path | None = None, env: dict | None = None, python: str | None = None,
         check: bool = True) -> subprocess.CompletedProcess:
    cmd = [python or sys.executable, "-m", "pip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if log is not None:
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"pip {args[0]} failed (exit {proc.returncode}):\n{tail}")
    return proc


def build_project_wheel(project: Path, dest: Path, log: Path) -> Path:
    """``pip wheel --no-deps PROJECT``: the lumbarstats wheel itself."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    _pip(["wheel", "--no-deps", "--wheel-dir", str(dest), str(project)], log)
    wheels = list(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel of {project} in {dest}, found {[w.name for w in wheels]}")
    return wheels[0]


def missing_modules(package_dir: Path, wheel: Path) -> list[str]:
    """Python files of the source package that the wheel lacks (e.g. a subpackage left out of pyproject)."""
    base = package_dir.parent
    source = {p.relative_to(base).as_posix() for p in package_dir.rglob("*.py")
              if "__pycache__" not in p.parts and not any(part.startswith(".") for part in p.relative_to(base).parts)}
    with zipfile.ZipFile(wheel) as zf:
        shipped = set(zf.namelist())
    return sorted(source - shipped)


_NO_DIST = re.compile(r"No matching distribution found for ([^\s]+)")


def _build_pure(pin, built: Path, log: Path) -> Path:
    """Build a wheel of a source-only dependency from its hash-checked sdist (once for all targets); only a
    pure-Python result is usable on every target."""
    for whl in built.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(whl.name)
        if canonicalize_name(name) == pin.name and str(version) == str(Version(pin.version)):
            return whl
    before = set(built.glob("*.whl"))
    req_file = built / f".lock-{pin.name}.txt"
    req_file.write_text(pin.requirement_line() + "\n", encoding="utf-8")
    try:
        _pip(["wheel", "--no-deps", "--require-hashes", "--wheel-dir", str(built), "-r", str(req_file)], log)
    finally:
        req_file.unlink()
    new = sorted(set(built.glob("*.whl")) - before)
    if not new:
        raise RuntimeError(f"building {pin.name}=={pin.version} gave no wheel")
    for whl in new:
        if not whl.name.endswith("-none-any.whl"):
            raise RuntimeError(f"{pin.name}=={pin.version} publishes no wheel for the target and builds to "
                               f"{whl.name}, which is not pure Python: it cannot go into an offline wheelhouse "
                               "for another platform")
    return new[0]


def _download_pins(target: Target, folder: Path, pins: list, built: Path, log: Path) -> None:
    """``pip download --no-deps --require-hashes`` of locked pins for the target; source-only ones are built."""
    todo = list(pins)
    req_file = folder.parent / f".lock-{target.name}.txt"
    while todo:
        req_file.write_text("".join(p.requirement_line() + "\n" for p in todo), encoding="utf-8")
        args = ["download", "--no-deps", "--require-hashes", "--only-binary=:all:", "--implementation", "cp",
                "--python-version", target.python, "--dest", str(folder), "-r", str(req_file)]
        for plat in target.pip_platforms:
            args += ["--platform", plat]
        try:
            proc = _pip(args, log, check=False)
        finally:
            req_file.unlink()
        if proc.returncode == 0:
            return
        m = _NO_DIST.search(proc.stdout + proc.stderr)
        pin = next((p for p in todo if m and p.name == canonicalize_name(Requirement(m.group(1)).name)), None)
        if pin is None:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"pip download for {target.name} failed:\n{tail}")
        shutil.copy2(_build_pure(pin, built, log), folder)
        todo.remove(pin)


def download_target(target: Target, folder: Path, pins: dict, project_wheel: Path, built: Path,
                    log: Path, extras: list[str] | None = None, max_rounds: int = 40) -> Check:
    """Fill ``folder`` with the locked wheels that ``target`` needs and return the final check.

    ``pins`` are the lock's pins for the target (``lock.pins_for``). Each round downloads the pins of the
    requirements that no wheel in ``folder`` satisfies yet, walking lumbarstats's requirement graph under the
    target's markers; no resolver is involved, so the wheelhouse holds exactly the locked versions.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(project_wheel, folder / project_wheel.name)
    own = read_wheel(project_wheel).name
    roots = [f"{own}[{','.join(extras)}]" if extras else own]
    for _ in range(max_rounds):
        check = check_target(folder, target, roots, pins)
        if not check.missing:
            break
        unpinned = [text for name, text in zip(check.missing_names, check.missing, strict=True) if name not in pins]
        if unpinned:
            raise RuntimeError(f"{target.name}: requirement(s) not pinned in the lock: {'; '.join(unpinned)}. "
                               "Regenerate the lock (make lock) from pyproject.toml")
        _download_pins(target, folder, [pins[n] for n in check.missing_names], built, log)
    else:
        raise RuntimeError(f"{target.name}: the requirement graph was not complete after {max_rounds} rounds "
                           "(see build.log)")
    for path in check.unused:  # e.g. a wheel of an earlier build in a reused folder
        path.unlink()
    return check_target(folder, target, roots, pins)


def write_lock(check: Check, folder: Path, out: Path) -> Path:
    lines = [f"# lumbarstats offline wheelhouse, target {check.target.name} "
             f"({check.target.system}, CPython {check.target.python}); built by tools/wheelhouse.py",
             f"# install: pip install --no-index --find-links {folder.name} --require-hashes "
             f"-r requirements-lock-{check.target.name}.txt"]
    for r in check.rows:
        lines.append(f"{r['name']}=={r['version']} --hash=sha256:{sha256(folder / r['wheel'])}")
    text = "\n".join(lines) + "\n"
    lock = out / f"requirements-lock-{check.target.name}.txt"
    lock.write_text(text, encoding="utf-8")
    (folder / "requirements-lock.txt").write_text(text, encoding="utf-8")
    table = [f"{'ok' if r['ok'] else 'BAD'}\t{r['name']}\t{r['version']}\t{r['kind']}\t{r['wheel']}\t{r['problem']}"
             for r in check.rows] + [f"MISSING\t{m}" for m in check.missing]
    (out / f"check-{check.target.name}.txt").write_text("\n".join(table) + "\n", encoding="utf-8")
    return lock


# -- installation check -------------------------------------------------------------------------------
def offline_env() -> dict[str, str]:
    """Environment for pip with every configuration switched off (no config files, no PIP_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_interpreter(version: str) -> str | None:
    """A working CPython of ``version`` on this machine (this one, ``pythonX.Y`` on PATH, or ``py -X.Y``)."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    candidates = [[c] for c in (shutil.which(f"python{version}"),) if c]
    if shutil.which("py"):
        candidates.append(["py", f"-{version}"])
    for cmd in candidates:
        try:
            proc = subprocess.run([*cmd, "-c", "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = proc.stdout.split()
        if proc.returncode == 0 and len(lines) == 2 and lines[1] == version:
            return lines[0]  # a pyenv shim that is not active fails here and is skipped
    return None


def install_offline(folder: Path, venv: Path, interpreter: str | None = None, log: Path | None = None) -> Path:
    """Fresh venv + ``pip install --no-index --find-links FOLDER lumbarstats`` + ``pip check``. Returns its python."""
    subprocess.run([interpreter or sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    py = str(venv_python(venv))
    env = offline_env()
    _pip(["install", "--no-index", "--find-links", str(folder), "lumbarstats"], log, env=env, python=py)
    _pip(["check"], log, env=env, python=py)
    return Path(py)


# -- main ---------------------------------------------------------------------------------------------
def build(out: Path, targets: list[Target], project: Path = ROOT, extras: list[str] | None = None,
          check_install: bool = True, verbose: bool = False, lock_file: Path | None = None) -> bool:
    """Build the wheelhouse for ``targets`` in ``out`` from the lock; True if every target resolves completely."""
    lock_file = Path(lock_file or project / lock.LOCK_FILE)
    pins = lock.read_lock(lock_file)
    project_requirements(project, extras or [])  # an unknown extra is an error before anything is built
    problems = lock.check_lock(project, pins, sorted({t.system for t in targets}),
                               sorted({t.python for t in targets}))
    if problems:
        raise ValueError(f"{lock_file} does not satisfy pyproject.toml; regenerate it with `make lock`:\n  "
                         + "\n  ".join(problems))
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    log.write_text("", encoding="utf-8")
    t0 = time.perf_counter()
    built = out / "_built"  # pure-Python wheels built from source-only dependencies
    built.mkdir(exist_ok=True)
    project_wheel = build_project_wheel(project, out / "_project", log)
    print(f"built {project_wheel.name} ({time.perf_counter() - t0:.0f} s)", flush=True)
    lost = missing_modules(project / "lumbarstats", project_wheel)
    if lost:
        raise RuntimeError(f"{project_wheel.name} lacks {len(lost)} module(s) of the source tree: {', '.join(lost)}; "
                           "add the missing packages to [tool.setuptools] packages in pyproject.toml")
    checks = []
    for target in targets:
        t1 = time.perf_counter()
        final = out / target.name
        tmp = out / f".tmp-{target.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        check = download_target(target, tmp, lock.pins_for(pins, target.environment), project_wheel, built, log,
                                extras or [])
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        write_lock(check, final, out)
        size = sum(p.stat().st_size for p in final.glob("*.whl")) / 1e6
        print(f"{target.name}: {len(check.rows)} distributions, {size:.0f} MB, "
              f"{time.perf_counter() - t1:.0f} s", flush=True)
        checks.append(check)

    print("\nwheelhouse check (every requirement, markers evaluated for the target):")
    print(f"  {'target':<24} {'dists':>5} {'binary':>6} {'pure':>5} {'missing':>7} {'bad':>4}  result")
    for c in checks:
        pure = sum(r["kind"].startswith("pure") for r in c.rows)
        bad = sum(not r["ok"] for r in c.rows)
        print(f"  {c.target.name:<24} {len(c.rows):>5} {len(c.rows) - pure:>6} {pure:>5} {len(c.missing):>7} "
              f"{bad:>4}  {'complete' if c.ok else 'INCOMPLETE'}")
        detail = format_check(c, verbose)
        if detail:
            print(f"{c.target.name}:\n{detail}")
    sys.stdout.flush()
    ok = all(c.ok for c in checks)

    if check_install and ok:
        for c in checks:
            if c.target.system != ("windows" if os.name == "nt" else "linux"):
                continue
            interp = find_interpreter(c.target.python)
            if interp is None:
                print(f"install check {c.target.name}: skipped (no python{c.target.python} here)", flush=True)
                continue
            t2 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="lumbarstats-venv-") as tmpd:
                try:
                    py = install_offline(out / c.target.name, Path(tmpd) / "venv", interp, log)
                    proc = subprocess.run([str(py), "-m", "lumbarstats", "--help"], capture_output=True, text=True,
                                          env=offline_env())
                    problem = proc.stderr[-2000:] if proc.returncode != 0 else ""
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    problem = str(exc)
                if problem:
                    print(f"install check {c.target.name}: FAILED\n{problem}", flush=True)
                    ok = False
                    continue
            print(f"install check {c.target.name}: offline install + pip check + lumbarstats --help ok "
                  f"({time.perf_counter() - t2:.0f} s)", flush=True)
    shutil.rmtree(out / "_project", ignore_errors=True)
    print(f"\n{'wheelhouse complete' if ok else 'wheelhouse INCOMPLETE'}: {out} "
          f"({time.perf_counter() - t0:.0f} s; pip output in {log.name})")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("wheelhouse"), help="output folder (default: wheelhouse)")
    p.add_argument("--platforms", default=",".join(PLATFORMS), help="windows,linux (default: both)")
    p.add_argument("--python-versions", default=",".join(PYTHON_VERSIONS), help="default: 3.11,3.12")
    p.add_argument("--current", action="store_true",
                   help="only this machine's platform and Python version (quick local check)")
    p.add_argument("--glibc", default=DEFAULT_GLIBC, help="newest glibc of the Linux servers (default 2.28)")
    p.add_argument("--extras", default="", help="optional dependency groups too, e.g. notebook (jupyterlab)")
    p.add_argument("--project", type=Path, default=ROOT, help="project folder with pyproject.toml")
    p.add_argument("--lock", type=Path, default=None,
                   help=f"the lock the wheels are taken from (default: PROJECT/{lock.LOCK_FILE})")
    p.add_argument("--no-check-install", action="store_true", help="skip the offline install into a fresh venv")
    p.add_argument("-v", "--verbose", action="store_true", help="print every distribution of every target")
    a = p.parse_args(argv)
    if a.current:
        plats = ["windows" if os.name == "nt" else "linux"]
        pys = [f"{sys.version_info[0]}.{sys.version_info[1]}"]
    else:
        plats = [x.strip() for x in a.platforms.split(",") if x.strip()]
        pys = [x.strip() for x in a.python_versions.split(",") if x.strip()]
    try:
        targets = make_targets(plats, pys, a.glibc)
        extras = [x.strip() for x in a.extras.split(",") if x.strip()]
        ok = build(a.out, targets, a.project, extras, check_install=not a.no_check_install, verbose=a.verbose,
                   lock_file=a.lock)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
