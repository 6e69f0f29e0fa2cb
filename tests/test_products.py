"""Tests of lumbarstats.products (figures 4.1–4.2, 5.1–5.2, 4.11–4.12, box 4.1, box 5.1, Bilag 1) on a
hand-built register where every count is known.

In the hand-built register every sex x age-band stratum has the same rate within a region and year, so the
directly standardized rate equals that common stratum rate whatever the standard population (Breslow & Day
1987, vol. II, ch. 2) — the expected rates below are written out as numbers.

Register: 5 regions x 2 sexes x 7 ages (one per age band) x 4 persons (slot j), 2014–2023, the same persons
every year. Public MR: slot 0 every year (5 of 20 persons in a national stratum = 250 per 1,000); in 2023
also slot 1 in Nordjylland (national 300 per 1,000; Nordjylland 500). Public X-ray: slots 1 and 3 aged >= 55,
2014–2018 both sexes, 2019–2023 women only. CCI 1 in slots 1 and 3, else 0. Private MR: Syddanmark slot 2, 2021 (14). Private X-ray 2022:
two persons in Nordjylland (a small cell), 14 in Hovedstaden. Other payer: 14 MRs in Midtjylland 2022.
Industry of the employed (slots 0, 1 under 65): ``(person_id % 19) + 1`` — all 19 DB07 groups occur.
"""

from __future__ import annotations

import datetime as dt
import itertools

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from lumbarstats import disclosure, plots, products, profiles

REGIONS = [1081, 1082, 1083, 1084, 1085]
SEXES = ["M", "F"]
AGES = [25, 35, 45, 55, 62, 75, 85]  # one per age band 18-29 … 80+
YEARS = range(2014, 2024)
MARK = disclosure.SUPPRESSED_MARKER


def build_register(folder):
    rows, exams = [], []
    pid = 0
    for region, sex, age, j in itertools.product(REGIONS, SEXES, AGES, range(4)):
        pid += 1
        employed = j in (0, 1) and age < 65
        employment = "employed" if employed else ("pension" if age >= 65 else "unemployed")
        industry = f"{(pid % 19) + 1:02d}" if employed else None
        for year in YEARS:
            rows.append((pid, year, region, sex, age, ["primary", "upper_secondary", "long_higher", "unknown"][j],
                         employment, industry, (0, 1, 0, 1)[j]))
            if j == 0:
                exams.append((pid, dt.date(year, 3, 1), "MR", "UXME30", "public"))
            if j == 1 and year == 2023 and region == 1081:
                exams.append((pid, dt.date(year, 4, 1), "MR", "UXME30", "public"))
            if j in (1, 3) and age >= 55 and (year <= 2018 or sex == "F"):
                exams.append((pid, dt.date(year, 5, 1), "XRAY", "UXRE30", "public"))
        if j == 2 and region == 1083:
            exams.append((pid, dt.date(2021, 6, 1), "MR", "UXME30", "private"))
        if j == 3 and ((region == 1081 and sex == "F" and age in (25, 35)) or region == 1084):
            exams.append((pid, dt.date(2022, 6, 1), "XRAY", "UXRE30", "private"))
        if j == 3 and region == 1082:
            exams.append((pid, dt.date(2022, 7, 1), "MR", "UXME30", "other"))
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
    folder = tmp_path_factory.mktemp("products") / "reg"
    build_register(folder)
    return folder


@pytest.fixture(scope="module")
def tables(register):
    from lumbarstats.register import as_register

    reg = as_register(register)
    annual, periods = products.rate_tables(reg)
    return reg, annual, periods


@pytest.fixture(scope="module")
def national_run(register, tmp_path_factory):
    out = tmp_path_factory.mktemp("products_out")
    files = products.report_products_step(register, out)
    return out, files


@pytest.fixture(scope="module")
def bilag(register, tmp_path_factory):
    out = tmp_path_factory.mktemp("bilag_out")
    files = products.bilag1_step(register, out, region="all")
    return out, files


