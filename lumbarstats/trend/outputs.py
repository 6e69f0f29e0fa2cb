"""Writing an intervention evaluation to disk: tidy CSV tables and the figure (atomic writes).

File names (``{region}``/``{modality}`` lower-case, Danish letters transliterated æ->ae, ø->oe, å->aa):

- ``{out_dir}/tables/its_{region}_{modality}.csv`` — term, rate_ratio, lower, upper, p_value
- ``{out_dir}/tables/its_{region}_{modality}_cumulative.csv`` — observed vs counterfactual, whole post period
- ``{out_dir}/tables/controlled_{region}_{modality}.csv`` — controlled ITS with placebo p-values
- ``{out_dir}/tables/controlled_{region}_{modality}_placebo.csv`` — each region's placebo estimates
- ``{out_dir}/tables/synthcontrol_{region}_{modality}.csv`` — synthetic control summary (+ ``_weights``)
- ``{out_dir}/figures/its_{region}_{modality}.png`` — observed standardized monthly rate, fitted,
  counterfactual (dashed), intervention line (as figure C of the report's box 5.1)
"""

from __future__ import annotations

import re
from pathlib import Path

from ._common import atomic_savefig, atomic_write_csv

__all__ = ["slug", "write_evaluation"]


def slug(text) -> str:
    """File-name form of a region/modality: lower case, æøå transliterated, other characters -> '_'."""
    s = str(text).strip().lower()
    for a, b in (("æ", "ae"), ("ø", "oe"), ("å", "aa")):
        s = s.replace(a, b)
    s = re.sub(r"[^a-z0-9]+", "_", s).strip("_")
    if not s:
        raise ValueError(f"cannot make a file name from {text!r}")
    return s


def write_evaluation(out_dir, *, region, modality, its, controlled=None, synth=None, title: str | None = None,
                     dpi: int = 150) -> dict[str, Path]:
    """Write the tables and the figure of one evaluation; returns ``{name: path}``."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    tag = f"{slug(region)}_{slug(modality)}"
    tables, figures = out_dir / "tables", out_dir / "figures"
    paths: dict[str, Path] = {}
    summary = its.summary.reset_index()[["term", "rate_ratio", "lower", "upper", "p_value"]]
    paths["its"] = atomic_write_csv(summary, tables / f"its_{tag}.csv", index=False)
    paths["its_cumulative"] = atomic_write_csv(its.cumulative_effect(), tables / f"its_{tag}_cumulative.csv",
                                               index=False)
    if controlled is not None:
        paths["controlled"] = atomic_write_csv(controlled.summary, tables / f"controlled_{tag}.csv", index=False)
        paths["controlled_placebo"] = atomic_write_csv(controlled.placebo,
                                                       tables / f"controlled_{tag}_placebo.csv", index=False)
    if synth is not None:
        paths["synthcontrol"] = atomic_write_csv(synth.summary, tables / f"synthcontrol_{tag}.csv", index=False)
        paths["synthcontrol_weights"] = atomic_write_csv(synth.weights,
                                                         tables / f"synthcontrol_{tag}_weights.csv", index=False)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    its.plot(ax=ax, title=title or f"{region}, {modality}",
             ylabel="køns- og aldersstandardiseret rate pr. 1.000 personår")
    fig.tight_layout()
    paths["figure"] = atomic_savefig(fig, figures / f"its_{tag}.png", dpi=dpi)
    plt.close(fig)
    return paths
