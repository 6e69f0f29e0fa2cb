"""Tests of lumbarstats.groups: population-group rates (tables 5.3/5.4), payer shares, comparison helper.

Every expected rate here is known exactly from the hand-built data: in the hand-built register every
group has the same rate in every sex x age-band stratum, so its directly standardized rate equals that
common stratum rate whatever the standard population (the defining property of direct standardization,
Breslow & Day 1987, vol. II, ch. 2); the expected values are also written out as numbers below.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls
from lumbarstats import groups

REFERENCE = Path(ls.__file__).parent / "reference" / "table5_3_5_4_groups_by_region.csv"

REGIONS = [1081, 1082, 1083, 1084, 1085]
SEXES = ["M", "F"]
AGES = [25, 35, 45, 55, 62, 67, 75, 85]            # 62 and 67 both in band 60-69; 67 is outside working age
EDUCATION = ["primary", "upper_secondary", "short_medium_higher", "long_higher", "unknown"]
# public MR examinations per year of a person by (education, j); j = person slot within a cell
MR_PER_YEAR = np.array([[1, 1, 2, 1, 0],
                        [1, 0, 1, 0, 1],
                        [0, 0, 1, 1, 0],
                        [0, 0, 1, 0, 0],
                        [1, 0, 0, 0, 0]])
EMPLOYMENT_BY_J = ["employed", "unemployed", "sickness_benefit", "disability", "employed"]
TOP6 = ["01", "05", "06", "09", "14", "17"]
CCI_BY_K = [0, 1, 3, 5]
YEARS = [2021, 2022, 2023]


def build_register(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A balanced hand-built register: 5 regions x 2 sexes x 8 ages x 5 educations x 5 persons, 2021–2023.

    Employment by slot j (age 67: j=0 employed, others pension); industry of the employed: j=0 -> the
    education's top-6 industry (01, 05, 06, 09, 14), j=4 -> 17; CCI (0, 1, 3, 5)[(region index + j) % 4].
    Public MR per year: MR_PER_YEAR[education, j]; public X-ray: one a year from age 75. Not counted:
    a private MR (unknown education, j=1, 2022), an 'other' X-ray (unknown, j=2, 2023), a related-code
    MR (UXME30A) for everyone aged 25 in 2021.
    """
    rows, exams = [], []
    pid = 0
    for (ri, region), sex, age, (ei, edu), j in itertools.product(
            enumerate(REGIONS), SEXES, AGES, enumerate(EDUCATION), range(5)):
        pid += 1
        if age == 67:
            employment = "employed" if j == 0 else "pension"
        else:
            employment = EMPLOYMENT_BY_J[j]
        industry = (TOP6[ei] if j == 0 else TOP6[5] if j == 4 else None) if employment == "employed" else None
        cci = CCI_BY_K[(ri + j) % 4]
        for year in YEARS:
            rows.append((pid, year, region, sex, age, edu, employment, industry, cci))
            for k in range(MR_PER_YEAR[ei, j]):
                exams.append((pid, dt.date(year, 3 + 6 * k, 1), "MR", "UXME30", "public"))
            if age >= 75:
                exams.append((pid, dt.date(year, 5, 2), "XRAY", "UXRE30", "public"))
        if edu == "unknown" and j == 1:
            exams.append((pid, dt.date(2022, 6, 1), "MR", "UXME30", "private"))
        if edu == "unknown" and j == 2:
            exams.append((pid, dt.date(2023, 6, 1), "XRAY", "UXRE30", "other"))
        if age == 25:
            exams.append((pid, dt.date(2021, 8, 1), "MR", "UXME30A", "public"))
    pop = pd.DataFrame(rows, columns=["person_id", "year", "region", "sex", "age", "education", "employment",
                                      "industry", "cci"])
    pop = pop.astype({"person_id": "int64", "year": "int16", "region": "int16", "age": "int16", "cci": "int16"})
    ex = pd.DataFrame(exams, columns=["person_id", "date", "modality", "procedure_code", "payer"])
    folder.mkdir(parents=True, exist_ok=True)
    pop.to_parquet(folder / "population.parquet", index=False)
    ex.to_parquet(folder / "examinations.parquet", index=False)
    return pop, ex


