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

__all__ = ["DataDictionary", "load", "dictionary_path", "resolve_region", "region_name", "region_order"]


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
        """Code of one of the five regions (1081–1085); the whole country is refused here — use
        :meth:`resolve_region` where ``Landsplan`` is allowed."""
        code = self.resolve_region(name_or_code)
        if code == self.whole_country_code:
            names = self.region_names()
            raise ValueError(f"{name_or_code!r} is the whole country, not a region; use one of "
                             f"{list(names.values())} or codes {list(names)}")
        return code

    @property
    def whole_country_code(self) -> int:
        return int(self.spec["whole_country"]["code"])

    def resolve_region(self, value) -> int:
        """THE region resolver: DST code (1081–1085, or 0 for the whole country), short or full Danish
        name, English name, any case, with or without Danish letters (``Sjaelland``, ``Sjælland``);
        the whole country also as ``Landsplan``, ``Hele landet``, ``Denmark``. Returns the code."""
        names = self.region_names()
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(f"unknown region {value!r}")
        if isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.strip().isdigit()):
            code = int(value)
            if code in names or code == self.whole_country_code:
                return code
        else:
            code = self._region_aliases().get(_fold_name(value))
            if code is not None:
                return code
        raise ValueError(f"unknown region {value!r}; use one of {list(names.values())} "
                         f"(or codes {list(names)}), or {self.whole_country_name!r} / 0 for the whole country")

    def _region_aliases(self) -> dict[str, int]:
        out = {}
        for row in self.codelist("region").itertuples():
            for text in (row.name, row.label_da, row.label_en):
                out[_fold_name(text)] = int(row.code)
        wc = self.spec["whole_country"]
        for text in (wc["name"], wc["label_da"], wc["label_en"], "Danmark", "Hele Danmark"):
            out[_fold_name(text)] = int(wc["code"])
        return out

    def region_name(self, code, lang: str = "short") -> str:
        """Name of a region code (or 0): ``short`` as in the report's tables (``Syddanmark``,
        ``Landsplan``), ``da`` the full Danish label, ``en`` the English label."""
        code = self.resolve_region(code)
        if code == self.whole_country_code:
            wc = self.spec["whole_country"]
            return {"short": wc["name"], "da": wc["label_da"], "en": wc["label_en"]}[_check_lang(lang)]
        row = self.codelist("region").set_index("code").loc[code]
        return str({"short": row["name"], "da": row["label_da"], "en": row["label_en"]}[_check_lang(lang)])

    def region_order(self, *, whole_country: bool = True) -> list[int]:
        """Region codes in the report's order, the whole country (0) last."""
        return list(self.region_names()) + ([self.whole_country_code] if whole_country else [])

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


_FOLD = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa"})


def _fold_name(text) -> str:
    """Case, Danish letters, a leading ``Region`` and spacing do not matter when naming a region."""
    s = " ".join(str(text).casefold().translate(_FOLD).replace("-", " ").split())
    return s[len("region "):] if s.startswith("region ") else s


def _check_lang(lang: str) -> str:
    if lang not in ("short", "da", "en"):
        raise ValueError(f"lang must be 'short', 'da' or 'en', got {lang!r}")
    return lang


def resolve_region(value, dd: DataDictionary | None = None) -> int:
    """Region code (1081–1085, 0 = whole country) from a code or any name; see
    :meth:`DataDictionary.resolve_region`. The one place regions are resolved."""
    return (dd or load()).resolve_region(value)


def region_name(code, lang: str = "short", dd: DataDictionary | None = None) -> str:
    """Name of a region code: ``short`` (report tables), ``da`` or ``en``."""
    return (dd or load()).region_name(code, lang)


def region_order(dd: DataDictionary | None = None, *, whole_country: bool = True) -> list[int]:
    """Region codes in the report's order, the whole country (0) last."""
    return (dd or load()).region_order(whole_country=whole_country)


@functools.lru_cache(maxsize=4)
def _load_cached(root: str) -> DataDictionary:
    root_path = Path(root)
    with open(root_path / "tables.yaml", encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)
    return DataDictionary(root=root_path, spec=spec)


def load(path: str | Path | None = None) -> DataDictionary:
    """Load the data dictionary (the installed one, or a copy at ``path`` that a user edited)."""
    return _load_cached(str(Path(path) if path else dictionary_path()))
