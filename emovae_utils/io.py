"""Atomic file writes and content hashes: the one home for both.

Every file the package writes (features cache, checkpoints, models, figures'
CSVs, rendered WAVs, JSON records) goes through :func:`atomic_write`, so an
interrupted run never leaves a half-written file under the final name.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["atomic_write", "write_json", "write_text", "sha1_array", "sha1_bytes"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Write a file under a temporary name in its folder, then rename it into place.

    Parameters
    ----------
    path : path-like
        Final file name; its folder is created if missing.
    write : callable
        ``write(tmp_path)`` writes the content to ``tmp_path`` (same folder and
        suffix as ``path``, so writers that pick a format from the suffix work).

    Returns
    -------
    Path
        ``path``. On any error the temporary file is removed and ``path`` is
        left as it was.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
    >>> atomic_write(out, lambda p: np.save(p, np.zeros(3))).name
    'a.npy'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically; see :func:`atomic_write`."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically (non-JSON values via ``str``)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha1_bytes(data: bytes) -> str:
    """Hex SHA-1 of ``data``."""
    return hashlib.sha1(data).hexdigest()


def sha1_array(a: Any) -> str:
    """Hex SHA-1 of an array's or tensor's values in C order (dtype and shape not included).

    Examples
    --------
    >>> import numpy as np
    >>> sha1_array(np.zeros(2, dtype=np.float32)) == sha1_array(np.zeros(2, dtype=np.float32))
    True
    """
    if hasattr(a, "detach"):  # torch.Tensor, without importing torch here
        a = a.detach().cpu().contiguous().numpy()
    return sha1_bytes(np.ascontiguousarray(a).tobytes())
