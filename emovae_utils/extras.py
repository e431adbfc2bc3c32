"""Optional dependencies: imported where used, with the ``pip install`` that provides them.

``pip install emovae`` is the library (models, training, features, plots, the
explorer). What only the study's notebooks or a cluster need lives in extras
of ``pyproject.toml``: ``[study]`` (papermill, nbformat, ipykernel, opensmile,
pesq, pystoi, JupyterLab), ``[cluster]`` (ray), ``[bench]``, ``[test]``; resemblyzer (the
speaker judge) is installed with ``pip install --no-deps resemblyzer==0.1.4``.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or raise an ImportError that says which extra installs it.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"papermill"``.
    extra : str
        The extra of ``pyproject.toml`` that provides it, e.g. ``"study"``.
    purpose : str
        What needs it, for the message (e.g. ``"emovae run"``).

    Returns
    -------
    module

    Examples
    --------
    >>> require("json", "study", "a doctest").__name__
    'json'
    >>> require("no_such_module_xyz", "study", "the runner")
    Traceback (most recent call last):
    ImportError: the runner needs no_such_module_xyz, which is not installed: pip install "emovae[study]"
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name and exc.name.split(".")[0] != top:
            raise  # the module is there but broken: its own error says more
        raise ImportError(f"{purpose} needs {top}, which is not installed: pip install \"emovae[{extra}]\"",
                          name=exc.name) from exc
