"""Figures in the style of the report: region lines over years, period bars, cumulative incidence.

Plain functions that take the protected tidy tables of :mod:`lumbarstats.pipeline` and return a
matplotlib Figure (or draw on a given Axes), so that a notebook needs one call per figure. In the report's
manner and ready to paste into a Danish paper: Danish by default (``lang="en"`` for English), numbers from
the locale (:mod:`lumbarstats.formatting`, Babel), one colour per region in every figure
(:data:`REGION_COLORS`, the one palette), a Kilde line and an optional Anm. line under the figure
(:func:`add_source`), text sized for a journal page (:data:`JOURNAL_RC`: 17 cm wide, 8–9 pt).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from lumbarstats import dictionary as _dictionary
from lumbarstats import formatting as _formatting
from lumbarstats import io as _io

__all__ = ["REGION_COLORS", "JOURNAL_RC", "FIGURE_WIDTH", "region_color", "region_label", "annual_rate_figure",
           "period_bar_figure", "cif_figure", "add_source", "source_line", "save_figure", "number_formatter",
           "journal_style", "event_title", "locale_ticks", "show_figures", "annual_count_figure",
           "national_rate_figure", "region_bar_figure", "payer_split_figure", "public_private_rate_figure",
           "region_rates_figure", "group_rates_figure"]

# THE palette: one colour per region, the whole country in dark grey (report-like muted colours). Every
# figure takes a region's colour from here (:func:`region_color`), so Syddanmark is orange everywhere.
REGION_COLORS = {
    "Nordjylland": "#1f5f8b", "Midtjylland": "#4fa3a5", "Syddanmark": "#e07b39",
    "Hovedstaden": "#8c5a9e", "Sjælland": "#7fae4c", "Landsplan": "#333333",
}
FIGURE_WIDTH = 6.7  # inches: 17 cm, a journal's full text width
# text sized for a journal column: 8–9 pt at the printed size (figures are saved at their true size)
JOURNAL_RC = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7.5,
              "ytick.labelsize": 7.5, "legend.fontsize": 7.5, "font.family": "sans-serif",
              "svg.fonttype": "none", "figure.dpi": 100}
_MODALITY_TITLE = {
    "da": {"MR": "MR-scanninger af lænderyggen", "XRAY": "Røntgen af lænderyggen"},
    "en": {"MR": "MRI of the lumbar spine", "XRAY": "X-ray of the lumbar spine"},
}
_Y_LABEL = {"da": "Køns- og aldersstandardiseret antal pr. 1.000 voksne",
            "en": "Sex- and age-standardized rate per 1,000 adults"}
_TEXT = {
    "da": {"source": "Kilde", "note": "Anm.", "published": "Offentliggjort værdi (rapporten, maj 2024)",
           "ci": "Skraveret: 95 pct. konfidensinterval.", "cif": "Kumuleret incidens",
           "years_after": "År efter første billeddiagnostik af lænderyggen", "period": "Periode",
           "region": "Region", "before": "Før", "after": "Efter",
           "events": {"surgery": "Operation i lænderyggen", "repeat_any": "Ny billeddiagnostik",
                      "repeat_same": "Ny undersøgelse af samme type", "repeat_other": "Ny undersøgelse af anden type"},
           "after_imaging": "efter første billeddiagnostik"},
    "en": {"source": "Source", "note": "Note", "published": "Published value (report, May 2024)",
           "ci": "Shaded: 95% confidence interval.", "cif": "Cumulative incidence",
           "years_after": "Years after first lumbar imaging", "period": "Period", "region": "Region",
           "before": "Before", "after": "After",
           "events": {"surgery": "Lumbar spine surgery", "repeat_any": "Repeat imaging",
                      "repeat_same": "Repeat imaging, same type", "repeat_other": "Repeat imaging, other type"},
           "after_imaging": "after first lumbar imaging"},
}
_SOURCE = {
    "synthetic": {"da": "Syntetisk register (lumbarstats), kalibreret til Benchmarkingenhedens tal (maj 2024); "
                        "egne beregninger.",
                  "en": "Synthetic register (lumbarstats), calibrated to the Benchmarking Unit's figures "
                        "(May 2024); own calculations."},
    "register": {"da": "Danmarks Statistik, forskerservice (registerdata); egne beregninger.",
                 "en": "Statistics Denmark, research services (register data); own calculations."},
}


def _text(lang: str) -> dict:
    _formatting.locale_for(lang)  # one clear error for an unknown language
    return _TEXT[lang]


def journal_style():
    """Context manager: matplotlib settings for a journal figure (:data:`JOURNAL_RC`)."""
    return plt.rc_context(JOURNAL_RC)


def number_formatter(decimals: int | None = 1, lang: str = "da"):
    """A matplotlib tick formatter with the locale's decimals (``14,7`` / ``14.7``):
    :func:`lumbarstats.formatting.axis_formatter`."""
    return _formatting.axis_formatter(decimals, lang)


def locale_ticks(ax, axis: str = "both", lang: str = "da"):
    """Ticks of ``ax`` in the locale's number format (``2,5``, ``1.000``) on ``x``, ``y`` or ``both``."""
    for name in ("x", "y") if axis == "both" else (axis,):
        getattr(ax, f"{name}axis").set_major_formatter(number_formatter(None, lang))
    return ax


