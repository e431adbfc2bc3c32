"""Bad input (issue 11): every case raises one clear error, or is skipped and reported once.

The table ``CASES`` is the catalogue of bad input: one row per case, ``(id, call, exception, fragments)``.
``call(tmp_path)`` builds the bad input in ``tmp_path`` and runs the function that must refuse it; the
error must be an instance of ``exception`` and contain every fragment (the file or field it names, what is
wrong). A new case is one more row.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import speechlike, utterance, write_clip

from emovae_utils import data, dsp, train
from emovae_utils.conditions import make_condition
from emovae_utils.dsp import AudioError, AudioWarning, ConfigError, PreprocessConfig
from emovae_utils.models import ModelFileError, build, load_model, save_model


# ------------------------------------------------------------------ builders of bad input
def float_wav(d: Path, y: np.ndarray, name: str = "x.wav", sr: int = 48000) -> Path:
    """A 32-bit float WAV: the only kind that can hold NaN and inf."""
    path = d / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(y, dtype=np.float32), sr, subtype="FLOAT")
    return path


def poked(value: float) -> np.ndarray:
    y = utterance()
    y[[1000, 50000]] = value
    return y


def cut(path: Path, keep: float | int) -> Path:
    """Keep the first ``keep`` bytes (int) or fraction (float) of a file, as an interrupted copy does."""
    raw = path.read_bytes()
    path.write_bytes(raw[: keep if isinstance(keep, int) else int(len(raw) * keep)])
    return path


def clip(d: Path, name: str = "x.wav", **kw) -> Path:
    return write_clip(d / name, utterance(**kw))


def raw_file(d: Path, name: str, content: bytes) -> Path:
    path = d / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def checkpoint(d: Path) -> Path:
    """A real checkpoint of :func:`emovae_utils.train.fit` (one epoch of a tiny model on two clips)."""
    X = np.random.default_rng(0).normal(0.0, 10.0, size=(2, 80, 128)).astype(np.float32)
    train.fit(build("beta_vae", latent_dim=4), X, epochs=1, out_dir=d, progress=False, sample_every=None)
    return d / train.CHECKPOINT_NAME


def saved_model(d: Path) -> Path:
    return save_model(d / "m.pt", build("emotion_vae", latent_dim=2))


def torch_saved(d: Path, obj) -> Path:
    torch.save(obj, d / "m.pt")
    return d / "m.pt"


class RunsCode:
    """Pickles as a call of ``os.getcwd``: what a hostile model file could do with any function."""

    def __reduce__(self):
        return (os.getcwd, ())


def unlabelled() -> pd.DataFrame:
    """Two own recordings as :func:`emovae_utils.data.audio_index` lists them: no actor, no emotion."""
    return pd.DataFrame({"actor": pd.array([None, None], dtype="Int64"),
                         "emotion_id": pd.array([None, None], dtype="Int64")})


def ravdess_set(d: Path, *files: tuple[str, bytes | None]) -> Path:
    """A tiny RAVDESS-named folder; ``None`` content means a good synthetic clip."""
    root = d / "set"
    for k, (name, content) in enumerate(files):
        if content is None:
            clip(root, name, seed=k)
        else:
            raw_file(root, name, content)
    return root


def features(root: Path, d: Path, **kw):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Missing clips")  # tiny synthetic sets are incomplete on purpose
        return data.load_features(root, d / "cache", progress=False, workers=1, **kw)


def stereo(d: Path, left: float, right: float, name: str = "x.wav") -> Path:
    """A float stereo WAV whose channels are ``left * y`` and ``right * y``."""
    y = utterance()
    return float_wav(d, np.stack([left * y, right * y], axis=1), name)


def own_set(d: Path, *files: tuple[str, bytes]) -> Path:
    """A folder of one's own recordings: one good clip plus raw files ``(name, content)``."""
    root = d / "mine"
    clip(root, "good.wav")
    for name, content in files:
        raw_file(root, name, content)
    return root


