"""Your own voice in the explorer: start from any recording, change its emotion, hear it against the original.

:class:`OwnVoiceExplorer` wraps a :class:`~emovae_utils.explorer.view.LatentExplorer`
around one source clip (a RAVDESS clip, an audio file, an upload:
:func:`~emovae_utils.explorer.source.clip_from_audio`):

* the clip is preprocessed and encoded once; its posterior mean is the start
  point ``"source"`` (and, for a sequence model, its length the chosen condition);
* for a model with an emotion latent (``model.emotion_dims``), one weight per
  emotion and one for the clip's own emotion set the emotion latent
  (:class:`~emovae_utils.explorer.emotion.EmotionMixer`, the emotions' means
  computed once); content and speaker, the other dimensions, stay the clip's;
  models without one get the explorer as it is, with the source, A/B and save;
* **original** plays the recording itself (its samples, at its own rate);
  **A/B** plays the recording, a short pause, then the current rendering;
* **save WAV** writes the current rendering atomically
  (:func:`emovae_utils.inversion.save_wav`) and shows where.

A weight change costs what a slider move costs: one decode and one render
(by the explorer's coalescing render worker).
"""
from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..dsp import AudioError, resample
from .adapter import emotion_sublatent_size, encode_clips
from .config import ExplorerConfig
from .emotion import OWN, EmotionMixer, with_emotion
from .rendering import prepare_audio, wav_bytes
from .source import SourceClip, clip_from_audio, wants_whole_clip
from .view import LatentExplorer, explorer_defaults

__all__ = ["OwnVoiceExplorer", "own_voice_explorer", "SOURCE"]

#: Start-point key of the source clip.
SOURCE = "source"
_FIELDS = {f.name for f in dataclasses.fields(ExplorerConfig)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(text).stem if "." in text else text).strip("-")[:40] or "clip"


