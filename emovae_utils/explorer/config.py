"""The explorer's settings as one dataclass, :class:`ExplorerConfig`."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .adapter import cond_value

__all__ = ["ExplorerConfig"]


@dataclass(frozen=True)
class ExplorerConfig:
    """How the latent explorer looks, sounds and which conditions it offers.

    Every field is also a keyword of :func:`~emovae_utils.explorer.latent_explorer`,
    :func:`~emovae_utils.explorer.explorer_for` and
    :class:`~emovae_utils.explorer.LatentExplorer` (:meth:`build` makes the config from them).

    Parameters
    ----------
    value_range : (float, float), default (-4, 4)
        Slider range.
    step : float, default 0.01
    audio : bool, default True
        Render audio on each update.
    method : {"fast", "reference"}, default "fast"
        Inversion (:func:`emovae_utils.inversion.log_mel_to_audio`); "fast" starts
        from the previous rendering's phase while the point moves.
    threaded : bool, default True
        Render in a worker thread that coalesces requests (the latest wins);
        False renders inside each observer (a burst then renders every value).
    autoplay : bool, default False
        Initial state of the "autoplay" check box.
    kl_threshold : float, default 0.01
        Dimensions with a mean KL below this (nats) are inactive.
    show_inactive : bool, default False
        Unfold the inactive dimensions.
    loudness_dbfs, fade_ms : float
        See :func:`~emovae_utils.explorer.rendering.prepare_audio`.
    clim : (float, float), optional
        Colour range in dB; default from ``X``, else from the origin's decoding.
    preprocess : PreprocessConfig, optional
        Sample rate and STFT settings (the study's by default).
    sr : int, optional
        Sample rate of the audio (default ``preprocess.sr``).
    conditions : mapping of str to array-like, optional
        Condition picker: label -> the ``cond`` of one clip (e.g. a speaker
        code (80,), or a length in frames for a sequence model). The chosen
        one, repeated to the batch, is passed to ``model.decode(z, cond)``.
        Stored as numpy arrays (floats as float32).
    condition : str, optional
        The label chosen first (default: the first one).
    dims : sequence of int, optional
        Latent dimensions that get a slider (default: all); the others keep
        the start point's values.

    Examples
    --------
    >>> c = ExplorerConfig.build(audio=False, conditions={"1.0 s": 63})
    >>> c.audio, c.conditions["1.0 s"].dtype, c.method
    (False, dtype('int64'), 'fast')
    """

    value_range: tuple[float, float] = (-4.0, 4.0)
    step: float = 0.01
    audio: bool = True
    method: str = "fast"
    threaded: bool = True
    autoplay: bool = False
    kl_threshold: float = 0.01
    show_inactive: bool = False
    loudness_dbfs: float = -20.0
    fade_ms: float = 10.0
    clim: tuple[float, float] | None = None
    preprocess: Any = None
    sr: int | None = None
    conditions: Mapping[str, np.ndarray] | None = None
    condition: str | None = None
    dims: Sequence[int] | None = None

    def __post_init__(self) -> None:
        from ..inversion import METHODS

        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        set_ = object.__setattr__  # frozen: normalise in place once
        set_(self, "value_range", (float(self.value_range[0]), float(self.value_range[1])))
        if self.conditions is not None:
            conditions = self.conditions
            items = list(conditions.items()) if hasattr(conditions, "items") else list(conditions)
            if not items:
                raise ValueError("conditions is empty: give at least one label -> cond, or None")
            set_(self, "conditions", {str(label): cond_value(value, f"conditions[{label!r}]")
                                      for label, value in items})
            if self.condition is not None and str(self.condition) not in self.conditions:
                raise KeyError(f"condition {self.condition!r} is not one of {list(self.conditions)}")
        elif self.condition is not None:
            raise ValueError("condition= needs conditions=")

    @classmethod
    def build(cls, config: ExplorerConfig | None = None, **options: Any) -> ExplorerConfig:
        """``config`` (default: the defaults) with the keyword ``options`` replacing its fields.

        ``config`` may also be a :class:`~emovae_utils.dsp.PreprocessConfig`, as
        the explorer's keyword ``config=`` was before this class: it becomes ``preprocess``.
        """
        from ..dsp import PreprocessConfig

        if isinstance(config, PreprocessConfig):
            options = {"preprocess": config, **options}
            config = None
        if config is None:
            return cls(**options)
        return dataclasses.replace(config, **options) if options else config