def _short_region(region) -> str | None:
    with contextlib.suppress(ValueError, TypeError):
        return _dictionary.load().region_name(region)
    return None


def region_color(region) -> str | None:
    """The palette's colour of ``region`` (any spelling :func:`lumbarstats.dictionary.resolve_region`
    accepts: ``Sjaelland``, ``SJÆLLAND``, 1085); None for something that is not a region."""
    short = _short_region(region)
    return REGION_COLORS.get(short) if short is not None else None


def region_label(region, lang: str = "da") -> str:
    """The name printed in a figure: the short Danish name (``Syddanmark``), the whole country as
    ``Landsplan`` / ``Denmark``; something that is not a region as it is."""
    short = _short_region(region)
    if short is None:
        return str(region)
    dd = _dictionary.load()
    if short == dd.whole_country_name:
        return "Landsplan" if lang == "da" else "Denmark"
    return short


def source_line(register_folder=None, lang: str = "da") -> str:
    """The Kilde text of a figure: the synthetic register (a folder with the generator's
    ``metadata.json``) or register data at Statistics Denmark."""
    _formatting.locale_for(lang)
    synthetic = register_folder is not None and (Path(register_folder) / "metadata.json").is_file()
    return _SOURCE["synthetic" if synthetic else "register"][lang]


def add_source(fig, source: str | None = None, note: str | None = None, lang: str = "da"):
    """Write ``Anm.: note`` and ``Kilde: source`` under the figure, left-aligned as in the report (only the
    lines given). The saved figure grows to hold them (``bbox_inches="tight"``)."""
    t = _text(lang)
    lines = ([f"{t['note']}: {note}"] if note else []) + ([f"{t['source']}: {source}"] if source else [])
    if lines:
        fig.text(0.01, -0.01, "\n".join(lines), ha="left", va="top", fontsize=7, color="#444444", wrap=True)
    return fig


def _legend_below(ax, handles=None, labels=None, ncol: int = 3):
    kw = {} if handles is None else {"handles": handles, "labels": labels}
    ax.legend(frameon=False, ncol=ncol, loc="upper center", bbox_to_anchor=(0.5, -0.12), **kw)


def _drawable(table: pd.DataFrame) -> pd.DataFrame:
    """Figures are drawn from protected tables: a hidden value (the marker) draws nothing."""
    from lumbarstats import export

    return export.plottable(table, [c for c in ("rate", "lower", "upper", "pct_change") if c in table.columns])


def _in_palette_order(regions) -> list:
    order = list(REGION_COLORS)
    return sorted(regions, key=lambda r: order.index(_short_region(r)) if _short_region(r) in order else 99)