def own_features(root: Path, d: Path, sequences: bool = False, **kw):
    """load_features (or load_sequences) of ``data.audio_index(root)``, as a newcomer calls them."""
    load = data.load_sequences if sequences else data.load_features
    return load(root, d / "cache", index=data.audio_index(root, warn=False), progress=False, workers=1, **kw)


A = "03-01-01-01-01-01-01"
B = "03-01-02-01-01-01-01"

CASES = [
    # --- audio files and signals: dsp.AudioError naming the file
    ("nan-samples", lambda d: dsp.preprocess_file(float_wav(d, poked(np.nan))), AudioError,
     ["x.wav", "2 non-finite samples"]),
    ("inf-samples", lambda d: dsp.preprocess_file(float_wav(d, poked(np.inf))), AudioError,
     ["x.wav", "non-finite samples"]),
    ("nan-signal", lambda d: dsp.preprocess_signal(poked(np.nan), 48000), AudioError, ["non-finite samples"]),
    ("dc-offset-all-negative", lambda d: dsp.preprocess_file(float_wav(d, utterance() - 0.5)), AudioError,
     ["x.wav", "no positive sample", "DC offset", "peak='absmax'"]),
    ("all-zero", lambda d: dsp.preprocess_file(float_wav(d, np.zeros(48000))), AudioError, ["x.wav", "silent"]),
    ("no-samples", lambda d: dsp.preprocess_file(float_wav(d, np.zeros(0))), AudioError, ["x.wav", "empty"]),
    ("not-audio", lambda d: dsp.load_mono(raw_file(d, "x.wav", b"not audio at all")), AudioError,
     ["x.wav", "cannot be decoded", "not audio: a text file (it begins 'not audio at all')"]),
    ("zero-bytes", lambda d: dsp.load_mono(raw_file(d, "x.wav", b"")), AudioError, ["x.wav", "0 bytes"]),
    ("m4a-named-wav", lambda d: dsp.load_mono(raw_file(d, "x.wav", b"\0\0\0\x20ftypM4A \0\0\0\0" + bytes(64))),
     AudioError, ["x.wav", "MP4/M4A"]),
    ("channels-cancel", lambda d: dsp.load_mono(stereo(d, 0.5, -0.5)), AudioError,
     ["x.wav", "channels cancel in the mono downmix"]),
    ("too-short-file", lambda d: dsp.preprocess_file(write_clip(d / "x.wav", speechlike(0.05, 48000))), AudioError,
     ["x.wav", "too short", "800 samples at 16000 Hz (50 ms)", "one analysis window (n_fft = 1024 samples"]),
    ("too-short-signal", lambda d: dsp.preprocess_signal(speechlike(0.01, 16000), 16000), AudioError,
     ["too short", "160 samples"]),
    ("missing-file", lambda d: dsp.load_mono(d / "gone.wav"), AudioError, ["gone.wav", "does not exist"]),
    ("truncated-wav-half", lambda d: dsp.load_mono(cut(clip(d), 0.5)), AudioError,
     ["x.wav", "is truncated", "copy or export the file again"]),
    ("truncated-wav-mid-sample", lambda d: dsp.preprocess_file(cut(clip(d), 100_001)), AudioError,
     ["x.wav", "is truncated"]),
    ("truncated-wav-header-only", lambda d: dsp.load_mono(cut(clip(d), 44)), AudioError,
     ["x.wav", "holds 0 of the"]),
    ("truncated-flac", lambda d: dsp.load_mono(cut(clip(d, "x.flac"), 0.5)), AudioError,
     ["x.flac", "truncated"]),
    ("stereo-array", lambda d: dsp.preprocess_signal(np.zeros((100, 2), np.float32), 48000), AudioError, ["mono"]),
    # --- configuration: ConfigError (a ValueError) naming the field, the value and what is allowed
    ("sr-vad-cannot-run", lambda d: PreprocessConfig(sr=22050), ConfigError,
     ["sr=22050", "8000, 16000, 32000, 48000"]),
    ("vad-frame-ms", lambda d: PreprocessConfig(vad_frame_ms=25), ConfigError, ["vad_frame_ms=25", "10, 20, 30"]),
    ("vad-mode", lambda d: PreprocessConfig(vad_mode=4), ConfigError, ["vad_mode=4", "0, 1, 2, 3"]),
    ("peak-literal", lambda d: PreprocessConfig(peak="rms"), ConfigError, ["peak='rms'", "'max'", "'absmax'"]),
    ("n-frames-zero", lambda d: PreprocessConfig(n_frames=0), ConfigError, ["n_frames=0", ">= 1"]),
    ("n-mels-float", lambda d: PreprocessConfig(n_mels=80.5), ConfigError, ["n_mels=80.5", "integer"]),
    ("hop-zero", lambda d: PreprocessConfig(hop_length=0), ConfigError, ["hop_length=0"]),
    ("win-longer-than-fft", lambda d: PreprocessConfig(win_length=2048), ConfigError,
     ["win_length=2048", "n_fft=1024"]),
    ("fmax-above-nyquist", lambda d: PreprocessConfig(fmax=11025.0), ConfigError, ["fmax=11025.0", "8000 Hz"]),
    ("fmin-negative", lambda d: PreprocessConfig(fmin=-1.0), ConfigError, ["fmin=-1.0"]),
    ("top-db", lambda d: PreprocessConfig(top_db=0.0), ConfigError, ["top_db=0.0"]),
    ("res-type", lambda d: PreprocessConfig(res_type="best"), ConfigError, ["res_type='best'", "soxr_hq"]),
    # --- data sets and feature building
    ("every-file-unreadable-skip", lambda d: features(ravdess_set(d, (f"{A}.wav", b"junk"), (f"{B}.wav", b"")),
                                                     d, on_error="skip"),
     AudioError, ["None of the 2 file(s)", f"{A}.wav", "not audio: a text file", f"{B}.wav", "0 bytes"]),
    ("every-file-unreadable-raise", lambda d: features(ravdess_set(d, (f"{A}.wav", b"junk")), d),
     AudioError, ["None of the 1 file(s)", f"{A}.wav"]),
    ("on-error-value", lambda d: features(ravdess_set(d, (f"{A}.wav", None)), d, on_error="ignore"), ValueError,
     ["on_error='ignore'", "'skip'"]),
    ("index-without-path", lambda d: features(d, d, index=pd.DataFrame({"file": ["a.wav"]})), ValueError,
     ["'path' column", "audio_index"]),
    ("index-empty", lambda d: features(d, d, index=pd.DataFrame({"path": []})), ValueError, ["no rows"]),
    ("index-file-gone", lambda d: features(d, d, index=pd.DataFrame({"path": [clip(d), d / "gone.wav"]})),
     FileNotFoundError, ["1 file(s) that do not exist", "gone.wav", "audio_index"]),
    ("audio-index-no-audio", lambda d: data.audio_index(raw_file(d, "notes.txt", b"hello").parent),
     FileNotFoundError, ["No audio file", "1 file(s) looked at"]),
    ("audio-index-not-a-folder", lambda d: data.audio_index(d / "nowhere"), FileNotFoundError, ["is not a folder"]),
    ("own-recordings-as-ravdess", lambda d: data.ravdess_index(clip(d, "take1.wav").parent, warn=False),
     FileNotFoundError, ["No RAVDESS clips", "audio_index"]),
    # --- a damaged checkpoint: ValueError naming the file (a trial sets it aside and starts again, below)
    ("checkpoint-truncated", lambda d: train.load_checkpoint(cut(checkpoint(d), 0.5)), ValueError,
     ["checkpoint.pt", "not a readable checkpoint", "crash or a full disk"]),
    ("checkpoint-empty", lambda d: train.load_checkpoint(raw_file(d, "checkpoint.pt", b"")), ValueError,
     ["checkpoint.pt", "not a readable checkpoint"]),
    ("checkpoint-random-bytes", lambda d: train.load_checkpoint(raw_file(d, "checkpoint.pt", os.urandom(4096))),
     ValueError, ["checkpoint.pt", "not a readable checkpoint"]),
    ("checkpoint-missing", lambda d: train.load_checkpoint(d / "gone.pt"), FileNotFoundError, ["gone.pt"]),
    ("audio-index-zero-byte-wav", lambda d: own_features(own_set(d, ("empty.wav", b"")), d), AudioError,
     ["1 of 2 file(s) could not be preprocessed", "empty.wav", "0 bytes"]),
    ("audio-index-text-wav", lambda d: own_features(own_set(d, ("notes.wav", b"my notes\n")), d), AudioError,
     ["1 of 2 file(s)", "notes.wav", "not audio: a text file"]),
    ("audio-index-cancelling-channels", lambda d: own_features(stereo(own_set(d), 1, -1, "phase.wav").parent, d),
     AudioError, ["1 of 2 file(s)", "phase.wav", "channels cancel in the mono downmix"]),
    # --- model files: ModelFileError naming the file and what to do (read without running code)
    ("model-random-bytes", lambda d: load_model(raw_file(d, "m.pt", b"\x13\x37" * 2048)), ModelFileError,
     ["m.pt", "is not a model file", "save_model"]),
    ("model-empty", lambda d: load_model(raw_file(d, "m.pt", b"")), ModelFileError, ["m.pt", "is empty"]),
    ("model-truncated", lambda d: load_model(cut(saved_model(d), 0.5)), ModelFileError,
     ["m.pt", "damaged or cut short", "copy it again"]),
    ("model-a-tensor", lambda d: load_model(torch_saved(d, torch.zeros(3))), ModelFileError,
     ["m.pt", "holds a Tensor", "save_model(path, model)"]),
    ("model-a-checkpoint", lambda d: load_model(checkpoint(d)), ModelFileError,
     ["checkpoint.pt", "training checkpoint", "train.load_checkpoint", "model.pt"]),
    ("model-unregistered", lambda d: load_model(torch_saved(d, {"name": "gone_vae", "config": {}, "state_dict": {}})),
     ModelFileError, ["m.pt", "'gone_vae' is not registered", "emotion_vae", "supervised_vae"]),
    ("model-runs-code", lambda d: load_model(torch_saved(d, {"name": "emotion_vae", "config": {}, "state_dict": {},
                                                          "metadata": {"x": RunsCode()}})),
     ModelFileError, ["m.pt", "without running", "weights_only=False"]),
    ("model-missing", lambda d: load_model(d / "gone.pt"), FileNotFoundError, ["gone.pt"]),
    ("model-metadata-object", lambda d: save_model(d / "m.pt", build("emotion_vae"), when=object()), TypeError,
     ["metadata['when']", "object"]),
    # --- model arguments: ValueError naming the argument, the value and what is allowed
    ("latent-dim-zero", lambda d: build("emotion_vae", latent_dim=0), ValueError,
     ["EmotionVAE(latent_dim=0)", "integer >= 1"]),
    ("latent-dim-float", lambda d: build("beta_vae", latent_dim=2.5), ValueError,
     ["BetaVAE(latent_dim=2.5)", "integer >= 1"]),
    ("latent-dim-string", lambda d: build("sigma_vae", latent_dim="8"), ValueError, ["latent_dim='8'", "integer"]),
    ("beta-nan", lambda d: build("beta_vae", beta=float("nan")), ValueError, ["beta=nan", "finite number >= 0"]),
    ("beta-negative", lambda d: build("beta_vae", beta=-1), ValueError, ["beta=-1", ">= 0"]),
    ("tc-beta-inf", lambda d: build("tc_vae", beta=float("inf")), ValueError, ["TCVAE(beta=inf)", "finite"]),
    ("emotion-dims-too-big", lambda d: build("supervised_vae", latent_dim=4, emotion_dims=5), ValueError,
     ["emotion_dims=5", "in 1..4"]),
    ("classifier-weight-negative", lambda d: build("supervised_vae", classifier_weight=-2.0), ValueError,
     ["classifier_weight=-2.0", ">= 0"]),
    ("cond-dim-zero", lambda d: build("speaker_vae", cond_dim=0), ValueError, ["cond_dim=0"]),
    ("condition-encoder-string", lambda d: build("speaker_vae", condition_encoder="yes"), ValueError,
     ["condition_encoder='yes'", "True or False"]),
    ("cnn-dropout-one", lambda d: build("emotion_cnn", dropout=1.0), ValueError, ["dropout=1.0", "< 1.0"]),
    ("cnn-channels-float", lambda d: build("emotion_cnn", channels=(8, 4.5)), ValueError, ["channels[1]=4.5"]),
    ("sequence-db-scale-zero", lambda d: build("sequence_vae", db_scale=0.0), ValueError, ["db_scale=0.0", "> 0.0"]),
    # --- fit settings: FitConfig names the field, the value and what is allowed
    ("fit-epochs-float", lambda d: train.FitConfig(epochs=2.5), ValueError, ["FitConfig(epochs=2.5)", "integer >= 1"]),
    ("fit-epochs-zero", lambda d: train.FitConfig(epochs=0), ValueError, ["epochs=0", ">= 1"]),
    ("fit-batch-size-zero", lambda d: train.FitConfig(epochs=1, batch_size=0), ValueError,
     ["batch_size=0", "integer >= 1 or None"]),
    ("fit-lr-nan", lambda d: train.FitConfig(epochs=1, lr=float("nan")), ValueError, ["lr=nan", "finite number > 0"]),
    ("fit-lr-zero", lambda d: train.FitConfig(epochs=1, lr=0), ValueError, ["lr=0", "> 0"]),
    ("fit-threads-zero", lambda d: train.FitConfig(epochs=1, threads=0), ValueError, ["threads=0"]),
    ("fit-clip-negative", lambda d: train.FitConfig(epochs=1, clip_norm=-1.0), ValueError, ["clip_norm=-1.0"]),
    ("fit-accel-unknown", lambda d: train.FitConfig(epochs=1, accel="fast"), ValueError, ["accel='fast'", "'auto'"]),
    ("fit-keyword-epochs-float", lambda d: train.fit(build("emotion_vae"), np.zeros((2, 80, 128)), epochs=2.5),
     ValueError, ["epochs=2.5"]),
    # --- labels and conditions a model needs but the clips lack
    ("fit-supervised-without-labels", lambda d: train.fit(build("supervised_vae"), np.zeros((2, 80, 128)), epochs=1,
                                                          progress=False),
     ValueError, ["EmotionSupervisedVAE", "make_condition('labels', X, index)", "cond='labels'"]),
    ("fit-cnn-without-labels", lambda d: train.fit(build("emotion_cnn"), np.zeros((2, 80, 128)), epochs=1,
                                                   progress=False),
     ValueError, ["EmotionCNN", "labels=", "make_condition('emotion', X, index)"]),
    ("emotion-unlabelled", lambda d: make_condition("emotion", np.zeros((2, 80, 128)), unlabelled()), ValueError,
     ["'emotion'", "2 of 2 clips have none", "emotion_id"]),
    ("labels-unlabelled", lambda d: make_condition("labels", np.zeros((2, 80, 128)), unlabelled()), ValueError,
     ["'labels'", "emotion_id"]),
    ("speaker-code-unknown-actor", lambda d: make_condition("speaker_code", np.zeros((2, 80, 128)), unlabelled()),
     ValueError, ["'speaker_code'", "speaker", "'actor'", "clip_code"]),
    ("emotion-no-column", lambda d: make_condition("emotion", np.zeros((2, 80, 128)), pd.DataFrame({"x": [1, 2]})),
     KeyError, ["'emotion'", "emotion_id"]),
]


@pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. numpy's cast warning on NaN: must not happen
@pytest.mark.parametrize("call, exception, fragments", [pytest.param(*row[1:], id=row[0]) for row in CASES])
def test_bad_input_raises_one_clear_error(tmp_path, call, exception, fragments):
    with pytest.raises(exception) as err:
        call(tmp_path)
    for fragment in fragments:
        assert fragment in str(err.value), f"{fragment!r} not in {str(err.value)!r}"


# Degraded input whose features are still usable: one warning of ``category`` holding every fragment.
WARNING_CASES = [
    ("rate-below-mel-range", lambda d: dsp.preprocess_file(write_clip(d / "x.wav", utterance(sr=8000), 8000)),
     AudioWarning, ["x.wav", "recorded at 8000 Hz", "nothing above 4000 Hz", "fmax = 8000 Hz", "mel bands empty"]),
    ("rate-below-mel-range-features", lambda d: own_features(write_clip(own_set(d) / "tel.wav", utterance(sr=8000),
                                                                         8000).parent, d),
     AudioWarning, ["1 clip(s) give usable but degraded features", "tel.wav", "recorded at 8000 Hz"]),
    ("audio-index-keeps-damaged", lambda d: data.audio_index(own_set(d, ("empty.wav", b""))), UserWarning,
     ["kept 1 file(s)", "empty.wav (0 bytes", "load_features lists them"]),
    ("long-clip-sequences", lambda d: own_features(write_clip(own_set(d) / "talk.wav", speechlike(61, 16000),
                                                              16000).parent, d, sequences=True),
     UserWarning, ["load_sequences pads all 2 clips", "talk", "(3813 frames, 61 s", "GiB", "load_features"]),
]


