"""The report notebooks run as in JupyterLab: kernel started in ``notebooks/``, default parameters.

JupyterLab starts a notebook's kernel in the notebook's folder, so ``data_dir = "data/synthetic"`` must
resolve from the project root (:mod:`lumbarstats.project`), not from the kernel's working directory. The
executed notebooks must show their figures (``image/png`` outputs) and no small count.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import pytest

import lumbarstats as ls

NOTEBOOKS = Path(str(resources.files("lumbarstats.notebooks")))
NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def lab_project(tmp_path_factory, tiny_register):
    """A project as a researcher has it: lumbarstats.toml at the root, the register at data/synthetic, the
    notebooks in notebooks/ — and the kernel started in notebooks/."""
    root = tmp_path_factory.mktemp("project")
    (root / "lumbarstats.toml").write_text("[paths]\n", encoding="utf-8")
    (root / "data").mkdir()
    (root / "data" / "synthetic").symlink_to(tiny_register, target_is_directory=True)
    shutil.copytree(NOTEBOOKS, root / "notebooks", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return root


def _outputs(nb: dict) -> list[dict]:
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def test_every_notebook_uses_the_one_kernel_and_resolves_paths_from_the_project():
    for name in NAMES:
        nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
        assert nb["metadata"]["kernelspec"]["name"] == "lumbarstats", name
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        assert "ls.project.data_dir(data_dir)" in code and "ls.project.out_dir(out_dir)" in code, name
        assert "matplotlib.use(" not in code, name  # figures must render inline


@pytest.mark.slow
def test_notebooks_run_with_the_kernel_in_notebooks_folder(lab_project, monkeypatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.delenv(ls.project.ENV_VAR, raising=False)
    cwd = lab_project / "notebooks"
    runs = {"05_time_to_event.ipynb": {"region": "Syddanmark"}}  # one region keeps the run short
    executed = lab_project / "executed"
    executed.mkdir()
    with ls.batch.kernel_for_run() as kernel:
        for name in NAMES:
            papermill.execute_notebook(str(cwd / name), str(executed / name), cwd=str(cwd), kernel_name=kernel,
                                       parameters=runs.get(name, {}), progress_bar=False)
    output = lab_project / "output"
    assert (output / "figures" / "annual_mr.png").is_file()  # written at the project's output folder
    assert (output / "figures" / "annual_mr.svg").is_file()  # with a vector copy beside it
    assert not (cwd / "output").exists() and not (cwd / "data").exists()  # not under the kernel's folder
    for name in NAMES:
        outs = _outputs(json.loads((executed / name).read_text(encoding="utf-8")))
        assert any("image/png" in o.get("data", {}) for o in outs), f"{name} shows no figure"
        assert not any(o.get("output_type") == "error" for o in outs), name
        text = json.dumps(outs)
        assert "PosixPath(" not in text, name
    assert ls.disclosure.check_directory(executed).empty
    assert ls.disclosure.check_directory(output).empty


def test_a_missing_register_names_the_resolved_folder_and_the_command(tmp_path, monkeypatch):
    (tmp_path / "lumbarstats.toml").write_text("[paths]\n", encoding="utf-8")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.delenv(ls.project.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path / "notebooks")
    with pytest.raises(ls.project.MissingRegisterError) as err:
        ls.project.data_dir("data/synthetic")
    msg = str(err.value)
    assert str(tmp_path / "data" / "synthetic") in msg and "lumbarstats synth --out" in msg
    assert ls.project.out_dir("output") == tmp_path / "output"


def test_project_root_from_the_environment_variable_and_the_config(tmp_path, monkeypatch):
    (tmp_path / "lumbarstats.toml").write_text('[paths]\ndata_dir = "registers/dst"\nout_dir = "results"\n',
                                               encoding="utf-8")
    (tmp_path / "registers" / "dst").mkdir(parents=True)
    monkeypatch.setenv(ls.project.ENV_VAR, str(tmp_path))
    monkeypatch.chdir("/")
    assert ls.project.project_root() == tmp_path.resolve()
    assert ls.project.data_dir() == tmp_path.resolve() / "registers" / "dst"
    assert ls.project.out_dir() == tmp_path.resolve() / "results"
    assert ls.project.data_dir("/abs/elsewhere", must_exist=False) == Path("/abs/elsewhere")


def test_the_repository_is_a_project_root():
    repo = Path(__file__).resolve().parents[1]
    if not (repo / "pyproject.toml").is_file():
        pytest.skip("not run from the checkout")
    assert ls.project.project_root(start=repo / "notebooks") == repo


def test_a_step_accepts_a_region_in_any_spelling(tiny_register, tmp_path):
    step = ls.pipeline.groups_step(tiny_register, tmp_path, modality="MR", region="LANDSPLAN")
    assert len(step["table"]) and set(step["table"]["region"]) == {"Landsplan"}  # not an empty table
    assert (tmp_path / "tables" / "groups_Landsplan_MR.csv").is_file()
