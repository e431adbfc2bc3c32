"""Your own voice in the explorer: a recording as the start point, emotion weights, A/B, save WAV.

Fast and synthetic: untrained models, a buzz written as a WAV file.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from emovae_utils.dsp import AudioError, resample
from emovae_utils.explorer import EmotionMixer, OwnVoiceExplorer, clip_from_audio, read_audio
from emovae_utils.explorer.adapter import emotion_sublatent_size
from emovae_utils.models import build

SR_FILE = 22050


def buzz(sr: int = SR_FILE, seconds: float = 1.2, f0: float = 140.0) -> np.ndarray:
    """A voiced-sounding buzz with a quiet start (the VAD has something to drop)."""
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sign(np.sin(2 * np.pi * f0 * t)) * (t > 0.15) + 0.02 * np.sin(2 * np.pi * 3 * f0 * t)
    return y.astype(np.float32)


def wav_file_bytes(y: np.ndarray, sr: int = SR_FILE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def upload_value(y: np.ndarray, sr: int = SR_FILE, name: str = "my take.wav") -> tuple:
    """What ipywidgets 8's FileUpload.value holds after one upload."""
    data = wav_file_bytes(y, sr)
    return ({"name": name, "type": "audio/wav", "size": len(data), "content": memoryview(data),
             "last_modified": 0},)


@pytest.fixture(scope="module")
def clips():
    """Training clips (windows) with emotion labels, for the emotion means."""
    X = np.random.default_rng(0).normal(-40, 10, (6, 80, 128)).astype(np.float32)
    index = pd.DataFrame({"emotion": ["sad", "sad", "angry", "angry", "happy", "happy"]})
    return X, index


def own_voice(model, source, X=None, index=None, **kw) -> OwnVoiceExplorer:
    return OwnVoiceExplorer(model, source, X, index, audio=False, threaded=False, **kw)


def test_declared_emotion_dims():
    assert build("supervised_vae", emotion_dims=3).emotion_dims == 3
    assert build("factorised_vae").emotion_dims == 8
    assert build("emotion_vae").emotion_dims is None and build("beta_vae").emotion_dims is None
    assert emotion_sublatent_size(build("factorised_vae")) == 8


def test_upload_at_another_rate_is_encoded_and_decoded(clips):
    X, index = clips
    value = upload_value(buzz())
    clip = clip_from_audio(value, build("emotion_vae"))
    assert clip.name == "my take.wav" and clip.recording_sr == SR_FILE and clip.features.shape == (80, 128)
    own = own_voice(build("supervised_vae", emotion_dims=2), value, X, index)
    try:
        ex = own.explorer
        assert ex.state.start == "source" and ex.state.start_labels["source"] == "source: my take.wav"
        np.testing.assert_allclose(ex.z, own.z_source, atol=1e-6)   # the start point is the clip's posterior mean
        assert ex.spectrogram.shape == (80, 128) and np.isfinite(ex.spectrogram).all()
    finally:
        own.close()


def test_sequence_model_takes_the_whole_clip_at_its_length():
    own = own_voice(build("factorised_vae"), upload_value(buzz()))
    try:
        L = own.clip.length
        assert own.clip.features.shape == (80, L) and 0 < L < 128
        assert own.explorer.state.cond == L and own.explorer.spectrogram.shape == (80, L)
    finally:
        own.close()


def test_index_row_and_path_sources(tmp_path):
    path = tmp_path / "take.flac"
    sf.write(path, buzz(), SR_FILE)
    row = pd.Series({"path": str(path), "actor": 3, "emotion": "sad"})
    y, sr, name = read_audio(row)
    assert sr == SR_FILE and name.startswith("Actor 03 · sad")
    np.testing.assert_allclose(y, read_audio(str(path))[0])
    from emovae_utils.dsp import preprocess_file

    np.testing.assert_array_equal(clip_from_audio(row).features, preprocess_file(path))   # the study's recipe


