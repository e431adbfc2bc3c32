"""Judges of generated audio: speaker cosine (offline), the eGeMAPS emotion judge (never sees test actors),
PESQ / STOI at their maxima and below, the long rows and their table, and speech that is not RAVDESS."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from emovae_utils import judges, testspeech
from emovae_utils.dsp import load_mono, resample
from emovae_utils.inversion import log_mel_to_audio

TEST_ACTORS = (2, 5)


@pytest.fixture(scope="module")
def index(ravdess_dir):
    from emovae_utils.data import ravdess_index

    return ravdess_index(ravdess_dir)


@pytest.fixture(scope="module")
def nine_clips(index):
    """3 actors (two men, one woman) x 3 clips of statement 1 (three emotions each)."""
    rows = index[index.actor.isin([1, 2, 3]) & (index.statement == 1) & (index.repetition == 1)]
    return rows[rows.emotion_id.isin([1, 4, 5]) & (rows.intensity == "normal")].sort_values(["actor", "emotion_id"])


def _voice(seconds: float = 2.0, f0: float = 150.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (np.sign(np.sin(2 * np.pi * f0 * t)) * (1 + np.sin(2 * np.pi * 3 * t)) / 4).astype(np.float32)


# --- speaker ---

def test_speaker_encoder_loads_and_runs_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network refused by the test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    judges.speaker_encoder.cache_clear()
    try:
        E = judges.speaker_embeddings([_voice(), _voice(f0=220.0)])
    finally:
        judges.speaker_encoder.cache_clear()  # the next test loads it with the network as it was
    assert E.shape == (2, 256) and np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-4)


def test_speaker_embeddings_resample_and_leave_torch_threads_as_they_were():
    import torch

    before = torch.get_num_threads()
    y = _voice()
    E16 = judges.speaker_embeddings([y])
    E32 = judges.speaker_embeddings([resample(y, 16000, 32000)], sr=32000)  # the same sound at 32 kHz
    assert torch.get_num_threads() == before
    assert judges.speaker_cosine(E16[0], E32[0]) > 0.95


def test_speaker_cosine_is_row_wise_and_refuses_mismatched_sizes():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(judges.speaker_cosine(a, a[::-1]), [0.0, 0.0])
    np.testing.assert_allclose(judges.speaker_cosine(a, a), [1.0, 1.0])
    with pytest.raises(ValueError, match="same D"):
        judges.speaker_cosine(a, np.ones(3))


def test_same_actor_scores_above_other_actors(nine_clips):
    scale = judges.speaker_scale(nine_clips)
    assert len(scale) == 36 and set(scale.stage) == {"same_actor_other_clip", "other_actor"}
    means = scale.groupby("stage")["value"].mean()
    print(f"\nspeaker cosine, 3 actors x 3 clips: same actor {means['same_actor_other_clip']:.3f}, "
          f"other actors {means['other_actor']:.3f}")
    assert means["same_actor_other_clip"] > means["other_actor"] + 0.1
    assert (scale.stage == "same_actor_other_clip").sum() == 9


def test_resynthesis_keeps_the_speaker(nine_clips):
    """The fast Griffin-Lim inversion of a clip's log-mel is nearer its original than other actors' clips are."""
    from emovae_utils.dsp import preprocess_file

    clip = nine_clips.iloc[0]
    original = judges.real_waveforms(nine_clips.iloc[[0]])[0]
    resynthesis = log_mel_to_audio(preprocess_file(clip.path), method="fast")
    rows = judges.judge_rows([resynthesis], references=[original], judges=["speaker_cos"], stage="resynthesis")
    others = judges.speaker_scale(nine_clips)
    other = others[(others.stage == "other_actor") & ((others.name_a == clip["name"]) | (others.name_b == clip["name"]))]
    print(f"\nresynthesis vs original {rows.value[0]:.3f}; this clip vs other actors' {other.value.mean():.3f}")
    assert rows.value[0] > other.value.max()


# --- emotion ---

def test_emotion_judge_never_sees_test_actors(index, monkeypatch):
    seen = []
    measured = judges.egemaps_cached

    def recording(paths, *args, **kwargs):
        seen.extend(str(p) for p in paths)
        return measured(paths, *args, **kwargs)

    monkeypatch.setattr(judges, "egemaps_cached", recording)
    with pytest.raises(ValueError, match=r"refuses rows of test actors \[2, 5\]"):
        judges.fit_emotion_judge(index, TEST_ACTORS)
    assert not seen  # refused before measuring anything
    train = index[~index.actor.isin(TEST_ACTORS) & index.actor.isin([1, 3, 4, 6, 7, 8])
                  & (index.statement == 1) & (index.repetition == 1)]
    judge = judges.fit_emotion_judge(train, TEST_ACTORS)
    by_path = index.set_index(index.path.astype(str))
    assert len(seen) == 90 and not by_path.loc[seen, "actor"].isin(TEST_ACTORS).any()
    assert not index.set_index("name").loc[list(judge.train_names), "actor"].isin(TEST_ACTORS).any()
    assert set(judge.train_actors) == {1, 3, 4, 6, 7, 8} and judge.test_actors == TEST_ACTORS

    held_out = index[index.actor.isin(TEST_ACTORS) & (index.statement == 1)]
    rows = judges.judge_rows(judges.real_waveforms(held_out), emotions=held_out.emotion.to_numpy(),
                             emotion_judge=judge, model="real", stage="original")
    print(f"\neGeMAPS judge, 6 actors x 15 clips -> actors 2 and 5 (60 clips): UAR {rows.value[0]:.3f} (chance 0.125)")
    assert rows.judge.tolist() == ["egemaps"] and rows.value[0] > 0.25
    quiet = [0.05 * w for w in judges.real_waveforms(held_out.head(4))]  # a rendering's level does not matter
    assert (judge.predict(quiet) == judge.predict(judges.real_waveforms(held_out.head(4)))).all()


def test_emotion_judge_needs_two_classes(index):
    one = index[(index.actor == 1) & (index.emotion == "sad")].head(2)
    with pytest.raises(ValueError, match="two classes"):
        judges.fit_emotion_judge(one, TEST_ACTORS)


# --- fidelity ---

def test_pesq_and_stoi_are_at_their_maxima_for_the_clip_itself_and_drop_with_noise(nine_clips):
    clean = judges.real_waveforms(nine_clips.iloc[[0]])[0]
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32)
    noisy = clean + noise * np.sqrt(np.mean(clean ** 2) / np.mean(noise ** 2) / 10 ** (5 / 10))  # 5 dB SNR
    same = judges.pesq_wb(clean, clean), judges.stoi(clean, clean)
    worse = judges.pesq_wb(clean, noisy), judges.stoi(clean, noisy)
    print(f"\nPESQ-wb / STOI of a clip against itself {same[0]:.2f} / {same[1]:.3f}, "
          f"against a 5 dB noisy copy {worse[0]:.2f} / {worse[1]:.3f}")
    assert same[0] > 4.6 and same[1] > 0.999
    assert worse[0] < same[0] - 1.5 and worse[1] < same[1] - 0.05


def test_fidelity_compares_over_the_common_length_at_16k():
    y = _voice()
    assert judges.pesq_wb(y, np.concatenate([y, np.zeros(8000, np.float32)])) > 4.6
    y48 = np.repeat(y, 3)  # (crudely) the same sound at 48 kHz
    assert judges.stoi(y48, y48, sr=48000) > 0.999


# --- rows and table ---

def test_judge_rows_carry_the_keys_and_refuse_a_judge_without_inputs():
    y = [_voice(), _voice(f0=200.0)]
    rows = judges.judge_rows(y, references=y, emotions=["sad", "angry"], cnn_predictions=["sad", "sad"],
                             model="vae", stage="reconstruction", seed=3)
    assert list(rows.columns) == ["model", "stage", "seed", "judge", "value", "n_clips"]
    assert rows.judge.tolist() == ["cnn", "speaker_cos", "pesq", "stoi"]
    values = rows.set_index("judge")["value"]
    assert values["cnn"] == 0.5 and values["speaker_cos"] > 0.99 and values["stoi"] > 0.999
    with pytest.raises(ValueError, match="egemaps needs emotion_judge"):
        judges.judge_rows(y, emotions=["sad", "angry"], judges=["egemaps"])
    with pytest.raises(ValueError, match="unknown judges"):
        judges.judge_rows(y, judges=["mos"])
    with pytest.raises(ValueError, match="references has 1 entries for 2 clips"):
        judges.judge_rows(y, references=y[:1])


def test_judge_table_has_the_tables_columns():
    runs = pd.concat([judges.judge_rows([_voice()], references=[_voice()], judges=["stoi"], model="m",
                                        stage="original", seed=s) for s in range(2)])
    table = judges.judge_table(runs)
    assert tuple(table.columns) == judges.TABLE_COLUMNS
    assert table.n_runs.tolist() == [2] and table.ci_low[0] <= table.value[0] <= table.ci_high[0]
    assert set(judges.STAGES) >= {"original", "conversion", "other_actor"} and "speaker_cos" in judges.JUDGES


# --- speech that is not RAVDESS ---

def test_synthesize_speech_says_how_to_install_espeak(monkeypatch, tmp_path):
    monkeypatch.setattr(testspeech.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install espeak-ng"):
        testspeech.synthesize_speech("hello", tmp_path / "a.wav")


@pytest.mark.skipif(not testspeech.espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_espeak_speech_is_written_readable_and_judged(tmp_path):
    path = testspeech.synthesize_speech("Kids are talking by the door.", tmp_path / "door.wav")
    y, sr = load_mono(path)
    assert sr == testspeech.ESPEAK_SR and 1.0 < len(y) / sr < 4.0 and np.abs(y).max() > 0.1
    low = testspeech.synthesize_speech("Dogs are sitting by the door.", tmp_path / "low.wav", sr=16000)
    high = testspeech.synthesize_speech("Dogs are sitting by the door.", tmp_path / "high.wav", sr=16000,
                                        voice="en-us+f3", pitch=80)
    assert load_mono(low)[1] == 16000
    E = judges.speaker_embeddings([path, low, high])
    print(f"\nespeak-ng: same voice, other sentence {judges.speaker_cosine(E[0], E[1]):.3f}; "
          f"other voice {judges.speaker_cosine(E[1], E[2]):.3f}")
    rows = judges.judge_rows([low], references=[path], judges=["pesq", "stoi"])
    assert rows.n_clips.tolist() == [1, 1]
    with pytest.raises(RuntimeError, match="espeak-ng failed"):
        testspeech.synthesize_speech("hello", tmp_path / "x.wav", voice="zz-nope")
