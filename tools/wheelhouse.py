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
of the source tree, e.g. a subpackage missing from ``[tool.setuptools] packages``); ``pip download --only-binary=:all: --platform …
--python-version … --implementation cp`` fetches the dependencies of each target.

pip evaluates environment markers (``; sys_platform == "win32"``) against the machine it runs on, not
against ``--platform``, so a Windows wheelhouse built on Linux lacks e.g. ``colorama`` (click),
``pywin32`` (jupyter-core) and carries ``pexpect`` it does not need. The build therefore checks every
target itself: starting from lumbarstats's own requirements it walks the ``Requires-Dist`` metadata of
the downloaded wheels, evaluating markers for the *target* (Windows/Linux, Python 3.11/3.12), and
verifies that every required distribution is present, in a version that satisfies the specifier, as a
wheel compatible with the target (``win_amd64``/``manylinux``/``abi3``/``none-any``). Requirements that
pip missed are downloaded in a further round; wheels that the target does not need are removed. A
dependency that publishes only a source distribution is built here with ``pip wheel`` and kept if the
result is pure Python (``py3-none-any``). The command prints the check as a table and exits non-zero
if any target does not resolve completely.

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
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.tags import Tag, compatible_tags, cpython_tags
    from packaging.utils import canonicalize_name, parse_wheel_filename
except ImportError:  # pragma: no cover - pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.tags import Tag, compatible_tags, cpython_tags
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename

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
        full = f"{self.python}.0"
        env = {"implementation_name": "cpython", "implementation_version": full, "python_version": self.python,
               "python_full_version": full, "platform_python_implementation": "CPython", "extra": ""}
        if self.system == "windows":
            env.update(os_name="nt", sys_platform="win32", platform_system="Windows", platform_machine="AMD64",
                       platform_release="10", platform_version="10.0.20348")
        else:
            env.update(os_name="posix", sys_platform="linux", platform_system="Linux", platform_machine="x86_64",
                       platform_release="", platform_version="")
        return env


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


def check_target(folder: Path, target: Target, roots: list[str]) -> Check:
    """Walk the requirement graph from ``roots`` under the target's markers through the wheels in ``folder``.

    Every reached distribution must have exactly one wheel in ``folder`` whose version satisfies all the
    specifiers that reach it and whose tags the target installs. Returns the table rows
    (name, version, wheel, kind, required_by, ok, problem), the requirements with no wheel at all, and the
    wheels no requirement reaches.
    """
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
        rows.append({"name": name, "version": d.version, "wheel": d.path.name, "kind": kind,
                     "required_by": ",".join(sorted(info["required_by"])), "ok": not problems,
                     "problem": "; ".join(problems)})
    unused = [d.path for n, ds in by_name.items() if n not in seen for d in ds]
    return Check(target, rows, sorted(missing.values()), unused)


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
def project_requirements(project: Path, extras: list[str]) -> list[str]:
    """``[project] dependencies`` (+ optional-dependency groups) of pyproject.toml."""
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(meta.get("dependencies", []))
    optional = meta.get("optional-dependencies", {})
    for e in extras:
        if e not in optional:
            raise ValueError(f"no optional dependency group {e!r} in pyproject.toml (have {sorted(optional)})")
        reqs += optional[e]
    return reqs


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


def _build_pure(req: str, built: Path, log: Path) -> Path:
    """Build a wheel of a source-only dependency; only a pure-Python result is usable on every target."""
    before = set(built.glob("*.whl"))
    _pip(["wheel", "--no-deps", "--wheel-dir", str(built), req], log)
    new = sorted(set(built.glob("*.whl")) - before) or sorted(built.glob(f"{canonicalize_name(Requirement(req).name).replace('-', '_')}-*.whl"))
    if not new:
        raise RuntimeError(f"building {req} gave no wheel")
    for whl in new:
        if not whl.name.endswith("-none-any.whl"):
            raise RuntimeError(f"{req} publishes no wheel for the target and builds to {whl.name}, which is not "
                               "pure Python: it cannot go into an offline wheelhouse for another platform")
    return new[0]


def download_target(target: Target, folder: Path, reqs: list[str], project_wheel: Path, built: Path,
                    log: Path, extras: list[str] | None = None, max_rounds: int = 8) -> Check:
    """Fill ``folder`` with the wheels of ``target`` and return the final check."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(project_wheel, folder / project_wheel.name)
    own = read_wheel(project_wheel).name
    roots = [f"{own}[{','.join(extras)}]" if extras else own]
    wanted = list(reqs)
    check = None
    for _ in range(max_rounds):
        req_file = folder.parent / f".requirements-{target.name}.txt"
        req_file.write_text("\n".join(wanted) + "\n", encoding="utf-8")
        args = ["download", "--only-binary=:all:", "--implementation", "cp", "--python-version", target.python,
                "--dest", str(folder), "--find-links", str(built), "-r", str(req_file)]
        for p in target.pip_platforms:
            args += ["--platform", p]
        proc = _pip(args, log, check=False)
        req_file.unlink()
        if proc.returncode != 0:
            m = _NO_DIST.search(proc.stdout + proc.stderr)
            if not m:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise RuntimeError(f"pip download for {target.name} failed:\n{tail}")
            _build_pure(m.group(1), built, log)
            continue
        check = check_target(folder, target, roots)
        if not check.missing:
            break
        # requirements pip skipped because it evaluated their markers for this machine, not the target
        names = {r.split()[0] for r in check.missing}
        new = [n for n in names if n not in wanted]
        if not new:
            break
        wanted += new
    if check is None:
        raise RuntimeError(f"pip download for {target.name} did not succeed in {max_rounds} rounds (see build.log)")
    for path in check.unused:  # wheels pip fetched for markers of the build machine
        path.unlink()
    return check_target(folder, target, roots)


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
          check_install: bool = True, verbose: bool = False) -> bool:
    """Build the wheelhouse for ``targets`` in ``out``; True if every target resolves completely."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    log.write_text("", encoding="utf-8")
    t0 = time.perf_counter()
    reqs = project_requirements(project, extras or [])
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
        check = download_target(target, tmp, reqs, project_wheel, built, log, extras or [])
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
        ok = build(a.out, targets, a.project, extras, check_install=not a.no_check_install, verbose=a.verbose)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
