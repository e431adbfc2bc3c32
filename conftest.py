"""Fixtures for the package's own examples (``pytest --doctest-modules emovae_utils``, part of ``make test``).

An example that uses the RAVDESS data names ``ravdess_dir``; it gets the folder
(``$EMOVAE_DATA_DIR``, else ``../shared/ravdess`` beside the project) or is
skipped, with the reason, where there is none. Every other example runs as it is.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_SHARED_RAVDESS = Path(__file__).resolve().parent.parent / "shared" / "ravdess"


@pytest.fixture(autouse=True)
def _ravdess_for_examples(request, doctest_namespace):
    from _pytest.doctest import DoctestItem

    if not isinstance(request.node, DoctestItem):
        return
    if not any("ravdess_dir" in example.source for example in request.node.dtest.examples):
        return
    path = Path(os.environ.get("EMOVAE_DATA_DIR") or _SHARED_RAVDESS)
    if not path.is_dir():
        pytest.skip(f"RAVDESS not found at {path} (set EMOVAE_DATA_DIR to run the examples that use it)")
    doctest_namespace["ravdess_dir"] = path
