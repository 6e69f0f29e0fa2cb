"""Attack suite: what an outsider can recompute from everything the report publishes.

On synthetic registers at scale 0.002 and 0.005 (seed 4) the report is reproduced once per scale, then

(a) a **differencing attacker** reads every published table (CSV under ``tables/`` and
    ``time_to_event/*/tables``), turns it into cells (numbers or unknowns where hidden) and the linear
    relations an outsider knows — regions add up to Landsplan, years to periods, groups to the region
    total (with the unpublished "unknown" education group as an unknown), a profile's regions to its
    Landsplan row, payers to the modality and year totals (given by the shares), the private rate's years
    to the pooled private row, CIF / at-risk counts across regions and periods at each time and across the
    region and Landsplan files, RMST counts across regions, the exclusion flow — and solves them exactly
    (Gaussian elimination over the rationals): a hidden cell is recovered iff it is a pivot whose row
    holds no free unknown. Hidden counts next to a published share are recovered too. It must recover
    no hidden cell of 1–4 (and no hidden cell at all).
(b) an **independent scan** of every exported file (csv, xlsx, docx, html, tex, ipynb outputs) with its own
    parsing (not :func:`lumbarstats.disclosure.check_directory`) finds no count from 1 to 4.

The attacker is run on the old code's outputs too (see the report of issue 12): there it recovers cells.
Run it on any output folder with ``python tests/test_attack.py OUTPUT_DIR``.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import zipfile
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import pytest

MARKERS = {"–", "-", "—", "..", "x", "*"}
WHOLE = "Landsplan"
REGIONS = ("Nordjylland", "Midtjylland", "Syddanmark", "Hovedstaden", "Sjælland")


# ------------------------------------------------------------------------------------------------
# reading published tables
# ------------------------------------------------------------------------------------------------
def read_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def value(cell):
    """A published number, or None if hidden/missing."""
    if cell is None:
        return None
    s = str(cell).strip()
    if s in MARKERS or s == "" or s.lower() == "nan":
        return None
    try:
        return Fraction(s)
    except ValueError:
        return None


class System:
    """Cells (known numbers or unknowns) and linear relations sum(coef * cell) = 0 between them."""

    def __init__(self):
        self.known: dict[tuple, Fraction] = {}
        self.hidden: set[tuple] = set()
        self.unpublished: set[tuple] = set()
        self.relations: list[dict[tuple, Fraction]] = []
        self.direct: dict[tuple, Fraction] = {}  # recovered without algebra (e.g. count = share x total)

    def cell(self, key: tuple, raw) -> tuple:
        v = value(raw)
        if v is None:
            if key not in self.known:
                self.hidden.add(key)
        else:
            if key in self.hidden:  # hidden in one file, published in another: recovered across files
                self.hidden.discard(key)
                self.direct[key] = v
            self.known[key] = v
        return key

    def unknown(self, key: tuple, *, unpublished: bool = True) -> tuple:
        if key not in self.known:
            self.hidden.add(key)
            if unpublished:
                self.unpublished.add(key)
        return key

    def relate(self, members, total=None):
        """sum(members) == total (total None: no total, nothing to add)."""
        members = [m for m in members if m is not None]
        if total is None or not members:
            return
        rel: dict[tuple, Fraction] = defaultdict(Fraction)
        for m in members:
            rel[m] += 1
        rel[total] -= 1
        self.relations.append(dict(rel))

    def solve(self) -> dict[tuple, Fraction]:
        """Hidden cells determined by the known cells and the relations (exact elimination)."""
        rows = []
        for rel in self.relations:
            const = Fraction(0)
            row: dict[tuple, Fraction] = {}
            for k, c in rel.items():
                if k in self.known and k not in self.hidden:
                    const -= c * self.known[k]
                elif k in self.hidden:
                    row[k] = row.get(k, Fraction(0)) + c
            row = {k: c for k, c in row.items() if c != 0}
            if row:
                rows.append((row, const))
        pivots: dict[tuple, tuple[dict, Fraction]] = {}
        for row, const in rows:
            row = dict(row)
            for p, (prow, pconst) in pivots.items():  # reduce by the existing pivots
                if p in row:
                    f = row[p]
                    for k, c in prow.items():
                        row[k] = row.get(k, Fraction(0)) - f * c
                    const -= f * pconst
                    row = {k: c for k, c in row.items() if c != 0}
            if not row:
                continue
            p = min(row, key=str)
            f = row[p]
            row = {k: c / f for k, c in row.items()}
            const /= f
            for q, (qrow, qconst) in list(pivots.items()):  # keep reduced row echelon form
                if p in qrow:
                    g = qrow[p]
                    new = {k: qrow.get(k, Fraction(0)) - g * row.get(k, Fraction(0)) for k in set(qrow) | set(row)}
                    pivots[q] = ({k: c for k, c in new.items() if c != 0}, qconst - g * const)
            pivots[p] = (row, const)
        out = dict(self.direct)
        for p, (row, const) in pivots.items():
            if len(row) == 1:
                out[p] = const
        return out


# ------------------------------------------------------------------------------------------------
# the published tables as cells and relations
# ------------------------------------------------------------------------------------------------
def _rate_tables(sys_: System, tables: Path):
    for modality, annual_f, period_f in (("MR", "table1_mr_annual.csv", "table5_1_mr_periods.csv"),
                                         ("XRAY", "table2_xray_annual.csv", "table5_2_xray_periods.csv")):
        if not (tables / annual_f).exists():
            continue
        years = defaultdict(dict)
        for r in read_rows(tables / annual_f):
            years[int(r["year"])][r["region"]] = sys_.cell(("annual", modality, r["region"], int(r["year"])), r["events"])
        for cells in years.values():
            sys_.relate([cells.get(reg) for reg in REGIONS], cells.get(WHOLE))
        if (tables / period_f).exists():
            periods = defaultdict(dict)
            for r in read_rows(tables / period_f):
                periods[r["period"]][r["region"]] = sys_.cell(("period", modality, r["region"], r["period"]),
                                                              r["events"])
            for p, cells in periods.items():
                sys_.relate([cells.get(reg) for reg in REGIONS], cells.get(WHOLE))
                a, b = (int(x) for x in p.split("-"))
                for reg, key in cells.items():
                    members = [("annual", modality, reg, y) for y in range(a, b + 1)]
                    if all(m in sys_.known or m in sys_.hidden for m in members):
                        sys_.relate(members, key)


def _group_tables(sys_: System, tables: Path):
    for f in ("table5_3_mr_groups.csv", "table5_4_xray_groups.csv"):
        if not (tables / f).exists():
            continue
        rows = read_rows(tables / f)
        by_var = defaultdict(lambda: defaultdict(dict))
        for r in rows:
            key = sys_.cell(("groups", r["modality"], r["variable"], r["group"], r["region"]), r["events"])
            by_var[(r["modality"], r["variable"])][r["group"]][r["region"]] = key
        for (modality, variable), groups in by_var.items():
            for cells in groups.values():
                sys_.relate([cells.get(reg) for reg in REGIONS], cells.get(WHOLE))
            if variable in ("sex", "age_group", "cci", "education"):
                for reg in (*REGIONS, WHOLE):
                    members = [g.get(reg) for g in groups.values()]
                    if variable == "education":  # the "unknown" group is not published: an unknown
                        members.append(sys_.unknown(("groups", modality, "education", "(unknown)", reg)))
                    total = sys_.unknown(("groups_total", modality, reg))
                    sys_.relate(members, total)
        for modality in {m for m, _ in by_var}:  # the residual and the totals add up over regions too
            sys_.relate([("groups", modality, "education", "(unknown)", reg) for reg in REGIONS],
                        ("groups", modality, "education", "(unknown)", WHOLE))
            sys_.relate([("groups_total", modality, reg) for reg in REGIONS], ("groups_total", modality, WHOLE))


def _profile_table(sys_: System, tables: Path):
    f = tables / "table4_1_profiles.csv"
    if not f.exists():
        return
    rows = read_rows(f)
    cells = defaultdict(dict)
    totals = {}
    for r in rows:
        key = sys_.cell(("profile", r["modality"], r["rank"], r["region"]), r["exams"])
        cells[(r["modality"], r["rank"])][r["region"]] = key
        n, share = value(r["exams"]), value(r.get("share_pct"))
        if n is not None and share:
            totals[(r["modality"], r["region"])] = n * 100 / share
    for r in rows:  # a hidden count beside its published share: count = share x region total
        share = value(r.get("share_pct"))
        key = ("profile", r["modality"], r["rank"], r["region"])
        if key in sys_.hidden and share is not None and (r["modality"], r["region"]) in totals:
            sys_.direct[key] = share * totals[(r["modality"], r["region"])] / 100
    for (_m, _rank), c in cells.items():
        sys_.relate([c.get(reg) for reg in REGIONS], c.get(WHOLE))


def _payer_tables(sys_: System, tables: Path):
    f = tables / "payer_shares.csv"
    if not f.exists():
        return
    rows = read_rows(f)
    by_mod, by_year = defaultdict(list), defaultdict(list)
    for r in rows:
        key = sys_.cell(("payer", r["year"], r["region"], r["modality"], r["payer"]), r["exams"])
        by_mod[(r["year"], r["region"], r["modality"])].append((key, r))
        by_year[(r["year"], r["region"])].append((key, r))
    for group, col, tag in ((by_mod, "share_within_modality_pct", "modality_total"),
                            (by_year, "share_pct", "year_total")):
        for gk, members in group.items():
            total = None
            for _, r in members:
                n, share = value(r["exams"]), value(r.get(col))
                if n is not None and share:
                    total = n * 100 / share
            tkey = sys_.unknown((tag, *gk))
            if total is not None:
                sys_.known[tkey] = total
                sys_.hidden.discard(tkey)
                for key, r in members:  # a hidden count beside its published share
                    share = value(r.get(col))
                    if key in sys_.hidden and share is not None:
                        sys_.direct[key] = share * total / 100
            sys_.relate([k for k, _ in members], tkey)
    p = tables / "private_rate.csv"
    if p.exists():
        years = {}
        for r in read_rows(p):
            years[(r["modality"], r["year"])] = sys_.cell(("private", r["modality"], r["year"]), r["events"])
        for (year, region, modality, payer) in [k for k in sys_.known | dict.fromkeys(sys_.hidden)
                                                if k[0] == "payer" and k[4] == "private" for k in [k[1:]]]:
            a, b = (int(x) for x in str(year).split("-")) if "-" in str(year) else (int(year), int(year))
            members = [years.get((modality, str(y))) for y in range(a, b + 1)]
            if region == WHOLE and all(members):
                sys_.relate(members, ("payer", year, region, modality, payer))


def _tte_tables(sys_: System, root: Path):
    for f in sorted(root.glob("time_to_event/*/tables/*_cif.csv")):
        rows = read_rows(f)
        for r in rows:
            grouping = r["grouping"]
            region = r.get("region_name") or ""
            if not r.get("region_name") and grouping == "period" and not f.name.startswith(f"tte_{WHOLE}_"):
                region = f.name.split("_")[1]
                grouping = "region_name+period"
            period = r.get("period") or ""
            for col in ("events", "at_risk"):
                sys_.cell(("cif", col, r["event_type"], grouping, region, period, r["time"]), r[col])
    cells = {k for k in (*sys_.known, *sys_.hidden) if k[0] == "cif"}
    for k in cells:
        _, col, ev, grouping, region, period, time = k
        if grouping == "region_name" and region:  # periods add up to the region's pooled curve
            members = [m for m in cells if m[:3] == ("cif", col, ev) and m[3] == "region_name+period"
                       and m[4] == region and m[6] == time]
            sys_.relate(members, k)
        if grouping == "period" and not region:  # regions add up to the whole country's period
            members = [m for m in cells if m[:3] == ("cif", col, ev) and m[3] == "region_name+period"
                       and m[5] == period and m[6] == time]
            sys_.relate(members, k)
    for f in sorted(root.glob("time_to_event/*/tables/*_rmst.csv")):
        region = f.name.split("_")[1]
        for r in read_rows(f):
            if r.get("contrast", "estimate") != "estimate":
                continue
            for col in ("n", "events"):
                sys_.cell(("rmst", col, region, r["period"]), r[col])
    for col in ("n", "events"):
        periods = {k[3] for k in (*sys_.known, *sys_.hidden) if k[:2] == ("rmst", col)}
        for p in periods:
            sys_.relate([("rmst", col, reg, p) for reg in REGIONS], ("rmst", col, WHOLE, p))
    for f in sorted(root.glob("time_to_event/*/tables/*_exclusions.csv")):
        rows = read_rows(f)
        for prev, r in zip(rows, rows[1:], strict=False):
            rem0 = sys_.cell(("excl", f.name, "remaining", prev["step"]), prev["n_remaining"])
            rem1 = sys_.cell(("excl", f.name, "remaining", r["step"]), r["n_remaining"])
            exc = sys_.cell(("excl", f.name, "excluded", r["step"]), r["n_excluded"])
            sys_.relate([rem1, exc], rem0)


def attack(out: Path) -> tuple[System, dict]:
    """All published tables of an output folder as one system; returns it and the recovered hidden cells."""
    out = Path(out)
    s = System()
    tables = out / "tables"
    _rate_tables(s, tables)
    _group_tables(s, tables)
    _profile_table(s, tables)
    _payer_tables(s, tables)
    _tte_tables(s, out)
    recovered = s.solve()
    # an unpublished residual (education "unknown") that is recovered matters when it is small
    recovered = {k: v for k, v in recovered.items() if k not in s.unpublished or 0 < v < 5}
    return s, recovered


# ------------------------------------------------------------------------------------------------
# (b) an independent scan of every exported file
# ------------------------------------------------------------------------------------------------
COUNT_HEADINGS = re.compile(
    r"^(persons|patients|events|exams|examinations|n|count|observed|observed_events|cases|at_risk|n_excluded|"
    r"n_remaining|antal.*|number.*|personer|patienter|undersøgelser)(\s+\d{4}(\s*[-–]\s*\d{2,4})?)?$", re.I)


def _num(s):
    s = str(s).replace("\u00a0", " ").strip()
    if re.fullmatch(r"\d+(\.0+)?", s):
        return float(s)
    if re.fullmatch(r"\d{1,3}([.,]\d{3})+", s):
        return float(re.sub(r"[.,]", "", s))
    return None


def _grid_small(grid, where) -> list[str]:
    bad, heads = [], {}
    for i, row in enumerate(grid):
        cells = [str(c).strip() if c is not None else "" for c in row]
        if any(COUNT_HEADINGS.match(c) for c in cells):
            heads = {j: c for j, c in enumerate(cells) if COUNT_HEADINGS.match(c)}
            continue
        for j, c in heads.items():
            if j < len(cells):
                v = _num(cells[j])
                if v is not None and 1 <= v <= 4:
                    bad.append(f"{where} row {i} {c}={cells[j]}")
    return bad


def _html_grids(text: str) -> list[list[list[str]]]:
    grids = []
    for table in re.findall(r"<table.*?</table>", text, flags=re.S | re.I):
        grid = []
        for tr in re.findall(r"<tr.*?</tr>", table, flags=re.S | re.I):
            row = []
            for m in re.finditer(r"<t[hd]([^>]*)>(.*?)</t[hd]>", tr, flags=re.S | re.I):
                span = re.search(r'colspan="?(\d+)', m.group(1))
                txt = re.sub(r"<[^>]+>", "", m.group(2))
                txt = re.sub(r"\s+", " ", txt.replace("&nbsp;", " ")).strip()
                row.extend([txt] * (int(span.group(1)) if span else 1))
            grid.append(row)
        grids.append(grid)
    return grids


def _text_grids(text: str) -> list[list[list[str]]]:
    """Printed pandas tables: right-aligned columns, matched to headings by where they end."""
    grids, ends = [], []
    for line in text.splitlines():
        toks = [(m.group(0), m.end()) for m in re.finditer(r"\S+(?: \S+)*", line)]
        if not toks:
            continue
        if len(toks) >= 2 and all(_num(t) is None for t, _ in toks[1:]):
            ends = [e for _, e in toks]
            grids.append([[t for t, _ in toks]])
            continue
        if grids:
            row = [""] * len(ends)
            for t, e in toks:
                if e in ends:
                    row[ends.index(e)] = t
            grids[-1].append(row)
    return grids


def scan_file(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    grids = []
    if suffix in (".csv", ".tsv"):
        text = path.read_text(encoding="utf-8-sig")
        delim = "\t" if suffix == ".tsv" else (";" if text.count(";") > text.count(",") else ",")
        grids = [list(csv.reader(text.splitlines(), delimiter=delim))]
    elif suffix in (".html", ".htm"):
        grids = _html_grids(path.read_text(encoding="utf-8"))
    elif suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb.get("cells", []):
            for o in cell.get("outputs", []) or []:
                data = o.get("data", {}) or {}
                for kind, text in (("html", data.get("text/html")), ("text", data.get("text/plain")),
                                   ("text", o.get("text"))):
                    if text:
                        text = "".join(text) if isinstance(text, list) else text
                        grids += _html_grids(text) if kind == "html" else _text_grids(text)
    elif suffix == ".tex":
        text = path.read_text(encoding="utf-8")
        for body in re.findall(r"\\begin\{tabular\}.*?\\end\{tabular\}", text, flags=re.S):
            rows = []
            for line in re.split(r"\\\\", body):
                line = re.sub(r"\\(multicolumn\{\d+\}\{[^}]*\}|[a-zA-Z]+)", " ", line)
                rows.append([re.sub(r"[{}]", "", c).strip() for c in line.split("&")])
            grids.append(rows)
    elif suffix in (".docx", ".xlsx"):
        with zipfile.ZipFile(path) as z:
            if suffix == ".docx":
                xml = z.read("word/document.xml").decode("utf-8")
                for tbl in re.findall(r"<w:tbl>.*?</w:tbl>", xml, flags=re.S):
                    grid = []
                    for tr in re.findall(r"<w:tr[ >].*?</w:tr>", tbl, flags=re.S):
                        grid.append(["".join(re.findall(r"<w:t[^>]*>([^<]*)</w:t>", tc))
                                     for tc in re.findall(r"<w:tc>.*?</w:tc>", tr, flags=re.S)])
                    grids.append(grid)
            else:
                shared = re.findall(r"<si>.*?</si>", z.read("xl/sharedStrings.xml").decode("utf-8"), flags=re.S) \
                    if "xl/sharedStrings.xml" in z.namelist() else []
                shared = ["".join(re.findall(r"<t[^>]*>([^<]*)</t>", s)) for s in shared]
                for name in sorted(n for n in z.namelist() if n.startswith("xl/worksheets/sheet")):
                    xml = z.read(name).decode("utf-8")
                    grid = []
                    for row in re.findall(r"<row[^>]*>.*?</row>", xml, flags=re.S):
                        cells = {}
                        for m in re.finditer(r'<c r="([A-Z]+)\d+"([^>]*?)(?:/>|>(.*?)</c>)', row, flags=re.S):
                            col = sum((ord(ch) - 64) * 26 ** i for i, ch in enumerate(reversed(m.group(1)))) - 1
                            v = re.search(r"<v>([^<]*)</v>", m.group(3) or "")
                            t = re.search(r"<t[^>]*>([^<]*)</t>", m.group(3) or "")
                            txt = t.group(1) if t else (v.group(1) if v else "")
                            if 't="s"' in m.group(2) and v:
                                txt = shared[int(v.group(1))]
                            cells[col] = txt
                        grid.append([cells.get(j, "") for j in range(max(cells, default=-1) + 1)])
                    grids.append(grid)
    bad = []
    for i, g in enumerate(grids):
        bad += _grid_small(g, f"{path.name}#{i}")
    return bad


def scan_folder(out: Path) -> tuple[int, list[str]]:
    files = [p for p in Path(out).rglob("*") if p.is_file() and p.suffix.lower() in
             (".csv", ".tsv", ".html", ".htm", ".ipynb", ".tex", ".docx", ".xlsx")
             and "logs" not in p.relative_to(out).parts]
    bad = []
    for f in files:
        bad += scan_file(f)
    return len(files), bad


# ------------------------------------------------------------------------------------------------
# the tests
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session", params=["reproduced_0002", "reproduced_0005"], ids=["scale0.002", "scale0.005"])
def published(request):
    """The report reproduced once per scale on a synthetic register (seed 4), every step and every region
    (the session fixtures of conftest.py, shared with the end-to-end tests)."""
    ok, out = request.getfixturevalue(request.param)
    assert ok, f"reproduce failed; see {out}.logs"
    return out


@pytest.mark.slow
def test_published_outputs_exist(published):
    for f in ("table1_mr_annual.csv", "table5_3_mr_groups.csv", "table4_1_profiles.csv", "payer_shares.csv"):
        assert (published / "tables" / f).exists(), f
    assert list(published.glob("time_to_event/*/tables/*_cif.csv"))


@pytest.mark.slow
def test_differencing_attacker_recovers_no_hidden_cell(published):
    system, recovered = attack(published)
    assert len(system.hidden) > 0 and len(system.relations) > 100  # the attack has something to work on
    assert recovered == {}, f"{len(recovered)} hidden cells recovered, e.g. {list(recovered.items())[:5]}"


@pytest.mark.slow
def test_independent_scan_finds_no_small_count(published):
    n_files, bad = scan_folder(published)
    assert n_files > 40
    assert bad == [], bad[:10]


def test_attacker_is_real_on_a_leaky_folder(tmp_path):
    """The attacker recovers a hidden region from Landsplan minus the other regions, a hidden payer cell
    from its share, and the unknown education group from the sex total minus the published groups."""
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "table1_mr_annual.csv").write_text(
        "region,year,events\n" + "".join(f"{r},2021,{n}\n" for r, n in zip(REGIONS, ["–", 10, 11, 12, 13], strict=True))
        + "Landsplan,2021,49\n", encoding="utf-8")
    (tables / "payer_shares.csv").write_text(
        "year,region,modality,payer,exams,persons,share_pct,share_within_modality_pct\n"
        "2021-2023,Landsplan,MR,other,–,–,–,–\n2021-2023,Landsplan,MR,private,58,58,6.5,12.5\n"
        "2021-2023,Landsplan,MR,public,404,391,45.2,87.1\n", encoding="utf-8")
    rows = ["modality,variable,group,region,events"]
    for reg in (*REGIONS, WHOLE):
        mult = 5 if reg == WHOLE else 1
        rows += [f"MR,sex,Mand,{reg},{20 * mult}", f"MR,sex,Kvinde,{reg},{20 * mult}",
                 f"MR,education,A,{reg},{18 * mult}", f"MR,education,B,{reg},{20 * mult}"]
    (tables / "table5_3_mr_groups.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    _, recovered = attack(tmp_path)
    assert recovered[("annual", "MR", "Nordjylland", 2021)] == 3
    assert ("payer", "2021-2023", "Landsplan", "MR", "other") in recovered
    assert recovered[("groups", "MR", "education", "(unknown)", "Nordjylland")] == 2


def test_independent_scan_is_real(tmp_path):
    (tmp_path / "a.csv").write_text("region,Antal patienter\nNordjylland,3\n", encoding="utf-8")
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "execute_result", "data": {
        "text/plain": ["        region  persons\n", "0  Nordjylland        2\n"]}}]}]}
    (tmp_path / "b.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    n, bad = scan_folder(tmp_path)
    assert n == 2 and len(bad) == 2, bad


if __name__ == "__main__":  # python tests/test_attack.py OUTPUT_DIR: print what an attacker recovers
    folder = Path(sys.argv[1])
    s, rec = attack(folder)
    small = {k: v for k, v in rec.items() if 0 < v < 5}
    print(json.dumps({"folder": str(folder), "hidden": len(s.hidden), "relations": len(s.relations),
                      "recovered": len(rec), "recovered_1_to_4": len(small),
                      "by_table": {t: sum(1 for k in rec if k[0] == t) for t in sorted({k[0] for k in rec})},
                      "scan_small_counts": len(scan_folder(folder)[1])}))
    for k, v in sorted(rec.items(), key=str)[:400]:
        print(k, v)
