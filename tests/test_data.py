"""Dataset index, data-dir resolution and the feature cache."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import utterance, write_clip

from emovae_utils import data, dsp
from emovae_utils.dsp import AudioError, AudioWarning, PreprocessConfig


def touch(folder, *names):
    for n in names:
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def full_actor(actor: int, ext: str = "wav") -> list[str]:
    return [f"Actor_{actor:02d}/{n}.{ext}" for n in sorted(data._expected_names(actor))]


def test_index_parses_names_in_actor_folders(tmp_path):
    touch(tmp_path, *full_actor(1), *full_actor(2, "flac"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # complete data: no warning at all
        index = data.ravdess_index(tmp_path)
    assert len(index) == 120
    assert list(index.columns[:9]) == ["path", "name", "actor", "gender", "emotion", "emotion_id",
                                       "intensity", "statement", "repetition"]
    row = index[index.name == "03-01-05-02-01-02-02"].iloc[0]
    assert (row.actor, row.gender, row.emotion, row.emotion_id, row.intensity, row.statement, row.repetition) == (
        2, "female", "angry", 5, "strong", 1, 2)
    assert set(index[index.actor == 1].gender) == {"male"}
    assert index.groupby("actor").size().tolist() == [60, 60]
    assert (index.loc[index.emotion == "neutral", "intensity"] == "normal").all()


def test_index_flat_folder_bad_names_and_missing_clips(tmp_path):
    names = [n.split("/")[1] for n in full_actor(3)]
    touch(tmp_path, *names[:-2], "notes.wav", "03-01-09-01-01-01-03.wav", "03-01-01-02-01-01-03.wav",
          "03-01-02-01-01-01-30.wav", "README.txt")
    with pytest.warns(UserWarning) as record:
        index = data.ravdess_index(tmp_path)
    messages = [str(w.message) for w in record]
    skipped = next(m for m in messages if m.startswith("Skipped"))
    for bad in ("notes.wav", "03-01-09-01-01-01-03.wav", "03-01-01-02-01-01-03.wav", "03-01-02-01-01-01-30.wav"):
        assert bad in skipped
    assert "README.txt" not in skipped
    missing = next(m for m in messages if m.startswith("Missing"))
    assert "Actor 03: 58 of 60" in missing and names[-1][:-4] in missing and names[-2][:-4] in missing
    assert len(index) == 58
    assert data.missing_clips(index)["name"].tolist() == sorted(n[:-4] for n in names[-2:])


@pytest.mark.filterwarnings("ignore:Missing clips")  # a tiny synthetic set, incomplete on purpose
def test_same_clip_as_wav_and_flac_is_indexed_once(tmp_path):
    touch(tmp_path, "03-01-01-01-01-01-01.wav", "03-01-01-01-01-01-01.flac")
    with pytest.warns(UserWarning, match="duplicate"):
        index = data.ravdess_index(tmp_path)
    assert len(index) == 1


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    (tmp_path / "env").mkdir()
    (tmp_path / "arg").mkdir()
    monkeypatch.setenv("EMOVAE_DATA_DIR", str(tmp_path / "env"))
    assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("EMOVAE_DATA_DIR")
    monkeypatch.setattr(data, "PROJECT_ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match=f"EMOVAE_DATA_DIR.*`emovae download {tmp_path / 'data' / 'ravdess'}`"):
        data.resolve_data_dir()
    (tmp_path / "data" / "ravdess").mkdir(parents=True)
    assert data.resolve_data_dir() == tmp_path / "data" / "ravdess"


@pytest.fixture()
def small_set(tmp_path):
    """Six synthetic clips, actors 1 and 2, wav and flac."""
    root = tmp_path / "ravdess"
    for k, (actor, emo) in enumerate([(1, 1), (1, 3), (1, 5), (2, 2), (2, 4), (2, 8)]):
        ext = "wav" if k % 2 else "flac"
        write_clip(root / f"Actor_{actor:02d}" / f"03-01-{emo:02d}-01-01-01-{actor:02d}.{ext}",
                   utterance(seed=k, bursts=(0.4 + 0.3 * k, 0.5)))
    return root


def build(root, cache, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing clips of the tiny synthetic set
        return data.load_features(root, cache, progress=False, **kw)


def test_load_features_builds_then_loads_cache(small_set, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    X, index = build(small_set, cache, workers=2)
    assert X.shape == (6, 80, 128) and X.dtype == np.float32
    assert {"n_samples", "n_voiced_samples", "voiced_frames", "speech_found"} <= set(index.columns)
    assert index.speech_found.all() and (index.n_voiced_samples < index.n_samples).all()
    assert len(list(cache.glob("features-*.npz"))) == 1

    def no_compute(*a, **k):
        raise AssertionError("cache not used")

    monkeypatch.setattr(data, "_compute", no_compute)
    X2, index2 = build(small_set, cache)
    np.testing.assert_array_equal(X, X2)
    assert index2.equals(index)


def test_features_independent_of_workers_and_of_other_clips(small_set, tmp_path):
    X1, index = build(small_set, tmp_path / "c1", workers=1)
    X2, _ = build(small_set, tmp_path / "c2", workers=2)
    np.testing.assert_array_equal(X1, X2)
    # the last clip alone, in a data set of its own, gives the same features
    alone = tmp_path / "alone"
    last = index.iloc[-1]
    write_clip(alone / "x" / f"{last['name']}.wav", utterance(seed=5, bursts=(0.4 + 0.3 * 5, 0.5)))
    X3, _ = build(alone, tmp_path / "c3", workers=2)
    np.testing.assert_array_equal(X3[0], X1[-1])


def test_config_change_or_new_file_rebuilds(small_set, tmp_path):
    cache = tmp_path / "cache"
    X, _ = build(small_set, cache)
    Xa, _ = build(small_set, cache, config=PreprocessConfig(peak="absmax"))
    assert len(list(cache.glob("features-*.npz"))) == 2
    assert not np.array_equal(X, Xa)
    write_clip(small_set / "Actor_02" / "03-01-06-01-01-01-02.wav", utterance(seed=9))
    X7, index7 = build(small_set, cache)
    assert X7.shape[0] == 7 and len(list(cache.glob("features-*.npz"))) == 3


def test_cache_keys_are_pinned():
    """Caches stay valid across versions of the code: the keys of the study's configuration are fixed strings.

    Changed deliberately once (cache version 2): RAVDESS keys now hold each file's modification time as well
    as its name and size (a clip edited in place at the same size is rebuilt), and caches record the notes of
    degraded clips. Every existing cache is rebuilt once.
    """
    files = [("03-01-01-01-01-01-01", 123456, 1700000000000000000), ("03-01-02-01-01-01-01", 234567,
                                                                       1700000000000000001)]
    c = PreprocessConfig()
    assert data._cache_key(files, c) == "4b24a344866003f1cff4d110306857d8e70a26d1766362be8e490ee6185aa337"
    assert data._cache_key(files, c, kind="sequences") == (
        "94be9ce43c387fcdc7be0fea62422f4979628868d812fd9fab5d1dfe2a0efc50")
    assert data._cache_key([("a/b.wav", 10, 99)], c, by="path") == (
        "51bcdeb21c143d4dff07eab14b2969c2ffcfdb1d06b4954a5e097f14ac9d0bd8")


def test_a_clip_edited_in_place_at_the_same_size_is_rebuilt(small_set, tmp_path):
    cache = tmp_path / "cache"
    X, index = build(small_set, cache)
    k = next(k for k, p in enumerate(index.path) if p.endswith(".wav"))  # PCM: the same length, the same size
    path = Path(index.path[k])
    size, mtime = path.stat().st_size, path.stat().st_mtime_ns
    write_clip(path, -dsp.load_mono(path)[0])  # another recording, same length (here: polarity flipped)
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))  # file systems with coarse clocks: a later time
    assert path.stat().st_size == size
    X2, _ = build(small_set, cache)
    changed = [not np.array_equal(a, b) for a, b in zip(X, X2)]
    assert changed == [j == k for j in range(len(X))]
    assert len(list(cache.glob("features-*.npz"))) == 2


def test_load_sequences_takes_load_features_arguments(tmp_path):
    with pytest.raises(TypeError, match="worker"):
        data.load_sequences(tmp_path, tmp_path, worker=1)
    with pytest.raises(TypeError):
        data.load_sequences(tmp_path, tmp_path, None, None)  # index is keyword-only, as in load_features


@pytest.mark.filterwarnings("ignore:Missing clips")  # a tiny synthetic set, incomplete on purpose
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_cache_is_detected_and_rebuilt(small_set, tmp_path, damage):
    cache = tmp_path / "cache"
    X, _ = build(small_set, cache)
    f = next(cache.glob("features-*.npz"))
    raw = bytearray(f.read_bytes())
    if damage == "truncate":
        f.write_bytes(raw[: len(raw) // 2])
    else:  # flip bytes inside the stored feature array, leaving the zip readable
        start = raw.find(b"X.npy")
        assert start > 0
        for k in range(start + 2000, start + 2100):
            raw[k] ^= 0xFF
        f.write_bytes(raw)
    with pytest.warns(UserWarning, match="stale or corrupted"):
        X2, _ = data.load_features(small_set, cache, progress=False)
    np.testing.assert_array_equal(X, X2)


def test_unusable_files_raise_together_or_are_skipped(small_set, tmp_path):
    bad = small_set / "Actor_01" / "03-01-07-01-01-01-01.wav"
    bad.write_bytes(b"not audio at all")
    silent = write_clip(small_set / "Actor_02" / "03-01-07-01-01-01-02.wav", np.zeros(48000, np.float32))
    with pytest.raises(AudioError, match="2 of 8 file") as err:
        build(small_set, tmp_path / "c1")
    assert bad.name in str(err.value) and silent.name in str(err.value)
    X, index = build(small_set, tmp_path / "c2", on_error="skip")
    assert len(index) == 6 and X.shape[0] == 6 and bad.stem not in set(index.name)


@pytest.mark.filterwarnings("ignore:Missing clips")  # a tiny synthetic set, incomplete on purpose
def test_clip_without_speech_is_counted_in_the_index(small_set, tmp_path):
    t = np.arange(16000) / 16000
    write_clip(small_set / "Actor_01" / "03-01-07-01-01-01-01.wav", (0.5 * np.sin(2 * np.pi * 7900 * t)), 16000)
    with pytest.warns(UserWarning, match="VAD found no speech in 1 clip"):
        X, index = data.load_features(small_set, tmp_path / "c", progress=False)
    assert (~index.speech_found).sum() == 1
    assert index.loc[~index.speech_found, "name"].item() == "03-01-07-01-01-01-01"


def test_full_ravdess_index(ravdess_dir):
    index = data.ravdess_index(ravdess_dir)
    assert len(index) == 1440 and index.actor.nunique() == 24
    assert (index.groupby("actor").size() == 60).all()
    assert len(data.missing_clips(index)) == 0
    assert (index[index.statement == 1].groupby("actor").size() == 30).all()


def test_full_ravdess_features(ravdess_features):
    X, index = ravdess_features
    assert X.shape == (1440, 80, 128) and np.isfinite(X).all()
    assert index.speech_found.all()
    v = index.voiced_frames
    assert 70 <= v.min() and v.max() <= 280  # the reference reports roughly 80 to 260
    assert 0.3 <= (v < 128).mean() <= 0.6  # about 40 % shorter than the window


# ------------------------------------------------------------------ your own recordings (issue 11, item 11)
@pytest.fixture()
def own_recordings(tmp_path):
    """Non-RAVDESS names at 22.05 and 44.1 kHz, one RAVDESS-named clip, and files that are not usable audio."""
    import soundfile as sf

    root = tmp_path / "mine"
    write_clip(root / "take1.wav", utterance(sr=22050, seed=1), 22050)
    write_clip(root / "session 2" / "take2.flac", utterance(sr=44100, seed=2), 44100)
    stereo = np.stack([utterance(sr=44100, seed=3)] * 2, axis=1)
    sf.write(root / "session 2" / "take3.ogg", stereo, 44100, format="OGG", subtype="VORBIS")
    write_clip(root / "03-01-05-02-01-02-02.wav", utterance(seed=4))
    (root / "notes.txt").write_text("not audio, not reported")
    (root / "voice memo.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")  # audio soundfile cannot read: reported
    (root / "._take1.wav").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork: hidden, ignored
    return root


def test_audio_index_lists_readable_audio_with_labels_where_names_parse(own_recordings):
    with pytest.warns(UserWarning, match="left out 1 audio file") as record:
        index = data.audio_index(own_recordings)
    [message] = [str(w.message) for w in record]
    assert "voice memo.m4a" in message and "notes.txt" not in message and "ffmpeg" in message
    assert list(index.name) == ["03-01-05-02-01-02-02", "take2", "take3", "take1"]  # sorted by path
    assert list(index.columns) == ["path", "name", "actor", "gender", "emotion", "emotion_id", "intensity",
                                   "statement", "repetition", "sr", "channels", "duration"]
    assert index.sr.tolist() == [48000, 44100, 44100, 22050] and index.channels.tolist() == [1, 1, 2, 1]
    ravdess = index.iloc[0]
    assert (ravdess.actor, ravdess.gender, ravdess.emotion, ravdess.intensity) == (2, "female", "angry", "strong")
    assert index.iloc[1:][["actor", "gender", "emotion", "emotion_id", "intensity", "statement",
                           "repetition"]].isna().all().all()
    assert str(index.actor.dtype) == "Int64"


def test_damaged_files_stay_in_the_audio_index_and_are_skipped_by_load_features_with_the_cause(own_recordings,
                                                                                               tmp_path):
    (own_recordings / "empty.wav").write_bytes(b"")
    (own_recordings / "readme.wav").write_text("This folder holds my takes.\n")
    with pytest.warns(UserWarning, match="kept 2 file") as record:
        index = data.audio_index(own_recordings)
    [message] = [str(w.message) for w in record]
    assert "voice memo.m4a" in message and "empty.wav (0 bytes" in message
    assert "readme.wav (not audio: a text" in message
    damaged = index[index.name.isin(["empty", "readme"])]
    assert len(damaged) == 2 and damaged.sr.isna().all() and str(index.sr.dtype) == "Int64"
    with pytest.warns(UserWarning, match="Skipped 2 of 6 file") as record:
        X, out = data.load_features(own_recordings, tmp_path / "c", index=index, progress=False, on_error="skip")
    [skipped] = [str(w.message) for w in record if str(w.message).startswith("Skipped")]
    assert "0 bytes" in skipped and "not audio: a text file (it begins 'This folder holds my takes.')" in skipped
    assert X.shape[0] == 4 and "empty" not in set(out.name)


def test_degraded_clips_warn_once_and_the_cache_remembers_it(tmp_path, monkeypatch):
    root = tmp_path / "mine"
    write_clip(root / "studio.wav", utterance(seed=1))
    write_clip(root / "phone.wav", utterance(sr=8000, seed=2), 8000)
    index = data.audio_index(root)
    for attempt in range(2):  # built, then read from the cache
        with pytest.warns(AudioWarning) as record:
            X, out = data.load_features(root, tmp_path / "c", index=index, progress=False, workers=1)
        [message] = [str(w.message) for w in record]
        assert message.startswith("1 clip(s) give usable but degraded features") and "phone.wav" in message
        assert X.shape == (2, 80, 128)
        monkeypatch.setattr(data, "_compute", None)  # the second time, the cache must answer


def test_load_features_of_own_recordings_in_index_order_cached_and_explorable(own_recordings, tmp_path,
                                                                            monkeypatch):
    from emovae_utils import dsp

    index = data.audio_index(own_recordings, warn=False)
    chosen = index.iloc[[3, 0, 2]]  # any rows, any order
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all for good recordings
        X, out = data.load_features(own_recordings, cache, index=chosen, progress=False, workers=2)
    assert X.shape == (3, 80, 128) and list(out.name) == ["take1", "03-01-05-02-01-02-02", "take3"]
    assert list(out.index) == [0, 1, 2] and {"sr", "n_samples", "speech_found"} <= set(out.columns)
    for k, path in enumerate(out.path):  # the same features as one file at a time
        np.testing.assert_array_equal(X[k], dsp.preprocess_file(path))

    real_compute = data._compute

    def no_compute(*a, **k):
        raise AssertionError("the cache was not reused")

    monkeypatch.setattr(data, "_compute", no_compute)
    X2, out2 = data.load_features(own_recordings, cache, index=chosen, progress=False)
    np.testing.assert_array_equal(X, X2)
    assert out2.equals(out)
    # relative paths resolve against the folder, and give the same cache
    relative = chosen.assign(path=[str(p.relative_to(own_recordings)) for p in map(Path, chosen.path)])
    X3, _ = data.load_features(own_recordings, cache, index=relative, progress=False)
    np.testing.assert_array_equal(X, X3)
    # a re-recorded file of the same size is rebuilt (the key holds modification times)
    monkeypatch.setattr(data, "_compute", real_compute)
    take1 = own_recordings / "take1.wav"
    write_clip(take1, utterance(sr=22050, seed=7), 22050)
    os.utime(take1, ns=(take1.stat().st_atime_ns, take1.stat().st_mtime_ns + 10**9))
    X4, _ = data.load_features(own_recordings, cache, index=chosen, progress=False)
    assert not np.array_equal(X4[0], X[0]) and np.array_equal(X4[1:], X[1:])

    # the latent explorer takes them: labels where known, file names otherwise
    from emovae_utils.models import EmotionVAE
    from emovae_utils.widgets import LatentExplorer

    ex = LatentExplorer(EmotionVAE(latent_dim=4).eval(), X=X, index=out, audio=False)
    labels = [label for label, _ in ex.options]
    assert labels == ["origin (all 0)", "mean: angry (n=1)", "take1", "Actor 02 · angry · strong · rep 2", "take3"]
    ex.select("clip:2")
    assert ex.spectrogram.shape == (80, 128)