def _num(s):
    return pd.to_numeric(s, errors="coerce")


# ------------------------------------------------------------------------------------------------
# figure 4.1 and 4.2
# ------------------------------------------------------------------------------------------------
def test_annual_counts_are_the_counted_public_examinations(tables, register):
    _, annual, _ = tables
    t = products.annual_counts_table(annual).set_index(["modality", "year"])
    assert t.loc[("MR", 2014), "examinations"] == 70            # 5 regions x 2 sexes x 7 ages
    assert t.loc[("MR", 2023), "examinations"] == 84            # + 14 in Nordjylland
    assert t.loc[("XRAY", 2014), "examinations"] == 80          # 5 x 2 x 4 ages >= 55 x 2 slots
    assert t.loc[("XRAY", 2023), "examinations"] == 40          # women only
    assert t.loc[("MR", 2023), "pct_change_from_first"] == pytest.approx(20.0)
    assert t.loc[("XRAY", 2023), "pct_change_from_first"] == pytest.approx(-50.0)
    assert t.loc[("MR", 2014), "persons"] == 70
    assert t.loc[("XRAY", 2014), "modality_label"] == "Røntgen"
    # the same numbers as the counting rule's other path (profiles.annual_exam_counts)
    other = profiles.annual_exam_counts(register).set_index(["figure", "period"])["value"]
    assert other[("MR exams (public)", "2023")] == 84 and other[("X-ray exams (public)", "2014")] == 80


def test_national_standardized_rates_and_change(tables):
    _, annual, _ = tables
    t = products.national_rates_table(annual).set_index(["modality", "year"])
    # every stratum: 5 of 20 persons with an MR -> 250 per 1,000; 2023: 6 of 20 -> 300
    assert t.loc[("MR", 2014), "rate"] == pytest.approx(250.0)
    assert t.loc[("MR", 2023), "rate"] == pytest.approx(300.0)
    assert t.loc[("MR", 2023), "pct_change_from_first"] == pytest.approx(20.0)
    # X-ray 2014: 10 of 20 in the four oldest bands, 0 in the three youngest: the standardized rate is the
    # standard's weight of the oldest bands x 500 (hand computation with the register's own standard)
    pop = pd.read_parquet(register_path(tables) / "population.parquet")
    w_old = (pop["age"] >= 55).mean()
    assert t.loc[("XRAY", 2014), "rate"] == pytest.approx(500.0 * w_old)
    assert t.loc[("XRAY", 2023), "pct_change_from_first"] == pytest.approx(-50.0)


def register_path(tables):
    return tables[0].path


# ------------------------------------------------------------------------------------------------
# Bilag 1
# ------------------------------------------------------------------------------------------------
def test_bilag1_files_for_every_region(bilag):
    out, files = bilag
    names = {f.name for f in files}
    for slug in ("nordjylland", "midtjylland", "syddanmark", "hovedstaden", "sjaelland", "landsplan"):
        for kind in ("annual", "groups", "payer"):
            assert f"bilag1_{slug}_{kind}.csv" in names
    assert all(f.parent == out / "tables" / "bilag1" for f in files)
    assert disclosure.check_directory(out).empty


def test_bilag1_annual_actual_numbers_and_crude_rate(bilag):
    out, _ = bilag
    t = pd.read_csv(out / "tables" / "bilag1" / "bilag1_nordjylland_annual.csv").set_index(["modality", "year"])
    row = pd.to_numeric(t.loc[("MR", 2023)].drop(["modality_label", "region"]))
    assert row["examinations"] == 28 and row["persons"] == 28 and row["population"] == 56
    assert row["crude_rate"] == pytest.approx(500.0)
    assert row["rate"] == pytest.approx(500.0)                    # 2 of 4 in every stratum
    assert row["crude_lower"] < 500 < row["crude_upper"]
    assert t.loc[("XRAY", 2014), "modality_label"] == "Røntgen"
    assert set(t["region_code"]) == {1081}


