"""Property tests (hypothesis) of disclosure control on random small tables with row and column totals.

After suppression: no shown count is below the threshold; every row and column (with its total) holds
either no hidden cell or at least two; and no hidden cell can be solved from the shown cells and
totals — checked with exact rational arithmetic (Gaussian elimination over fractions), independently
of the library's floating-point null-space computation.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumbarstats import disclosure, tables

TOTAL = "T"


@st.composite
def two_way_tables(draw):
    n_r = draw(st.integers(2, 6))
    n_c = draw(st.integers(2, 6))
    # plenty of small cells; tables of 4x4 and more with several small cells need the linear-algebra step
    cell = st.one_of(st.integers(0, 6), st.integers(1, 4), st.integers(5, 60))
    vals = np.array([[draw(cell) for _ in range(n_c)] for _ in range(n_r)], dtype=int)
    rows = []
    for i in range(n_r + 1):
        for j in range(n_c + 1):
            if i < n_r and j < n_c:
                v = vals[i, j]
            elif i < n_r:
                v = vals[i].sum()
            elif j < n_c:
                v = vals[:, j].sum()
            else:
                v = vals.sum()
            rows.append({"r": f"r{i}" if i < n_r else TOTAL, "c": f"c{j}" if j < n_c else TOTAL, "persons": int(v)})
    df = pd.DataFrame(rows)
    df["events"] = df["persons"] * 2
    df["rate"] = df["persons"] / 100.0
    min_cell = draw(st.integers(3, 8))
    return df, min_cell


def relations(df: pd.DataFrame) -> list[list[tuple[int, int]]]:
    """Each row and column line as [(position, sign)]: members +1, the total -1."""
    out = []
    for dim, other in (("r", "c"), ("c", "r")):
        for _, g in df.groupby(other):
            out.append([(int(p), -1 if df.loc[p, dim] == TOTAL else 1) for p in g.index])
    return out


def exact_rank(rows: list[list[Fraction]]) -> int:
    m = [r[:] for r in rows]
    rank, n_cols = 0, len(m[0]) if m else 0
    for col in range(n_cols):
        pivot = next((i for i in range(rank, len(m)) if m[i][col] != 0), None)
        if pivot is None:
            continue
        m[rank], m[pivot] = m[pivot], m[rank]
        for i in range(len(m)):
            if i != rank and m[i][col] != 0:
                f = m[i][col] / m[rank][col]
                m[i] = [a - f * b for a, b in zip(m[i], m[rank], strict=True)]
        rank += 1
    return rank


def solvable_cells(df: pd.DataFrame, hidden: np.ndarray) -> list[int]:
    """Hidden cells whose value the relations determine: e_k lies in the row space of A restricted to hidden."""
    idx = list(np.flatnonzero(hidden))
    if not idx:
        return []
    a = []
    for rel in relations(df):
        row = [Fraction(0)] * len(idx)
        for p, sign in rel:
            if p in idx:
                row[idx.index(p)] = Fraction(sign)
        if any(row):
            a.append(row)
    if not a:
        return []
    base = exact_rank(a)
    out = []
    for k, p in enumerate(idx):
        unit = [Fraction(int(k == q)) for q in range(len(idx))]
        if exact_rank([*a, unit]) == base:
            out.append(p)
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_way_tables())
def test_suppressed_cells_cannot_be_recomputed(data):
    df, min_cell = data
    res = disclosure.suppress(df, min_cell=min_cell, group_totals={"r": TOTAL, "c": TOTAL})
    mask = res.mask.to_numpy()
    # 1. nothing shown below the threshold (zeros are allowed: they describe no person)
    for col in ("persons", "events"):
        shown = pd.to_numeric(res.table[col]).dropna()
        assert not ((shown > 0) & (shown < min_cell)).any()
    assert (mask | ~res.primary.to_numpy()).all()  # every primary cell is hidden
    # 2. rates are hidden exactly with their counts
    assert (res.table["rate"].isna().to_numpy() == mask).all()
    # 3. every row and column holds 0 or >= 2 hidden cells
    for rel in relations(df):
        n_hidden = sum(mask[p] for p, _ in rel)
        assert n_hidden == 0 or n_hidden >= 2, (rel, mask)
    # 4. the shown cells and totals do not determine any hidden cell (exact arithmetic)
    assert solvable_cells(df, mask) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=2, max_size=7), st.integers(3, 6))
def test_one_way_with_total(values, min_cell):
    df = pd.DataFrame({"g": [f"g{i}" for i in range(len(values))] + [TOTAL], "persons": [*values, sum(values)]})
    res = disclosure.suppress(df, min_cell=min_cell, group_totals={"g": TOTAL})
    mask = res.mask.to_numpy()
    shown = pd.to_numeric(res.table["persons"]).dropna()
    assert not ((shown > 0) & (shown < min_cell)).any()
    assert mask.sum() == 0 or mask.sum() >= 2
    # the hidden cells' sum is all that is known: with >= 2 hidden cells none is determined
    assert not disclosure.determined_cells(df, mask, keys=["g"], group_totals={"g": TOTAL}).any()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(two_way_tables())
def test_no_exported_cell_below_threshold(tmp_path_factory, data):
    df, min_cell = data
    out = tmp_path_factory.mktemp("prop")
    tables.export(df, out / "t", tables.TableSpec(title="t"), formats=("html", "xlsx"), min_cell=min_cell,
                  group_totals={"r": TOTAL, "c": TOTAL})
    assert disclosure.check_directory(out, min_cell=min_cell).empty
