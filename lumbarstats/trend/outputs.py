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
                     dpi: int = 300, policy=None) -> dict[str, Path]:
    """Write the tables and the figure of one evaluation; returns ``{name: path}``.

    Every table goes through the export path (:func:`lumbarstats.export.publish_table`): a table with a
    count column (the observed examinations of the cumulative effect) is disclosure-controlled with
    ``policy``; model estimates describe no cell of persons and pass unchanged.
    """
    import matplotlib.pyplot as plt

    from lumbarstats import export

    out_dir = Path(out_dir)
    tag = f"{slug(region)}_{slug(modality)}"
    tables, figures = out_dir / "tables", out_dir / "figures"
    paths: dict[str, Path] = {}
    summary = its.summary.reset_index()[["term", "rate_ratio", "lower", "upper", "p_value"]]
    paths["its"] = export.publish_table(summary, tables / f"its_{tag}.csv", policy=policy)
    cumulative = its.cumulative_effect()
    paths["its_cumulative"] = export.publish_table(
        cumulative, tables / f"its_{tag}_cumulative.csv", policy=policy,
        **({"rule_column": "observed_events", "count_columns": ["observed_events"]}
           if "observed_events" in cumulative.columns else {}))
    if controlled is not None:
        paths["controlled"] = export.publish_table(controlled.summary, tables / f"controlled_{tag}.csv",
                                                   policy=policy)
        paths["controlled_placebo"] = export.publish_table(controlled.placebo,
                                                           tables / f"controlled_{tag}_placebo.csv", policy=policy)
    if synth is not None:
        paths["synthcontrol"] = export.publish_table(synth.summary, tables / f"synthcontrol_{tag}.csv",
                                                     policy=policy)
        paths["synthcontrol_weights"] = export.publish_table(synth.weights,
                                                             tables / f"synthcontrol_{tag}_weights.csv",
                                                             policy=policy)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    its.plot(ax=ax, title=title or f"{region}, {modality}",
             ylabel="køns- og aldersstandardiseret rate pr. 1.000 personår")
    fig.tight_layout()
    # PNG for the screen and a Word file, SVG beside it for a journal's layout
    paths["figure"], paths["figure_svg"] = export.publish_figure_files(fig, figures / f"its_{tag}.png", dpi=dpi)
    return paths
