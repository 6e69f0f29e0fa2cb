"""The README's examples run (they must not rot), on a small register at the project's data path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    if not README.is_file():
        pytest.skip("README.md is not beside the tests (installed run)")
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture
def project(tmp_path, tiny_register, monkeypatch):
    """A project root with the register at data/synthetic; the examples run from its notebooks/ folder, as
    a notebook in JupyterLab does."""
    (tmp_path / "lumbarstats.toml").write_text("[paths]\n", encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic").symlink_to(tiny_register, target_is_directory=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.delenv("LUMBARSTATS_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path / "notebooks")
    return tmp_path


def test_python_examples_run_and_the_its_figure_is_on_the_rate_scale(project):
    import matplotlib.pyplot as plt

    blocks = _blocks("python")
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the README's own examples
    its, ax = namespace["its"], namespace["ax"]
    # the fitted series is the standardized rate per 1,000 person-years (tens), not a ratio x 1,000
    fitted = np.concatenate([line.get_ydata() for line in ax.get_lines() if line.get_linestyle() == "-"])
    assert 1 < np.nanmedian(fitted) < 100
    assert "1.000 personår" in ax.get_ylabel()
    assert "<table" in its._repr_html_() and "rate_ratio" in its._repr_html_()
    assert (project / "output" / "figures" / "annual_mr.png").is_file()  # the project's output folder
    plt.close("all")


def test_every_subcommand_is_in_the_readme():
    from lumbarstats import cli

    _blocks("python")  # skips outside the checkout
    text = README.read_text(encoding="utf-8")
    names = [c.name or c.callback.__name__.replace("_", "-") for c in cli.app.registered_commands]
    assert names
    missing = [n for n in names if not re.search(rf"^lumbarstats {re.escape(n)}\b", text, flags=re.M)]
    assert not missing, f"subcommands not in the README's command-line block: {missing}"