def annual_rate_figure(rates: pd.DataFrame, *, modality: str | None = None, ax=None, lang: str = "da",
                       intervals: bool = True, reference: pd.DataFrame | None = None, source: str | None = None,
                       note: str | None = None):
    """Figures 5.3–5.4: standardized rate by region over the years (whole country dashed).

    ``reference`` (region, year, rate) adds the published values as open markers, with their own legend
    entry. ``source`` / ``note``: the Kilde and Anm. lines (:func:`add_source`).
    """
    t = _text(lang)
    df = _drawable(rates if modality is None else rates[rates["modality"] == modality])
    modality = modality or (df["modality"].iloc[0] if "modality" in df.columns else "MR")
    fig = None
    with journal_style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.9))
        for region in _in_palette_order(df["region"].unique()):
            g = df[df["region"] == region].sort_values("year")
            color = region_color(region)
            style = "--" if region_label(region) == "Landsplan" else "-"
            ax.plot(g["year"], g["rate"], style, color=color, lw=1.6, marker="o", ms=3,
                    label=region_label(region, lang))
            if intervals and "lower" in g:
                ax.fill_between(g["year"], g["lower"], g["upper"], color=color, alpha=0.12, lw=0)
            if reference is not None:
                r = reference[reference["region"].map(_short_region) == _short_region(region)].sort_values("year")
                ax.plot(r["year"], r["rate"], "o", mfc="none", color=color, ms=5, mew=1)
        handles, labels = ax.get_legend_handles_labels()
        if reference is not None and len(reference):
            handles.append(Line2D([], [], ls="", marker="o", mfc="none", color="#333333", ms=5))
            labels.append(t["published"])
        ax.set_title(_MODALITY_TITLE[lang].get(modality, modality), loc="left", fontweight="bold")
        ax.set_ylabel(_Y_LABEL[lang])
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(number_formatter(0, lang))
        ax.set_xticks(sorted(df["year"].unique()))
        ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:.0f}")  # years carry no thousands separator
        ax.grid(axis="y", color="#dddddd")
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_ylim(bottom=0)
        _legend_below(ax, handles, labels, ncol=4)
        if fig is not None:
            fig.tight_layout()
            add_source(fig, source, " ".join(x for x in (t["ci"] if intervals else "", note or "") if x), lang)
    return fig or ax.figure


def period_bar_figure(periods: pd.DataFrame, *, modality: str | None = None, ax=None, lang: str = "da",
                      source: str | None = None, note: str | None = None):
    """Figures 1.5–1.6: standardized rate per region for the pooled periods, grouped bars with intervals."""
    df = _drawable(periods if modality is None else periods[periods["modality"] == modality])
    modality = modality or df["modality"].iloc[0]
    fig = None
    with journal_style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.6))
        regions = _in_palette_order(list(dict.fromkeys(df["region"])))
        plist = list(dict.fromkeys(df["period"]))
        width = 0.8 / len(plist)
        shades = ["#b9d3e6", "#5b9bc8", "#1f5f8b"][-len(plist):] if len(plist) <= 3 else [None] * len(plist)
        x = np.arange(len(regions))
        for i, p in enumerate(plist):
            g = df[df["period"] == p].set_index("region").reindex(regions)
            err = np.vstack([g["rate"] - g["lower"], g["upper"] - g["rate"]])
            ax.bar(x + (i - (len(plist) - 1) / 2) * width, g["rate"], width, yerr=err, capsize=2,
                   color=shades[i], label=str(p), error_kw={"lw": 0.8})
        ax.set_xticks(x, [region_label(r, lang) for r in regions])
        ax.set_title(_MODALITY_TITLE[lang].get(modality, modality), loc="left", fontweight="bold")
        ax.set_ylabel(_Y_LABEL[lang])
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(number_formatter(0, lang))
        ax.grid(axis="y", color="#dddddd")
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
        _legend_below(ax, ncol=len(plist))
        if fig is not None:
            fig.tight_layout()
            add_source(fig, source, " ".join(x for x in (_text(lang)["ci"].replace("Skraveret", "Streger")
                                                         .replace("Shaded", "Whiskers"), note or "") if x), lang)
    return fig or ax.figure


def _curve_label(by: str, value, lang: str) -> str:
    t = _text(lang)
    if by == "period":
        return t.get(str(value), str(value))
    if by == "region_name":
        return region_label(value, lang)
    return str(value)