@pytest.mark.parametrize("call, category, fragments", [pytest.param(*row[1:], id=row[0]) for row in WARNING_CASES])
def test_degraded_input_warns_once_with_the_cause(tmp_path, call, category, fragments):
    with pytest.warns(category) as record:
        call(tmp_path)
    matching = [str(w.message) for w in record if all(f in str(w.message) for f in fragments)]
    assert len(matching) == 1, [str(w.message) for w in record]


def test_healthy_stereo_and_rates_give_no_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for sr in (16000, 22050, 44100):  # Nyquist at or above fmax = 8000 Hz
            dsp.preprocess_file(write_clip(tmp_path / f"{sr}.wav", utterance(sr=sr), sr))
        y = dsp.load_mono(stereo(tmp_path, 0.5, 0.25))[0]  # different levels, same polarity
        np.testing.assert_allclose(y, 0.375 * utterance(), atol=1e-6)


def test_domain_errors_are_value_errors():
    assert issubclass(AudioError, ValueError) and issubclass(ConfigError, ValueError)
    assert issubclass(ModelFileError, ValueError)


# ------------------------------------------------------------------ what must keep working
def test_unusual_but_valid_wav_layouts_are_not_called_truncated(tmp_path):
    y = utterance()
    ref = dsp.load_mono(write_clip(tmp_path / "ref.wav", y))[0]
    raw = (tmp_path / "ref.wav").read_bytes()
    # a chunk after the data (e.g. LIST metadata), RIFF size updated
    listed = bytearray(raw + b"LIST" + struct.pack("<I", 5) + b"abcde\0")
    listed[4:8] = struct.pack("<I", len(listed) - 8)
    (tmp_path / "list.wav").write_bytes(listed)
    # an unfinished stream's placeholder data size
    stream = bytearray(raw)
    at = stream.find(b"data")
    stream[at + 4: at + 8] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "stream.wav").write_bytes(stream)
    for name in ("list.wav", "stream.wav"):
        np.testing.assert_array_equal(dsp.load_mono(tmp_path / name)[0], ref)
    for subtype in ("PCM_24", "FLOAT", "PCM_U8"):
        sf.write(tmp_path / f"{subtype}.wav", np.stack([y, y], axis=1), 22050, subtype=subtype)
        assert dsp.load_mono(tmp_path / f"{subtype}.wav")[0].shape == y.shape


