"""The ingest report: rows in and out per register and year, every dropped row with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["IngestReport"]

ROW_COLUMNS = ["register", "year", "status", "target", "reason", "rows"]


@dataclass
class IngestReport:
    """Result of :func:`lumbarstats.adapters.ingest`.

    Attributes
    ----------
    rows : one row per register, year, status (``kept``/``dropped``), target table and reason, with the
        number of input rows. ``year`` is the population year for BEF/UDDA/AKM rows (snapshot year + 1)
        and the year of the event date otherwise (missing if the date is missing).
    rows_in : register -> number of rows read (counted separately from the classification).
    unknown_codes : ``register, code, rows``: procedure codes not found in the data dictionary.
    notes : ``register, year, note, rows``: values recoded (e.g. HFAUDD not in the classification ->
        education ``unknown``); these rows are kept, not dropped.
    outputs : canonical table -> rows written.
    files : register -> files read.
    """

    rows: pd.DataFrame
    rows_in: dict[str, int]
    unknown_codes: pd.DataFrame
    notes: pd.DataFrame
    outputs: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    out_dir: Path | None = None

    def balance(self) -> pd.DataFrame:
        """Per register: rows_in, rows_kept, rows_dropped and ``unexplained = in - kept - dropped`` (should be 0)."""
        r = self.rows
        kept = r[r["status"] == "kept"].groupby("register")["rows"].sum()
        dropped = r[r["status"] == "dropped"].groupby("register")["rows"].sum()
        out = pd.DataFrame({"register": list(self.rows_in)})
        out["rows_in"] = out["register"].map(self.rows_in).astype("int64")
        out["rows_kept"] = out["register"].map(kept).fillna(0).astype("int64")
        out["rows_dropped"] = out["register"].map(dropped).fillna(0).astype("int64")
        out["unexplained"] = out["rows_in"] - out["rows_kept"] - out["rows_dropped"]
        return out

    def by_year(self) -> pd.DataFrame:
        """Per register and year: rows in, kept, dropped."""
        r = self.rows.copy()
        r["year"] = r["year"].astype("Int64")
        piv = (r.groupby(["register", "year", "status"], dropna=False)["rows"].sum()
               .unstack("status", fill_value=0).reset_index())
        piv.columns.name = None
        for col in ("kept", "dropped"):
            if col not in piv.columns:
                piv[col] = 0
        piv["rows_in"] = piv["kept"] + piv["dropped"]
        return piv[["register", "year", "rows_in", "kept", "dropped"]].rename(
            columns={"kept": "rows_out", "dropped": "rows_dropped"})

    def dropped(self) -> pd.DataFrame:
        """Dropped rows by register and reason."""
        d = self.rows[self.rows["status"] == "dropped"]
        return d.groupby(["register", "reason"], as_index=False)["rows"].sum().sort_values(["register", "reason"])

    def summary_text(self) -> str:
        bal = self.balance()
        lines = ["Ingest report", "", "Rows per register (in = kept + dropped):"]
        lines.append(bal.to_string(index=False))
        d = self.dropped()
        if len(d):
            lines += ["", "Dropped rows by reason:", d.to_string(index=False)]
        if len(self.unknown_codes):
            top = self.unknown_codes.sort_values("rows", ascending=False).head(20)
            lines += ["", f"Procedure codes not in the data dictionary ({len(self.unknown_codes)} codes; top 20):",
                      top.to_string(index=False)]
        if self.outputs:
            lines += ["", "Canonical tables written:"] + [f"  {k}: {v:,} rows" for k, v in self.outputs.items()]
        unexplained = int(bal["unexplained"].abs().sum())
        lines += ["", "Unexplained row losses: " + ("none" if unexplained == 0 else f"{unexplained} (see balance())")]
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """The long report table written to ``ingest_report.csv``."""
        out = self.rows.copy()
        out["year"] = out["year"].astype("Int64")
        return out.sort_values(["register", "year", "status", "target", "reason"], na_position="first")[ROW_COLUMNS]

    def to_markdown(self) -> str:
        def table(df: pd.DataFrame) -> str:
            if not len(df):
                return "_none_\n"
            cols = list(df.columns)
            out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            for row in df.itertuples(index=False):
                out.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
            return "\n".join(out) + "\n"

        parts = ["# Ingest report\n", "## Balance per register\n",
                 "Every input row is either kept or dropped with a reason; `unexplained` must be 0.\n",
                 table(self.balance()), "\n## Rows per register and year\n", table(self.by_year()),
                 "\n## Dropped rows by reason\n", table(self.dropped()),
                 "\n## Procedure codes not found in the data dictionary\n",
                 table(self.unknown_codes.sort_values("rows", ascending=False).head(500)),
                 "\n## Recoded values (rows kept)\n", table(self.notes),
                 "\n## Canonical tables written\n",
                 table(pd.DataFrame({"table": list(self.outputs), "rows": list(self.outputs.values())})),
                 "\n## Files read\n",
                 table(pd.DataFrame([(k, f) for k, fs in self.files.items() for f in fs], columns=["register", "file"]))]
        return "\n".join(parts)