class OwnVoiceExplorer:
    """The latent explorer started from one recording, with emotion weights, A/B against it and save.

    Parameters
    ----------
    model : nn.Module
        A VAE of the package; with ``emotion_dims`` it gets the emotion weights.
    source : path, index row, (y, sr), bytes or upload
        The clip to start from (:func:`~emovae_utils.explorer.source.read_audio`).
    X, index : optional
        The training clips and their index (:func:`~emovae_utils.data.load_features`,
        or :func:`~emovae_utils.data.load_sequences` for a sequence model): the
        explorer's start points and the emotions' mean latents.
    means : pandas.DataFrame or mapping, optional
        Each emotion's mean emotion latent (:func:`emovae_utils.conversion.emotion_means`);
        default: from the clips ``X`` the explorer encodes (the same means).
    save_dir : path, default "own_voice"
        Folder of the saved WAVs (the path box may name any file).
    **kwargs
        :class:`~emovae_utils.explorer.view.LatentExplorer` keywords and
        :class:`~emovae_utils.explorer.config.ExplorerConfig` fields; the
        model's explorer defaults (:func:`~emovae_utils.explorer.view.explorer_defaults`) come first.

    Attributes
    ----------
    explorer : LatentExplorer
    clip : SourceClip
        The source; ``z_source`` its posterior mean (D,).
    mixer : EmotionMixer or None
        None for a model without an emotion latent (then ``emotion_sliders`` is empty).
    emotion_sliders : dict of str to ipywidgets.FloatSlider
        One weight per name of ``mixer.names`` (``"own"`` first, at 1).
    widget : ipywidgets.VBox
        What to display: source, original player, emotion weights, A/B, save, then the explorer.
    original_audio, ab_audio, upload, save_path, save_button, saved, message
        The controls and outputs.
    """

    def __init__(self, model: nn.Module, source: Any, X: Any = None, index: Any = None, *, means: Any = None,
                 save_dir: str | Path = "own_voice", **kwargs: Any) -> None:
        options = {**explorer_defaults(model, X, index), **kwargs}
        config = ExplorerConfig.build(options.pop("config", None),
                                      **{k: options.pop(k) for k in list(options) if k in _FIELDS})
        self.model, self.save_dir, self._means = model, Path(save_dir), means
        self.k = emotion_sublatent_size(model)
        self.whole = wants_whole_clip(model)
        self.clip = clip_from_audio(source, model, config=config.preprocess)
        self._cond_label = self._length_label(self.clip)
        if self.whole:  # the source's length is the condition it is decoded at
            lengths = {self._cond_label: self.clip.length, **dict(config.conditions or {})}
            config = dataclasses.replace(config, conditions=lengths, condition=self._cond_label)
        self.explorer = LatentExplorer(model, X, index, config=config, **options)
        self.mixer: EmotionMixer | None = None
        self._build_widgets()
        self._set_clip(self.clip)

    # ------------------------------------------------------------ the source
    @staticmethod
    def _length_label(clip: SourceClip) -> str | None:
        return None if clip.length is None else f"source ({clip.length} frames)"

    def set_source(self, source: Any) -> None:
        """Start from another recording (path, index row, ``(y, sr)``, bytes or upload); weights back to own."""
        self._set_clip(clip_from_audio(source, self.model, config=self.explorer.config))

    def _set_clip(self, clip: SourceClip) -> None:
        ex, st = self.explorer, self.explorer.state
        if clip.length is not None:
            label = self._length_label(clip)
            rest = {k: v for k, v in st.conditions.items() if k != self._cond_label}
            st.set_conditions({label: clip.cond, **rest})
            ex.conditions = dict(st.conditions)
            st.condition, self._cond_label = label, label
            if ex.condition is not None:
                ex.condition.options = list(st.conditions)
        cond = None if clip.cond is None else clip.cond[None]
        mu = encode_clips(self.model, clip.features[None], cond, st.cond)[0][0]
        self.clip, self.z_source = clip, mu
        st.add_start(SOURCE, mu, f"source: {clip.name}")
        ex.dropdown.options = list(st.options)  # a new list: the widget sees the change
        self.mixer = self._mixer(mu) if self.k else None
        self._a_audio = prepare_audio(resample(clip.recording, clip.recording_sr, ex.sr), ex.sr,
                                      ex.loudness_dbfs, ex.fade_ms)  # the recording, levelled as B is
        self.original_audio.value = wav_bytes(clip.recording, clip.recording_sr, normalise=False)
        self.source_note.value = html.escape(f"source: {clip.name} · {clip.duration_s:.2f} s at "
                                             f"{clip.recording_sr} Hz · model input {clip.features.shape[1]} frames")
        self._reset_sliders()
        self.save_path.placeholder = str(self.default_path())
        ex.select(SOURCE)

    def _mixer(self, mu: np.ndarray) -> EmotionMixer | None:
        """The emotions' means (given, or the explorer's, first k dimensions) around the source's emotion latent."""
        means = self._means
        if means is None:
            means = {e: m[: self.k] for e, m in self.explorer.state.emotion_means.items()}
        if not len(means):
            self.message.value = ("<span class='emovae-note'>No emotion weights: the explorer has no emotion means "
                                  "(pass X and an index with an emotion column, or means=).</span>")
            return None
        return EmotionMixer(means, mu[: self.k])

    # ------------------------------------------------------------ emotion weights
    def weights(self) -> dict[str, float]:
        """The emotion weights the sliders show (name -> weight)."""
        return {name: float(s.value) for name, s in self.emotion_sliders.items()}

    def emotion_latent(self) -> np.ndarray:
        """The emotion latent (k,) of the current weights (the source's own without weights or a mixer)."""
        if self.mixer is None:
            return np.asarray(self.z_source[: self.k], np.float32)
        return self.mixer.latent(self.weights())

    def set_weights(self, weights: dict[str, float], sync: bool = True) -> None:
        """Set the emotion weights (missing names: 0) and render the point they give."""
        if self.mixer is None:
            raise ValueError(f"{type(self.model).__name__} has no emotion latent (model.emotion_dims), "
                             "or the explorer has no emotion means: no emotion weights")
        self.mixer.weights_vector(weights)  # checks the names and values
        self._silent = True
        try:
            for name, s in self.emotion_sliders.items():
                s.value = float(weights.get(name, 0.0))
        finally:
            self._silent = False
        self._apply(sync)

    def _apply(self, sync: bool = False) -> None:
        """The current point with the weights' emotion latent; content and speaker untouched."""
        ex = self.explorer
        z = with_emotion(ex.current_latent(), self.emotion_latent())
        ex.state.amount = 0.0  # the point now holds any emotion direction
        ex.set_latent(z, update=False)
        ex.request_render(sync=sync)
        self.save_path.placeholder = str(self.default_path())  # an empty path box saves there

    def _on_weight(self, _change: dict) -> None:
        if not self._silent:
            self._apply()

    def _reset_sliders(self) -> None:
        import ipywidgets as W

        names = self.mixer.names if self.mixer is not None else []
        for s in self.emotion_sliders.values():
            s.close()
        self._silent = True
        self.emotion_sliders = {
            n: W.FloatSlider(value=1.0 if n == OWN else 0.0, min=0.0, max=1.0, step=0.01, continuous_update=True,
                             description="own emotion" if n == OWN else n, readout_format=".2f",
                             style={"description_width": "90px"}, layout=W.Layout(width="330px"))
            for n in names}
        for s in self.emotion_sliders.values():
            s.add_class("emovae-emotion-weight")
            s.observe(self._on_weight, names="value")
        self._silent = False
        self.emotion_box.children = ([W.HTML("<b>Emotion</b> <span class='emovae-note'>weights of the source's own "
                                             "emotion and each emotion's mean (training clips); content and speaker "
                                             "stay the source's</span>"), *self.emotion_sliders.values()]
                                     if names else [])

    # ------------------------------------------------------------ listening and saving
    def current_audio(self) -> np.ndarray:
        """The current rendering's audio (levelled), once the pending renders are done."""
        ex = self.explorer
        ex.wait_idle()
        if ex.audio_samples is not None:
            return ex.audio_samples
        from ..inversion import log_mel_to_audio  # audio=False: invert the current point now

        y = log_mel_to_audio(ex.decode(ex.current_latent()), ex.config, method=ex.method)
        return prepare_audio(y, ex.sr, ex.loudness_dbfs, ex.fade_ms)

    def ab_bytes(self, gap_s: float = 0.3) -> bytes:
        """WAV of A (the recording itself, at the explorer's rate), ``gap_s`` of silence, then B (the current point)."""
        sr = self.explorer.sr
        y = np.concatenate([self._a_audio, np.zeros(int(gap_s * sr), np.float32), self.current_audio()])
        return wav_bytes(y, sr, normalise=False)

    def play_ab(self) -> None:
        """Put A-then-B in the A/B player (shown from now on)."""
        data = self.ab_bytes()
        self.ab_row.layout.display = None
        if self.ab_audio.value == data:
            self.ab_audio.value = b""  # same bytes: a new source, so that it plays again
        self.ab_audio.value = data

    def default_path(self) -> Path:
        """``save_dir / <source>-<weights>.wav`` (e.g. ``own_voice/take1-angry70-own30.wav``)."""
        w = self.weights() if self.mixer is not None else {}
        mix = "-".join(f"{_slug(n)}{round(100 * v)}" for n, v in sorted(w.items(), key=lambda kv: -kv[1]) if v > 0)
        return self.save_dir / f"{_slug(self.clip.name)}{'-' + mix if mix else ''}.wav"

    def save_wav(self, path: str | Path | None = None) -> Path:
        """Write the current rendering to ``path`` (default: the path box, else :meth:`default_path`), atomically.

        The saved file's absolute path is shown below the button (``saved``).
        """
        from .. import inversion

        path = Path(path or self.save_path.value or self.default_path()).expanduser()
        out = inversion.save_wav(path, self.current_audio(), sr=self.explorer.sr, normalise=False)
        self.saved.value = f"saved: <code>{html.escape(str(out.resolve()))}</code>"
        return out

    # ------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        import ipywidgets as W

        self._silent = False
        self.emotion_sliders: dict = {}
        self.source_note, self.message, self.saved = W.HTML(), W.HTML(), W.HTML()
        self.upload = W.FileUpload(accept=".wav,.flac", multiple=False, description="upload a clip")
        self.original_audio = W.Audio(format="wav", autoplay=False, loop=False, controls=True)
        self.original_audio.add_class("emovae-original-audio")
        self.ab_audio = W.Audio(format="wav", autoplay=True, loop=False, controls=True)
        self.ab_audio.add_class("emovae-own-ab-audio")
        self.ab_button = W.Button(description="A/B original", icon="play", layout=W.Layout(width="auto"),
                                  tooltip="play the original recording, then the current point")
        self.save_path = W.Text(description="path", placeholder="", style={"description_width": "40px"},
                                layout=W.Layout(width="420px"))
        self.save_button = W.Button(description="save WAV", icon="save", layout=W.Layout(width="auto"),
                                    tooltip="write the current rendering to the path")
        self.emotion_box = W.VBox()
        self.ab_row = W.HBox([W.HTML("A/B"), self.ab_audio], layout=W.Layout(display="none"))
        self.upload.observe(self._on_upload, names="value")
        self.ab_button.on_click(lambda _b: self._guard(self.play_ab))
        self.save_button.on_click(lambda _b: self._guard(self.save_wav))
        self.widget = W.VBox([
            W.HBox([self.upload, self.source_note]),
            W.HBox([W.HTML("original", layout=W.Layout(width="60px")), self.original_audio]),
            self.emotion_box, W.HBox([self.ab_button, self.save_path, self.save_button]),
            self.ab_row, self.saved, self.message, self.explorer.widget])
        self.widget.add_class("emovae-own-voice")
        self.widget.explorer = self.explorer
        self.widget.own_voice = self

    def _guard(self, fn) -> None:
        """Run ``fn``; a problem (an unusable upload, a path that cannot be written) is shown, not raised."""
        try:
            fn()
            self.message.value = ""
        except (AudioError, OSError, ValueError, KeyError) as exc:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"

    def _on_upload(self, change: dict) -> None:
        if change["new"]:
            self._guard(lambda: self.set_source(change["new"]))

    def close(self) -> None:
        """Stop the explorer's worker and close the widgets."""
        self.explorer.close()
        self.widget.close()