def test_dc_offset_clip_runs_with_absmax_and_the_recipe_is_unchanged(tmp_path):
    path = float_wav(tmp_path, utterance() - 0.5)
    S = dsp.preprocess_file(path, PreprocessConfig(peak="absmax"))
    assert S.shape == (80, 128) and np.isfinite(S).all()
    # a clip with both signs: peak="max" is the study's x / max(x)
    y = np.array([0.25, -0.5, 0.5], dtype=np.float32)
    np.testing.assert_array_equal(dsp.peak_normalise(y), [0.5, -1.0, 1.0])


def test_every_allowed_vad_rate_and_frame_runs():
    y = utterance(sr=44100)
    for sr in dsp.VAD_RATES:
        for ms in dsp.VAD_FRAME_MS:
            c = PreprocessConfig(sr=sr, vad_frame_ms=ms, fmax=min(8000.0, sr / 2), n_frames=16)
            assert dsp.preprocess_signal(y, 44100, c)[0].shape == (80, 16)


# ------------------------------------------------------------------ skips: counted, cached, reported once
def skip_warnings(record) -> list[str]:
    return [str(w.message) for w in record if str(w.message).startswith("Skipped")]


def test_skipped_files_are_remembered_by_the_cache_and_reported_once(tmp_path, monkeypatch):
    nan = float_wav(tmp_path / "set", poked(np.nan), name="03-01-03-01-01-01-01.wav")
    root = ravdess_set(tmp_path, (f"{A}.wav", None), (f"{B}.flac", None), ("03-01-04-01-01-01-01.wav", b"junk"))
    assert nan.parent == root

    with pytest.warns(UserWarning) as first:
        X, index = features(root, tmp_path, on_error="skip")
    [message] = skip_warnings(first)
    assert "Skipped 2 of 4 file(s)" in message
    assert "03-01-03-01-01-01-01.wav" in message and "non-finite" in message
    assert "03-01-04-01-01-01-01.wav" in message and "cannot be decoded" in message
    assert list(index.name) == [A, B] and X.shape == (2, 80, 128)

    def no_compute(*a, **k):
        raise AssertionError("the cache was not reused")

    monkeypatch.setattr(data, "_compute", no_compute)
    with pytest.warns(UserWarning) as second:
        X2, index2 = features(root, tmp_path, on_error="skip")
    assert skip_warnings(second) == [message]
    assert not any("stale" in str(w.message) for w in second)
    np.testing.assert_array_equal(X, X2)
    assert index2.equals(index)
    # on_error="raise" with the same cache: the same files, as an error
    with pytest.raises(AudioError, match="2 of 4 file") as err:
        features(root, tmp_path)
    assert "03-01-03-01-01-01-01.wav" in str(err.value) and "03-01-04-01-01-01-01.wav" in str(err.value)