def cif_figure(cif: pd.DataFrame, *, by: str = "period", event_type: str | None = None, title: str | None = None,
               time_scale: float = 365.25, xlabel: str | None = None, ax=None, lang: str = "da",
               source: str | None = None, note: str | None = None):
    """Cumulative incidence curves drawn from a *protected* CIF table (the published points, as steps):
    rows of ``grouping == by`` (one curve per value of ``by``); a hidden point (the marker) draws a gap,
    so the figure shows nothing its table hides. Danish by default: periods as Før/Efter (in that order),
    regions in the palette's colours, the legend titled Periode / Region."""
    from lumbarstats import export

    t = _text(lang)
    data = cif[cif["grouping"] == by] if "grouping" in cif.columns else cif
    if event_type is not None and "event_type" in data.columns:
        data = data[data["event_type"] == event_type]
    data = export.plottable(data, ["cif", "lower", "upper"])
    values = list(dict.fromkeys(data[by])) if by in data.columns else []
    if by == "period":
        values.sort(key=lambda v: {"before": 0, "after": 1}.get(str(v), 2))
    elif by == "region_name":
        values = _in_palette_order(values)
    fig = None
    with journal_style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(FIGURE_WIDTH * 0.75, 3.4))
        period_colors = {"before": "#8c8c8c", "after": "#1f5f8b"}
        for value in values:
            g = data[data[by] == value].sort_values("time")
            tt = np.r_[0.0, g["time"].to_numpy(dtype=float)] / time_scale
            y = np.r_[0.0, g["cif"].to_numpy(dtype=float)]
            color = region_color(value) if by == "region_name" else period_colors.get(str(value))
            ax.step(tt, y, where="post", label=_curve_label(by, value, lang), color=color, lw=1.5)
        ax.set_xlabel(xlabel or t["years_after"])
        ax.set_ylabel(t["cif"])
        ax.yaxis.set_major_formatter(number_formatter(2, lang))
        ax.xaxis.set_major_formatter(number_formatter(0 if time_scale >= 365 else 1, lang))
        ax.set_ylim(bottom=0)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", color="#dddddd")
        ax.legend(title=t["period"] if by == "period" else t["region"] if by == "region_name" else None,
                  frameon=False)
        if title:
            ax.set_title(title, loc="left", fontweight="bold")
        if fig is not None:
            fig.tight_layout()
            add_source(fig, source, note, lang)
    return fig if fig is not None else ax.figure


def event_title(event_type: str, region, lang: str = "da") -> str:
    """Title of a time-to-event figure: 'Operation i lænderyggen efter første billeddiagnostik – Landsplan'."""
    t = _text(lang)
    return f"{t['events'].get(event_type, event_type)} {t['after_imaging']} – {region_label(region, lang)}"


def show_figures(files, *, width: int = 760):
    """Display in a notebook the PNG figures among ``files`` (the files a report step wrote, from its
    protected tables), so the notebook shows exactly the published figures."""
    from IPython.display import Image, display

    for f in files:
        if Path(f).suffix.lower() == ".png":
            display(Image(filename=str(f), width=width))


def save_figure(fig, path, *, dpi: int = 300) -> Path:
    """Save a figure atomically (format from the suffix: .png, .pdf, .svg) and close it
    (:func:`lumbarstats.io.save_figure`)."""
    return _io.save_figure(fig, path, dpi=dpi, bbox_inches="tight", close=True)


# --------------------------------------------------------------------------------------------------
# figures of the report's national products, box 4.1, box 5.1 and Bilag 1 (lumbarstats.products)
# --------------------------------------------------------------------------------------------------
_MODALITY_SHORT = {"da": {"MR": "MR-scanninger", "XRAY": "Røntgen"}, "en": {"MR": "MRI", "XRAY": "X-ray"}}
_PRODUCT_TEXT = {
    "da": {"count": "Antal undersøgelser", "rate": "Køns- og aldersstandardiseret antal pr. 1.000 voksne",
           "change": "Ændring {a}–{b}: {pct} pct.", "share": "Andel af alle undersøgelser (pct.)",
           "pct": "{v} pct.", "public": "Offentligt finansieret", "private": "Privatfinansieret",
           "other": "Anden betaling", "other_both": "Anden betaling (MR og røntgen)"},
    "en": {"count": "Number of examinations", "rate": "Sex- and age-standardized rate per 1,000 adults",
           "change": "Change {a}–{b}: {pct}%", "share": "Share of all examinations (%)", "pct": "{v}%",
           "public": "Publicly financed", "private": "Privately financed", "other": "Other payer",
           "other_both": "Other payer (MRI and X-ray)"},
}
_MODALITY_COLORS = {"MR": "#1f5f8b", "XRAY": "#e07b39"}
_RATE_LABEL_2 = {"da": "Køns- og aldersstandardiseret\nantal pr. 1.000 voksne",
                 "en": "Sex- and age-standardized\nrate per 1,000 adults"}


def _wrap(title: str | None, width: int = 88) -> str | None:
    """A figure title wrapped to the figure's width (the report's captions are long)."""
    import textwrap

    return None if not title else "\n".join(textwrap.wrap(title, width))


def _year_axis(ax, years) -> None:
    ax.set_xticks(sorted(int(y) for y in years))
    ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:.0f}")  # years carry no thousands separator
    ax.tick_params(axis="x", labelrotation=0)


