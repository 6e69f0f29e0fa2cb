"""The synthetic register: calibration (exact expectation), determinism, plausibility."""

from __future__ import annotations

import hashlib
import json

import duckdb
import numpy as np
import pandas as pd
import pytest

import lumbarstats as ls


def test_expected_standardized_rates_equal_published_exactly(small_register):
    # Recomputed from the saved model and population.parquet, independently of the generator.
    e = ls.synth.expected_standardized_rates(small_register)
    assert len(e) == 2 * 5 * 10
    assert np.allclose(e["expected_rate"], e["published_rate"], rtol=0, atol=1e-9)


def test_same_seed_gives_identical_files(tmp_path):
    a = ls.synth.generate(tmp_path / "a", scale=0.002, seed=5, verbose=False)
    b = ls.synth.generate(tmp_path / "b", scale=0.002, seed=5, verbose=False)
    c = ls.synth.generate(tmp_path / "c", scale=0.002, seed=6, verbose=False)

    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()
                and p.name != ls.io.MARKER_NAME}  # the folder marker records when the folder was made

    assert digest(a) == digest(b)
    assert digest(a)["examinations.parquet"] != digest(c)["examinations.parquet"]


def test_generate_skips_existing_and_is_atomic(tmp_path):
    out = ls.synth.generate(tmp_path / "r", scale=0.002, seed=5, verbose=False)
    before = (out / "population.parquet").stat().st_mtime_ns
    ls.synth.generate(out, scale=0.002, seed=5, verbose=False)
    assert (out / "population.parquet").stat().st_mtime_ns == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    with pytest.raises(ValueError, match="scale"):
        ls.synth.generate(tmp_path / "bad", scale=0, seed=1)
    assert not (tmp_path / "bad").exists()


def _q(reg, sql):
    for token, name in (("EXITS", "exits"), ("SURG", "surgery"), ("POP", "population"), ("EX", "examinations")):
        sql = sql.replace(token, f"read_parquet('{(reg / (name + '.parquet')).as_posix()}')")
    return duckdb.sql(sql).df()


def test_register_is_valid_against_the_dictionary(small_register):
    counts = ls.io.validate_register(small_register)
    meta = json.loads((small_register / "metadata.json").read_text())
    assert counts["population"] == meta["counts"]["population"]


def test_population_size_and_covariate_dependence(small_register):
    by_year = _q(small_register, "SELECT year, count(*) n, min(age) amin FROM POP GROUP BY year ORDER BY year")
    assert by_year["amin"].min() >= 18
    # about 4.7 million adults a year at scale 1, growing
    assert 0.95 * 47_490 <= by_year.loc[by_year.year == 2022, "n"].iloc[0] <= 1.05 * 47_490
    assert by_year["n"].is_monotonic_increasing
    d = _q(small_register, """SELECT
        avg(CASE WHEN employment='pension' THEN 1 ELSE 0 END) FILTER (WHERE age >= 70) AS pension_70,
        avg(CASE WHEN employment='pension' THEN 1 ELSE 0 END) FILTER (WHERE age < 55) AS pension_young,
        avg(CASE WHEN industry IS NOT NULL THEN 1 ELSE 0 END) FILTER (WHERE employment <> 'employed') AS ind_nonemp,
        avg(CASE WHEN industry IS NULL THEN 1 ELSE 0 END) FILTER (WHERE employment = 'employed') AS noind_emp,
        avg(cci) FILTER (WHERE age < 40) AS cci_young, avg(cci) FILTER (WHERE age >= 70) AS cci_old,
        avg(CASE WHEN education='long_higher' THEN 1 ELSE 0 END) FILTER (WHERE age BETWEEN 30 AND 45) AS long_young,
        avg(CASE WHEN education='long_higher' THEN 1 ELSE 0 END) FILTER (WHERE age >= 75) AS long_old,
        avg(cci) FILTER (WHERE employment = 'disability') AS cci_dis, avg(cci) FILTER (WHERE employment='employed'
            AND age BETWEEN 40 AND 60) AS cci_emp
        FROM POP""")
    r = d.iloc[0]
    assert r.pension_70 > 0.85 and r.pension_young == 0
    assert r.ind_nonemp == 0 and r.noind_emp == 0
    assert r.cci_old > 3 * r.cci_young
    assert r.long_young > 1.5 * r.long_old
    assert r.cci_dis > r.cci_emp