def own_voice_explorer(model: nn.Module, source: Any, X: Any = None, index: Any = None, **kwargs: Any):
    """The explorer started from a recording: emotion weights, A/B against the original, save WAV.

    Parameters
    ----------
    model, source, X, index, **kwargs
        See :class:`OwnVoiceExplorer`.

    Returns
    -------
    ipywidgets.VBox
        Display it; ``widget.own_voice`` is the :class:`OwnVoiceExplorer`.

    Examples
    --------
    An (untrained) emotion-supervised model, a buzz at 22050 Hz as the recording:

    >>> import numpy as np, pandas as pd
    >>> from emovae_utils.models import build
    >>> t = np.arange(22050) / 22050
    >>> y = (0.3 * np.sign(np.sin(2 * np.pi * 150 * t))).astype(np.float32)
    >>> X = np.random.default_rng(0).normal(-40, 10, (4, 80, 128)).astype("float32")
    >>> index = pd.DataFrame({"emotion": ["sad", "sad", "angry", "angry"]})
    >>> w = own_voice_explorer(build("supervised_vae", emotion_dims=2), (y, 22050), X, index, audio=False)
    >>> own = w.own_voice
    >>> own.mixer.names
    ['own', 'sad', 'angry']
    >>> before = own.explorer.z.copy()
    >>> own.set_weights({"angry": 1.0})
    >>> bool(np.array_equal(own.explorer.z[2:], before[2:])), bool(np.array_equal(own.explorer.z[:2], before[:2]))
    (True, False)
    >>> own.close()
    """
    return OwnVoiceExplorer(model, source, X, index, **kwargs).widget
