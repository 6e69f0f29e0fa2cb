"""Raw register layouts: ``data_dictionary/raw_layouts.yaml`` merged with a user's ingest config.

The layout says, per register, which files to read (glob patterns with ``{year}``), which raw column
holds each logical column (``person``, ``date``, ``code`` …) and the mapping rules. A user's config has
the same structure and overrides any key (deep merge), so a research group only writes what differs
in its own extract::

    registers:
      bef: {files: ["/data/rawdata/bef*.sas7bdat"], columns: {person: PNR}}
    options: {cci: {lookback_years: 5}}
"""

from __future__ import annotations

import copy
import glob
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from lumbarstats import dictionary

__all__ = ["Layout", "RegisterSpec", "load_layout", "deep_merge", "SUPPORTED_SUFFIXES"]

SUPPORTED_SUFFIXES = (".parquet", ".csv", ".sas7bdat", ".xpt")


def deep_merge(base: dict, override: dict) -> dict:
    """Recursive dict merge: ``override`` wins; lists and scalars are replaced, not merged."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class RegisterSpec:
    """One register of the layout."""

    name: str
    spec: dict

    @property
    def columns(self) -> dict[str, str]:
        return dict(self.spec.get("columns", {}))

    @property
    def optional(self) -> set[str]:
        return set(self.spec.get("optional_columns", []))

    @property
    def required(self) -> bool:
        return bool(self.spec.get("required", False))

    def get(self, key, default=None):
        return self.spec.get(key, default)

    def files(self, raw_dir: Path) -> list[tuple[Path, int | None]]:
        """Files matching the register's patterns, each with the year taken from its name (or None)."""
        found: dict[Path, int | None] = {}
        for pattern in self.spec.get("files", []):
            p = Path(pattern)
            full = p if p.is_absolute() else Path(raw_dir) / p
            glob_pat = str(full).replace("{year}", "[0-9][0-9][0-9][0-9]")
            regex = re.escape(full.name).replace(re.escape("{year}"), r"(?P<year>\d{4})")
            regex = regex.replace(r"\*", ".*").replace(r"\?", ".")
            for hit in sorted(glob.glob(glob_pat)):
                hp = Path(hit)
                if hp.suffix.lower() not in SUPPORTED_SUFFIXES or not hp.is_file():
                    continue
                m = re.fullmatch(regex, hp.name, flags=re.IGNORECASE)
                year = int(m.group("year")) if (m and "year" in m.groupdict() and m.group("year")) else None
                found[hp] = year
        return sorted(found.items())


@dataclass(frozen=True)
class Layout:
    """The merged layout: options, code list file names and registers."""

    spec: dict
    dictionary_root: Path

    @property
    def options(self) -> dict:
        return self.spec.get("options", {})

    def register(self, name: str) -> RegisterSpec:
        try:
            return RegisterSpec(name, self.spec["registers"][name])
        except KeyError:
            raise KeyError(f"register {name!r} is not in the layout; known: {sorted(self.spec['registers'])}") from None

    @property
    def register_names(self) -> list[str]:
        return list(self.spec["registers"])

    def codelist_path(self, key: str) -> Path:
        name = self.spec.get("codelists", {}).get(key, f"{key}.csv")
        p = Path(name)
        return p if p.is_absolute() else self.dictionary_root / "codelists" / p

    def years(self, dd) -> tuple[int, int]:
        yrs = self.options.get("years")
        if yrs is None:
            return dd.study_years
        if len(yrs) != 2 or int(yrs[0]) > int(yrs[1]):
            raise ValueError(f"options.years must be [first, last], got {yrs!r}")
        return int(yrs[0]), int(yrs[1])

    def adult_min_age(self, dd) -> int:
        v = self.options.get("adult_min_age")
        return int(dd.spec.get("adult_min_age", 18) if v is None else v)


def load_layout(config: str | Path | dict | None = None, *, dictionary_path: str | Path | None = None) -> Layout:
    """The dictionary's ``raw_layouts.yaml`` with ``config`` (a YAML path or a dict) merged over it."""
    root = Path(dictionary_path) if dictionary_path else dictionary.dictionary_path()
    base_path = root / "raw_layouts.yaml"
    with open(base_path, encoding="utf-8") as fh:
        base = yaml.safe_load(fh)
    user: dict = {}
    if config is not None:
        if isinstance(config, dict):
            user = config
        else:
            cpath = Path(config)
            if not cpath.exists():
                raise FileNotFoundError(f"ingest config {cpath} does not exist")
            with open(cpath, encoding="utf-8") as fh:
                user = yaml.safe_load(fh) or {}
            if not isinstance(user, dict):
                raise ValueError(f"ingest config {cpath} must be a YAML mapping (options:, registers:, …)")
    unknown = set(user.get("registers", {}) or {}) - set(base["registers"])
    if unknown:
        raise KeyError(f"ingest config names unknown registers {sorted(unknown)}; known: {sorted(base['registers'])}")
    unknown_top = set(user) - {"version", "options", "codelists", "registers"}
    if unknown_top:
        raise KeyError(f"ingest config has unknown top-level keys {sorted(unknown_top)}; use options, codelists, registers")
    return Layout(spec=deep_merge(base, user), dictionary_root=root)
