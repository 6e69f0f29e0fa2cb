"""Tests of lumbarstats.profiles: patient profiles (table 4.1, figures 5.5–5.6) and persons versus
examinations (report 4.1), on hand-built data where every share and count is known exactly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_groups import build_register

import lumbarstats as ls
from lumbarstats import groups, profiles

REFERENCE = Path(ls.__file__).parent / "reference"


def _cells(rows):
    cols = ["region", "sex", "age_group_profile", "employment_profile", "education_profile", "cci_category",
            "exams", "persons", "patients"]
    return pd.DataFrame(rows, columns=cols)


def test_all_profiles_is_360():
    grid = profiles.all_profiles()
    assert len(grid) == 360 and not grid.duplicated().any()


def test_profile_shares_exact():
    cells = _cells([
        ("A", "F", "35-65", "employed", "primary_secondary", "none", 50, 40, 38),
        ("A", "M", "35-65", "employed", "primary_secondary", "none", 30, 30, 30),
        ("A", "F", ">65", "pension", "primary_secondary", "mild", 20, 20, 12),
        ("A", "F", ">65", "pension", None, "mild", 100, 90, 90),          # unknown education: no profile
    ])
    out = profiles.profile_shares(cells)
    assert len(out) == 360
    top = out.head(3)
    assert top["share_pct"].tolist() == pytest.approx([50.0, 30.0, 20.0])
    assert top["rank"].tolist() == [1, 2, 3]
    assert out["share_pct"].sum() == pytest.approx(100.0)
    allden = profiles.profile_shares(cells, denominator="all")
    assert allden.head(3)["share_pct"].tolist() == pytest.approx([25.0, 15.0, 10.0])
    pers = profiles.profile_shares(cells, count="persons")
    assert pers.head(3)["share_pct"].tolist() == pytest.approx([100 * 38 / 80, 100 * 30 / 80, 100 * 12 / 80])
    with pytest.raises(ValueError, match="count"):
        profiles.profile_shares(cells, count="visits")
    with pytest.raises(ValueError, match="not in its code list"):
        profiles.profile_shares(cells.assign(sex="X"))


def test_persons_vs_examinations_exact():
    ex = pd.DataFrame([
        (1, 2021, "MR"), (1, 2021, "XRAY"),                       # both in 2021
        (2, 2021, "MR"), (2, 2022, "MR"), (2, 2022, "XRAY"),      # both in 2022
        (3, 2021, "MR"), (3, 2022, "XRAY"),                       # both, but not in the same year
        (4, 2023, "XRAY"), (4, 2023, "XRAY"),
    ], columns=["person_id", "year", "modality"])
    out = profiles.persons_vs_examinations(exams=ex).set_index("figure")["value"]
    assert out["MR exams (public)"] == 4
    assert out["X-ray exams (public)"] == 5
    assert out["All lumbar imaging exams (public)"] == 9
    assert out["Distinct persons with MR"] == 3
    assert out["Distinct persons with X-ray"] == 4
    assert out["Exams per MR-examined person"] == pytest.approx(4 / 3)
    assert out["Persons with both MR and X-ray in the same year"] == 2
    assert out["Exams among persons with both modalities in same year"] == 4
    assert out["Share of all exams among persons with both modalities"] == pytest.approx(400 / 9)
    ref = pd.read_csv(REFERENCE / "national_figures.csv")
    common = set(out.index) & set(ref["figure"])
    assert len(common) == 9   # every section 4.1 figure of national_figures.csv is produced


@pytest.fixture(scope="module")
def register(tmp_path_factory):
    folder = tmp_path_factory.mktemp("handbuilt_profiles") / "reg"
    pop, ex = build_register(folder)
    return folder, pop, ex


def _expected_profile_counts(pop, ex, modality):
    """Independent computation of profile exam counts straight from the hand-built frames."""
    dd = ls.dictionary.load()
    e = ex[(ex["modality"] == modality) & ex["procedure_code"].isin(["UXME30", "UXRE30"]) & (ex["payer"] == "public")]
    e = e.assign(year=pd.to_datetime(e["date"]).dt.year).merge(pop, on=["person_id", "year"])
    e = e.assign(
        age_group_profile=np.select([e["age"] < 35, e["age"] <= 65], ["<35", "35-65"], ">65"),
        employment_profile=e["employment"].map({"employed": "employed", "unemployed": "unemployed",
                                                "sickness_benefit": "sickness_benefit",
                                                "disability": "disability", "pension": "pension"}),
        education_profile=e["education"].map({"primary": "primary_secondary",
                                              "upper_secondary": "primary_secondary",
                                              "short_medium_higher": "short_medium_higher",
                                              "long_higher": "long_higher"}),
        cci_category=dd.cci_category(e["cci"]).astype(str).to_numpy(),
    )
    return e


def test_table4_1_profiles_exact(register):
    folder, pop, ex = register
    tab = profiles.table4_1_profiles(folder)
    e = _expected_profile_counts(pop, ex, "MR")
    prof = e.dropna(subset=["education_profile"])
    counts = prof.groupby(profiles.DIMS).size().sort_values(ascending=False, kind="stable")
    nat = tab[(tab["modality"] == "MR") & (tab["region"] == "Landsplan")].sort_values("rank")
    assert nat["rank"].tolist() == [1, 2, 3, 4, 5]
    assert nat["share_pct"].to_numpy() == pytest.approx(100 * counts.head(5).to_numpy() / len(prof))
    assert nat["exams"].sum() == counts.head(5).sum()
    # the top profile has a known composition: 35-65 employed primary/secondary, no comorbidity ...
    assert nat["share_pct"].iloc[0] == pytest.approx(100 * counts.iloc[0] / len(prof))
    # regions: the national top five, each region's share of its own profiled use
    reg = tab[(tab["modality"] == "MR") & (tab["region"] == "Nordjylland")]
    assert reg["rank"].tolist() == [1, 2, 3, 4, 5]
    prof_n = prof[prof["region"] == 1081]
    top1 = nat.iloc[0]
    first = reg.iloc[0]
    assert (first[["sex", "age_group", "employment", "education", "cci"]] ==
            top1[["sex", "age_group", "employment", "education", "cci"]]).all()
    assert first["exams"] == pytest.approx(first["share_pct"] / 100 * len(prof_n))
    assert set(tab["modality"]) == {"MR", "XRAY"}
    assert set(tab["modality_label"]) == {"MR", "Røntgen"}


def test_profile_labels_match_reference(register):
    folder, _, _ = register
    tab = profiles.table4_1_profiles(folder)
    ref = pd.read_csv(REFERENCE / "table4_1_top_profiles.csv")
    dd = ls.dictionary.load()
    possible = {
        "sex": set(dd.labels("sex").values()),
        "age_group": set(dd.labels("age_group_profile").values()),
        "employment": set(dd.labels("employment_profile").values()),
        "education": set(dd.labels("education_profile").values()),
        "cci": set(dd.labels("cci_category", column="label_da_profile").values()),
    }
    for col, labels in possible.items():
        assert set(ref[col]) <= labels, col          # every published label is producible, exactly
        assert set(tab[col]) <= labels, col
    assert set(ref["modality"]) == set(tab["modality_label"])  # the report's names; the data carry codes
    cols = ["modality", "region", "rank", "sex", "age_group", "employment", "education", "cci", "share_pct",
            "exams", "persons"]
    assert list(tab.columns[:11]) == cols


def test_count_persons_first_exam(register):
    folder, pop, ex = register
    tab = profiles.table4_1_profiles(folder, modalities=["XRAY"], count="persons")
    # X-ray: one public exam a year for everyone aged 75+ -> each such person is one patient, profile of 2021
    e = _expected_profile_counts(pop, ex, "XRAY")
    first = e.sort_values("date").drop_duplicates("person_id").dropna(subset=["education_profile"])
    counts = first.groupby(profiles.DIMS).size().sort_values(ascending=False, kind="stable")
    nat = tab[tab["region"] == "Landsplan"].sort_values("rank")
    assert nat["share_pct"].to_numpy() == pytest.approx(100 * counts.head(5).to_numpy() / len(first))
    assert (nat["patients"].to_numpy() == counts.head(5).to_numpy()).all()


def test_profile_small_cells_flagged():
    exams = pd.DataFrame({
        "person_id": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        "date": [dt.date(2021, 1, 1)] * 10,
        "modality": ["MR"] * 10,
        "region": [1081] * 10,
        "sex": ["F"] * 6 + ["M"] * 4,
        "age_group_profile": ["35-65"] * 10,
        "employment": ["employed"] * 10,
        "education": ["primary"] * 10,
        "cci_category": ["none"] * 10,
    })
    tab = profiles.table4_1_profiles(exams=exams, modalities=["MR"], n=2)
    nat = tab[tab["region"] == "Landsplan"].set_index("sex")
    assert nat.loc["Kvinde", "persons"] == 6 and not nat.loc["Kvinde", "suppress"]
    assert nat.loc["Mand", "persons"] == 4 and nat.loc["Mand", "suppress"]
    cov = profiles.profile_coverage(tab)  # a profile below the threshold: the coverage would give it back
    assert cov.set_index("region").loc["Landsplan", "share_pct"] == "–"
    cov = profiles.profile_coverage(tab.assign(suppress=False))
    assert cov.set_index("region").loc["Landsplan", "share_pct"] == pytest.approx(100.0)


def test_compare_profiles_with_reference():
    ref = pd.read_csv(REFERENCE / "table4_1_top_profiles.csv")
    table = ref.rename(columns={"share_of_use_pct": "share_pct"}).assign(region="Landsplan")
    table.loc[0, "share_pct"] += 1.0
    comp = groups.compare_with_reference(table, kind="profiles")
    assert comp["same_profile_at_rank"].all()
    assert comp["abs_difference"].max() == pytest.approx(1.0)
    summ = groups.comparison_summary(comp, kind="profiles")
    assert summ["passes"].all()
    swapped = table.copy()
    swapped.loc[0, "share_pct"] += 5.0
    assert not groups.comparison_summary(groups.compare_with_reference(swapped, kind="profiles"),
                                         kind="profiles")["passes"].all()


def test_compare_national_figures():
    ex = pd.DataFrame({"person_id": [1, 1, 2], "year": [2021, 2021, 2022], "modality": ["MR", "XRAY", "MR"]})
    pv = profiles.persons_vs_examinations(exams=ex)
    comp = groups.compare_with_reference(pv, kind="national")
    assert "Exams per MR-examined person" in set(comp["figure"])
    row = comp.set_index("figure").loc["MR exams (public)"]
    assert row["published"] == 208500 and row["reproduced"] == 2
