"""Mel inversion: the study's reference and the fast method (emovae_utils.inversion, log_mel_to_audio).

Quality is scored as in benchmarks/inversion.py: PESQ-wb and STOI of each method's output against the
clean signal the spectrogram was computed from. Target (issue 12): "fast" within 0.1 PESQ and 0.01 STOI
of "reference" (the benchmark also checks its 0.3x time on more clips).
"""
from __future__ import annotations


import librosa
import numpy as np
import pytest
import soundfile as sf
from conftest import utterance, write_clip

from emovae_utils import dsp, inversion

C = dsp.PreprocessConfig()


def _scores(clean: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    pesq = pytest.importorskip("pesq").pesq
    stoi = pytest.importorskip("pystoi").stoi
    n = min(len(clean), len(y))
    return float(pesq(C.sr, clean[:n], y[:n], "wb")), float(stoi(clean[:n], y[:n], C.sr))


def _compare(pairs) -> dict[str, tuple[float, float]]:
    out = {}
    for method in ("reference", "fast"):
        s = np.array([_scores(clean, inversion.log_mel_to_audio(S, method=method)) for S, clean in pairs])
        out[method] = (float(s[:, 0].mean()), float(s[:, 1].mean()))
    return out


def _assert_within_targets(scores) -> None:
    (p_ref, s_ref), (p_fast, s_fast) = scores["reference"], scores["fast"]
    msg = f"reference PESQ {p_ref:.3f} STOI {s_ref:.4f}; fast PESQ {p_fast:.3f} STOI {s_fast:.4f}"
    assert p_fast >= p_ref - 0.1, msg
    assert s_fast >= s_ref - 0.01, msg
    print(msg)


def speechlike_modulated(seconds: float = 2.4, sr: int = 48000, seed: int = 0) -> np.ndarray:
    """Syllable-like synthetic speech: a gliding, vibrato f0, moving formants, 3.5 Hz syllables.

    (STOI compares band envelopes over 384 ms: a stationary tone would score near 0 whatever
    the inversion, so the test signal needs speech-like modulation.)
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 60 * np.sin(2 * np.pi * 0.7 * t + seed) + 10 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    formants = np.array([500.0, 1500.0, 2500.0]) * (1 + 0.2 * seed)
    y = np.zeros_like(t)
    for k in range(1, 40):
        fk = k * f0
        gain = sum(np.exp(-0.5 * ((fk - F * (1 + 0.3 * np.sin(2 * np.pi * 1.3 * t + i))) / 150) ** 2)
                   for i, F in enumerate(formants))
        y += (gain + 0.02) * np.sin(k * phase) / np.sqrt(k)
    env = np.clip(1.2 * np.sin(2 * np.pi * 3.5 * t + seed), 0, None) ** 0.7
    y = y * env + 0.003 * rng.standard_normal(len(t)) * env
    pad = 1e-4 * rng.standard_normal(int(0.4 * sr))
    y = np.concatenate([pad, y, pad])
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def synthetic_pairs(tmp_path_factory):
    """Two synthetic utterances through the preprocessing recipe: (features, clean signal)."""
    d = tmp_path_factory.mktemp("synthetic")
    return [inversion.clean_pair(write_clip(d / f"s{seed}.wav", speechlike_modulated(seed=seed)), C)
            for seed in (0, 1)]


@pytest.fixture(scope="module")
def real_pairs(ravdess_dir):
    """Three real clips (Actors 01, 12, 24; three emotions): (features, clean voiced signal)."""
    from emovae_utils.data import ravdess_index

    index = ravdess_index(ravdess_dir, warn=False)
    return [inversion.clean_pair(p, C) for p in index.iloc[[5, 700, 1400]]["path"]]


# ------------------------------------------------------------ building blocks
def test_stft_plan_matches_librosa():
    y = np.random.default_rng(0).standard_normal(127 * 256).astype(np.float32)
    plan = inversion.StftPlan(1024, 256, 128)
    A = librosa.stft(y, n_fft=1024, hop_length=256, center=True, pad_mode="constant")
    np.testing.assert_allclose(plan.stft(y).T, A, atol=1e-4 * np.abs(A).max())
    np.testing.assert_allclose(plan.istft(A.T), librosa.istft(A, hop_length=256, n_fft=1024), atol=1e-5)
    assert plan.length == 127 * 256
    with pytest.raises(ValueError):
        inversion.StftPlan(1000, 256, 10)


def test_griffin_lim_is_librosas_loop():
    y = np.random.default_rng(1).standard_normal(127 * 256).astype(np.float32)
    mag = np.abs(librosa.stft(y, n_fft=1024, hop_length=256))
    ref = librosa.griffinlim(mag, n_iter=8, hop_length=256, win_length=1024, n_fft=1024, random_state=0)
    ours, angles = inversion.griffin_lim(mag, n_iter=8, seed=0)
    assert np.max(np.abs(ours - ref)) < 1e-3 * np.max(np.abs(ref))
    assert angles.shape == mag.shape and np.allclose(np.abs(angles), 1, atol=1e-3)
    # started from its own final phase, it goes on where it stopped
    more, _ = inversion.griffin_lim(mag, n_iter=0, init=angles)
    np.testing.assert_allclose(more, ours, atol=1e-4 * np.max(np.abs(ours)))


def test_nnls_fista_solves_the_same_problem_as_librosa(synthetic_pairs):
    S = synthetic_pairs[0][0]
    P = librosa.db_to_power(S)
    B, pinv, _ = inversion.nnls_operators(C)
    obj = lambda X: 0.5 * float(np.sum((B.astype(np.float64) @ X - P) ** 2))  # noqa: E731
    X_ref = librosa.util.nnls(B, P)
    X0 = inversion.nnls_fista(P, C, n_iter=0)
    X = inversion.nnls_fista(P, C)
    assert X.min() >= 0 and X.shape == (513, 128) and X.dtype == np.float32
    np.testing.assert_array_equal(X0, np.maximum(pinv @ P.astype(np.float32), 0))
    # far better than the clipped pseudo-inverse, as good as L-BFGS-B
    assert obj(X) < 0.2 * obj(X0)
    assert obj(X) < 1.5 * obj(X_ref), (obj(X), obj(X_ref))


# ------------------------------------------------------------ log_mel_to_audio
def test_reference_is_the_study_inversion_unchanged(synthetic_pairs):
    from emovae_utils.resources import one_blas_thread

    S = synthetic_pairs[0][0]
    power = librosa.db_to_power(S)
    with one_blas_thread():  # the renderer's thread policy: bit-identity needs the same BLAS thread count
        mag = librosa.feature.inverse.mel_to_stft(power, sr=16000, n_fft=1024, power=2.0, fmin=0.0, fmax=8000.0)
        y = librosa.griffinlim(mag, n_iter=32, hop_length=256, win_length=1024, n_fft=1024, window="hann",
                               center=True, random_state=0)
    np.testing.assert_array_equal(inversion.log_mel_to_audio(S), y.astype(np.float32))
    np.testing.assert_array_equal(inversion.log_mel_to_audio(S, C, "reference"), y.astype(np.float32))


def test_fast_is_deterministic_and_checks_its_arguments(synthetic_pairs):
    S = synthetic_pairs[0][0]
    a = inversion.log_mel_to_audio(S, method="fast")
    np.testing.assert_array_equal(a, inversion.log_mel_to_audio(S, method="fast"))
    assert a.dtype == np.float32 and len(a) == 127 * 256
    with pytest.raises(ValueError, match="method"):
        inversion.log_mel_to_audio(S, method="vocoder")
    with pytest.raises(ValueError, match="init"):
        inversion.log_mel_to_audio(S, method="reference", init=np.ones((513, 128), np.complex64))


def test_fast_within_targets_on_synthetic_spectrograms(synthetic_pairs):
    _assert_within_targets(_compare(synthetic_pairs))


def test_fast_within_targets_on_real_clips(real_pairs):
    _assert_within_targets(_compare(real_pairs))


def test_fast_path_never_runs_the_reference_inversion(synthetic_pairs, monkeypatch):
    # How much faster it is is measured by benchmarks/inversion.py (printed numbers, quiet machine), not timed here.
    S = synthetic_pairs[1][0]

    def refuse(*args, **kwargs):
        raise AssertionError("the fast path called librosa's reference inversion")

    monkeypatch.setattr(librosa, "griffinlim", refuse)
    monkeypatch.setattr(librosa.feature.inverse, "mel_to_stft", refuse)
    y = inversion.log_mel_to_audio(S, method="fast")
    assert np.isfinite(y).all() and y.size > 0
    with pytest.raises(AssertionError, match="reference inversion"):
        inversion.log_mel_to_audio(S, method="reference")


def test_warm_start_from_the_previous_phase(real_pairs):
    (S, clean), (S2, _) = real_pairs[:2]
    inv = inversion.FastInverter(C)
    cold = inv(S2)
    assert inv.angles is not None and inv.angles.shape == (513, 128)
    near = 0.95 * S + 0.05 * S2  # the previous point of a drag
    inv(near)
    warm = inv(S)  # 16 iterations from near's phase
    np.testing.assert_array_equal(cold, inversion.log_mel_to_audio(S2, method="fast"))
    p_warm, s_warm = _scores(clean, warm)
    p_ref, s_ref = _scores(clean, inversion.log_mel_to_audio(S))
    assert p_warm >= p_ref - 0.1 and s_warm >= s_ref - 0.01, (p_warm, p_ref, s_warm, s_ref)
    inv.reset()
    np.testing.assert_array_equal(inv(S), inversion.log_mel_to_audio(S, method="fast"))


# ------------------------------------------------------------ save_wav, render_wav
def test_log_mel_to_audio_is_deterministic_and_inverts_roughly():
    y = dsp.peak_normalise(utterance(sr=16000, seed=3, bursts=(1.0, 0.8)))
    S = dsp.fix_frames(dsp.log_mel(y))
    a = inversion.log_mel_to_audio(S)
    b = inversion.log_mel_to_audio(S)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and abs(len(a) - 128 * 256) <= 256
    S2 = dsp.log_mel(a)[:, :128]
    # Griffin-Lim loses phase, not the spectral envelope: loud regions agree within a few dB
    loud = S > S.max() - 30
    assert np.median(np.abs(S2 - S)[loud]) < 3.0


def test_save_wav_writes_16_bit_16k(tmp_path):
    y = np.sin(np.linspace(0, 100, 16000)).astype(np.float32) * 3
    path = inversion.save_wav(tmp_path / "sub" / "x.wav", y)
    info = sf.info(path)
    assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    back, _ = sf.read(path)
    assert np.isclose(np.abs(back).max(), 0.9, atol=1e-3)


def test_render_wav_writes_a_complete_file_atomically(tmp_path):
    rng = np.random.default_rng(0)
    S_db = rng.uniform(-60, 0, (80, 128)).astype(np.float32)
    out = inversion.render_wav(S_db, tmp_path / "a.wav")
    y, sr = sf.read(out)
    assert out == tmp_path / "a.wav" and sr == 16000
    assert abs(len(y) - 127 * 256) <= 256 and 0 < np.abs(y).max() <= 0.9 + 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temporary file left


def test_nnls_uses_the_features_mel_basis():
    B, pinv, _ = inversion.nnls_operators(C)
    assert B is not dsp.mel_basis(C) and not B.flags.writeable
    np.testing.assert_array_equal(B, dsp.mel_basis(C))
    assert pinv.shape == (513, 80) and pinv.dtype == np.float32


def test_clean_pair_features_are_the_recipe(real_pairs, ravdess_dir):
    from emovae_utils import data

    index = data.ravdess_index(ravdess_dir, warn=False)
    for (S, clean), path in zip(real_pairs, index.iloc[[5, 700, 1400]]["path"]):
        y, sr = dsp.load_mono(path)
        whole, info = dsp.preprocess_audio(y, sr, C)
        np.testing.assert_array_equal(S, dsp.preprocess_file(path))
        T = info.n_voiced_frames
        start = max(T - C.n_frames, 0) // 2 * C.hop_length
        np.testing.assert_array_equal(clean, whole[start:start + (min(T, C.n_frames) - 1) * C.hop_length])


@pytest.mark.parametrize("method", ["fast", "reference"])
def test_inversion_runs_on_one_blas_thread_whatever_the_caller_allows(monkeypatch, method):
    """The thread policy of rendering (resources.one_blas_thread): one BLAS thread inside, so a busy machine does not
    slow it down and the result does not depend on the caller's thread settings."""
    from threadpoolctl import threadpool_limits

    def blas_threads() -> set[int]:
        from threadpoolctl import threadpool_info

        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen = []
    owner, name = (inversion, "nnls_fista") if method == "fast" else (librosa, "griffinlim")
    real = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *a, **k: (seen.append(blas_threads()), real(*a, **k))[1])
    S = np.random.default_rng(0).uniform(-80, -20, (80, 24)).astype(np.float32)
    with threadpool_limits(2, user_api="blas"):
        y2 = inversion.log_mel_to_audio(S, method=method)
        after = blas_threads()
    with threadpool_limits(1, user_api="blas"):
        y1 = inversion.log_mel_to_audio(S, method=method)
    assert seen == [{1}, {1}]
    assert after == {2}  # the caller's setting is restored
    np.testing.assert_array_equal(y1, y2)