@pytest.fixture(scope="module")
def register(tmp_path_factory):
    folder = tmp_path_factory.mktemp("handbuilt") / "reg"
    pop, ex = build_register(folder)
    return folder, pop, ex


@pytest.fixture(scope="module")
def mr_table(register):
    folder, _, _ = register
    return groups.report_group_table(folder, modality="MR")


@pytest.fixture(scope="module")
def xray_table(register):
    folder, _, _ = register
    return groups.report_group_table(folder, modality="XRAY")


def _cell(table, variable, group, region="Landsplan"):
    row = table[(table["variable"] == variable) & (table["group"] == group) & (table["region"] == region)]
    assert len(row) == 1, (variable, group, region, len(row))
    return row.iloc[0]


# ------------------------------------------------------------------------------------------------
# group_rates on hand-built strata
# ------------------------------------------------------------------------------------------------
def test_group_rates_equal_stratum_rates_give_that_rate():
    # education A: 10 per 1,000 in every stratum; B: 30 per 1,000; very different age structures
    strata = pd.DataFrame({
        "region": ["X"] * 8,
        "education": ["primary"] * 4 + ["long_higher"] * 4,
        "sex": ["M", "M", "F", "F"] * 2,
        "age_band": ["18-29", "80+"] * 4,
        "population": [1000, 5000, 2000, 100, 100, 3000, 10000, 500],
        "events": [10, 50, 20, 1, 3, 90, 300, 15],
    })
    standard = pd.DataFrame({"sex": ["M", "M", "F", "F"], "age_band": ["18-29", "80+"] * 2,
                             "weight": [7, 1, 3, 9]})
    res = groups.group_rates(strata, variable="education", standard=standard).set_index("group_code")
    assert res.loc["primary", "rate"] == pytest.approx(10.0)
    assert res.loc["long_higher", "rate"] == pytest.approx(30.0)
    assert res.loc["primary", "events"] == 81
    assert res.loc["primary", "population"] == 8100
    assert bool(res.loc["primary", "standardized"])
    assert (res["lower"] < res["rate"]).all() and (res["upper"] > res["rate"]).all()


def test_group_rates_dsr_by_hand():
    # two strata, rates 10 and 30 per 1,000; standard weights 1:3 -> DSR = 0.25*10 + 0.75*30 = 25
    strata = pd.DataFrame({"region": ["X", "X"], "cci_category": ["none", "none"], "sex": ["F", "F"],
                           "age_band": ["18-29", "30-39"], "population": [1000, 4000], "events": [10, 120]})
    standard = pd.DataFrame({"sex": ["F", "F", "M"], "age_band": ["18-29", "30-39", "18-29"],
                             "weight": [1, 3, 50]})  # the M stratum is absent from the data -> dropped
    res = groups.group_rates(strata, variable="cci", standard=standard)
    assert res["rate"].iloc[0] == pytest.approx(25.0)
    assert res["crude_rate"].iloc[0] == pytest.approx(130 / 5000 * 1000)


def test_group_rates_crude_exact_poisson_interval():
    # 10 events in 1,000 person-years. Exact (Garwood) 95% Poisson limits for 10 events are 4.795389 and
    # 18.390356 — the values printed by R epitools::pois.exact(10) and tabulated in Breslow & Day (1987),
    # Statistical Methods in Cancer Research II, Appendix II.
    strata = pd.DataFrame({"region": ["X", "X"], "sex": ["F", "F"], "age_band": ["18-29", "30-39"],
                           "population": [400, 600], "events": [4, 6]})
    res = groups.group_rates(strata, variable="sex")
    assert not bool(res["standardized"].iloc[0])
    assert res["rate"].iloc[0] == pytest.approx(10.0)
    assert res["lower"].iloc[0] == pytest.approx(4.795389, abs=1e-5)
    assert res["upper"].iloc[0] == pytest.approx(18.390356, abs=1e-5)