def test_bilag1_groups_labels_and_rates(bilag):
    out, _ = bilag
    t = pd.read_csv(out / "tables" / "bilag1" / "bilag1_landsplan_groups.csv", dtype={"group_code": str})
    sex = t[(t["modality"] == "MR") & (t["variable"] == "sex")].set_index("group_code")
    # 2021-2023: 70 + 70 + 84 MRs over 3 x 140 person-years per sex
    assert int(sex.loc["F", "examinations"]) == 35 + 35 + 42
    assert float(sex.loc["F", "crude_rate"]) == pytest.approx(1000 * 112 / 420, rel=1e-3)
    assert sex.loc["F", "group"] == "Kvinde"
    ind = t[(t["modality"] == "MR") & (t["variable"] == "industry")]
    assert ind["group_code"].nunique() == 19
    assert "Bygge og anlæg" in set(ind["group"])
    assert set(t["period"]) == {"2021-2023"}


def test_bilag1_payer_small_cell_and_its_complement_hidden(bilag):
    out, _ = bilag
    nord = pd.read_csv(out / "tables" / "bilag1" / "bilag1_nordjylland_payer.csv").set_index(["modality", "payer"])
    hov = pd.read_csv(out / "tables" / "bilag1" / "bilag1_hovedstaden_payer.csv").set_index(["modality", "payer"])
    land = pd.read_csv(out / "tables" / "bilag1" / "bilag1_landsplan_payer.csv").set_index(["modality", "payer"])
    assert nord.loc[("XRAY", "private"), "examinations"] == MARK          # 2 persons
    assert nord.loc[("XRAY", "private"), "share_pct"] == MARK
    assert nord.loc[("XRAY", "private"), "rate"] == MARK
    # Landsplan publishes 16: the other regions' private X-rays must not give the 2 back
    assert int(land.loc[("XRAY", "private"), "examinations"]) == 16
    assert hov.loc[("XRAY", "private"), "examinations"] == MARK
    # within Nordjylland's X-ray, the shares reveal the total: another cell is hidden with it
    assert nord.loc[("XRAY", "other"), "examinations"] == MARK
    # public cells are those of tables 5.1-5.2 (published there): never hidden as a complement
    assert nord.loc[("XRAY", "public"), "examinations"] != MARK
    syd = pd.read_csv(out / "tables" / "bilag1" / "bilag1_syddanmark_payer.csv").set_index(["modality", "payer"])
    assert int(syd.loc[("MR", "private"), "examinations"]) == 14
    # 14 private MRs, one per stratum of 4 persons x 3 years -> 1000 / 12 per 1,000 in every stratum
    assert float(syd.loc[("MR", "private"), "rate"]) == pytest.approx(1000 / 12, rel=1e-3)
    total = 3 * 14 + 14 + 3 * 8  # public MR (slot 0, 3 years) + private MR + public X-ray (women >= 55)
    assert float(syd.loc[("MR", "public"), "share_pct"]) == pytest.approx(100 * 42 / total, rel=1e-3)
    assert syd.loc[("MR", "public"), "payer_label"] == "Offentlig betaling"


def test_protect_linked_known_and_forced_cells():
    cells = pd.DataFrame({"k": list("abcd"), "examinations": [2, 50, 60, 112], "persons": [2, 50, 60, 112]})
    rel = [([0, 1, 2], 3)]
    mask = products.protect_linked(cells, rel, keys=["k"])
    assert mask[0] and mask.sum() >= 2
    # the total is published elsewhere (known): a member must be hidden with the small one
    mask = products.protect_linked(cells, rel, keys=["k"], known=np.array([False, False, False, True]))
    assert mask[0] and (mask[1] or mask[2]) and not mask[3]
    # b is published elsewhere: c is the only complement left
    mask = products.protect_linked(cells, rel, keys=["k"], known=np.array([False, True, False, True]))
    assert mask.tolist() == [True, False, True, False]
    # hidden elsewhere: hidden here although large
    mask = products.protect_linked(cells.assign(persons=[50, 50, 60, 160]), rel, keys=["k"],
                                   forced=np.array([False, True, False, False]))
    assert mask[1] and mask.sum() >= 2
    with pytest.raises(ValueError, match="both"):
        products.protect_linked(cells, rel, keys=["k"], known=np.ones(4, bool), forced=np.ones(4, bool))


