"""Each step of the preprocessing recipe on synthetic signals, and the whole recipe on real clips."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import utterance, write_clip

from emovae_utils import dsp

SR = 16000


def test_load_mono_downmixes_stereo_and_reads_wav_and_flac(tmp_path):
    left = np.linspace(-0.5, 0.5, 4800, dtype=np.float32)
    right = np.full(4800, 0.25, dtype=np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 48000, subtype="FLOAT")
    y, sr = dsp.load_mono(tmp_path / "s.wav")
    assert sr == 48000 and y.shape == (4800,) and y.dtype == np.float32
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)

    mono = utterance(seed=1)
    write_clip(tmp_path / "a.wav", mono)
    write_clip(tmp_path / "a.flac", mono)
    a, _ = dsp.load_mono(tmp_path / "a.wav")
    b, _ = dsp.load_mono(tmp_path / "a.flac")
    np.testing.assert_array_equal(a, b)


def test_resample_from_22050_keeps_length_and_pitch():
    sr = 22050
    t = np.arange(sr) / sr
    y = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = dsp.resample(y, sr, SR)
    assert out.dtype == np.float32
    assert len(out) == int(np.ceil(len(y) * SR / sr))
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * SR / len(out)
    assert abs(peak_hz - 440) < 2
    assert dsp.resample(out, SR, SR) is not None and len(dsp.resample(out, SR, SR)) == len(out)


def test_resample_matches_librosa():
    import librosa

    y = np.random.default_rng(0).standard_normal(48000 * 2 + 17).astype(np.float32)
    np.testing.assert_array_equal(dsp.resample(y, 48000, SR), librosa.resample(y, orig_sr=48000, target_sr=SR))


def test_voiced_mask_marks_the_bursts():
    y = utterance(sr=SR)  # 0.5 s noise, 0.6 s burst, 0.5 s noise, 0.5 s burst, 0.5 s noise
    mask = dsp.voiced_mask(y, SR)
    assert mask.shape == y.shape and mask.dtype == bool
    bursts = [(0.5, 1.1), (1.6, 2.1)]
    for a, b in bursts:
        assert mask[int(a * SR) + 480: int(b * SR) - 480].all()
    # silence well away from the bursts (beyond the dilation) is dropped
    for a, b in [(0.0, 0.35), (1.3, 1.45), (2.3, 2.6)]:
        assert not mask[int(a * SR): int(b * SR)].any()


def test_dilation_widens_by_3_frames_before_and_2_after():
    y = utterance(sr=SR)
    frame = 480
    plain = dsp.voiced_mask(y, SR, dilation=1)[::frame]
    wide = dsp.voiced_mask(y, SR, dilation=6)[::frame]
    first, last = np.flatnonzero(plain)[[0, -1]]
    assert np.flatnonzero(wide)[0] == first - 3
    assert np.flatnonzero(wide)[-1] == last + 2
    assert (wide >= plain).all()


def test_voiced_mask_is_scale_invariant_and_fresh_per_call():
    y = utterance(sr=SR)
    m = dsp.voiced_mask(y, SR)
    np.testing.assert_array_equal(m, dsp.voiced_mask(0.01 * y, SR))
    np.testing.assert_array_equal(m, dsp.voiced_mask(y, SR))  # no state carried over


def test_remove_silence_keeps_voiced_samples_or_everything():
    y = np.arange(10, dtype=np.float32)
    mask = np.zeros(10, dtype=bool)
    mask[[2, 3, 7]] = True
    kept, found = dsp.remove_silence(y, mask)
    assert found and kept.tolist() == [2, 3, 7]
    kept, found = dsp.remove_silence(y, np.zeros(10, dtype=bool))
    assert not found and kept is y


def test_peak_normalise_uses_max_not_absmax():
    y = np.array([0.1, -0.8, 0.4], dtype=np.float32)
    np.testing.assert_allclose(dsp.peak_normalise(y), [0.25, -2.0, 1.0])
    np.testing.assert_allclose(dsp.peak_normalise(y, "absmax"), [0.125, -1.0, 0.5])
    with pytest.raises(dsp.AudioError):
        dsp.peak_normalise(np.zeros(5, dtype=np.float32))


def test_log_mel_matches_librosa_melspectrogram():
    import librosa

    y = dsp.peak_normalise(utterance(sr=SR, seed=2))
    S = dsp.log_mel(y)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0, fmax=8000))
    assert S.shape == (80, 1 + len(y) // 256) and S.dtype == np.float32
    np.testing.assert_allclose(S, ref, atol=1e-3)
    assert S.max() - S.min() <= 80 + 1e-3


def test_fix_frames_pads_with_last_frame_and_centre_crops():
    short = np.arange(80 * 100, dtype=np.float32).reshape(80, 100)
    out = dsp.fix_frames(short)
    assert out.shape == (80, 128)
    np.testing.assert_array_equal(out[:, :100], short)
    np.testing.assert_array_equal(out[:, 100:], np.repeat(short[:, -1:], 28, axis=1))
    long_ = np.arange(80 * 201, dtype=np.float32).reshape(80, 201)
    np.testing.assert_array_equal(dsp.fix_frames(long_), long_[:, 36:164])
    exact = np.ones((80, 128), dtype=np.float32)
    np.testing.assert_array_equal(dsp.fix_frames(exact), exact)


@pytest.mark.parametrize("bursts,expect_crop", [((0.5,), False), ((1.5, 1.5), True)])
def test_preprocess_signal_short_and_long(bursts, expect_crop):
    X, info = dsp.preprocess_signal(utterance(bursts=bursts), 48000)
    assert X.shape == (80, 128) and X.dtype == np.float32 and np.isfinite(X).all()
    assert info.speech_found and info.n_voiced_samples < info.n_samples
    assert (info.n_voiced_frames > 128) == expect_crop
    if not expect_crop:  # edge padding: the last columns repeat
        np.testing.assert_array_equal(X[:, -1], X[:, info.n_voiced_frames - 1])


def test_clip_without_speech_is_kept_whole_with_a_warning(tmp_path):
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 7900 * t)).astype(np.float32)  # the VAD finds no frame here
    X, info = dsp.preprocess_signal(tone, SR)
    assert not info.speech_found and info.n_voiced_samples == info.n_samples == SR
    path = write_clip(tmp_path / "tone.wav", tone, SR)
    with pytest.warns(UserWarning, match="tone.wav"):
        dsp.preprocess_file(path)


@pytest.mark.parametrize("content,match", [
    (np.zeros(48000, dtype=np.float32), "silent"),
    (np.zeros(0, dtype=np.float32), "empty"),
])
def test_silent_or_empty_file_names_the_file(tmp_path, content, match):
    path = write_clip(tmp_path / f"bad_{match}.wav", content)
    with pytest.raises(dsp.AudioError, match=f"bad_{match}.wav.*{match}|{match}.*bad_{match}.wav"):
        dsp.preprocess_file(path)


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "03-01-01-01-01-01-01.wav"
    path.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(dsp.AudioError, match="03-01-01-01-01-01-01.wav"):
        dsp.preprocess_file(path)


def test_stereo_ravdess_clip_downmixes(ravdess_dir):
    path = next(ravdess_dir.glob("Actor_01/03-01-02-01-01-02-01.*"))
    data, _ = sf.read(path, always_2d=True, dtype="float32")
    assert data.shape[1] == 2
    y, sr = dsp.load_mono(path)
    assert sr == 48000 and y.ndim == 1
    np.testing.assert_allclose(y, data.mean(axis=1), atol=1e-7)


def test_features_agree_with_independent_recipe_for_actor_01(ravdess_dir, ravdess_features):
    from reference_recipe import reference_features

    X, index = ravdess_features
    rows = index[index.actor == 1]
    diffs = [float(np.mean(np.abs(X[i] - reference_features(p)))) for i, p in zip(rows.index, rows.path)]
    assert len(diffs) == 60
    assert max(diffs) < 0.05, f"mean |dB| difference per clip up to {max(diffs):.3f}"


def test_mel_basis_is_the_one_log_mel_applies():
    B = dsp.mel_basis()
    assert B.shape == (80, 513) and B.dtype == np.float32 and not B.flags.writeable
    assert dsp.mel_basis(dsp.PreprocessConfig()) is B  # cached
    import librosa

    np.testing.assert_array_equal(B, librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0))


def test_dsp_does_not_import_inversion():
    """inversion builds on dsp (mel basis, recipe), never the other way round, not even lazily."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(dsp))
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("inversion" in m for m in imported), imported