def test_a_fixed_file_is_retried(tmp_path):
    root = ravdess_set(tmp_path, (f"{A}.wav", None), (f"{B}.wav", b"junk"))
    with pytest.warns(UserWarning, match="Skipped 1 of 2"):
        features(root, tmp_path, on_error="skip")
    clip(root, f"{B}.wav", seed=3)
    X, index = features(root, tmp_path)
    assert list(index.name) == [A, B]


# ------------------------------------------------------------------ a cache that cannot be written
def fail_with(code: int):
    def atomic_write(path, write):
        raise OSError(code, os.strerror(code), str(path))
    return atomic_write


@pytest.mark.parametrize("how", ["disk-full", "read-only", "file-in-the-way", "chmod"])
def test_unwritable_cache_is_skipped_with_one_warning(tmp_path, monkeypatch, how):
    root = ravdess_set(tmp_path, (f"{A}.wav", None), (f"{B}.flac", None))
    X_ref, index_ref = features(root, tmp_path / "ok")
    cache = tmp_path / "cache"
    if how == "disk-full":
        monkeypatch.setattr(data, "atomic_write", fail_with(errno.ENOSPC))
    elif how == "read-only":
        monkeypatch.setattr(data, "atomic_write", fail_with(errno.EROFS))
    elif how == "file-in-the-way":
        cache.write_bytes(b"")  # a file where the cache folder should be
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; the read-only case is covered by EROFS")
        cache.mkdir()
        cache.chmod(0o555)
    with pytest.warns(UserWarning) as record:
        X, index = features(root, tmp_path)
    cant = [str(w.message) for w in record if "Could not write the feature cache" in str(w.message)]
    assert len(cant) == 1 and "cache_dir" in cant[0] and "EMOVAE_CACHE_DIR" in cant[0]
    np.testing.assert_array_equal(X, X_ref)
    assert index.equals(index_ref)
    if cache.is_dir():
        assert not list(cache.iterdir())  # no temporary file left behind


