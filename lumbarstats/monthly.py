"""Monthly age- and sex-standardized imaging rates by region, ready for interrupted time series.

For each region and calendar month the table has the observed examinations, the person-time
(person-years; a month is 1/12 of the year's population), the directly standardized rate per 1,000
person-years (sex x age band; :func:`lumbarstats.standardize.direct`, Breslow & Day 1987) and the
*expected* number of examinations under the standard's stratum rates (indirect standardization,
Breslow & Day 1987, ch. 2):

    expected_events(region, month) = sum_s  R_s * N_s(region, month),

with ``R_s`` the stratum-specific rate in the reference (all regions and months pooled, or the given
standard) and ``N_s`` the stratum's person-time.

**Modelling choice for ITS.** Directly standardized monthly rates are not counts, so a count model
(Poisson/quasi-Poisson) is fitted to the *observed* counts with ``log(expected_events)`` as offset:
the model then estimates changes in the indirectly standardized ratio (SMR), which adjusts for
changes in the age/sex structure of the region exactly as an offset should, and keeps the Poisson
variance of the real counts. ``reference_rate`` (the pooled crude rate of the reference, per 1,000
person-years) turns an SMR into an indirectly standardized rate on the same scale as ``rate``; pass
``per=reference_rate`` to :func:`lumbarstats.trend.its` to plot the fitted series as rates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["monthly_standardized_series"]

_STRATA = ["sex", "age_band"]


def monthly_standardized_series(
    data_dir,
    *,
    modality: str = "MR",
    regions=None,
    standard: pd.DataFrame | None = None,
    years=None,
    per: float = 1000.0,
    payer: str | None = "public",
) -> pd.DataFrame:
    """Monthly standardized series by region.

    Parameters
    ----------
    data_dir : register folder (see docs/architecture.md) or :class:`lumbarstats.register.Register`.
    modality : "MR", "XRAY" or "CT".
    regions : regions as DST codes (1081-1085) or names in any spelling (``"Sjaelland"``,
        ``"Region Syddanmark"``; :func:`lumbarstats.dictionary.resolve_region`); default all.
    standard : DataFrame with ``sex, age_band, weight`` for the direct standardization; default
        :func:`lumbarstats.aggregate.default_standard` (pooled adult population of the study years).
        The reference stratum rates for ``expected_events`` are always the pooled rates of all
        regions and months in the selected years.
    years : ``(first, last)`` or a list of years; default all.

    Returns
    -------
    DataFrame with ``region`` (name), ``region_code``, ``month`` (Timestamp, first of month),
    ``year``, ``events``, ``population`` (person-years), ``rate`` (directly standardized per
    ``per`` person-years), ``lower``, ``upper`` (its interval), ``expected_events``,
    ``reference_rate`` (pooled crude rate of the reference per ``per`` person-years), ``smr``.
    """
    from . import aggregate, dictionary, standardize

    # pass a Register to share its cached strata and standard with other analyses
    counts = aggregate.strata_counts(
        data_dir, by=["region", "region_name", "year", "month", *_STRATA], modality=modality, payer=payer,
        years=years,
    )
    if counts.empty:
        raise ValueError(f"no population rows in {data_dir!r} for years={years!r}")
    # reference rates over all regions and months (before restricting to `regions`)
    ref = counts.groupby(_STRATA, observed=True)[["events", "population"]].sum()
    ref_rate = (ref["events"] / ref["population"]).rename("_ref_rate")
    reference_rate = float(ref["events"].sum() / ref["population"].sum()) * per
    if regions is not None:
        wanted = [regions] if isinstance(regions, str | int) else list(regions)
        codes = [dictionary.load().region_code(r) for r in wanted]  # any spelling; the whole country is not a region
        counts = counts[counts["region"].isin(codes)]
    counts = counts.merge(ref_rate.reset_index(), on=_STRATA, how="left")
    counts["_expected"] = counts["_ref_rate"].fillna(0.0) * counts["population"]
    if standard is None:
        standard = aggregate.default_standard(data_dir)  # the study years, as tables 1-2, whatever `years` is
    by = ["region", "region_name", "year", "month"]
    dsr = standardize.direct(counts, strata=_STRATA, standard=standard, events="events",
                             population="population", by=by, per=per)
    expected = counts.groupby(by, observed=True)["_expected"].sum().rename("expected_events").reset_index()
    out = dsr.merge(expected, on=by, how="left")
    out["month_start"] = pd.to_datetime(
        pd.DataFrame({"year": out["year"].astype(int), "month": out["month"].astype(int), "day": 1})
    )
    out = out.rename(columns={"region": "region_code", "region_name": "region"})
    out["reference_rate"] = reference_rate
    with np.errstate(divide="ignore", invalid="ignore"):
        out["smr"] = out["events"] / out["expected_events"]
    out = out.drop(columns=["month"]).rename(columns={"month_start": "month"})
    cols = ["region", "region_code", "month", "year", "events", "population", "rate", "lower", "upper",
            "expected_events", "reference_rate", "smr"]
    return out[cols].sort_values(["region", "month"]).reset_index(drop=True)
