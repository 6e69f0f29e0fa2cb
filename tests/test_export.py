"""The one export path (issue 12, "hidden cells that can be recomputed"): regression tests, one per leak.

Each test fails on the code before issue 12 (checked against /tmp/old-main, see the issue's report).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls
from lumbarstats import disclosure

M = disclosure.SUPPRESSED_MARKER
REGIONS = ["Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland"]


def _hidden(df, col):
    return df[col].astype(str).eq(M)


# ------------------------------------------------------------------------------------------------
# tables 5.3-5.4: the unpublished "unknown" education group
# ------------------------------------------------------------------------------------------------
def _group_table(unknown_nordjylland=2):
    rows = []
    for reg in [*REGIONS, "Landsplan"]:
        k = 5 if reg == "Landsplan" else 1
        unknown = unknown_nordjylland if reg == "Nordjylland" else 10
        unknown = unknown if reg != "Landsplan" else 40 + unknown_nordjylland
        for var, group, ev in (("sex", "Mand", 50), ("sex", "Kvinde", 50), ("education", "Grundskole", 40),
                               ("education", "Videregående", 60)):
            events = ev * k
            if var == "education" and group == "Grundskole":
                events -= unknown
            rows.append({"modality": "MR", "variable": var, "group": group, "region": reg, "rate": 10.0,
                         "lower": 8.0, "upper": 12.0, "events": events, "persons": events,
                         "population": 1000 * k, "suppress": False})
    return pd.DataFrame(rows)


def test_group_table_protects_the_unreported_education_residual():
    """Sex total minus the published education groups gave the 'unknown' group (1-4 exams)."""
    table = _group_table(unknown_nordjylland=2)
    safe = ls.groups.protect_group_table(table)
    nord = safe[(safe["region"] == "Nordjylland") & (safe["variable"] == "education")]
    sex = safe[(safe["region"] == "Nordjylland") & (safe["variable"] == "sex")]
    # the residual can no longer be computed: an education group or the sex total is hidden
    assert _hidden(nord, "events").any() or _hidden(sex, "events").any()
    assert "(unreported)" not in set(safe["group"])  # the residual itself is never published


def test_group_table_leaves_large_residuals_alone():
    safe = ls.groups.protect_group_table(_group_table(unknown_nordjylland=10))
    assert not _hidden(safe, "events").any()


def test_published_tables_do_not_tell_primary_from_secondary():
    """The published `suppress` column told which hidden cells are the small ones."""
    table = _group_table(unknown_nordjylland=10)
    table.loc[0, ["events", "persons"]] = 3  # Nordjylland, Mand (Kvinde takes the rest)
    table.loc[1, ["events", "persons"]] = 97
    table.loc[0, "suppress"] = True
    safe = ls.groups.protect_group_table(table)
    assert "suppress" not in safe.columns
    assert _hidden(safe, "events").sum() >= 2


# ------------------------------------------------------------------------------------------------
# payer shares: the share of a hidden cell gave its count back
# ------------------------------------------------------------------------------------------------
def _payer():
    return pd.DataFrame({
        "year": "2021-2023", "region": "Landsplan", "modality": ["MR", "MR", "MR", "XRAY", "XRAY", "XRAY"],
        "payer": ["other", "private", "public"] * 2, "exams": [3, 58, 404, 40, 30, 402],
        "persons": [3, 58, 391, 38, 29, 346]}).assign(
        share_pct=lambda d: 100 * d["exams"] / d["exams"].sum(),
        share_within_modality_pct=lambda d: 100 * d["exams"] / d.groupby("modality")["exams"].transform("sum"),
        suppress=False)


def test_payer_shares_hide_the_share_of_a_hidden_cell_and_a_complement():
    safe, _ = ls.groups.protect_payer_tables(_payer())
    other = safe[(safe["modality"] == "MR") & (safe["payer"] == "other")].iloc[0]
    assert other["exams"] == M and other["share_pct"] == M and other["share_within_modality_pct"] == M
    mr = safe[safe["modality"] == "MR"]
    assert _hidden(mr, "exams").sum() >= 2  # the modality total is published through the shares
    assert "suppress" not in safe.columns


# ------------------------------------------------------------------------------------------------
# profiles: coverage per region exposed a hidden profile; regions add up to Landsplan
# ------------------------------------------------------------------------------------------------
def _profiles():
    rows = []
    for reg in [*REGIONS, "Landsplan"]:
        for rank in range(1, 4):
            n = 30 if reg != "Landsplan" else 150
            if reg == "Nordjylland" and rank == 2:
                n = 3
            rows.append({"modality": "MR", "region": reg, "rank": rank, "share_pct": n / 3, "exams": n,
                         "persons": n, "patients": n, "count": "exams", "denominator": "profiled",
                         "suppress": n < 5})
    t = pd.DataFrame(rows)
    national = t[t["region"] != "Landsplan"].groupby("rank")["exams"].sum().to_numpy()
    for c in ("exams", "persons", "patients"):
        t.loc[t["region"] == "Landsplan", c] = national
    return t


def test_profile_coverage_is_hidden_where_a_profile_is_hidden():
    safe = ls.profiles.protect_profile_table(_profiles())
    cov = ls.profiles.profile_coverage(safe)
    nord = cov[cov["region"] == "Nordjylland"].iloc[0]
    assert nord["share_pct"] == M
    # regions add up to Landsplan: the hidden profile needs a complement in its rank
    rank2 = safe[safe["rank"] == 2]
    assert _hidden(rank2, "exams").sum() >= 2


# ------------------------------------------------------------------------------------------------
# time to event: CIF tables across periods, regions and files
# ------------------------------------------------------------------------------------------------
def _cohort(seed=3, n=400):
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, size=n, p=[0.04, 0.24, 0.24, 0.32, 0.16])
    period = rng.choice(["before", "after"], size=n)
    duration = rng.integers(1, 2000, size=n).astype(float)
    event = rng.choice([0, 1, 2], size=n, p=[0.8, 0.12, 0.08])
    return pd.DataFrame({"region_name": region, "period": period, "duration": duration, "event": event})


def test_cif_tables_hide_the_same_cells_in_region_and_landsplan_files(tmp_path):
    """Region pooled minus the other period, period total minus the other regions, and the region files
    beside the Landsplan file recovered 56 hidden CIF counts (incl. at_risk = 1) on the old code."""
    data = _cohort()
    codes = {0: "censored", 1: "surgery", 2: "death"}
    times = [30, 365, 1095]
    nat = ls.pipeline.time_to_event_tables(data, codes, region=None, report_times=times, rmst_tau=365)
    out = tmp_path / "out"
    write = {"Landsplan": nat}
    for reg in REGIONS:
        write[reg] = ls.pipeline.time_to_event_tables(data, codes, region=reg, report_times=times, rmst_tau=365)
    for reg, t in write.items():
        folder = out / "time_to_event" / reg.lower() / "tables"
        folder.mkdir(parents=True)
        t["cif"].to_csv(folder / f"tte_{reg}_surgery_cif.csv", index=False)
        t["rmst"].to_csv(folder / f"tte_{reg}_surgery_rmst.csv", index=False)
    from test_attack import attack  # the attack suite's attacker (tests/ is on sys.path; no package)

    system, recovered = attack(out)
    assert len(system.hidden) > 0
    assert recovered == {}
    # the region file's cells are the Landsplan file's region x period cells, hidden alike
    nord = write["Nordjylland"]["cif"]
    cells = nat["cif"][(nat["cif"]["grouping"] == "region_name+period") & (nat["cif"]["region_name"] == "Nordjylland")]
    assert list(nord["events"].astype(str)) == list(cells["events"].astype(str))


def test_exclusion_flow_hides_the_remaining_counts_that_give_a_hidden_step():
    ex = pd.DataFrame({"step": [0, 1, 2, 3], "reason": list("abcd"), "description": list("abcd"),
                       "n_excluded": [0, 200, 3, 40], "n_remaining": [1000, 800, 797, 757]})
    safe = ls.pipeline.protect_exclusions(ex)
    assert safe.loc[2, "n_excluded"] == M
    assert (safe["n_excluded"] == M).sum() >= 2
    # n_remaining of step 2 would give 3 back as 800 - 797
    assert safe.loc[2, "n_remaining"] == M or safe.loc[1, "n_remaining"] == M


# ------------------------------------------------------------------------------------------------
# figures are drawn from the protected table
# ------------------------------------------------------------------------------------------------
def test_group_figure_does_not_draw_a_secondarily_suppressed_cell():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = _group_table(unknown_nordjylland=10)
    table.loc[0, ["events", "persons"]] = 3  # Nordjylland, Mand (Kvinde takes the rest)
    table.loc[1, ["events", "persons"]] = 97
    table.loc[0, "suppress"] = True
    safe = ls.groups.protect_group_table(table)
    sub = safe[(safe["variable"] == "sex") & (safe["region"] == "Nordjylland")]
    assert _hidden(sub, "rate").all()  # Mand primary, Kvinde secondary
    fig, ax = plt.subplots()
    ls.groups.plot_group_rates(sub, ax=ax)
    widths = [p.get_width() for p in ax.patches]
    assert all(not np.isfinite(w) or w == 0 for w in widths)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# check-disclosure: notebooks, `Antal patienter`, every label of the data dictionary
# ------------------------------------------------------------------------------------------------
def test_check_directory_scans_notebook_outputs(tmp_path):
    table = pd.DataFrame({"region": ["Nordjylland", "Midtjylland"], "persons": [2, 40]})
    nb = {"cells": [{"cell_type": "code", "source": "t", "outputs": [
        {"output_type": "execute_result", "data": {"text/plain": table.to_string(), "text/html": table.to_html()}},
        {"output_type": "stream", "name": "stdout", "text": table.to_string()}]}], "metadata": {},
        "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "run.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    v = disclosure.check_directory(tmp_path)
    assert len(v) >= 2 and set(v["value"]) == {2.0}
    assert all(f.startswith("run.ipynb") for f in v["file"])


def test_check_directory_recognises_antal_patienter(tmp_path):
    (tmp_path / "t.csv").write_text("Region,Antal patienter\nNordjylland,3\nMidtjylland,40\n", encoding="utf-8")
    v = disclosure.check_directory(tmp_path)
    assert list(v["value"]) == [3.0]


@pytest.mark.parametrize("name", ["Antal patienter", "Number of patients", "at_risk", "Antal i risiko",
                                  "n_excluded", "patients"])
def test_count_columns_come_from_the_data_dictionary(name):
    assert disclosure.is_count_column(name)
    assert "population" not in disclosure.COUNT_COLUMN_NAMES


# ------------------------------------------------------------------------------------------------
# rounding as a second policy
# ------------------------------------------------------------------------------------------------
def test_rounding_policy_redacts_small_counts_and_rounds_the_rest():
    df = pd.DataFrame({"region": ["A", "B", "C"], "events": [3, 12, 118], "persons": [3, 11, 101],
                       "share_pct": [2.3, 8.9, 88.8], "rate": [1.0, 2.0, 3.0]})
    out = disclosure.protect(df, policy="round")
    assert list(out["events"]) == [M, 10, 120] and list(out["persons"]) == [M, 10, 100]
    assert (out["share_pct"] == M).all()  # a share of the exact count would give it back
    assert out.loc[2, "rate"] == 3.0 and out.loc[0, "rate"] == M
    out = disclosure.protect(df, policy={"kind": "round", "base": 10, "min_cell": 5})
    assert list(out["events"]) == [M, 10, 120]
    with pytest.raises(ValueError, match="policy must be"):
        disclosure.protect(df, policy="noise")


def test_rate_tables_accept_the_rounding_policy():
    a = pd.DataFrame({"modality": "MR", "region": ["Nordjylland", "Landsplan"], "year": 2021, "events": [3, 77],
                      "persons": [3, 70], "population": [900, 9000], "rate": [3.3, 8.5], "lower": [1.0, 7.0],
                      "upper": [9.0, 10.0]})
    out, _ = ls.rates.protect_rate_tables(a, None, policy="round")
    assert list(out["events"]) == [M, 75]


# ------------------------------------------------------------------------------------------------
# the intervention evaluation is written through the export path
# ------------------------------------------------------------------------------------------------
class _FakeITS:
    summary = pd.DataFrame({"rate_ratio": [0.9], "lower": [0.8], "upper": [1.0], "p_value": [0.04]},
                           index=pd.Index(["level_change"], name="term"))

    def cumulative_effect(self):
        return pd.DataFrame({"observed_events": [3.0], "counterfactual_events": [4.2], "difference": [-1.2]})

    def plot(self, ax, **kwargs):
        ax.plot([0, 1], [0, 1])


def test_write_evaluation_protects_the_observed_count(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    paths = ls.trend.write_evaluation(tmp_path, region="Nordjylland", modality="MR", its=_FakeITS())
    cumulative = pd.read_csv(paths["its_cumulative"], dtype=str)
    assert cumulative.loc[0, "observed_events"] == M
    assert disclosure.check_directory(tmp_path).empty


# ------------------------------------------------------------------------------------------------
# notebooks: thin views, one kernel, parameters kept, committed without outputs
# ------------------------------------------------------------------------------------------------
NOTEBOOK_PARAMETERS = {
    "01_annual_rates.ipynb": {"data_dir", "modality", "regions", "years", "standard", "method", "out_dir"},
    "02_population_groups.ipynb": {"data_dir", "out_dir", "region", "modality", "years"},
    "03_patient_profiles.ipynb": {"data_dir", "out_dir", "region", "count"},
    "04_intervention_evaluation.ipynb": {"data_dir", "out_dir", "region", "intervention_start", "modality",
                                         "controls", "harmonics", "hac_lags", "covid", "overview", "groups", "lang"},
    "05_time_to_event.ipynb": {"data_dir", "out_dir", "region", "index_modality", "outcome", "washout_days",
                               "period_split", "report_times", "rmst_tau"},
}


@pytest.mark.parametrize("name", sorted(NOTEBOOK_PARAMETERS))
def test_notebooks_are_thin_views_with_one_kernel(name):
    nb = json.loads((Path(__file__).parents[1] / "notebooks" / name).read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "lumbarstats"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1
    names = {line.split("=")[0].strip() for line in "".join(params[0]["source"]).splitlines() if "=" in line}
    assert names == NOTEBOOK_PARAMETERS[name]
    for c in code:
        assert not c.get("outputs"), f"{name} is committed with outputs"
        src = "".join(c["source"])
        # no disclosure or file logic in the report notebooks (intervention: model results only)
        assert "write_csv" not in src and "atomic" not in src and "protect(" not in src