# ------------------------------------------------------------------ item 13: the missing-clips message
def test_missing_clips_message_says_present_and_missing(tmp_path):
    names = sorted(data._expected_names(1))[:8]
    for n in names:
        raw_file(tmp_path / "Actor_01", f"{n}.wav", b"")
    with pytest.warns(UserWarning, match="Missing clips") as record:
        data.ravdess_index(tmp_path)
    assert "Actor 01: 8 of 60 present, 52 missing" in str(record[0].message)


# ------------------------------------------------------------------ damaged files of a trial: named, set aside, redone
def half(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def random_bytes(raw: bytes) -> bytes:
    return np.random.default_rng(0).bytes(max(len(raw), 64))


DAMAGED = [  # (id, file of the trial's folder, damage: its bytes -> the damaged bytes)
    ("result-truncated", "result.json", half),
    ("result-empty", "result.json", lambda raw: b""),
    ("result-random-bytes", "result.json", random_bytes),
    ("result-not-a-row", "result.json", lambda raw: b"[1, 2, 3]"),
    ("checkpoint-truncated", "checkpoint.pt", half),
    ("checkpoint-empty", "checkpoint.pt", lambda raw: b""),
    ("checkpoint-random-bytes", "checkpoint.pt", random_bytes),
]


@pytest.fixture(scope="module")
def finished_trial(tmp_path_factory):
    """(X, trial, sweep folder holding the complete trial, its result row)."""
    from emovae_utils.experiments import Trial, run_trials

    X = np.random.default_rng(0).normal(0.0, 10.0, size=(4, 80, 128)).astype(np.float32)
    trial = Trial("beta_vae", {"latent_dim": 4}, fit={"epochs": 2})
    root = tmp_path_factory.mktemp("trial")
    return X, trial, root, run_trials([trial], root, X, workers=1, progress=False).iloc[0]


@pytest.mark.parametrize("name, damage", [pytest.param(*row[1:], id=row[0]) for row in DAMAGED])
def test_a_damaged_trial_file_is_named_set_aside_and_the_trial_redone(tmp_path, finished_trial, name, damage):
    from emovae_utils.experiments import run_trials

    X, trial, done, healthy = finished_trial
    root = tmp_path / "root"
    shutil.copytree(done, root)
    folder = root / trial.trial_id
    if name == "checkpoint.pt":
        (folder / "result.json").unlink()  # killed after its last checkpoint, before the result: the rerun reads it
    path = folder / name
    bad = damage(path.read_bytes())
    path.write_bytes(bad)
    with pytest.warns(UserWarning) as record:
        rows = run_trials([trial], root, X, workers=1, progress=False)
    [message] = [str(w.message) for w in record if "damaged" in str(w.message)]
    assert str(path) in message and "moved it aside" in message, message
    [aside] = folder.glob(f"{name}.damaged-*")
    assert aside.read_bytes() == bad and aside.name in message
    assert rows.loc[0, "status"] == "ok", rows.loc[0, "error"]
    assert rows.loc[0, "final_total"] == healthy["final_total"]  # redone from the start: the same numbers
    assert json.loads((folder / "result.json").read_text())["trial_id"] == trial.trial_id