def _finish(fig, source, note, lang, legend_ax=None, ncol=2):
    if legend_ax is not None:
        _legend_below(legend_ax, ncol=ncol)
    fig.tight_layout()
    add_source(fig, source, note, lang)
    return fig


def annual_count_figure(table: pd.DataFrame, *, lang: str = "da", source: str | None = None,
                        note: str | None = None, title: str | None = None):
    """Figures 1.1/4.1: the whole country's annual numbers of examinations per modality (lines), drawn from a
    protected table with ``year, modality, examinations`` (a hidden count draws a gap)."""
    from lumbarstats import export

    t = _PRODUCT_TEXT[lang]
    _text(lang)
    df = export.plottable(table, ["examinations"])
    with journal_style():
        fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.4))
        for modality in [m for m in ("MR", "XRAY") if m in set(df["modality"])]:
            g = df[df["modality"] == modality].sort_values("year")
            ax.plot(g["year"].astype(int), g["examinations"], "-", marker="o", ms=3, lw=1.6,
                    color=_MODALITY_COLORS[modality], label=_MODALITY_SHORT[lang][modality])
        _year_axis(ax, df["year"].unique())
        ax.set_ylabel(t["count"])
        ax.yaxis.set_major_formatter(number_formatter(0, lang))
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", color="#dddddd")
        ax.spines[["top", "right"]].set_visible(False)
        if title:
            ax.set_title(_wrap(title), loc="left", fontweight="bold")
        return _finish(fig, source, note, lang, legend_ax=ax)


def _change_label(g: pd.DataFrame, lang: str) -> str | None:
    g = g.dropna(subset=["rate"]).sort_values("year")
    if len(g) < 2:
        return None
    first, last = g.iloc[0], g.iloc[-1]
    pct = 100 * (last["rate"] / first["rate"] - 1)
    sign = "+" if pct > 0 else "−" if pct < 0 else ""
    return _PRODUCT_TEXT[lang]["change"].format(a=int(first["year"]), b=int(last["year"]),
                                                pct=sign + _formatting.format_number(abs(pct), 0, lang))


def national_rate_figure(table: pd.DataFrame, *, lang: str = "da", source: str | None = None,
                         note: str | None = None, title: str | None = None):
    """Figures 1.2/4.2: the whole country's standardized MR and X-ray rates per 1,000 adults side by side,
    one panel per modality, with the change from the first to the last year written in each panel.
    ``table``: protected, ``year, modality, rate, lower, upper``."""
    df = _drawable(table)
    modalities = [m for m in ("MR", "XRAY") if m in set(df["modality"])]
    with journal_style():
        fig, axes = plt.subplots(1, len(modalities), figsize=(FIGURE_WIDTH, 3.2), sharey=True, squeeze=False)
        top = np.nanmax(df["upper"].to_numpy(dtype=float)) if len(df) else 1.0
        for ax, modality in zip(axes[0], modalities, strict=True):
            g = df[df["modality"] == modality].sort_values("year")
            color = _MODALITY_COLORS[modality]
            ax.plot(g["year"].astype(int), g["rate"], "-", marker="o", ms=3, lw=1.6, color=color)
            ax.fill_between(g["year"].astype(int), g["lower"], g["upper"], color=color, alpha=0.15, lw=0)
            for _, row in g.iloc[[0, -1]].iterrows() if len(g) else []:
                if np.isfinite(row["rate"]):
                    ax.annotate(_formatting.format_number(row["rate"], 1, lang), (int(row["year"]), row["rate"]),
                                textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
            change = _change_label(g, lang)
            if change:
                ax.text(0.02, 0.04, change, transform=ax.transAxes, fontsize=7.5, fontweight="bold", color=color)
            ax.set_title(_MODALITY_SHORT[lang][modality], loc="left", fontweight="bold")
            _year_axis(ax, g["year"].unique())
            ax.tick_params(axis="x", labelrotation=90)
            ax.set_ylim(0, top * 1.15)
            ax.yaxis.set_major_formatter(number_formatter(0, lang))
            ax.grid(axis="y", color="#dddddd")
            ax.spines[["top", "right"]].set_visible(False)
        axes[0][0].set_ylabel(_RATE_LABEL_2[lang])
        if title:
            fig.suptitle(_wrap(title), x=0.01, ha="left", fontweight="bold")
        ci = _text(lang)["ci"]
        return _finish(fig, source, " ".join(x for x in (ci, note or "") if x), lang)


def region_bar_figure(periods: pd.DataFrame, *, modality: str, period: str = "2021-2023", lang: str = "da",
                      source: str | None = None, note: str | None = None, title: str | None = None):
    """Figures 1.3–1.4 / 5.1–5.2: the standardized rate of each region and the whole country in one pooled
    period, one bar per region in the palette's colour, the value written above it (whiskers: 95 %
    interval). ``periods``: a protected period table (tables 5.1–5.2)."""
    df = _drawable(periods[(periods["modality"] == modality) & (periods["period"].astype(str) == period)])
    regions = _in_palette_order(list(dict.fromkeys(df["region"])))
    g = df.set_index("region").reindex(regions)
    with journal_style():
        fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.2))
        x = np.arange(len(regions))
        err = np.vstack([g["rate"] - g["lower"], g["upper"] - g["rate"]])
        ax.bar(x, g["rate"], 0.65, yerr=err, capsize=2, color=[region_color(r) for r in regions],
               error_kw={"lw": 0.8})
        for xi, v, up in zip(x, g["rate"], g["upper"], strict=True):
            if np.isfinite(v):
                ax.text(xi, (up if np.isfinite(up) else v) * 1.01, _formatting.format_number(v, 1, lang),
                        ha="center", va="bottom", fontsize=7.5)
        ax.set_xticks(x, [region_label(r, lang) for r in regions])
        ax.set_ylabel(_RATE_LABEL_2[lang])
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(number_formatter(0, lang))
        ax.grid(axis="y", color="#dddddd")
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_title(_wrap(title) or f"{_MODALITY_TITLE[lang].get(modality, modality)}, {period.replace('-', '–')}",
                     loc="left", fontweight="bold")
        ci = _text(lang)["ci"].replace("Skraveret", "Streger").replace("Shaded", "Whiskers")
        return _finish(fig, source, " ".join(x for x in (ci, note or "") if x), lang)