def test_unusable_uploads_say_what_to_do():
    with pytest.raises(AudioError, match="Nothing was uploaded"):
        clip_from_audio(())
    with pytest.raises(AudioError, match="empty"):
        clip_from_audio(({"name": "x.wav", "content": b""},))
    with pytest.raises(AudioError, match="Upload a WAV or FLAC"):
        clip_from_audio(({"name": "notes.txt", "content": b"this is not audio at all" * 10},))
    with pytest.raises(AudioError, match="silent"):
        clip_from_audio((np.zeros(SR_FILE, np.float32), SR_FILE))


def test_a_bad_upload_in_the_widget_is_shown_not_raised(clips):
    X, index = clips
    own = own_voice(build("emotion_vae"), upload_value(buzz()), X, index)
    try:
        own._on_upload({"new": ({"name": "x.wav", "content": b"junk" * 100},)})
        assert "Upload a WAV or FLAC" in own.message.value and own.clip.name == "my take.wav"
    finally:
        own.close()


@pytest.mark.parametrize("name, kw, k", [("supervised_vae", {"emotion_dims": 2}, 2), ("factorised_vae", {}, 8)])
def test_emotion_weights_change_only_the_emotion_latent(name, kw, k):
    model = build(name, **kw)
    own = own_voice(model, upload_value(buzz()), means={"sad": np.full(k, 0.5), "angry": np.full(k, -0.5)})
    try:
        ex = own.explorer
        before = ex.z.copy()
        own.set_weights({"angry": 1.0})
        np.testing.assert_array_equal(ex.z[k:], before[k:])          # content and speaker kept
        np.testing.assert_allclose(ex.z[:k], -0.5)
        own.set_weights({"own": 1.0, "sad": 1.0})
        np.testing.assert_allclose(ex.z[:k], (own.z_source[:k] + 0.5) / 2, atol=1e-6)
        np.testing.assert_array_equal(ex.z[k:], before[k:])
        own.emotion_sliders["sad"].value = 0.0                       # a slider move: the same path
        np.testing.assert_allclose(ex.z[:k], own.z_source[:k], atol=1e-6)
    finally:
        own.close()


def test_weights_default_to_the_explorers_emotion_means(clips):
    X, index = clips
    from emovae_utils.conversion import emotion_means

    model = build("supervised_vae", emotion_dims=2)
    own = own_voice(model, upload_value(buzz()), X, index)
    try:
        assert own.mixer.names == ["own", "happy", "sad", "angry"]   # RAVDESS order
        expected = emotion_means(model, X, index["emotion"])        # the same means, computed again
        for j, emotion in enumerate(own.mixer.names[1:], start=1):
            np.testing.assert_allclose(own.mixer.table[j], expected.loc[emotion].to_numpy(), atol=1e-5)
        with pytest.raises(KeyError, match="unknown emotion"):
            own.set_weights({"bored": 1.0})
    finally:
        own.close()


def test_a_weight_move_costs_one_decode_and_render_and_no_encoding(clips):
    X, index = clips
    model = build("supervised_vae", emotion_dims=2)
    own = own_voice(model, upload_value(buzz()), X, index)
    try:
        calls = {"encode": 0, "decode": 0}
        encode, decode = model.encode, model.decode

        def counted(fn, key):
            def wrapper(*a, **k):
                calls[key] += 1
                return fn(*a, **k)
            return wrapper

        model.encode, model.decode = counted(encode, "encode"), counted(decode, "decode")
        n = own.explorer.n_updates
        own.emotion_sliders["angry"].value = 0.7
        assert calls == {"encode": 0, "decode": 1} and own.explorer.n_updates == n + 1
    finally:
        own.close()


def test_model_without_emotion_latent_gets_no_emotion_controls(clips):
    X, index = clips
    own = own_voice(build("emotion_vae"), upload_value(buzz()), X, index)
    try:
        assert own.mixer is None and own.emotion_sliders == {} and own.emotion_box.children == ()
        assert own.explorer.state.start == "source"
        with pytest.raises(ValueError, match="no emotion latent"):
            own.set_weights({"sad": 1.0})
    finally:
        own.close()


