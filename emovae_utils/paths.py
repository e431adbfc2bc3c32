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
