"""The dependency lock, ``requirements.lock``: read it and check it against pyproject.toml.

``requirements.lock`` is a pip requirements file written by uv from pyproject.toml (``make lock``)::

    uv pip compile pyproject.toml - --extra test --extra notebook --extra spark --universal --python-version 3.11 \\
        --generate-hashes -o requirements.lock      # stdin: the [build-system] requires

It pins every distribution that lumbarstats, its ``test``, ``notebook`` and ``spark`` extras and its build backend
need, on every platform and Python version at once (``--universal``: where versions differ the lines
carry markers such as ``python_full_version >= '3.12'``), each with the sha256 of every file PyPI has
for that version. ``make install``/``make test``/``make reproduce`` install it with
``pip install --require-hashes -r requirements.lock`` and then lumbarstats itself with ``--no-deps``;
the offline wheelhouse (tools/wheelhouse.py) downloads exactly these versions and files.

    python tools/lock.py check      # every requirement of pyproject.toml is pinned, for every target

The check fails when pyproject.toml gained or changed a requirement and the lock was not regenerated.
Standard library + ``packaging`` only (pip vendors it), so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

try:
    from packaging.markers import Marker
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pragma: no cover - pip always vendors packaging
    from pip._vendor.packaging.markers import Marker
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK_FILE = "requirements.lock"
# the platforms and Python versions the lock must serve (those of the offline wheelhouse)
SYSTEMS = ("linux", "windows")
PYTHONS = ("3.11", "3.12")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Pin:
    """One line of the lock: ``name==version ; marker --hash=sha256:... --hash=...``."""

    name: str  # canonical
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]
    line: int

    def applies(self, env: dict[str, str]) -> bool:
        return self.marker is None or self.marker.evaluate(env)

    def requirement_line(self) -> str:
        """The pin for ``pip --require-hashes`` with the marker already evaluated (one target)."""
        return f"{self.name}=={self.version} " + " ".join(f"--hash=sha256:{h}" for h in self.hashes)


def marker_environment(system: str, python: str) -> dict[str, str]:
    """PEP 508 marker environment of a target (not of the machine this runs on)."""
    full = f"{python}.0"
    env = {"implementation_name": "cpython", "implementation_version": full, "python_version": python,
           "python_full_version": full, "platform_python_implementation": "CPython", "extra": ""}
    if system == "windows":
        env.update(os_name="nt", sys_platform="win32", platform_system="Windows", platform_machine="AMD64",
                   platform_release="10", platform_version="10.0.20348")
    elif system == "linux":
        env.update(os_name="posix", sys_platform="linux", platform_system="Linux", platform_machine="x86_64",
                   platform_release="", platform_version="")
    else:
        raise ValueError(f"unknown platform {system!r}; use any of {SYSTEMS}")
    return env


def read_lock(path: Path) -> list[Pin]:
    """The pins of a hashed requirements file; a line that is not ``name==version`` with hashes is an error."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: lock file not found; generate it with `make lock` (see tools/lock.py)")
    pins, logical, start = [], "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not text:
            continue
        if not logical:
            start = number
        logical += " " + text.removesuffix("\\")
        if text.endswith("\\"):
            continue
        pins.append(_parse_pin(path, start, logical.strip()))
        logical = ""
    if logical:
        raise ValueError(f"{path}, line {start}: the last requirement ends with a line continuation")
    if not pins:
        raise ValueError(f"{path}: no pinned requirement")
    return pins


def _parse_pin(path: Path, line: int, text: str) -> Pin:
    spec = text.split("--hash", 1)[0].strip()
    hashes = tuple(_HASH.findall(text))
    try:
        req = Requirement(spec)
    except InvalidRequirement as exc:
        raise ValueError(f"{path}, line {line}: not a requirement: {spec!r} ({exc})") from None
    exact = [s for s in req.specifier if s.operator == "=="]
    if len(exact) != 1 or len(req.specifier) != 1 or "*" in exact[0].version:
        raise ValueError(f"{path}, line {line}: {spec!r} is not pinned to one version (name==version)")
    if not hashes or text.count("--hash") != len(hashes):
        raise ValueError(f"{path}, line {line}: {req.name} has no (or a malformed) --hash=sha256:...; "
                         "the lock must be generated with hashes")
    return Pin(canonicalize_name(req.name), exact[0].version, req.marker, hashes, line)


