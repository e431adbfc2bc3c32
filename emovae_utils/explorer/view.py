"""The explorer's view: ipywidgets controls over an :class:`~emovae_utils.explorer.state.ExplorerState`.

:class:`LatentExplorer` builds the controls (sliders ordered by use, start
point, condition picker, emotion direction, blend pad, A/B, autoplay), mirrors
the state in them and turns their changes into state changes and render
requests (:class:`~emovae_utils.explorer.worker.RenderWorker`); the images and
audio come from :class:`~emovae_utils.explorer.rendering.PointRenderer`.
:func:`latent_explorer` and :func:`explorer_for` are the one-call entry points.
"""
from __future__ import annotations

import functools
import html
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..generate import latent_dim_of, model_device
from ..models.base import condition_tensor
from ..metrics.latents import dimension_usage
from .adapter import cond_value, decode_point, emotion_sublatent_size, encode_clips, repeat_cond
from .config import ExplorerConfig
from .pad import pad_class, resource_text
from .rendering import PointRenderer, SpectrogramRenderer, wav_bytes
from .state import CORNERS, ORIGIN, ExplorerState, unusable_clips
from .static import Debounced, explorer_box_class, snapshot_html
from .worker import RenderWorker, limited_threads

__all__ = ["LatentExplorer", "latent_explorer", "explorer_for", "explorer_defaults"]

def _np32(a: Any) -> np.ndarray | None:
    if a is None:
        return None
    a = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
    return a.astype(np.float32, copy=False)


