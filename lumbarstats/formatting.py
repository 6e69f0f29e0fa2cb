"""Numbers as a Danish (or English) publication prints them, from Babel's locale data.

``1.234,5`` in Danish, ``1,234.5`` in English: the separators come from the CLDR locale (Babel), never
from replacing characters in an English string. Used on figure axes and value labels
(:mod:`lumbarstats.plots`) and for the rounded display of tables in a notebook.
"""

from __future__ import annotations

import math

import pandas as pd
from babel.numbers import format_decimal

__all__ = ["LOCALES", "locale_for", "format_number", "axis_formatter", "display_rounded", "result_html"]

LOCALES = {"da": "da_DK", "en": "en_GB"}


def locale_for(lang: str) -> str:
    """The Babel locale of ``lang`` (``da`` or ``en``); raises naming the languages for another."""
    try:
        return LOCALES[lang]
    except KeyError:
        raise ValueError(f"language {lang!r}: use one of {sorted(LOCALES)}") from None


def format_number(value, decimals: int | None = 1, lang: str = "da", *, grouping: bool = True) -> str:
    """``value`` with ``decimals`` decimals in the locale of ``lang`` (None: as few as needed, at most
    two — for axis ticks such as 0, 2,5, 5); a missing value gives ``""``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    frac = ".##" if decimals is None else ("." + "0" * decimals if decimals > 0 else "")
    pattern = ("#,##0" if grouping else "0") + frac
    return format_decimal(value, format=pattern, locale=locale_for(lang))


def axis_formatter(decimals: int | None = None, lang: str = "da"):
    """A matplotlib tick formatter printing ticks as :func:`format_number` does."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: format_number(x, decimals, lang))


def display_rounded(df: pd.DataFrame, decimals: int = 2):
    """``df`` for display in a notebook: floats rounded to ``decimals``, whole-number floats (counts) as
    integers; text (the disclosure marker) left as it is. The table itself is not changed."""
    def as_display(col: pd.Series) -> pd.Series:
        if pd.api.types.is_float_dtype(col):
            whole = col.dropna()
            if len(whole) and (whole == whole.round()).all() and whole.abs().max() < 2**53:
                return col.astype("Int64")
            return col.round(decimals)
        if col.dtype == object:  # a protected column: numbers beside the marker (kept an object column, or
            # pandas would turn 155 beside 2.5 back into 155.0)
            return pd.Series([(int(v) if float(v).is_integer() else round(v, decimals))
                              if isinstance(v, float) and math.isfinite(v) else v for v in col],
                             index=col.index, dtype=object)
        return col

    return df.apply(as_display)


def result_html(title: str, table: pd.DataFrame, *, lines=(), decimals: int = 3, warning: str = "",
                index: bool = True) -> str:
    """The HTML of a result object in a notebook: a bold title, a few lines of context, ``table`` with
    numbers rounded to ``decimals`` (p-values to 3 significant digits, ``<0.001`` below) and a warning."""
    import html

    shown = table.copy()
    for c in shown.columns:
        col = shown[c]
        if not pd.api.types.is_float_dtype(col):
            continue
        if c in ("p_value", "p", "placebo_p_value", "pvalue"):
            shown[c] = col.map(lambda v: "" if pd.isna(v) else ("<0.001" if v < 0.001 else f"{v:.3f}"))
        else:
            shown[c] = display_rounded(col.to_frame(), decimals)[c]
    parts = [f"<p><b>{html.escape(title)}</b></p>"]
    parts += [f"<p>{html.escape(str(line))}</p>" for line in lines if line]
    parts.append(shown.to_html(index=index, na_rep="", escape=True))
    if warning:
        parts.append(f"<p><i>{html.escape(warning)}</i></p>")
    return "\n".join(parts)
