"""Figures in the style of the report: region lines over years, period bars, a shared palette.

Plain functions that take the tidy tables of :mod:`lumbarstats.rates` and return a matplotlib
Figure (or draw on a given Axes), so that a notebook needs one call per figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from lumbarstats import dictionary as _dictionary
from lumbarstats import io as _io

__all__ = ["REGION_COLORS", "annual_rate_figure", "period_bar_figure", "save_figure", "number_formatter"]

# one colour per region, the whole country in dark grey (report-like muted palette)
REGION_COLORS = {
    "Nordjylland": "#1f5f8b", "Midtjylland": "#4fa3a5", "Syddanmark": "#e07b39",
    "Hovedstaden": "#8c5a9e", "Sjælland": "#7fae4c", "Landsplan": "#333333",
}
_MODALITY_TITLE = {
    "da": {"MR": "MR-scanninger af lænderyggen", "XRAY": "Røntgen af lænderyggen"},
    "en": {"MR": "MRI of the lumbar spine", "XRAY": "X-ray of the lumbar spine"},
}
_Y_LABEL = {"da": "Køns- og aldersstandardiseret antal pr. 1.000 voksne",
            "en": "Sex- and age-standardized rate per 1,000 adults"}


def number_formatter(decimals: int = 1, lang: str = "da"):
    """A matplotlib tick formatter with Danish (``14,7``) or English (``14.7``) decimals."""
    from matplotlib.ticker import FuncFormatter

    def fmt(x, _pos):
        s = f"{x:,.{decimals}f}"
        return s.replace(",", "X").replace(".", ",").replace("X", ".") if lang == "da" else s

    return FuncFormatter(fmt)


def _region_label(region: str, lang: str) -> str:
    dd = _dictionary.load()
    if region == dd.whole_country_name:
        return "Landsplan" if lang == "da" else "Denmark"
    return region


def annual_rate_figure(rates: pd.DataFrame, *, modality: str | None = None, ax=None, lang: str = "da",
                       intervals: bool = True, reference: pd.DataFrame | None = None):
    """Figures 5.3–5.4: standardized rate by region over the years (whole country dashed).

    ``reference`` (region, year, rate) adds the published values as open markers.
    """
    df = rates if modality is None else rates[rates["modality"] == modality]
    modality = modality or (df["modality"].iloc[0] if "modality" in df.columns else "MR")
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    for region, g in df.groupby("region", sort=False):
        g = g.sort_values("year")
        color = REGION_COLORS.get(region, None)
        style = "--" if region == "Landsplan" else "-"
        ax.plot(g["year"], g["rate"], style, color=color, lw=2, marker="o", ms=3.5, label=_region_label(region, lang))
        if intervals and "lower" in g:
            ax.fill_between(g["year"], g["lower"], g["upper"], color=color, alpha=0.12, lw=0)
        if reference is not None:
            r = reference[reference["region"] == region].sort_values("year")
            ax.plot(r["year"], r["rate"], "o", mfc="none", color=color, ms=5)
    ax.set_title(_MODALITY_TITLE[lang].get(modality, modality), loc="left", fontsize=11, fontweight="bold")
    ax.set_ylabel(_Y_LABEL[lang], fontsize=9)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(number_formatter(0, lang))
    years = sorted(df["year"].unique())
    ax.set_xticks(years)
    ax.grid(axis="y", color="#dddddd")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=8, ncol=3, loc="lower center", bbox_to_anchor=(0.5, -0.3))
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


def period_bar_figure(periods: pd.DataFrame, *, modality: str | None = None, ax=None, lang: str = "da"):
    """Figures 1.5–1.6: standardized rate per region for the pooled periods, grouped bars with intervals."""
    df = periods if modality is None else periods[periods["modality"] == modality]
    modality = modality or df["modality"].iloc[0]
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    regions = list(dict.fromkeys(df["region"]))
    plist = list(dict.fromkeys(df["period"]))
    width = 0.8 / len(plist)
    shades = ["#b9d3e6", "#5b9bc8", "#1f5f8b"][-len(plist):] if len(plist) <= 3 else None
    x = np.arange(len(regions))
    for i, p in enumerate(plist):
        g = df[df["period"] == p].set_index("region").reindex(regions)
        err = np.vstack([g["rate"] - g["lower"], g["upper"] - g["rate"]])
        ax.bar(x + (i - (len(plist) - 1) / 2) * width, g["rate"], width, yerr=err, capsize=2,
               color=shades[i] if shades else None, label=p, error_kw={"lw": 0.8})
    ax.set_xticks(x, [_region_label(r, lang) for r in regions])
    ax.set_title(_MODALITY_TITLE[lang].get(modality, modality), loc="left", fontsize=11, fontweight="bold")
    ax.set_ylabel(_Y_LABEL[lang], fontsize=9)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(number_formatter(0, lang))
    ax.grid(axis="y", color="#dddddd")
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8, ncol=len(plist))
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


def save_figure(fig, path, *, dpi: int = 150) -> Path:
    """Save a figure atomically (format from the suffix: .png, .pdf, .svg) and close it."""
    path = Path(path)
    with _io.atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip("."))
    plt.close(fig)
    return path