def payer_split_figure(shares: pd.DataFrame, *, lang: str = "da", source: str | None = None,
                       note: str | None = None, title: str | None = None):
    """Box 4.1 figure A: shares of all lumbar MR and X-ray examinations by payer and modality, horizontal
    bars with the share written beside them; other payers of both modalities drawn as one bar as in the
    report (hidden when either is hidden). ``shares``: protected ``modality, payer, share_pct``."""
    from lumbarstats import export

    t = _PRODUCT_TEXT[lang]
    df = export.plottable(shares, ["share_pct"])
    rows = []
    for payer in ("public", "private"):
        for modality in ("MR", "XRAY"):
            v = df.loc[(df["payer"] == payer) & (df["modality"] == modality), "share_pct"]
            if len(v):
                rows.append((f"{t[payer]} {_MODALITY_SHORT[lang][modality].lower() if lang == 'da' and modality == 'XRAY' else _MODALITY_SHORT[lang][modality]}",
                             float(v.iloc[0]), _MODALITY_COLORS[modality], payer))
    other = df.loc[df["payer"] == "other", "share_pct"]
    if len(other):
        rows.append((t["other_both"], float(other.sum(min_count=len(other))) if other.notna().all() else np.nan,
                     "#8c8c8c", "other"))
    with journal_style():
        fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 0.35 * len(rows) + 1.2))
        y = np.arange(len(rows))
        ax.barh(y, [r[1] for r in rows], 0.6, color=[r[2] for r in rows],
                alpha=1.0)
        for yi, r in zip(y, rows, strict=True):
            if np.isfinite(r[1]):
                ax.text(r[1], yi, "  " + t["pct"].format(v=_formatting.format_number(r[1], 1, lang)), va="center",
                        fontsize=7.5)
        ax.set_yticks(y, [r[0] for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel(t["share"])
        ax.xaxis.set_major_formatter(number_formatter(0, lang))
        ax.set_xlim(0, 100)
        ax.grid(axis="x", color="#dddddd")
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
        if title:
            ax.set_title(_wrap(title), loc="left", fontweight="bold")
        return _finish(fig, source, note, lang)


def public_private_rate_figure(table: pd.DataFrame, *, lang: str = "da", source: str | None = None,
                               note: str | None = None, title: str | None = None):
    """Box 4.1 figure B: standardized rates of publicly and privately financed MR and X-ray per year, one
    panel per payer (the private rates are an order of magnitude smaller), MR and X-ray as lines.
    ``table``: protected ``year, modality, payer, rate, lower, upper``."""
    t = _PRODUCT_TEXT[lang]
    df = _drawable(table)
    payers = [p for p in ("public", "private") if p in set(df["payer"])]
    with journal_style():
        fig, axes = plt.subplots(1, len(payers), figsize=(FIGURE_WIDTH, 3.2), squeeze=False)
        for ax, payer in zip(axes[0], payers, strict=True):
            for modality in ("MR", "XRAY"):
                g = df[(df["payer"] == payer) & (df["modality"] == modality)].sort_values("year")
                if g.empty:
                    continue
                color = _MODALITY_COLORS[modality]
                ax.plot(g["year"].astype(int), g["rate"], "-", marker="o", ms=3, lw=1.5, color=color,
                        label=_MODALITY_SHORT[lang][modality])
                ax.fill_between(g["year"].astype(int), g["lower"], g["upper"], color=color, alpha=0.15, lw=0)
            ax.set_title(t[payer], loc="left", fontweight="bold")
            _year_axis(ax, df["year"].unique())
            ax.tick_params(axis="x", labelrotation=90)
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(number_formatter(1 if ax.get_ylim()[1] < 5 else 0, lang))
            ax.grid(axis="y", color="#dddddd")
            ax.spines[["top", "right"]].set_visible(False)
        axes[0][0].set_ylabel(_RATE_LABEL_2[lang])
        if title:
            fig.suptitle(_wrap(title), x=0.01, ha="left", fontweight="bold")
        fig.tight_layout()
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, frameon=False, ncol=2, loc="upper center", bbox_to_anchor=(0.5, 0.0))
        add_source(fig, source, " ".join(x for x in (_text(lang)["ci"], note or "") if x), lang)
        fig.texts[-1].set_y(-0.08)  # below the legend
        return fig


def region_rates_figure(annual: pd.DataFrame, *, region, lang: str = "da", source: str | None = None,
                        note: str | None = None, title: str | None = None):
    """Box 5.1 figure C: one region's standardized MR and X-ray rates per year (two lines, 95 % interval
    shaded). ``annual``: protected tables 1–2 stacked
    (``modality, region, year, rate, lower, upper``)."""
    short = _short_region(region)
    df = _drawable(annual[annual["region"].map(_short_region) == short])
    with journal_style():
        fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.4))
        for modality in ("MR", "XRAY"):
            g = df[df["modality"] == modality].sort_values("year")
            if g.empty:
                continue
            color = _MODALITY_COLORS[modality]
            ax.plot(g["year"].astype(int), g["rate"], "-", marker="o", ms=3, lw=1.6, color=color,
                    label=_MODALITY_SHORT[lang][modality])
            ax.fill_between(g["year"].astype(int), g["lower"], g["upper"], color=color, alpha=0.15, lw=0)
        _year_axis(ax, df["year"].unique())
        ax.set_ylabel(_RATE_LABEL_2[lang])
        ax.yaxis.set_major_formatter(number_formatter(0, lang))
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", color="#dddddd")
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_title(_wrap(title) or region_label(region, lang), loc="left", fontweight="bold")
        return _finish(fig, source, " ".join(x for x in (_text(lang)["ci"], note or "") if x), lang,
                       legend_ax=ax)


def group_rates_figure(table: pd.DataFrame, *, variable: str, modality: str, region="Landsplan",
                       lang: str = "da", source: str | None = None, note: str | None = None,
                       title: str | None = None):
    """Figures 4.3–4.14 for one variable (e.g. the 19 industries of figures 4.11–4.12): horizontal bars of
    the protected group table's rows of ``variable``, ``modality`` and ``region``, sized to the number of
    groups (:func:`lumbarstats.groups.plot_group_rates`)."""
    from lumbarstats import groups

    sub = table[(table["variable"] == variable) & (table["modality"] == modality)
                & (table["region"].map(_short_region) == _short_region(region))]
    with journal_style():
        fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 0.24 * max(sub["group"].nunique(), 1) + 1.4))
        groups.plot_group_rates(sub, ax=ax, title="", lang=lang)
        ax.xaxis.set_major_formatter(number_formatter(None, lang))
        if title:
            fig.suptitle(_wrap(title, 95), x=0.01, ha="left", fontweight="bold")
        fig.tight_layout()
        add_source(fig, source, note, lang)
    return fig
