"""Tests of emovae_utils.io: atomic writes and content hashes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emovae_utils import io


def test_atomic_write_replaces_the_file(tmp_path) -> None:
    out = tmp_path / "sub" / "a.npy"  # the folder is created
    assert io.atomic_write(out, lambda p: np.save(p, np.arange(3))) == out
    np.testing.assert_array_equal(np.load(out), np.arange(3))
    io.atomic_write(out, lambda p: np.save(p, np.arange(5)))
    np.testing.assert_array_equal(np.load(out), np.arange(5))
    assert [p.name for p in out.parent.iterdir()] == ["a.npy"]


def test_atomic_write_keeps_the_old_file_when_the_writer_raises(tmp_path) -> None:
    out = tmp_path / "table.csv"
    out.write_text("old\n")

    def half_then_fail(p):
        p.write_text("new, half writ")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.atomic_write(out, half_then_fail)
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left


def test_atomic_write_gives_the_writer_the_final_suffix(tmp_path) -> None:
    seen = []
    io.atomic_write(tmp_path / "clip.wav", lambda p: (seen.append(p), p.write_bytes(b"x")))
    assert seen[0].suffix == ".wav" and seen[0].parent == tmp_path and seen[0].name != "clip.wav"


def test_write_text_and_json(tmp_path) -> None:
    io.write_text(tmp_path / "a.txt", "héllo")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    io.write_json(tmp_path / "a.json", {"b": 1, "a": tmp_path})
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text) == {"a": str(tmp_path), "b": 1} and text.index('"a"') < text.index('"b"')


def test_sha1_of_arrays_and_tensors() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert io.sha1_array(a) == io.sha1_array(a.copy()) == io.sha1_bytes(a.tobytes())
    assert io.sha1_array(torch.from_numpy(a)) == io.sha1_array(a)
    assert io.sha1_array(a.T) == io.sha1_array(np.ascontiguousarray(a.T))  # values in C order
    assert io.sha1_array(a) != io.sha1_array(a + 1)


def test_package_writers_are_atomic(tmp_path, monkeypatch) -> None:
    """inversion.save_wav and plotting.save_figure go through atomic_write: a failing write keeps the old file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emovae_utils import inversion, plotting

    wav = inversion.save_wav(tmp_path / "a.wav", np.sin(np.arange(1600) / 5.0))
    png = plotting.save_figure(plt.figure(), "fig", tmp_path)
    old = {wav: wav.read_bytes(), png: png.read_bytes()}

    def broken(path, *args, **kwargs):
        open(path, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(inversion.sf, "write", broken)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, **kwargs: broken(path))
    with pytest.raises(OSError):
        inversion.save_wav(wav, np.zeros(10))
    with pytest.raises(OSError):
        inversion.render_wav(np.full((80, 8), -40.0, dtype=np.float32), wav)
    with pytest.raises(OSError):
        plotting.save_figure(plt.figure(), "fig", tmp_path)
    plt.close("all")
    assert {p: p.read_bytes() for p in old} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "fig.png"]


def test_available_cores_is_the_affinity_set(monkeypatch) -> None:
    """One core count for worker pools and thread budgets: the affinity set, else os.cpu_count()."""
    import os

    from emovae_utils import resources

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert resources.available_cores() == 2
    monkeypatch.delattr(os, "sched_getaffinity")
    assert resources.available_cores() == 64
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert resources.available_cores() == 1
