"""Project locations, so notebooks and scripts work from any working directory."""

from __future__ import annotations

import os
from pathlib import Path


def _project_root() -> Path:
    """``$EMOVAE_PROJECT_DIR`` if set (the runner sets it for the notebooks' kernels); else the
    source checkout this package lives in; else (an installed wheel) the current directory."""
    env = os.environ.get("EMOVAE_PROJECT_DIR")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd()


PROJECT_ROOT = _project_root()


def project_path(path: str | os.PathLike, create: bool = False) -> Path:
    """Resolve ``path`` against the project root (absolute paths pass through).

    Parameters
    ----------
    path : str or os.PathLike
        E.g. ``"figures"`` or ``"runs/smoke/models"``.
    create : bool
        Create the folder (and parents) if missing.

    Returns
    -------
    pathlib.Path
    """
    p = Path(path).expanduser()
    p = p if p.is_absolute() else PROJECT_ROOT / p
    if create:
        p.mkdir(parents=True, exist_ok=True)
    return p


def project_relative(path: str | os.PathLike) -> str:
    """How a path is shown to a reader: relative to the project root, the inverse of :func:`project_path`.

    Paths outside the project are shown from the home folder (``~/...``) where
    they lie under it, else as they are; printed outputs and saved notebooks
    then hold no machine-specific project location.

    Parameters
    ----------
    path : str or os.PathLike
        Absolute, or relative to the project root.

    Returns
    -------
    str
        POSIX-style, e.g. ``"runs/smoke/models"``; ``"."`` for the root itself.

    Examples
    --------
    >>> project_relative(project_path("runs/smoke/models"))
    'runs/smoke/models'
    >>> project_relative(Path.home() / ".cache" / "emovae")
    '~/.cache/emovae'
    """
    p = project_path(path).resolve()
    if p.is_relative_to(PROJECT_ROOT.resolve()):
        return p.relative_to(PROJECT_ROOT.resolve()).as_posix()
    if p.is_relative_to(Path.home().resolve()):
        return "~/" + p.relative_to(Path.home().resolve()).as_posix()
    return p.as_posix()


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where caches go: ``cache_dir`` if given, else ``$EMOVAE_CACHE_DIR``, else ``~/.cache/emovae``.

    Parameters
    ----------
    cache_dir : str or os.PathLike, optional

    Returns
    -------
    pathlib.Path
        Not created here.
    """
    return Path(cache_dir or os.environ.get("EMOVAE_CACHE_DIR") or Path.home() / ".cache" / "emovae")