def test_persons_persist_across_years(small_register):
    d = _q(small_register, """SELECT a.education = b.education AS same_edu, a.age + 1 = b.age AS aged
        FROM POP a JOIN POP b ON a.person_id = b.person_id AND b.year = a.year + 1""")
    assert d["same_edu"].all() and d["aged"].all()


def test_examinations_payer_dates_and_exits(small_register):
    pay = _q(small_register, """SELECT payer, count(*) n FROM EX WHERE modality IN ('MR','XRAY')
        AND year(date) BETWEEN 2021 AND 2023 GROUP BY payer""").set_index("payer")["n"]
    share = pay / pay.sum()
    assert 0.89 < share["public"] < 0.95 and 0.05 < share["private"] < 0.11
    priv = _q(small_register, "SELECT modality, count(*) n FROM EX WHERE payer='private' GROUP BY modality")
    assert priv.set_index("modality")["n"]["MR"] > 3 * priv.set_index("modality")["n"]["XRAY"]
    # no examination after a person's exit; codes exact core codes
    after = _q(small_register, "SELECT count(*) n FROM EX e JOIN EXITS x USING (person_id) WHERE e.date > x.date")
    assert after["n"].iloc[0] == 0
    codes = _q(small_register, "SELECT DISTINCT modality, procedure_code FROM EX")
    assert set(map(tuple, codes.to_numpy())) == {("MR", "UXME30"), ("XRAY", "UXRE30"), ("CT", "UXCE30")}
    ex = _q(small_register, "SELECT exit_type, count(*) n FROM EXITS GROUP BY exit_type").set_index("exit_type")["n"]
    assert ex["death"] > 0 and ex["emigration"] > 0
    surg = _q(small_register, "SELECT DISTINCT procedure_code FROM SURG")
    assert set(surg["procedure_code"]) <= set(ls.dictionary.load().lumbar_surgery_codes())


def test_seasonality_and_weekdays(small_register):
    d = _q(small_register, "SELECT month(date) m, dayofweek(date) dw FROM EX WHERE payer='public'")
    per_month = d["m"].value_counts().sort_index()
    assert per_month[7] < 0.85 * per_month[[3, 9, 10]].mean()  # summer holidays
    assert (d["dw"].isin([0, 6])).mean() < 0.05


def test_summary_text(small_register):
    text = ls.synth.summarize(small_register)
    assert "person-years" in text and "public examinations" in text
    with pytest.raises(FileNotFoundError, match="lumbarstats synth"):
        ls.synth.summarize(small_register / "nope")


def test_realized_rates_close_to_published_at_small_scale(small_register):
    """At 1 % scale the national annual rates are within sampling error of tables 1–2."""
    r = pd.concat([ls.rates.annual_rates(small_register, modality=m) for m in ("MR", "XRAY")])
    nat = r[r["region"] == "Landsplan"].copy()
    pub = pd.concat([ls.reference.annual_table(m).assign(modality=m) for m in ("MR", "XRAY")])
    m = nat.merge(pub.rename(columns={"rate": "published"}), on=["modality", "region", "year"])
    # 1 % scale: ~650-900 events a year nationally, so about +-8 % sampling error at 2 SE
    assert (abs(m["rate"] - m["published"]) / m["published"]).max() < 0.12
    assert (m["lower"] <= m["published"]).mean() >= 0.8


def test_generate_never_deletes_a_foreign_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not empty"):
        ls.synth.generate(folder, scale=0.002, seed=5, verbose=False)
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_no_examination_outside_its_population_year(small_register):
    d = _q(small_register, """SELECT count(*) n FROM EX e ANTI JOIN POP p
        ON e.person_id = p.person_id AND year(e.date) = p.year WHERE e.payer = 'public'""")
    assert d["n"].iloc[0] == 0
