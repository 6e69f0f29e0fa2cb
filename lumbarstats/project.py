"""Where the project is: data and output folders resolve from the project, not the working directory.

A notebook run in JupyterLab starts its kernel in ``notebooks/``, papermill and the CLI wherever they are
started; ``data/synthetic`` must mean the same folder in all three. The project root is, in order:

1. the environment variable ``LUMBARSTATS_PROJECT``;
2. the nearest folder, from the working directory upward, holding ``lumbarstats.toml`` or a
   ``pyproject.toml`` of the project ``lumbarstats`` (the repository);
3. the working directory (an installed toolkit used from a plain folder).

``lumbarstats.toml`` may set ``data_dir`` and ``out_dir`` (relative to the file's folder) under
``[paths]``; they are the defaults that :func:`data_dir` and :func:`out_dir` give for the notebooks'
default values.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

__all__ = ["ENV_VAR", "CONFIG_NAME", "DEFAULT_DATA", "DEFAULT_OUT", "project_root", "resolve", "data_dir",
           "out_dir", "MissingRegisterError"]

ENV_VAR = "LUMBARSTATS_PROJECT"
CONFIG_NAME = "lumbarstats.toml"
DEFAULT_DATA = "data/synthetic"
DEFAULT_OUT = "output"


class MissingRegisterError(FileNotFoundError):
    """No register at the resolved data folder (the message names the folder and the command)."""


def _is_project(folder: Path) -> bool:
    if (folder / CONFIG_NAME).is_file():
        return True
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        return tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name") == "lumbarstats"
    except (OSError, tomllib.TOMLDecodeError):
        return False


def project_root(start=None) -> Path:
    """The project root (see the module docstring); ``start`` replaces the working directory."""
    env = os.environ.get(ENV_VAR)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise NotADirectoryError(f"{ENV_VAR}={env}: no such folder")
        return root.resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _is_project(folder):
            return folder
    return here


def _config(root: Path) -> dict:
    cfg = root / CONFIG_NAME
    if not cfg.is_file():
        return {}
    try:
        return tomllib.loads(cfg.read_text(encoding="utf-8")).get("paths", {})
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{cfg}: not valid TOML ({exc})") from None


def resolve(path, *, start=None) -> Path:
    """``path`` as an absolute path: an absolute path as it is, a relative one under the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root(start) / p


def data_dir(path=DEFAULT_DATA, *, start=None, must_exist: bool = True) -> Path:
    """The register folder: ``path`` resolved under the project root (the config's ``data_dir`` replaces
    the default). Raises :class:`MissingRegisterError` naming the folder and the command that makes it."""
    root = project_root(start)
    if str(path) == DEFAULT_DATA:
        path = _config(root).get("data_dir", path)
    folder = resolve(path, start=root)
    if must_exist and not folder.is_dir():
        raise MissingRegisterError(
            f"no register in {folder} (project root {root}; set {ENV_VAR} or add {CONFIG_NAME} to use "
            f"another). Generate the synthetic one from the project root with: "
            f"python -m lumbarstats synth --out {folder}")
    return folder


def out_dir(path=DEFAULT_OUT, *, start=None) -> Path:
    """The output folder: ``path`` resolved under the project root (the config's ``out_dir`` replaces the
    default)."""
    root = project_root(start)
    if str(path) == DEFAULT_OUT:
        path = _config(root).get("out_dir", path)
    return resolve(path, start=root)
