"""Shared fixtures: a small synthetic register generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    """``make test-installed`` runs the suite against a non-editable install: make sure it does."""
    venv = os.environ.get("LUMBARSTATS_TEST_INSTALLED")
    if not venv:
        return
    import lumbarstats

    where = Path(lumbarstats.__file__).resolve()
    if not where.is_relative_to(Path(venv).resolve()):
        raise pytest.UsageError(f"LUMBARSTATS_TEST_INSTALLED={venv}, but lumbarstats was imported from {where}: "
                                "run pytest with that environment's python -P (the source tree off sys.path)")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:  # notebooks must run on the installed package too (not on another environment's kernel)
        kernel = Path(KernelSpecManager().get_kernel_spec("lumbarstats").argv[0]).absolute()
    except NoSuchKernel:
        return
    if not kernel.is_relative_to(Path(venv).absolute()):
        raise pytest.UsageError(f"Jupyter kernel 'lumbarstats' runs {kernel}, not the python of {venv}: "
                                f"{venv}/bin/python -m lumbarstats install-kernel")


@pytest.fixture(scope="session", autouse=True)
def _installed_run_outside_the_checkout(tmp_path_factory):
    """In ``make test-installed`` work outside the checkout: a notebook kernel puts its working folder on
    sys.path and would import the checkout's lumbarstats/ instead of the installed package."""
    if not os.environ.get("LUMBARSTATS_TEST_INSTALLED"):
        yield
        return
    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(before)


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


def _reproduce_once(tmp_path_factory, scale: float, seed: int):
    """The whole report reproduced on a synthetic register (every step, every region): ``(ok, out)``."""
    import lumbarstats as ls

    root = tmp_path_factory.mktemp(f"reproduced_{scale}")
    reg = root / "register"
    ls.synth.generate(reg, scale=scale, seed=seed, verbose=False)
    out = root / "output"
    ok = ls.reproduce.run(reg, out, regions_time_to_event="all")
    return ok, out


@pytest.fixture(scope="session")
def reproduced_0002(tmp_path_factory):
    """The report reproduced on a 0.2 % register (seed 4: small regions, tiny cells); shared by the end-to-end
    tests and the attack suite, so that the slow pipeline runs once."""
    return _reproduce_once(tmp_path_factory, 0.002, 4)


@pytest.fixture(scope="session")
def reproduced_0005(tmp_path_factory):
    """The report reproduced on a 0.5 % register (seed 4), for the attack suite."""
    return _reproduce_once(tmp_path_factory, 0.005, 4)
