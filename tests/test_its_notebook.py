"""The intervention-evaluation notebook runs end to end with papermill on a small synthetic register."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

# the installed notebooks (package data), not the checkout's: the suite also runs against `pip install .`
NOTEBOOK = Path(str(resources.files("lumbarstats.notebooks") / "04_intervention_evaluation.ipynb"))


def test_notebook_is_clean_and_parameterised():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    source = "".join(tagged[0]["source"])
    for name in ("data_dir", "out_dir", "region", "intervention_start", "modality", "controls", "harmonics"):
        assert f"{name} =" in source
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            assert not c["outputs"] and c["execution_count"] is None


@pytest.mark.slow
def test_notebook_runs_xray(tmp_path, small_register):
    papermill = pytest.importorskip("papermill")
    papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "out.ipynb"), cwd=str(tmp_path), progress_bar=False, kernel_name="lumbarstats",
        parameters={"data_dir": str(small_register), "out_dir": str(tmp_path / "output"), "modality": "XRAY",
                    "intervention_start": "2019-01"},
    )
    t = pd.read_csv(tmp_path / "output" / "tables" / "its_syddanmark_xray.csv")
    assert list(t.columns) == ["term", "rate_ratio", "lower", "upper", "p_value"]
    assert (tmp_path / "output" / "tables" / "controlled_syddanmark_xray.csv").exists()
    assert (tmp_path / "output" / "tables" / "synthcontrol_syddanmark_xray.csv").exists()
    assert (tmp_path / "output" / "figures" / "its_syddanmark_xray.png").exists()