# ------------------------------------------------------------------------------------------------
# the national products
# ------------------------------------------------------------------------------------------------
def test_report_products_step_writes_every_file(national_run):
    out, files = national_run
    rel = {str(f.relative_to(out)) for f in files}
    for p in products.PRODUCTS:
        if p.chapter == "bilag1":
            continue
        assert set(p.files) <= rel, (p.id, set(p.files) - rel)
    assert disclosure.check_directory(out).empty


def test_payer_split_shares(national_run):
    out, _ = national_run
    t = pd.read_csv(out / "tables" / "box4_1_payer_split.csv").set_index(["modality", "payer"])
    public_mr, public_x = 70 + 70 + 84, 3 * 40
    private_mr, private_x, other_mr = 14, 16, 14
    total = public_mr + public_x + private_mr + private_x + other_mr
    assert int(t.loc[("MR", "public"), "examinations"]) == public_mr
    assert float(t.loc[("MR", "public"), "share_pct"]) == pytest.approx(100 * public_mr / total, rel=1e-3)
    assert float(t.loc[("XRAY", "private"), "share_within_modality_pct"]) == pytest.approx(
        100 * private_x / (public_x + private_x), rel=1e-3)
    assert int(t.loc[("MR", "other"), "examinations"]) == other_mr
    assert t.loc[("MR", "private"), "payer_label"] == "Privat betaling"
    assert t.loc[("XRAY", "public"), "modality_label"] == "Røntgen"


def test_public_private_rates(national_run):
    out, _ = national_run
    t = pd.read_csv(out / "tables" / "box4_1_public_private_rates.csv").set_index(["payer", "modality", "year"])
    assert float(t.loc[("public", "MR", 2014), "rate"]) == pytest.approx(250.0)
    assert int(t.loc[("private", "MR", 2021), "examinations"]) == 14
    # 14 private MRs nationally: 1 per (sex, age) of 20 persons -> 50 per 1,000 in every stratum
    assert float(t.loc[("private", "MR", 2021), "rate"]) == pytest.approx(50.0)
    assert float(t.loc[("private", "MR", 2015), "rate"]) == 0


def test_industry_figure_shows_all_19_industries(tables):
    reg, _, _ = tables
    gtab = products.group_tables(reg, all_industries=True)
    fig = plots.group_rates_figure(gtab, variable="industry", modality="MR", region="Landsplan")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 19 and "Uoplyst aktivitet" in labels and "Bygge og anlæg" in labels
    assert "pr. 1.000 voksne" in fig.axes[0].get_xlabel()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_figures_danish_decimal_comma_and_english(tables):
    import matplotlib.pyplot as plt

    _, annual, periods = tables
    fig = plots.region_bar_figure(periods, modality="MR")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "250,0" in texts                                                  # Syddanmark 2021-2023
    assert fig.axes[0].get_xticklabels()[-1].get_text() == "Landsplan"
    plt.close(fig)
    fig = plots.national_rate_figure(products.national_rates_table(annual), lang="en")
    assert any("Change 2014–2023: +20%" == t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)
    fig = plots.national_rate_figure(products.national_rates_table(annual), source="Egne beregninger.")
    assert any("Ændring 2014–2023: +20 pct." == t.get_text() for t in fig.axes[0].texts)
    assert any("Kilde:" in t.get_text() for t in fig.texts) and any("Anm.:" in t.get_text() for t in fig.texts)
    plt.close(fig)