def pins_for(pins: list[Pin], env: dict[str, str]) -> dict[str, Pin]:
    """The pin of each distribution under one target's markers; two applicable pins of one name are an error."""
    out: dict[str, Pin] = {}
    for pin in pins:
        if not pin.applies(env):
            continue
        if pin.name in out:
            raise ValueError(f"lock lines {out[pin.name].line} and {pin.line} both pin {pin.name} for "
                             f"Python {env['python_version']} on {env['sys_platform']}")
        out[pin.name] = pin
    return out


def project_requirements(project: Path, extras: list[str]) -> list[str]:
    """``[project] dependencies`` (+ optional-dependency groups) of pyproject.toml."""
    meta = _pyproject(project)["project"]
    reqs = list(meta.get("dependencies", []))
    optional = meta.get("optional-dependencies", {})
    for e in extras:
        if e not in optional:
            raise ValueError(f"no optional dependency group {e!r} in pyproject.toml (have {sorted(optional)})")
        reqs += optional[e]
    return reqs


def build_requirements(project: Path) -> list[str]:
    """``[build-system] requires`` of pyproject.toml (locked too: the project is installed without isolation)."""
    return list(_pyproject(project).get("build-system", {}).get("requires", []))


def _pyproject(project: Path) -> dict:
    return tomllib.loads((Path(project) / "pyproject.toml").read_text(encoding="utf-8"))


def check_lock(project: Path, pins: list[Pin], systems=SYSTEMS, pythons=PYTHONS) -> list[str]:
    """Requirements of pyproject.toml (dependencies, every extra, build backend) the lock does not satisfy.

    For each target environment each applicable requirement needs exactly one applicable pin whose version
    satisfies the specifier. (What those distributions require in turn is checked by ``pip check`` after
    ``make install`` and by the wheelhouse's walk through the wheels' metadata.)
    """
    meta = _pyproject(project)["project"]
    groups = [("", meta.get("dependencies", []))]
    groups += [(extra, reqs) for extra, reqs in sorted(meta.get("optional-dependencies", {}).items())]
    groups.append(("", build_requirements(project)))
    problems: list[str] = []
    for system in systems:
        for python in pythons:
            env = marker_environment(system, python)
            try:
                pinned = pins_for(pins, env)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            for extra, reqs in groups:
                for line in reqs:
                    req = Requirement(line)
                    if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
                        continue
                    where = f"{system}, Python {python}" + (f", extra {extra!r}" if extra else "")
                    pin = pinned.get(canonicalize_name(req.name))
                    if pin is None:
                        problems.append(f"{line!r} ({where}) is not in the lock")
                    elif not req.specifier.contains(pin.version, prereleases=True):
                        problems.append(f"{line!r} ({where}): the lock pins {pin.name}=={pin.version}")
    return sorted(set(problems), key=problems.index)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["check", "build-requires"],
                   help="check: the lock satisfies pyproject.toml; build-requires: print [build-system] requires")
    p.add_argument("--lock", type=Path, default=None, help=f"lock file (default: PROJECT/{LOCK_FILE})")
    p.add_argument("--project", type=Path, default=ROOT, help="project folder with pyproject.toml")
    a = p.parse_args(argv)
    if a.command == "build-requires":
        print("\n".join(build_requirements(a.project)))
        return 0
    lock = a.lock or a.project / LOCK_FILE
    try:
        pins = read_lock(lock)
        problems = check_lock(a.project, pins)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if problems:
        print(f"{lock} does not satisfy pyproject.toml; regenerate it with `make lock`:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{lock.name}: {len(pins)} pins; every requirement of pyproject.toml is pinned for "
          f"{'/'.join(SYSTEMS)} x Python {'/'.join(PYTHONS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
