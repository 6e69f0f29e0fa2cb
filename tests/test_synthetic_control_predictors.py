"""Synthetic control with predictors (Abadie, Diamond & Hainmueller 2010) on the Basque data.

Reference: Abadie & Gardeazabal (2003), "The economic costs of conflict: a case study of the Basque
Country", AER 93(1):113-132 — the published donor weights Cataluña 0.8508, Madrid 0.1492 (also R Synth's
``basque`` example, whose specification is used here). Data: tests/data/trend/basque.csv, the Basque
data as distributed with the R Synth package (copied from the shared validation inputs).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lumbarstats.trend import controlled

BASQUE = Path(__file__).parent / "data" / "trend" / "basque.csv"
TREATED = "Basque Country (Pais Vasco)"
SECTORS = ["sec.agriculture", "sec.energy", "sec.industry", "sec.construction", "sec.services.venta",
           "sec.services.nonventa"]
SPEC = dict(
    predictors=["school.illit", "school.prim", "school.med", "school.high", "school.post.high", "invest"],
    predictor_periods=range(1964, 1970),
    special_predictors=[("gdpcap", range(1960, 1970), "mean"),
                        *[(s, range(1961, 1970, 2), "mean") for s in SECTORS],
                        ("popdens", [1969], "mean")],
    optimize_periods=range(1960, 1970),
)


def _basque():
    d = pd.read_csv(BASQUE)
    d["year"] = d["year"].astype(int)
    return d[d["regionname"] != "Spain (Espana)"]


def test_basque_weights_match_abadie_gardeazabal_2003():
    res = controlled.synthetic_control(_basque(), unit="regionname", treated=TREATED, time="year",
                                       outcome="gdpcap", intervention_start=1970, placebo=False, **SPEC)
    w = res.weights.set_index("donor")["weight"]
    assert abs(w["Cataluna"] - 0.8508) < 0.01
    assert abs(w["Madrid (Comunidad De)"] - 0.1492) < 0.01
    assert w.drop(["Cataluna", "Madrid (Comunidad De)"]).max() < 0.01
    assert abs(w.sum() - 1) < 1e-12 and (w >= 0).all()
    assert len(res.v_weights) == 14 and abs(res.v_weights["v"].sum() - 1) < 1e-9
    assert set(res.balance.columns) == {"predictor", "treated", "synthetic", "donor_mean"}
    assert "predictors" in res.summary["method"].iloc[0]
    # the outcome-path-only variant (kept as an option) gives other weights: Baleares, Madrid, Rioja
    path_only = controlled.synthetic_control(_basque(), unit="regionname", treated=TREATED, time="year",
                                             outcome="gdpcap", intervention_start=1970, placebo=False)
    assert path_only.weights.set_index("donor")["weight"]["Cataluna"] < 0.5


def test_placebo_in_space_and_time_with_predictors():
    keep = [TREATED, "Cataluna", "Madrid (Comunidad De)", "Baleares (Islas)", "Rioja (La)", "Navarra (Comunidad Foral De)"]
    d = _basque()
    d = d[d["regionname"].isin(keep)]
    # placebo-in-time moves every period back, so the predictors must exist earlier too: GDP only
    spec = dict(special_predictors=[("gdpcap", range(1960, 1965), "mean"), ("gdpcap", range(1965, 1970), "mean")],
                optimize_periods=range(1960, 1970))
    res = controlled.synthetic_control(d, unit="regionname", treated=TREATED, time="year", outcome="gdpcap",
                                       intervention_start=1970, placebo_times=[1965], **spec)
    s = res.summary.iloc[0]
    assert s["n_donors"] == 5 and s["min_attainable_p"] == pytest.approx(1 / 6)
    assert len(res.placebo) == 6 and res.placebo["is_treated"].sum() == 1
    ratios = res.placebo["rmspe_ratio"].to_numpy()
    assert s["placebo_rank"] == int((ratios >= s["rmspe_ratio"] - 1e-12).sum())
    assert s["p_value"] == pytest.approx(s["placebo_rank"] / 6)
    t = res.placebo_in_time
    assert list(t["placebo_time"]) == [1965.0] and np.isfinite(t["rmspe_ratio"]).all()


def test_outcome_path_weights_are_the_exact_optimum():
    """The placebo optimisation stopped 2e-11 to 3e-9 short of the optimum; the KKT conditions hold now."""
    d = _basque()
    wide = d.pivot_table(index="year", columns="regionname", values="gdpcap")
    pre = wide.loc[wide.index < 1970]
    donors = [c for c in wide.columns if c != TREATED]
    y1, Y0 = pre[TREATED].to_numpy(), pre[donors].to_numpy()
    w = controlled._simplex_weights(y1, Y0)
    grad = -2 * Y0.T @ (y1 - Y0 @ w)
    on = w > 0
    mu = -grad[on].mean()
    # stationarity on the support, and no descent direction off it
    assert np.allclose(grad[on] + mu, 0, atol=1e-9 * np.abs(grad).max())
    assert (grad[~on] + mu >= -1e-9 * np.abs(grad).max()).all()
    f = lambda v: float(((y1 - Y0 @ v) ** 2).sum())  # noqa: E731
    rng = np.random.default_rng(1)
    for _ in range(200):
        v = np.clip(w + rng.normal(scale=1e-4, size=len(w)), 0, None)
        assert f(v / v.sum()) >= f(w) - 1e-12


def test_placebo_in_time_refuses_periods_without_data():
    with pytest.raises(ValueError, match="popdens"):
        controlled.synthetic_control(_basque(), unit="regionname", treated=TREATED, time="year", outcome="gdpcap",
                                     intervention_start=1970, placebo=False, placebo_times=[1965], **SPEC)


def test_predictor_options_are_checked():
    with pytest.raises(ValueError, match="predictor_periods"):
        controlled.synthetic_control(_basque(), unit="regionname", treated=TREATED, time="year", outcome="gdpcap",
                                     intervention_start=1970, predictors=["invest"])
    with pytest.raises(ValueError, match="demean"):
        controlled.synthetic_control(_basque(), unit="regionname", treated=TREATED, time="year", outcome="gdpcap",
                                     intervention_start=1970, demean=True, **SPEC)
