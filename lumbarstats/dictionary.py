"""The data dictionary: canonical tables, code lists and labels, read from ``data_dictionary/``.

Everything about variables — allowed codes, Danish and English labels, age bands, CCI cut-points,
which SKS codes count as an examination — lives in the YAML/CSV files of the data dictionary so that
it can be read, reviewed and changed without touching code. This module only reads those files and
offers small vectorised helpers (band an age, categorise a CCI score, label a code).

Usage::

    import lumbarstats as ls
    dd = ls.dictionary.load()
    dd.codelist("region")            # DataFrame with code, name, labels
    dd.age_band(df["age"])           # "18-29", "30-39", ...
    dd.label("education", "primary") # "Grundskole"
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

__all__ = ["DataDictionary", "load", "dictionary_path"]


def dictionary_path() -> Path:
    """Folder of the installed data dictionary (``data_dictionary/`` in the repository)."""
    return Path(str(resources.files("lumbarstats.data_dictionary")))


@dataclass(frozen=True)
class DataDictionary:
    """Parsed data dictionary. Create it with :func:`load`."""

    root: Path
    spec: dict
    _codelists: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    # -- tables ---------------------------------------------------------------------------------
    @property
    def tables(self) -> dict:
        return self.spec["tables"]

    def table(self, name: str) -> dict:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(f"unknown canonical table {name!r}; known: {sorted(self.tables)}") from None

    def columns(self, table: str) -> list[str]:
        return list(self.table(table)["columns"])

    @property
    def study_years(self) -> tuple[int, int]:
        a, b = self.spec["study_years"]
        return int(a), int(b)

    @property
    def working_age(self) -> tuple[int, int]:
        a, b = self.spec["working_age"]
        return int(a), int(b)

    @property
    def whole_country_name(self) -> str:
        return self.spec["whole_country"]["name"]

    # -- code lists -----------------------------------------------------------------------------
    def codelist(self, name: str) -> pd.DataFrame:
        """The code list ``codelists/<name>.csv`` as a DataFrame (codes read as strings unless numeric)."""
        if name not in self._codelists:
            path = self.root / "codelists" / f"{name}.csv"
            if not path.exists():
                raise KeyError(f"unknown code list {name!r} (no file {path})")
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
            if name == "region":
                df["code"] = df["code"].astype(int)
            for col in ("min_age", "max_age", "min_score", "max_score", "order", "report_order"):
                if col in df.columns:
                    df[col] = pd.to_numeric(df[col])
            self._codelists[name] = df
        return self._codelists[name].copy()

    def codes(self, name: str) -> list:
        """Allowed codes of a code list."""
        cl = self.codelist(name)
        col = "kode" if "kode" in cl.columns and "code" not in cl.columns else "code"
        return cl[col].tolist()

    def label(self, codelist: str, code, lang: str = "da") -> str:
        """Label of one code (Danish by default)."""
        cl = self.codelist(codelist).set_index("code")
        return str(cl.loc[code, f"label_{lang}"])

    def labels(self, codelist: str, lang: str = "da", column: str | None = None) -> dict:
        """Mapping code -> label; ``column`` picks another label column (e.g. ``report_label_da``)."""
        cl = self.codelist(codelist)
        col = column or f"label_{lang}"
        out = dict(zip(cl["code"], cl[col], strict=True))
        if column is not None:  # fall back to the plain label where the special column is empty
            base = dict(zip(cl["code"], cl[f"label_{lang}"], strict=True))
            out = {k: (v if v else base[k]) for k, v in out.items()}
        return out

    # -- regions --------------------------------------------------------------------------------
    def region_names(self) -> dict[int, str]:
        """DST region code (1081–1085) -> short name as in the report (``Syddanmark``)."""
        cl = self.codelist("region").sort_values("report_order")
        return dict(zip(cl["code"].astype(int), cl["name"], strict=True))

    def region_code(self, name_or_code) -> int:
        """Region code from a short name, full label or code; raises a clear error otherwise."""
        names = self.region_names()
        if isinstance(name_or_code, (int, np.integer)) and int(name_or_code) in names:
            return int(name_or_code)
        s = str(name_or_code).strip()
        if s.isdigit() and int(s) in names:
            return int(s)
        cl = self.codelist("region")
        for _, row in cl.iterrows():
            if s.casefold() in {row["name"].casefold(), row["label_da"].casefold(), row["label_en"].casefold()}:
                return int(row["code"])
        raise ValueError(f"unknown region {name_or_code!r}; use one of {list(names.values())} or codes {list(names)}")

    # -- derived variables ----------------------------------------------------------------------
    def _band(self, values, codelist: str) -> pd.Series:
        cl = self.codelist(codelist).sort_values("min_age")
        v = pd.Series(values)
        edges = list(cl["min_age"]) + [int(cl["max_age"].iloc[-1]) + 1]
        out = pd.cut(v, bins=edges, right=False, labels=list(cl["code"]))
        return out.astype(pd.CategoricalDtype(list(cl["code"]), ordered=True))

    def age_band(self, age) -> pd.Series:
        """The report's seven age bands (``18-29`` … ``80+``) from single years of age."""
        return self._band(age, "age_band")

    def age_group_profile(self, age) -> pd.Series:
        """The three profile age groups (``<35``, ``35-65``, ``>65``)."""
        return self._band(age, "age_group_profile")

    def cci_cutpoints(self) -> list[int]:
        """Lower score of each CCI category after the first (default ``[1, 3, 5]``)."""
        cl = self.codelist("cci_category").sort_values("order")
        return [int(x) for x in cl["min_score"].iloc[1:]]

    def cci_category(self, score, cutpoints: Sequence[int] | None = None) -> pd.Series:
        """CCI score -> ``none``/``mild``/``moderate``/``severe``; ``cutpoints`` overrides the dictionary's."""
        cl = self.codelist("cci_category").sort_values("order")
        cuts = list(cutpoints) if cutpoints is not None else self.cci_cutpoints()
        if len(cuts) != len(cl) - 1 or sorted(cuts) != cuts or cuts[0] < 1:
            raise ValueError(f"CCI cut-points must be {len(cl) - 1} increasing scores >= 1, got {cuts}")
        v = pd.Series(score)
        out = pd.cut(v, bins=[-np.inf, *cuts, np.inf], right=False, labels=list(cl["code"]))
        return out.astype(pd.CategoricalDtype(list(cl["code"]), ordered=True))

    def profile_group(self, codelist: str, values) -> pd.Series:
        """Map education/employment codes to their profile groups (column ``profile_group``)."""
        cl = self.codelist(codelist)
        mapping = {c: (g if g else None) for c, g in zip(cl["code"], cl["profile_group"], strict=True)}
        return pd.Series(values).map(mapping)

    # -- procedure codes ------------------------------------------------------------------------
    def counted_procedure_codes(self, include_related: bool = False) -> dict[str, list[str]]:
        """Modality -> exact SKS codes counted as an examination of that modality."""
        spec = self.spec["counted_procedure_codes"]
        out = {m: list(c) for m, c in spec["core"].items()}
        if include_related:
            sks = self.codelist("sks_spine_imaging_codes")
            for modality, csv_name in spec["related_modality_names"].items():
                rel = sks.loc[(sks["modality"] == csv_name) & (sks["lumbar_relevance"] == "lumbar_related"), "kode"]
                out[modality] = out[modality] + [c for c in rel if c not in out[modality]]
        return out

    def lumbar_surgery_codes(self) -> list[str]:
        sks = self.codelist("sks_spine_surgery_codes")
        flag = self.spec["lumbar_surgery_flag_column"]
        return sks.loc[sks[flag].str.lower() == "true", "kode"].tolist()


@functools.lru_cache(maxsize=4)
def _load_cached(root: str) -> DataDictionary:
    root_path = Path(root)
    with open(root_path / "tables.yaml", encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)
    return DataDictionary(root=root_path, spec=spec)


def load(path: str | Path | None = None) -> DataDictionary:
    """Load the data dictionary (the installed one, or a copy at ``path`` that a user edited)."""
    return _load_cached(str(Path(path) if path else dictionary_path()))