def test_ab_player_holds_the_recording_not_its_resynthesis(clips):
    X, index = clips
    y = buzz()
    own = own_voice(build("supervised_vae", emotion_dims=2), upload_value(y), X, index)
    try:
        # the original player: the recording's own samples at its own rate
        orig, sr = sf.read(io.BytesIO(own.original_audio.value), dtype="float32")
        assert sr == SR_FILE and len(orig) == len(y)
        np.testing.assert_allclose(orig, y, atol=2 / 32768)
        own.play_ab()
        assert own.ab_row.layout.display is None
        ab, sr = sf.read(io.BytesIO(own.ab_audio.value), dtype="float32")
        assert sr == 16000
        a = resample(y, SR_FILE, 16000)
        head = ab[: len(a)]
        assert np.corrcoef(head, a)[0, 1] > 0.99               # A is the recording (levelled) ...
        b = own.current_audio()
        assert len(ab) == len(a) + int(0.3 * 16000) + len(b)   # ... then a pause, then the rendering
        np.testing.assert_allclose(ab[-len(b):], b, atol=2 / 32768)
    finally:
        own.close()


def test_save_writes_the_current_rendering_at_16k(tmp_path, clips):
    X, index = clips
    own = own_voice(build("supervised_vae", emotion_dims=2), upload_value(buzz()), X, index,
                    save_dir=tmp_path / "own")
    try:
        own.set_weights({"angry": 0.7, "own": 0.3})
        assert own.default_path() == tmp_path / "own" / "my-take-angry70-own30.wav"
        assert own.save_path.placeholder == str(own.default_path())   # shown in the empty path box
        out = own.save_wav()
        assert out == tmp_path / "own" / "my-take-angry70-own30.wav"
        y, sr = sf.read(out, dtype="float32")
        assert sr == 16000 and len(y) > 0
        np.testing.assert_allclose(y, np.clip(own.current_audio(), -1, 1), atol=2 / 32768)
        assert str(out.resolve()) in own.saved.value
        own.save_path.value = str(tmp_path / "chosen.wav")
        own.save_button.click()
        assert (tmp_path / "chosen.wav").is_file() and not list(tmp_path.glob(".*.tmp*"))
    finally:
        own.close()


def test_mixer_checks_its_means():
    with pytest.raises(ValueError, match="no emotion means"):
        EmotionMixer({}, own=[0.0])
    with pytest.raises(ValueError, match="do not have the 2 dimensions"):
        EmotionMixer({"sad": [1.0]}, own=[0.0, 0.0])
    frame = pd.DataFrame({"z0": [1.0, 2.0]}, index=pd.Index(["angry", "sad"], name="emotion"))
    assert EmotionMixer(frame, own=[0.0]).latent({"sad": 1.0}).tolist() == [2.0]   # conversion.emotion_means' frame


def test_another_source_replaces_the_first_one():
    own = own_voice(build("factorised_vae"), upload_value(buzz()))
    try:
        ex = own.explorer
        first = own.clip.length
        n_options = len(ex.dropdown.options)
        own.set_source(upload_value(buzz(seconds=2.5, f0=110.0), name="second.wav"))
        L = own.clip.length
        assert L != first and ex.state.cond == L and ex.spectrogram.shape == (80, L)
        sources = [c for c in ex.state.conditions if c.startswith("source")]
        assert sources == [f"source ({L} frames)"] and list(ex.condition.options)[0] == sources[0]
        assert ex.condition.value == sources[0] and ex.dropdown.value == "source"
        assert len(ex.dropdown.options) == n_options and own.mixer is None   # no X: no emotion means
        assert "No emotion weights" in own.message.value
    finally:
        own.close()


def test_explorer_for_gives_the_factorised_model_a_length_picker():
    from emovae_utils.explorer import explorer_for

    w = explorer_for(build("factorised_vae"), audio=False, threaded=False)
    try:
        ex = w.explorer
        assert ex.condition_label == "1.0 s" and ex.spectrogram.shape == (80, 63)
        assert ex.emotion_dims == list(range(8))
    finally:
        ex.close()
