"""Shared fixtures: a small synthetic register generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def small_register(tmp_path_factory) -> Path:
    """A 1 % synthetic register (about 470,000 person-years), seed 7."""
    import lumbarstats as ls

    out = tmp_path_factory.mktemp("register") / "synthetic"
    ls.synth.generate(out, scale=0.01, seed=7, verbose=False)
    return out


@pytest.fixture(scope="session")
def tiny_register(tmp_path_factory) -> Path:
    """A 0.2 % synthetic register for quick end-to-end tests."""
    import lumbarstats as ls

    out = tmp_path_factory.mktemp("register") / "tiny"
    ls.synth.generate(out, scale=0.002, seed=11, verbose=False)
    return out