def test_group_rates_errors():
    strata = pd.DataFrame({"region": ["X"], "education": ["primary"], "population": [10], "events": [1]})
    with pytest.raises(KeyError, match="sex"):
        groups.group_rates(strata, variable="education", standard=pd.DataFrame())
    with pytest.raises(KeyError, match="unknown group variable"):
        groups.group_rates(strata, variable="income")
    full = strata.assign(sex="F", age_band="18-29")
    with pytest.raises(ValueError, match="standard population"):
        groups.group_rates(full, variable="education", standard=None)


def test_restrict_standard_renormalizes():
    standard = pd.DataFrame({"sex": ["M", "M", "F", "F"], "age_band": ["18-29", "80+", "18-29", "80+"],
                             "weight": [10, 30, 20, 40]})
    data = pd.DataFrame({"sex": ["M", "F", "F"], "age_band": ["18-29", "18-29", "80+"],
                         "population": [5, 5, 0]})
    out = groups.restrict_standard(standard, data).set_index(["sex", "age_band"])["weight"]
    assert out.to_dict() == pytest.approx({("M", "18-29"): 1 / 3, ("F", "18-29"): 2 / 3})


# ------------------------------------------------------------------------------------------------
# report table from the hand-built register
# ------------------------------------------------------------------------------------------------
def test_report_table_standardized_rates_exact(mr_table):
    # per person-year MR counts, means over the persons of each group (balanced over strata)
    expected = {
        ("education", "Grundskole"): 1000.0,                          # mean(1,1,2,1,0)
        ("education", "Gymnasie og erhvervsuddannelse"): 600.0,       # mean(1,0,1,0,1)
        ("education", "Kort og mellemlang videregående uddannelse"): 400.0,
        ("education", "Lang videregående uddannelse og Ph.d."): 200.0,
        ("employment", "Beskæftiget eller under uddannelse"): 400.0,  # j=0 and j=4: (3 + 1) / 10
        ("employment", "Ledig"): 200.0,
        ("employment", "Sygedagpenge o.l."): 1000.0,
        ("employment", "Førtidspension, seniorpension, fleksjob o.l."): 400.0,
        ("industry", "Landbrug, skovbrug og fiskeri"): 1000.0,        # primary, j=0
        ("industry", "Vandforsyning og renovation"): 1000.0,          # upper secondary, j=0
        ("industry", "Bygge og anlæg"): 0.0,
        ("industry", "Hotel og restauration"): 0.0,
        ("industry", "Rejsebureauer, rengøring o.a. operationel service"): 1000.0,
        ("industry", "Sundhed og socialvæsen"): 200.0,                # j=4
    }
    for region in ["Landsplan", "Nordjylland", "Sjælland"]:
        for (variable, group), rate in expected.items():
            row = _cell(mr_table, variable, group, region)
            assert row["rate"] == pytest.approx(rate, abs=1e-9), (variable, group, region)
            assert row["standardized"] == "yes"


def test_report_table_crude_rates_and_counts_match_direct_count(register, mr_table):
    folder, pop, ex = register
    dd = ls.dictionary.load()
    counted = ex[(ex["modality"] == "MR") & (ex["procedure_code"] == "UXME30") & (ex["payer"] == "public")]
    counted = counted.assign(year=pd.to_datetime(counted["date"]).dt.year)
    merged = counted.merge(pop, on=["person_id", "year"])
    pop = pop.assign(age_band=dd.age_band(pop["age"]).astype(str).to_numpy())
    merged = merged.assign(age_band=dd.age_band(merged["age"]).astype(str).to_numpy())
    labels = dd.labels("age_band")
    for band, label in labels.items():
        py = (pop["age_band"] == band).sum()
        ev = (merged["age_band"] == band).sum()
        row = _cell(mr_table, "age_group", label)
        assert row["rate"] == pytest.approx(1000 * ev / py)
        assert row["events"] == ev and row["population"] == py
        assert row["persons"] == merged.loc[merged["age_band"] == band, "person_id"].nunique()
        assert row["standardized"] == "no"
    women = _cell(mr_table, "sex", "Kvinde", "Midtjylland")
    sub_pop = pop[(pop["sex"] == "F") & (pop["region"] == 1082)]
    sub_ev = merged[(merged["sex"] == "F") & (merged["region"] == 1082)]
    assert women["rate"] == pytest.approx(1000 * len(sub_ev) / len(sub_pop))


