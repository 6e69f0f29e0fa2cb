"""Charlson comorbidity index from LPR diagnoses (lumbarstats.adapters.cci).

Reference: the Danish ICD-8/ICD-10 Charlson definitions and weights of Thygesen SK et al.,
BMC Med Res Methodol 2011;11:83, Table 1 (weights from Charlson ME et al., J Chronic Dis 1987;40:373-83).
The expected scores below are computed by hand from that table.
"""

from __future__ import annotations

import pandas as pd
import pytest

from lumbarstats.adapters import cci


def _dx(rows):
    return pd.DataFrame(rows, columns=["person_id", "date", "code", "type"])


def test_code_list_has_19_conditions_with_published_weights():
    codes = cci.charlson_codes()
    weights = codes.drop_duplicates("condition").set_index("condition")["weight"].to_dict()
    assert len(weights) == 19
    # Thygesen 2011 Table 1: weights 1 (10 conditions), 2 (6), 3 (1), 6 (2)
    assert sorted(weights.values()) == [1] * 10 + [2] * 6 + [3] + [6] * 2
    assert weights["metastatic_solid_tumour"] == 6 and weights["aids"] == 6
    assert weights["severe_liver_disease"] == 3
    # ICD-10 prefixes carry the SKS chapter letter D, ICD-8 are numeric
    assert "DI21" in set(codes["prefix"]) and "410" in set(codes["prefix"])
    assert {"DI60", "DI65", "DI69"} <= set(codes["prefix"])          # I60-I69 expanded
    assert {"29009", "29015", "29019"} <= set(codes["prefix"])       # 290.09-290.19 expanded


def test_expand_code_range():
    assert cci.expand_code_range("K700", "K703") == ["K700", "K701", "K702", "K703"]
    assert cci.expand_code_range("C76", "C80") == ["C76", "C77", "C78", "C79", "C80"]
    with pytest.raises(ValueError):
        cci.expand_code_range("I60", "J69")


def test_hand_computed_scores():
    dx = _dx([
        # person 1: myocardial infarction on 31 Dec 2013 -> counts for 2014..2023, not 2024 (10-year look-back)
        (1, "2013-12-31", "DI210", "A"),
        # a second one on 1 Jan 2014 counts from population year 2015 only (boundary)
        (11, "2014-01-01", "DI219", "A"),
        # person 2: hierarchy. mild (K70.3) + severe (K72) liver -> 3; diabetes (E11.9) + with end-organ
        # damage (E11.2) -> 2; tumour (C50) + metastasis (C78) -> 6. Total 3 + 2 + 6 = 11 (not 1+3+1+2+2+6=15)
        (2, "2015-03-01", "DK703", "A"), (2, "2016-03-01", "DK729", "B"),
        (2, "2015-03-01", "DE119", "B"), (2, "2017-03-01", "DE112", "A"),
        (2, "2012-01-01", "DC509", "A"), (2, "2018-06-01", "DC787", "A"),
        # person 3: ICD-8 MI (410.99) and diabetes with complications (250.01) in 1990, ICD-10 MI in 2010
        (3, "1990-05-01", "41099", "A"), (3, "1990-05-01", "25001", "B"), (3, "2010-02-02", "DI21.9", "A"),
        # person 4: look-alikes: DI2 is not I21-I23, DI260 not a Charlson code; K70.0 mild liver (1);
        # M05 and D86 are both connective tissue disease -> counted once (1). Total 2
        (4, "2019-01-01", "DI2", "A"), (4, "2019-01-01", "DI260", "A"), (4, "2019-01-01", "dk700", "A"),
        (4, "2019-05-01", "DM059", "B"), (4, "2019-05-01", "DD869", "B"),
        # person 6: hemiplegia registered only as a type C diagnosis
        (6, "2016-01-01", "DG819", "C"),
        # person 7: AIDS 6 + hemiplegia 2 + renal 2 + leukaemia 2 + lymphoma 2 = 14
        (7, "2016-01-01", "DB21", "A"), (7, "2016-01-01", "DG82", "A"), (7, "2016-01-01", "DN189", "A"),
        (7, "2016-01-01", "DC92", "A"), (7, "2016-01-01", "DC833", "A"),
        # person 8: I13.0 is both congestive heart failure (I13.0) and renal disease (I13) in Table 1 -> 1 + 2
        (8, "2016-01-01", "DI130", "A"),
    ])
    idx = pd.DataFrame({"person_id": [1, 1, 1, 11, 11, 2, 2, 3, 4, 4, 5, 6, 7, 8],
                        "year": [2014, 2023, 2024, 2014, 2015, 2019, 2023, 2015, 2019, 2020, 2020, 2020, 2020, 2020]})
    got = cci.charlson_index(dx, idx, diagnosis_types=["A", "B"])
    expected = {(1, 2014): 1, (1, 2023): 1, (1, 2024): 0, (11, 2014): 0, (11, 2015): 1,
                # 2019: window 2009-2018 has every person-2 diagnosis -> 11; 2023: window 2013-2022 loses C50 (2012)
                # but keeps C78 -> still 3 + 2 + 6 = 11
                (2, 2019): 11, (2, 2023): 11,
                (3, 2015): 1,          # 10-year window 2005-2014: only the ICD-10 MI
                (4, 2019): 0, (4, 2020): 2, (5, 2020): 0, (6, 2020): 0, (7, 2020): 14, (8, 2020): 3}
    assert dict(zip(zip(got["person_id"], got["year"], strict=False), got["cci"], strict=True)) == expected
    assert len(got) == len(idx)


def test_icd8_and_long_lookback():
    dx = _dx([(3, "1990-05-01", "41099", "A"), (3, "1990-05-01", "25001", "B"), (3, "2010-02-02", "DI219", "A")])
    idx = pd.DataFrame({"person_id": [3], "year": [2015]})
    # 30-year look-back (1985-2014): ICD-8 MI + diabetes with complications (2); MI once -> 3
    assert cci.charlson_index(dx, idx, lookback_years=30)["cci"].tolist() == [3]
    assert cci.charlson_index(dx, idx, lookback_years=30, icd8=False)["cci"].tolist() == [1]
    # without the type filter a type-C hemiplegia counts
    dx6 = _dx([(6, "2016-01-01", "DG819", "C")])
    assert cci.charlson_index(dx6, pd.DataFrame({"person_id": [6], "year": [2020]}))["cci"].tolist() == [2]


def test_bad_input_raises():
    with pytest.raises(KeyError, match="code"):
        cci.charlson_index(pd.DataFrame({"person_id": [1], "date": ["2010-01-01"]}),
                           pd.DataFrame({"person_id": [1], "year": [2015]}))
    with pytest.raises(ValueError, match="look-back"):
        cci.charlson_index(_dx([(1, "2013-12-31", "DI210", "A")]), pd.DataFrame({"person_id": [1], "year": [2015]}),
                           lookback_years=0)


def test_category_cutpoints_configurable():
    assert cci.cci_category([0, 1, 3, 5]).astype(str).tolist() == ["none", "mild", "moderate", "severe"]
    assert cci.cci_category([0, 1, 2, 3], cutpoints=[1, 2, 3]).astype(str).tolist() == ["none", "mild", "moderate", "severe"]
