"""Project locations, so notebooks and scripts work from any working directory."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