def test_cci_rates_equal_group_means(register, mr_table):
    _, pop, _ = register
    dd = ls.dictionary.load()
    ei = pop["education"].map({e: i for i, e in enumerate(EDUCATION)})
    j = (pop["person_id"] - 1) % 5
    per_year = MR_PER_YEAR[ei.to_numpy(), j.to_numpy()]
    frame = pop.assign(mr=per_year, cat=dd.cci_category(pop["cci"]).astype(str).to_numpy())
    labels = dd.labels("cci_category")
    for cat, label in labels.items():
        expect = 1000 * frame.loc[frame["cat"] == cat, "mr"].mean()
        assert _cell(mr_table, "cci", label)["rate"] == pytest.approx(expect)
        sub = frame[(frame["cat"] == cat) & (frame["region"] == 1084)]
        assert _cell(mr_table, "cci", label, "Hovedstaden")["rate"] == pytest.approx(1000 * sub["mr"].mean())


def test_working_age_and_employed_restrictions(register, mr_table):
    _, pop, _ = register
    employed_wa = pop[(pop["employment"] == "employed") & (pop["age"] <= 64)]
    assert _cell(mr_table, "employment", "Beskæftiget eller under uddannelse")["population"] == len(employed_wa)
    top = employed_wa[employed_wa["industry"] == "17"]
    assert _cell(mr_table, "industry", "Sundhed og socialvæsen")["population"] == len(top)
    # pension, 'other' and education 'unknown' are not reported
    assert not mr_table["group"].isin(["Pension el. efterløn", "Uoplyst uddannelse"]).any()


def test_labels_match_reference_exactly(mr_table, xray_table):
    ref = pd.read_csv(REFERENCE)
    for table, mod, label in [(mr_table, "MR", "MR"), (xray_table, "XRAY", "Røntgen")]:
        assert set(table["modality"]) == {mod} and set(table["modality_label"]) == {label}
        mod = label  # the reference file uses the report's name
        got = set(map(tuple, table[["variable", "group"]].drop_duplicates().to_numpy()))
        want = set(map(tuple, ref.loc[ref["modality"] == mod, ["variable", "group"]].drop_duplicates().to_numpy()))
        assert got == want
        assert set(table["region"]) == set(ref["region"]) | {"Landsplan"}
        std = table.groupby("variable")["standardized"].first().to_dict()
        ref_std = ref[ref["modality"] == mod].groupby("variable")["standardized"].first().to_dict()
        assert std == ref_std
    assert list(mr_table.columns[:11]) == groups.TABLE_COLUMNS


def test_english_labels(register):
    folder, _, _ = register
    tab = groups.report_group_table(folder, modality="XRAY", variables=["sex", "employment"], lang="en",
                                    regions="Landsplan")
    assert set(tab["group"]) >= {"Woman", "Man", "Sickness benefit etc."}
    assert set(tab["modality"]) == {"XRAY"} and set(tab["modality_label"]) == {"X-ray"}
    assert set(tab["region"]) == {"Landsplan"}


def test_small_cells_flagged(register):
    folder, _, _ = register
    # long higher education: 16 persons with an MR per region (j=2, 2 sexes x 8 ages), 80 nationally
    tab = groups.report_group_table(folder, modality="MR", variables=["education"], min_cell=20)
    long_ = tab[tab["group_code"] == "long_higher"].set_index("region")
    assert (long_.drop(index="Landsplan")["persons"] == 16).all()
    assert long_.drop(index="Landsplan")["suppress"].all()
    assert not long_.loc["Landsplan", "suppress"]
    flags = groups.flag_suppress(pd.DataFrame({"persons": [1, 4, 5, 6, 3]}))
    assert flags.tolist() == [True, True, False, False, True]