def test_hidden_count_draws_nothing(tables):
    import matplotlib.pyplot as plt

    _, annual, _ = tables
    counts = products.annual_counts_table(annual).astype({"examinations": object})
    counts.loc[(counts["modality"] == "MR") & (counts["year"] == 2016), "examinations"] = MARK
    fig = plots.annual_count_figure(counts)
    y = fig.axes[0].lines[0].get_ydata()
    assert np.isnan(np.asarray(y, dtype=float)[2])
    plt.close(fig)


def test_products_registry():
    ids = [p.id for p in products.PRODUCTS]
    assert len(ids) == len(set(ids))
    assert products.product("fig4_2").number_da == "Figur 4.2"
    assert products.product("box4_1_a").chapter == "box4_1"
    assert all(p.anm_da and p.kilde_da and p.caption_en for p in products.PRODUCTS)
    assert products.region_slug("Sjælland") == "sjaelland" and products.region_slug(0) == "landsplan"


def test_private_rate_trend_by_region_and_pooled(register):
    from lumbarstats import groups

    # Syddanmark 2021: 14 private MRs, one in each (sex, age) stratum of 4 persons -> 250 per 1,000
    syd = groups.private_rate_trend(register, years=(2021, 2021), region="Syddanmark").set_index("modality")
    assert set(syd["region"]) == {"Syddanmark"}
    assert syd.loc["MR", "events"] == 14 and syd.loc["MR", "rate"] == pytest.approx(250.0)
    every = groups.private_rate_trend(register, years=(2021, 2023), region="all", pooled=True)
    assert set(every["region"]) == {"Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland",
                                    "Landsplan"}
    assert set(every["year"]) == {"2021-2023"}
    row = every[(every["region"] == "Landsplan") & (every["modality"] == "XRAY")].iloc[0]
    assert row["events"] == 16
    # the whole country without region= keeps its layout (no region column)
    assert "region" not in groups.private_rate_trend(register, years=(2021, 2021)).columns


def test_plot_group_rates_in_english(tables):
    import matplotlib.pyplot as plt

    from lumbarstats import groups

    reg, _, _ = tables
    gtab = products.group_tables(reg)
    sub = gtab[(gtab["variable"] == "education") & (gtab["modality"] == "MR") & (gtab["region"] == "Landsplan")]
    ax = groups.plot_group_rates(sub, lang="en")
    assert ax.get_xlabel() == "Sex- and age-standardized rate per 1,000 adults"
    # primary school: every person of slot 0 has one MR a year -> 1,000 per 1,000 in every stratum
    assert "1,000.0" in [t.get_text().strip() for t in ax.texts]
    plt.close(ax.figure)
    ax = groups.plot_group_rates(sub)
    assert "1.000,0" in [t.get_text().strip() for t in ax.texts]
    assert ax.get_xlabel() == "Køns- og aldersstandardiseret antal pr. 1.000 voksne"
    plt.close(ax.figure)


def test_bilag1_annual_is_a_slice_of_the_published_tables_1_2(register, tmp_path):
    """With tables 1–2 written by the annual step, Bilag 1 repeats their cells (hidden alike) exactly."""
    from lumbarstats import pipeline

    for m in ("MR", "XRAY"):
        pipeline.annual_step(register, tmp_path, modality=m)
    products.bilag1_step(register, tmp_path, region="Nordjylland")
    b = pd.read_csv(tmp_path / "tables" / "bilag1" / "bilag1_nordjylland_annual.csv")
    t1 = pd.concat([pd.read_csv(tmp_path / "tables" / f) for f in ("table1_mr_annual.csv", "table2_xray_annual.csv")])
    t1 = t1[t1["region"] == "Nordjylland"]
    merged = b.merge(t1, on=["modality", "year"], suffixes=("", "_t1"))
    assert len(merged) == len(b) == 20
    assert (merged["examinations"].astype(str) == merged["events"].astype(str)).all()
    assert (merged["rate"].astype(str) == merged["rate_t1"].astype(str)).all()