class LatentExplorer:
    """Sliders over the latent space of a VAE, with live spectrogram and audio.

    Parameters
    ----------
    model : nn.Module
        VAE with ``encode(x) -> (mu, logvar)``, ``decode(z)`` and (ideally)
        ``latent_dim``; ``encode(x, cond)`` / ``decode(z, cond)`` with a
        condition (``conditions``, ``cond``), called without one otherwise.
        A model whose ``decode`` refuses ``cond=None`` (ValueError or
        TypeError, e.g. ``speaker_vae``) needs ``conditions``.
    X : np.ndarray, optional
        Spectrograms (N, n_mels, T) of the clips: encoded to the posteriors
        (for the start points and the KL per dimension); a clip's own rendering
        (A/B) inverts its row of ``X``. Also fixes the colour range of the
        image (1st-99th percentile).
    index : pandas.DataFrame, optional
        One row per clip (``data.ravdess_index`` columns); gives the clip labels
        and, with an ``emotion`` column, the emotion means (start points,
        emotion direction, pad corners).
    mu, logvar : array-like, optional
        Posterior means and log-variances (N, D), instead of encoding ``X``.
    cond : array-like (N, ...), optional
        One condition per clip of ``X``, for encoding them
        (``model.encode(X, cond)``). Without it the clips are encoded
        without a condition, or, if the model refuses that, with the chosen
        condition of ``conditions``.
    config : ExplorerConfig, optional
        The settings (slider range, audio, inversion, threading, conditions,
        ``dims``, ...); see :class:`~emovae_utils.explorer.config.ExplorerConfig`.
    **options
        Fields of :class:`~emovae_utils.explorer.config.ExplorerConfig`, replacing
        those of ``config`` (e.g. ``audio=False``, ``conditions={label: cond}``).
        For a model with an emotion sub-latent (``supervised_vae``) its
        dimensions ``z0 ..`` come first, labelled "(emotion)", never folded away.

    Attributes
    ----------
    widget : ipywidgets.VBox
        What to display (a saved copy shows ``snapshot`` instead of the controls).
    state : ExplorerState
        The point and the controls' values, without widgets.
    settings : ExplorerConfig
    sliders : list of ipywidgets.FloatSlider
        One per dimension of ``dims``, in ``dims`` order: ``sliders[k]`` for
        ``z_{dims[k]}`` (with all dimensions, ``sliders[i]`` for ``z_i``).
    dims : list of int
        Dimensions with a slider, ascending; ``slider_of[d]`` is d's slider.
    slider_order : list of int
        The order in which they are displayed (emotion sub-latent, then by use).
    emotion_dims : list of int
        The model's emotion sub-latent (empty for models without one).
    order : list of int
        Dimensions, most used first.
    conditions : dict of str to np.ndarray
        The condition picker's entries (empty without conditions);
        ``condition`` is its drop-down (None without conditions).
    usage : pandas.DataFrame
        :func:`~emovae_utils.metrics.latents.dimension_usage` of the clips (None without clips),
        those with NaN or infinite values (``unusable``, their indices) left out.
    dropdown, direction, amount, pad, pad_corners, autoplay, image, audio, ab_audio, status
        The controls and outputs (``audio`` is not shown with ``audio=False``; ``ab_row``,
        the A/B player, from the first A/B on).
    snapshot : ipywidgets.HTML
        What a saved copy of the notebook shows (:func:`~.static.snapshot_html`): the
        image and audio shown last, refreshed once the renders pause.
    z : np.ndarray (D,)
        Latent of the last render; ``spectrogram``, ``png_bytes``, ``wav_bytes``
        are its outputs; ``n_updates`` counts renders.
    """

    def __init__(self, model: nn.Module, X: np.ndarray | None = None, index: Any = None,
                 mu: np.ndarray | torch.Tensor | None = None, *, logvar: np.ndarray | torch.Tensor | None = None,
                 cond: Any = None, config: ExplorerConfig | None = None, **options: Any) -> None:
        from ..dsp import PreprocessConfig

        cfg = self.settings = ExplorerConfig.build(config, **options)
        self.model = model
        self.config = cfg.preprocess or PreprocessConfig()
        self.sr = int(cfg.sr or self.config.sr)
        self.latent_dim = latent_dim_of(model)
        self.render_audio, self.method, self.threaded = bool(cfg.audio), cfg.method, bool(cfg.threaded)
        self.loudness_dbfs, self.fade_ms = float(cfg.loudness_dbfs), float(cfg.fade_ms)
        self.value_range = cfg.value_range
        self.X = self._checked_X(X)
        self.conditions: dict[str, np.ndarray] = dict(cfg.conditions or {})
        label0 = None if not self.conditions else (str(cfg.condition) if cfg.condition is not None
                                                   else next(iter(self.conditions)))
        self.cond = self._checked_cond(cond)
        S0 = self._first_decoding(label0)
        self._check_X_fits(S0)
        self._posteriors(mu, logvar, label0, index)
        self.state = ExplorerState(self.latent_dim, self.mu, index, dims=cfg.dims, value_range=self.value_range,
                                   conditions=self.conditions, condition=label0, unusable=self.unusable)
        st = self.state
        self.starts, self.start_labels, self.emotion_means, self.options = (
            st.starts, st.start_labels, st.emotion_means, st.options)
        self.clim = self._colour_range(cfg.clim, S0)
        self._painter = PointRenderer(self.clim, self.config, self.sr, self.method, self.loudness_dbfs,
                                      self.fade_ms, audio=self.render_audio)
        self.renderer = self._renderer_for(S0.shape)
        self.dims = st.dims
        self.emotion_dims = list(range(min(max(emotion_sublatent_size(model), 0), self.latent_dim)))
        emotion = [d for d in self.emotion_dims if d in self.dims]
        rest = [d for d in self.order if d in self.dims and d not in self.emotion_dims]
        self.slider_order = emotion + rest
        slider_box = self._build_sliders(emotion, rest, cfg.step, cfg.show_inactive)
        self._build_controls(cfg.autoplay)
        self._build_layout(slider_box)

        self.z = np.zeros(self.latent_dim, np.float32)
        self.spectrogram: np.ndarray | None = None
        self.png_bytes = self.wav_bytes = self.first_png = b""
        self.audio_samples: np.ndarray | None = None
        self.n_updates = 0
        self.render_ms: list[float] = []
        self._silent = False
        self._start_audio: dict[str, np.ndarray] = {}
        self._render_lock = threading.RLock()
        self._worker = RenderWorker(lambda: self._safe(self.update, reraise=False))
        self._snapshot_later = Debounced(self._refresh_snapshot_when_free)
        self._connect()
        self.update()
        self.first_png = self.png_bytes
        self.refresh_snapshot()

    # ------------------------------------------------------------ setting up
    def _checked_X(self, X: Any) -> np.ndarray | None:
        """``X`` as float32 (N, n_mels, n_frames), checked before any model call."""
        if X is None:
            return None
        X = np.asarray(X.detach().cpu().numpy() if torch.is_tensor(X) else X)
        if X.ndim != 3 or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise ValueError(f"X must be spectrograms (N, n_mels, n_frames) = (N, {self.config.n_mels}, "
                             f"{self.config.n_frames}) (N clips, as data.load_features gives), got {X.dtype} "
                             f"of shape {X.shape}")
        return X.astype(np.float32, copy=False)

    def _check_X_fits(self, S0: np.ndarray) -> None:
        """X's bands (and, without conditions, which may set the width, its frames) match the decoder's output."""
        if self.X is None:
            return
        want = S0.shape if not self.conditions else (S0.shape[0], self.X.shape[2])
        if self.X.shape[1:] != tuple(want):
            raise ValueError(f"X must be (N, n_mels, n_frames) = (N, {want[0]}, {want[1]}), the shape of "
                             f"{type(self.model).__name__}'s decodings, got {self.X.shape}")

    def _checked_cond(self, cond: Any) -> np.ndarray | None:
        """The clips' conditions ``cond`` (N, ...), checked against ``X``."""
        cond = None if cond is None else cond_value(cond, "cond")
        if cond is not None:
            if self.X is None:
                raise ValueError("cond= holds one condition per clip of X; X is missing")
            if cond.ndim == 0 or len(cond) != len(self.X):
                raise ValueError(f"cond must hold one condition per clip, ({len(self.X)}, ...), "
                                 f"got shape {cond.shape}")
        return cond

    def _first_decoding(self, label: str | None) -> np.ndarray:
        """The origin's decoding: checks that decode works as called (with or without a condition)."""
        origin = np.zeros(self.latent_dim, np.float32)
        try:
            S0 = decode_point(self.model, origin, None if label is None else self.conditions[label])
        except (ValueError, TypeError) as exc:
            name = type(self.model).__name__
            if self.conditions:
                raise ValueError(f"{name}.decode(z, cond) failed with condition {label!r}: {exc}") from exc
            raise ValueError(
                f"{name}.decode needs a condition (cond) and none was given: pass conditions={{label: cond}}, "
                f"one cond per choice (e.g. a speaker code per actor), or build the explorer with "
                f"emovae_utils.widgets.explorer_for(model, X, index), which picks them. The model said: "
                f"{type(exc).__name__}: {exc}") from exc
        if S0.ndim != 2:
            raise ValueError(f"decode must give (N, n_mels, T) spectrograms, got {(1,) + S0.shape}")
        return S0

    def _posteriors(self, mu: Any, logvar: Any, label: str | None, index: Any) -> None:
        """``mu``, ``logvar`` (given, or of the clips ``X``), ``index``, and the dimensions' use and order."""
        mu, logvar = _np32(mu), _np32(logvar)
        if mu is None and self.X is not None and len(self.X):
            fallback = self.conditions[label] if label is not None else None
            mu, logvar = encode_clips(self.model, self.X, self.cond, fallback)
        if mu is not None and (mu.ndim != 2 or mu.shape[1] != self.latent_dim):
            raise ValueError(f"mu must be (N, {self.latent_dim}), got shape {mu.shape}")
        if logvar is not None and mu is not None and logvar.shape != mu.shape:
            raise ValueError(f"logvar must have the shape of mu {mu.shape}, got {logvar.shape}")
        self.mu, self.logvar = mu, logvar
        self.index = index
        if index is not None and mu is not None and len(index) != len(mu):
            raise ValueError(f"index has {len(index)} rows but mu has {len(mu)}")
        self.kl_threshold = float(self.settings.kl_threshold)
        self.unusable = self._unusable_clips(mu, logvar, index)
        good = None if mu is None else np.setdiff1d(np.arange(len(mu)), self.unusable)
        self.usage = (dimension_usage(mu[good], None if logvar is None else logvar[good], self.kl_threshold)
                      if good is not None and len(good) else None)
        if self.usage is not None:
            self.order = [int(i) for i in self.usage.sort_values("rank").index]
            self.active = self.usage["active"].to_numpy(bool)
        else:
            self.order = list(range(self.latent_dim))
            self.active = np.ones(self.latent_dim, bool)

    def _unusable_clips(self, mu: np.ndarray | None, logvar: np.ndarray | None, index: Any) -> np.ndarray:
        """Clips with NaN or infinite values in ``X``, ``mu`` or ``logvar``: one warning that names them."""
        bad = unusable_clips(self.X, mu, logvar)
        if len(bad):
            from ..data import clip_label

            names = [f"clip {i} ({clip_label(index.iloc[i], i)})" if index is not None else f"clip {i}"
                     for i in bad[:10]]
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            warnings.warn(f"{len(bad)} of {len(mu)} clips have NaN or infinite values (in X or their posterior) "
                          f"and are left out of the statistics (dimension use, emotion means, colour range); "
                          f"they cannot be start points: {', '.join(names)}{more}", RuntimeWarning, stacklevel=4)
        return bad

    def _colour_range(self, clim: tuple[float, float] | None, S0: np.ndarray) -> tuple[float, float]:
        """``clim``, else the 1st-99th percentiles of ``X``'s usable clips (or of the origin's decoding)."""
        if clim is None:
            X = self.X if self.X is None or not len(self.unusable) else np.delete(self.X, self.unusable, axis=0)
            if X is not None and len(X):
                lo, hi = np.percentile(X, [1, 99])
            else:
                lo, hi = np.percentile(S0, [1, 99])
            clim = (float(lo), float(hi))
        return (float(clim[0]), float(clim[1]))

    # ------------------------------------------------------------ widgets
    def _slider_row(self, i: int, step: float, wide: bool):
        """Slider of dimension ``i`` with its KL beside it (greyed when inactive)."""
        import ipywidgets as W

        lo, hi = self.value_range
        s = W.FloatSlider(value=0.0, min=lo, max=hi, step=step,
                          description=f"z{i} (emotion)" if i in self.emotion_dims else f"z{i}",
                          continuous_update=True, readout_format=".2f",
                          style={"description_width": "96px" if wide else "32px"},
                          layout=W.Layout(width="494px" if wide else "430px"))
        s.add_class("emovae-slider")
        if i in self.emotion_dims:
            s.add_class("emovae-emotion-slider")
        if self.usage is not None and not np.isnan(self.usage.loc[i, "kl"]):
            kl = float(self.usage.loc[i, "kl"])
            text = f"{kl:.2f} nats" + ("" if self.active[i] else " · inactive")
        else:
            text = ""
        label = W.HTML(text)
        label.add_class("emovae-kl")
        row = W.HBox([s, label])
        if not self.active[i]:
            s.style.handle_color = "#bbbbbb"
            row.add_class("emovae-inactive")
            s.add_class("emovae-inactive-slider")
        return s, row

    def _slider_note(self, emotion: list[int], rest: list[int]) -> str:
        kl_known = self.usage is not None and not self.usage["kl"].isna().all()
        note = ("Sliders ordered by use: mean KL from the prior over the clips (nats), beside each."
                if kl_known else "Sliders ordered by the spread of the clips' posterior means.")
        if emotion:
            span = f"z0–z{len(self.emotion_dims) - 1}" if len(self.emotion_dims) > 1 else "z0"
            note = (f"First the emotion sub-latent ({span}, the dimensions trained to carry the emotion)"
                    + ("; then the others. " + note if rest else "."))
        if len(self.dims) < self.latent_dim:
            note += (f" {len(self.dims)} of {self.latent_dim} dimensions have a slider; the others keep the start "
                     "point's values.")
        return note

    def _build_sliders(self, emotion: list[int], rest: list[int], step: float, show_inactive: bool) -> list:
        """The sliders (``sliders``, ``slider_of``) and the column that shows them, inactive ones folded away."""
        import ipywidgets as W

        self.sliders, self.slider_of, rows = [], {}, {}
        for i in self.dims:
            s, rows[i] = self._slider_row(i, step, wide=bool(emotion))
            self.sliders.append(s)
            self.slider_of[i] = s
        # the emotion sub-latent is shown even where inactive; the others as before
        inactive_rows = [rows[i] for i in rest if not self.active[i]]
        head = W.HTML("<span class='emovae-note'>" + html.escape(self._slider_note(emotion, rest)) + "</span>")
        box = [head, *[rows[i] for i in emotion], *[rows[i] for i in rest if self.active[i]]]
        self.inactive_box = None
        if inactive_rows:
            inner = W.VBox(inactive_rows)
            self.inactive_box = W.Accordion(children=[inner], selected_index=0 if show_inactive else None)
            n = len(inactive_rows)
            self.inactive_box.set_title(0, f"{n} inactive dimension{'s' if n > 1 else ''} "
                                           f"(KL < {self.kl_threshold:g} nats): moving them changes almost nothing")
            self.inactive_box.add_class("emovae-inactive-dims")
            box.append(self.inactive_box)
        return box

    def _build_controls(self, autoplay: bool) -> None:
        """Start point, condition, A/B, autoplay, emotion direction, pad, image, audio and status."""
        import ipywidgets as W

        st = self.state
        self.condition = None
        if self.conditions:
            self.condition = W.Dropdown(options=list(self.conditions), value=st.condition, description="condition",
                                        style={"description_width": "70px"}, layout=W.Layout(width="430px"))
            self.condition.add_class("emovae-condition")
        self.dropdown = W.Dropdown(options=self.options, value=ORIGIN, description="start from",
                                   style={"description_width": "70px"}, layout=W.Layout(width="430px"))
        self.dropdown.add_class("emovae-start")
        self.back_button = W.Button(description="back to start", icon="undo",
                                    tooltip="set the sliders to the chosen start point again",
                                    layout=W.Layout(width="auto"))
        self.ab_button = W.Button(description="A/B", icon="play",
                                  tooltip="play the start point's own rendering, then the current point",
                                  layout=W.Layout(width="auto"))
        self.ab_button.add_class("emovae-ab")
        self.autoplay = W.Checkbox(value=bool(autoplay), description="autoplay", indent=False,
                                   disabled=not self.render_audio, layout=W.Layout(width="auto"))
        self.autoplay.add_class("emovae-autoplay")
        emotions = list(self.emotion_means)
        self.direction = W.Dropdown(options=emotions or [("(no emotion labels)", None)], value=st.direction,
                                    description="toward", disabled=not emotions,
                                    style={"description_width": "50px"}, layout=W.Layout(width="200px"))
        self.direction.add_class("emovae-direction")
        self.amount = W.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.01, description="amount",
                                    continuous_update=True, readout_format=".2f", disabled=not emotions,
                                    style={"description_width": "56px"}, layout=W.Layout(width="320px"))
        self.amount.add_class("emovae-amount")
        self.pad_corners = [
            W.Dropdown(options=[("(none)", "")] + [(lab, k) for lab, k in self.options if k not in st.unusable],
                       value=key, description=name,
                       style={"description_width": "90px"}, layout=W.Layout(width="330px"))
            for key, name in zip(st.corners, CORNERS)
        ]
        self.pad = pad_class()(labels=st.corner_labels())
        self.pad.add_class("emovae-pad-widget")
        self.image = W.Image(format="png", layout=W.Layout(width=f"{self.renderer.size[0]}px"))
        self.image.add_class("emovae-spectrogram")
        self.audio = W.Audio(format="wav", autoplay=bool(autoplay), loop=False, controls=True)
        self.audio.add_class("emovae-audio")
        self.ab_audio = W.Audio(format="wav", autoplay=True, loop=False, controls=True)
        self.ab_audio.add_class("emovae-ab-audio")
        self.status = W.HTML()
        self.status.add_class("emovae-status")

    def _build_layout(self, slider_box: list) -> None:
        """``widget``: start point and sliders beside image and audio; emotion direction and pad below."""
        import ipywidgets as W

        def note(text: str):
            return W.HTML(f"<span class='emovae-note'>{text}</span>", layout=W.Layout(width="60px"))

        direction_box = W.VBox([
            W.HTML("<b>Emotion direction</b> <span class='emovae-note'>toward an emotion's mean latent "
                   "(amount 1: the mean)</span>"),
            W.HBox([self.direction, self.amount]),
        ])
        pad_box = W.VBox([
            W.HTML("<b>Blend pad</b> <span class='emovae-note'>drag to blend the four corners "
                   "(it sets the sliders)</span>"),
            W.HBox([self.pad, W.VBox(self.pad_corners)]),
        ])
        left = W.VBox([W.HBox([self.dropdown]),
                       *([W.HBox([self.condition])] if self.condition is not None else []),
                       W.HBox([self.back_button, self.ab_button, self.autoplay]),
                       *slider_box])
        # no empty players: the current point's only with audio, the A/B one once A/B was pressed
        self.ab_row = W.HBox([note("A/B"), self.ab_audio], layout=W.Layout(display="none"))
        current = [W.HBox([note("current"), self.audio])] if self.render_audio else []
        right = W.VBox([self.image, *current, self.ab_row, self.status])
        style = W.HTML("<style>\n" + resource_text("explorer.css") + "</style>")
        # what a saved copy shows instead of the dead controls (explorer.css: when disconnected)
        self.snapshot = W.HTML()
        self.snapshot.add_class("emovae-snapshot")
        self.widget = explorer_box_class()([style, W.HBox([left, right]),
                                             W.HBox([direction_box, pad_box],
                                                    layout=W.Layout(justify_content="space-between")),
                                             self.snapshot])
        self.widget.add_class("emovae-latent-explorer")
        self.widget.explorer = self

    def _connect(self) -> None:
        """Observers: each control changes the state, then asks for a render."""
        for d, s in zip(self.dims, self.sliders):
            s.observe(functools.partial(self._on_slider, d), names="value")
        self.dropdown.observe(self._on_dropdown, names="value")
        self.direction.observe(self._on_direction, names="value")
        self.amount.observe(self._on_amount, names="value")
        self.pad.observe(self._on_pad, names="position")
        for j, d in enumerate(self.pad_corners):
            d.observe(functools.partial(self._on_corner, j), names="value")
        self.autoplay.observe(self._on_autoplay, names="value")
        if self.condition is not None:
            self.condition.observe(self._on_condition, names="value")
        self.back_button.on_click(lambda _b: self.back_to_start())
        self.ab_button.on_click(lambda _b: self.play_ab())

    def _show(self) -> None:
        """Mirror the state in the controls; their observers ignore these changes."""
        st = self.state
        self._silent = True
        try:
            shown = st.slider_values()  # the rendered point, also along the emotion direction
            for d, s in zip(self.dims, self.sliders):
                if s.value != shown[d]:
                    s.value = float(shown[d])
            if self.amount.value != st.amount:
                self.amount.value = st.amount
            if self.direction.value != st.direction:
                self.direction.value = st.direction
            if list(self.pad.position) != st.pad_position:
                self.pad.position = list(st.pad_position)
            if self.dropdown.value != st.start:
                self.dropdown.value = st.start
            if self.condition is not None and self.condition.value != st.condition:
                self.condition.value = st.condition
        finally:
            self._silent = False

    # ------------------------------------------------------------------ logic
    def get_latent(self) -> np.ndarray:
        """Slider values as a (D,) float32 vector (before the emotion direction).

        Dimensions without a slider (``dims``) hold the start point's values.
        """
        return self.state.get_latent()

    def current_latent(self) -> np.ndarray:
        """The latent that is rendered: ``(1 - a) * sliders + a * mean[emotion]``."""
        return self.state.current_latent()

    @property
    def condition_label(self) -> str | None:
        """Label of the chosen condition (None without conditions)."""
        return self.state.condition

    def current_cond(self, n: int = 1) -> torch.Tensor | None:
        """The chosen condition repeated to ``n`` rows, as passed to ``decode`` (None without conditions)."""
        c = self.state.cond
        return None if c is None else condition_tensor(repeat_cond(c, n), model_device(self.model))

    def decode(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """Decode latents (N, D) or (D,) with the chosen condition: (N, n_mels, T) or (n_mels, T) float32."""
        return decode_point(self.model, z, self.state.cond)

    def _renderer_for(self, shape: tuple[int, ...]) -> SpectrogramRenderer:
        return self._painter.renderer_for(shape)

    def set_condition(self, label: str, sync: bool = True) -> None:
        """Choose the condition ``label`` (as the picker does) and render."""
        self.state.set_condition(label)
        self._show()
        self._painter.reset_phase()  # a jump: start the phase afresh
        self.request_render(sync=sync)

    def set_latent(self, z: Sequence[float] | np.ndarray, update: bool = True) -> None:
        """Set all sliders at once (values outside the range are clamped); render once if ``update``."""
        self.state.set_latent(z)
        self._show()
        if update:
            self.update()

    def select(self, key: str) -> None:
        """Start from a drop-down entry (``"origin"``, ``"mean:<emotion>"``, ``"clip:<i>"``)."""
        self.state.select(key)
        self._show()
        self._painter.reset_phase()
        self.request_render(sync=True)

    def back_to_start(self, sync: bool = False) -> None:
        """Set the sliders to the chosen start point again (emotion amount back to 0)."""
        self.state.back_to_start()
        self._show()
        self._painter.reset_phase()  # a jump: start the phase afresh (same point, same audio)
        self.request_render(sync=sync)

    def reset(self) -> None:
        """Back to the origin (all sliders 0)."""
        self.select(ORIGIN)

    def set_direction(self, emotion: str, amount: float, sync: bool = True) -> None:
        """Move toward ``emotion``'s mean latent by ``amount`` (0..1) and render."""
        self.state.set_direction(emotion, amount)
        self._show()
        self.request_render(sync=sync)

    def pad_latent(self, x: float, y: float) -> np.ndarray:
        """The pad's blend at (x, y): bilinear weights of the corners' latents."""
        return self.state.pad_latent(x, y)

    def set_pad(self, x: float, y: float, sync: bool = True) -> None:
        """Move the pad to (x, y): the sliders take the blend of the corners; render."""
        self.state.set_pad(x, y)
        self._show()
        self.request_render(sync=sync)

    def start_audio(self, key: str | None = None) -> np.ndarray:
        """The start point's own rendering (levelled): a clip's input spectrogram, else its decoding."""
        key = key or self.state.start
        own = key.startswith("clip:") and self.X is not None
        cache = key if own else f"{key}|{self.condition_label}"  # a decoding depends on the condition
        if cache not in self._start_audio:
            if own:
                S = self.X[int(key.split(":", 1)[1])]
            else:
                with self._render_lock:
                    S = self.decode(self.starts[key])
            with limited_threads(1):
                self._start_audio[cache] = self._painter.audio_of(S)
        return self._start_audio[cache]

    def ab_bytes(self, gap_s: float = 0.3) -> bytes:
        """WAV of A (the start's own rendering), ``gap_s`` of silence, then B (the current point)."""
        a = self.start_audio()
        b = self.audio_samples
        if b is None:  # audio=False: render the current point's audio now
            with self._render_lock:
                S = self.decode(self.current_latent())
            with limited_threads(1):
                b = self._painter.audio_of(S)
        y = np.concatenate([a, np.zeros(int(gap_s * self.sr), np.float32), b])
        return wav_bytes(y, self.sr, normalise=False)

    def play_ab(self) -> None:
        """Put A-then-B in the A/B player (shown from now on), which plays it once."""
        data = self.ab_bytes()
        self.ab_row.layout.display = None
        if self.ab_audio.value == data:
            self.ab_audio.value = b""  # same bytes: force a new source so that it plays again
        self.ab_audio.value = data

    # ------------------------------------------------------------ rendering
    def _render(self, z: np.ndarray) -> None:
        t0 = time.perf_counter()
        S = self.decode(z)
        out = self._painter.render(S)
        self.renderer = out.renderer
        if out.audio is not None:
            self.audio_samples = out.audio
        self.z, self.spectrogram, self.png_bytes = z, S, out.png
        # image and audio of the same point go out back to back
        self.image.value = out.png
        if out.wav is not None:
            self.wav_bytes = out.wav
            self.audio.value = out.wav
        self.n_updates += 1
        ms = 1000 * (time.perf_counter() - t0)
        self.render_ms.append(ms)
        first = ("<br><i>Move a control to explore. This needs a live kernel: in a saved copy of the "
                 "notebook the controls do nothing.</i>") if self.n_updates == 1 else ""
        self.status.value = (f"<small>render {self.n_updates} ({ms:.0f} ms){html.escape(self.state.status_note())}"
                             "<br>" + html.escape("z = [" + ", ".join(f"{v:+.2f}" for v in z) + "]") + first
                             + "</small>")
        self._snapshot_later.touch()

    # ------------------------------------------------------------ the saved snapshot
    def refresh_snapshot(self) -> None:
        """Put the current image and audio into the snapshot that a saved copy of the notebook shows."""
        self.snapshot.value = snapshot_html(self.png_bytes, self.wav_bytes or None)

    def _refresh_snapshot_when_free(self) -> None:
        with self._render_lock:
            self.refresh_snapshot()

    def update(self) -> None:
        """Render the current point now, in this thread (image, audio and status), on one core."""
        with self._render_lock, limited_threads(1):
            self._render(self.current_latent())

    def request_render(self, sync: bool = False) -> None:
        """Ask for a render of the current state.

        Threaded (the default): wakes the worker, which renders the latest
        state once it is free; requests that arrive meanwhile are merged.
        ``sync=True`` or ``threaded=False`` render now, in this thread.
        """
        if sync or not self.threaded:
            self._safe(self.update)
            return
        self._worker.request()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every requested render is done; False on timeout."""
        return self._worker.wait_idle(timeout)

    def close(self) -> None:
        """Stop the worker and close the widgets."""
        self._worker.close()
        self._snapshot_later.cancel()
        _close_tree(self.widget)

    def _safe(self, fn, reraise: bool = True) -> None:
        try:
            fn()
        except Exception as exc:  # shown in the widget; a callback error is otherwise hidden
            self.status.value = (f"<span style='color:#b00'>update failed: "
                                 f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>")
            if reraise:
                raise

    # -------------------------------------------------------------- callbacks
    def _on_slider(self, dim: int, change: dict) -> None:
        if self._silent:
            return
        if abs(change["new"] - self.state.slider_values()[dim]) <= 0.5 * self.settings.step + 1e-9:
            return  # the browser's slider rounding the value the kernel showed to its step: not a move
        along = self.state.amount > 0
        self.state.set_value(dim, change["new"])
        if along:  # the rendered point is now the one moved from: amount 0
            self._show()
        self.request_render()

    def _on_dropdown(self, change: dict) -> None:
        if self._silent or change["new"] is None:
            return
        problem = self.state.start_problem(change["new"])
        if problem:  # a clip with NaN values: say so, stay on the previous start
            self._show()
            self.status.value = f"<span style='color:#b00'>{html.escape(problem)}</span>"
            return
        self.state.start = change["new"]
        self.back_to_start()

    def _on_direction(self, change: dict) -> None:
        if self._silent:
            return
        self.state.direction = change["new"]
        self._show()  # the sliders show the rendered point
        self.request_render()

    def _on_amount(self, change: dict) -> None:
        if self._silent:
            return
        self.state.amount = float(change["new"])
        self._show()  # the sliders show the rendered point
        self.request_render()

    def _on_pad(self, change: dict) -> None:
        if self._silent:
            return
        x, y = (list(change["new"]) + [0.5, 0.5])[:2]
        self.state.set_pad(x, y)
        self._show()
        self.request_render()

    def _on_corner(self, j: int, change: dict) -> None:
        self.state.set_corner(j, change["new"])
        self.pad.labels = self.state.corner_labels()

    def _on_condition(self, change: dict) -> None:
        if self._silent or change["new"] is None:
            return
        self.state.set_condition(change["new"])
        self._painter.reset_phase()
        self.request_render()

    def _on_autoplay(self, change: dict) -> None:
        self.audio.autoplay = bool(change["new"])

    def _ipython_display_(self) -> None:  # pragma: no cover - notebook only
        from IPython.display import display

        display(self.widget)


def _close_tree(w: Any) -> None:
    for child in getattr(w, "children", ()):
        _close_tree(child)
    w.close()


def latent_explorer(model: nn.Module, X: np.ndarray | None = None, index: Any = None,
                    mu: np.ndarray | torch.Tensor | None = None, **kwargs: Any):
    """Build the latent explorer and return its top-level widget.

    Parameters
    ----------
    model, X, index, mu
        See :class:`LatentExplorer`.
    **kwargs
        ``logvar``, ``cond``, ``config`` (an :class:`ExplorerConfig`) and any
        :class:`ExplorerConfig` field as a keyword (``audio=False``, ``dims=``, ...).

    Returns
    -------
    ipywidgets.VBox
        Display it (last expression of a cell). The :class:`LatentExplorer`
        behind it is ``widget.explorer``. Without a live kernel its view says
        so and shows the spectrogram and audio shown last.

    Examples
    --------
    An (untrained) model on four clips; in a notebook, ``w`` as a cell's last line shows it:

    >>> import numpy as np
    >>> from emovae_utils import models
    >>> X = np.random.default_rng(0).normal(-40, 10, (4, 80, 128)).astype("float32")
    >>> w = latent_explorer(models.build("emotion_vae"), X, audio=False)
    >>> w.explorer.set_latent([1.0, 0, 0, 0, 0, 0, 0, 0])
    >>> w.explorer.current_latent()[:2].tolist()
    [1.0, 0.0]
    >>> w.explorer.close()
    """
    return LatentExplorer(model, X=X, index=index, mu=mu, **kwargs).widget


def explorer_defaults(model: nn.Module, X: np.ndarray | None = None, index: Any = None) -> dict[str, Any]:
    """The conditioning keywords :func:`explorer_for` gives :class:`LatentExplorer` for ``model``.

    The model's own ``model.explorer_defaults(X, index)`` (a
    :class:`~emovae_utils.models.base.BaseVAE` method): a speaker picker for
    ``speaker_vae``, a length picker for ``sequence_vae``, nothing for the
    others. A module outside the package's model classes gets nothing.
    """
    from ..models.base import BaseVAE

    return model.explorer_defaults(X, index) if isinstance(model, BaseVAE) else {}


def explorer_for(model: nn.Module, X: np.ndarray | None = None, index: Any = None, **kwargs: Any):
    """:func:`latent_explorer` with the defaults that fit ``model``'s variant.

    Works for every registered variant: unconditional ones (``emotion_vae``,
    ``beta_vae``, ``sigma_vae``, ``tc_vae``) as :func:`latent_explorer`;
    ``supervised_vae`` with its emotion sub-latent first; ``speaker_vae``
    with a speaker picker (one code per actor of ``index``); ``sequence_vae``
    with a length picker. See :func:`explorer_defaults`; ``**kwargs``
    (any :class:`LatentExplorer` keyword, e.g. ``conditions=``, ``dims=``)
    override the defaults.

    Returns
    -------
    ipywidgets.VBox
        As :func:`latent_explorer` (the explorer is ``widget.explorer``).

    Examples
    --------
    A speaker-conditioned model gets a speaker picker, one code per actor of ``index``:

    >>> import numpy as np, pandas as pd
    >>> from emovae_utils import models
    >>> X = np.random.default_rng(0).normal(-40, 10, (4, 80, 128)).astype("float32")
    >>> w = explorer_for(models.build("speaker_vae"), X, pd.DataFrame({"actor": [1, 1, 2, 2]}), audio=False)
    >>> w.explorer.set_condition("Actor 02")
    >>> w.explorer.condition_label
    'Actor 02'
    >>> w.explorer.close()
    """
    options = {**explorer_defaults(model, X, index), **kwargs}
    return latent_explorer(model, X=X, index=index, **options)