def test_write_report_group_tables(register, tmp_path):
    folder, _, _ = register
    written = groups.write_report_group_tables(folder, tmp_path, figures=True)
    mr = pd.read_csv(tmp_path / "tables" / "table5_3_mr_groups.csv")
    assert set(mr["region"]) == {"Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland", "Landsplan"}
    assert (tmp_path / "tables" / "table5_4_xray_groups.csv").exists()
    assert (tmp_path / "figures" / "fig4_3_mr_age_group.png").exists()
    assert (tmp_path / "figures" / "fig4_14_xray_cci.png").exists()
    assert all(Path(p).exists() for p in written.values())
    assert not list((tmp_path / "tables").glob(".*tmp"))


def test_plot_group_rates(mr_table):
    import matplotlib.pyplot as plt

    sub = mr_table[(mr_table["variable"] == "education") & (mr_table["region"] == "Landsplan")]
    ax = groups.plot_group_rates(sub)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(sub["group"])
    plt.close("all")
    with pytest.raises(ValueError, match="one variable"):
        groups.plot_group_rates(mr_table)


# ------------------------------------------------------------------------------------------------
# payer
# ------------------------------------------------------------------------------------------------
def test_payer_shares(register):
    folder, pop, ex = register
    out = groups.payer_shares(folder, years=(2021, 2023), pooled=True)
    n_mr_public = int(3 * MR_PER_YEAR.sum() * 5 * 2 * 8)       # regions x sexes x ages
    n_xr_public = 3 * 5 * 2 * 2 * 5 * 5                        # years x regions x sexes x 2 ages x 5 edu x 5 j
    n_private, n_other = 5 * 2 * 8, 5 * 2 * 8
    total = n_mr_public + n_xr_public + n_private + n_other
    got = out.set_index(["modality", "payer"])["exams"]
    assert got[("MR", "public")] == n_mr_public
    assert got[("MR", "private")] == n_private
    assert got[("XRAY", "other")] == n_other
    share = out.set_index(["modality", "payer"])["share_pct"]
    assert share[("MR", "private")] == pytest.approx(100 * n_private / total)
    assert out["share_pct"].sum() == pytest.approx(100)
    assert set(out["year"]) == {"2021-2023"}
    by_year = groups.payer_shares(folder, years=(2021, 2023), by_region=True)
    assert set(by_year["region"]) == {"Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland"}
    assert by_year.groupby(["year", "region"])["share_pct"].sum().to_numpy() == pytest.approx(100)


def test_private_rate_trend(register):
    folder, pop, _ = register
    out = groups.private_rate_trend(folder, years=(2021, 2023))
    mr = out[out["modality"] == "MR"].set_index("year")
    assert mr.loc[2021, "rate"] == 0 and mr.loc[2023, "rate"] == 0
    # 80 private MRs in 2022: one per region x sex x age, i.e. 5 in each (sex, age) of 125 persons
    # -> 40 per 1,000 in every stratum, so the DSR is 40 whatever the standard
    assert mr.loc[2022, "events"] == 80
    assert mr.loc[2022, "rate"] == pytest.approx(40.0)
    xr = out[out["modality"] == "XRAY"].set_index("year")
    assert xr["rate"].sum() == 0


# ------------------------------------------------------------------------------------------------
# comparison
# ------------------------------------------------------------------------------------------------
def test_compare_with_reference_groups():
    ref = pd.read_csv(REFERENCE)
    table = ref.rename(columns={"rate_per_1000": "rate"}).copy()
    table.loc[table.index[:10], "rate"] += 1.0
    comp = groups.compare_with_reference(table, kind="groups")
    assert len(comp) == len(ref)
    assert comp["difference"].iloc[:10].to_numpy() == pytest.approx(1.0)
    summ = groups.comparison_summary(comp).set_index("modality")
    assert summ.loc["all", "mad"] == pytest.approx(10 / len(ref))
    assert summ.loc["all", "passes"]
    shuffled = table.assign(rate=table["rate"].sample(frac=1, random_state=1).to_numpy())
    bad = groups.comparison_summary(groups.compare_with_reference(shuffled)).set_index("modality")
    assert not bad.loc["all", "passes"]
    with pytest.raises(ValueError, match="kind"):
        groups.compare_with_reference(table, kind="nonsense")
