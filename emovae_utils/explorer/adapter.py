"""Where the explorer meets the model: conditions, encoding the clips, decoding points.

The explorer needs only ``encode(x[, cond]) -> (mu, logvar)``, ``decode(z[, cond])``
and the latent size (:func:`emovae_utils.generate.latent_dim_of`); the
per-variant defaults of :func:`emovae_utils.explorer.explorer_for` come from the
model itself (``model.explorer_defaults(X, index)``), and the emotion latent's size from its
declaration ``model.emotion_dims`` (:func:`emotion_sublatent_size`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..generate import decode_latents, encode_batched, model_device
from ..models.base import Model, condition_tensor

__all__ = ["cond_value", "repeat_cond", "encode_clips", "decode_point", "emotion_sublatent_size"]


def cond_value(value: Any, what: str = "condition") -> np.ndarray:
    """A condition as a numpy array: floats as float32, integers and booleans as they are.

    Examples
    --------
    >>> cond_value(3).dtype, cond_value([0.5, 1.0]).dtype
    (dtype('int64'), dtype('float32'))
    """
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{what} must be numeric (an array, a tensor or a number), got {a.dtype} {a!r:.80}")
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32, copy=False)
    return a


def repeat_cond(a: np.ndarray, n: int) -> np.ndarray:
    """One clip's condition repeated to ``n`` rows: () -> (n,), (k,) -> (n, k), ...

    Examples
    --------
    >>> repeat_cond(np.array(63), 2).tolist()
    [63, 63]
    """
    return np.repeat(a[None], n, axis=0)


def encode_clips(model: nn.Module, X: np.ndarray, cond: np.ndarray | None, fallback: np.ndarray | None,
                 batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ``(mu, logvar)`` of clips ``X``, each (N, D), float32 (:func:`~emovae_utils.generate.encode_batched`).

    ``cond`` (N, ...): one condition per clip. Without it the clips are
    encoded without a condition; if the model refuses that (ValueError or
    TypeError) and ``fallback`` (one clip's condition) is given, with it on
    every clip.
    """
    if cond is not None:
        return encode_batched(model, X, batch_size, cond)
    try:
        return encode_batched(model, X, batch_size)
    except (ValueError, TypeError) as exc:
        if fallback is None:
            raise ValueError(f"{type(model).__name__}.encode needs a condition for the clips X: pass cond= "
                             f"(one per clip, shape (N, ...)) or conditions= ({exc})") from exc
        return encode_batched(model, X, batch_size, repeat_cond(fallback, len(X)))


def decode_point(model: nn.Module, z: np.ndarray | torch.Tensor, cond: np.ndarray | None) -> np.ndarray:
    """Decode latents (N, D) or (D,) with one condition for all (or none): (N, n_mels, T) or (n_mels, T)."""
    n = 1 if np.ndim(z) == 1 else len(z)
    c = None if cond is None else condition_tensor(repeat_cond(cond, n), model_device(model))
    return decode_latents(model, z, c)


def emotion_sublatent_size(model: nn.Module) -> int:
    """Size k of the model's emotion latent ``z0 .. z{k-1}`` (its declared
    :attr:`~emovae_utils.models.base.Model.emotion_dims`: ``supervised_vae``, ``factorised_vae``), else 0.

    Examples
    --------
    >>> from emovae_utils.models import build
    >>> emotion_sublatent_size(build("supervised_vae", emotion_dims=3)), emotion_sublatent_size(build("beta_vae"))
    (3, 0)
    """
    return int(model.emotion_dims or 0) if isinstance(model, Model) else 0
