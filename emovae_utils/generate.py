"""Decoding latents to spectrograms and audio (report section 5.2, Table 3).

The report generates new utterances by sampling *one* latent dimension,
setting the other ones to 0, decoding the latent vector to a log-mel
spectrogram (dB) and inverting it with Griffin-Lim (no neural vocoder).
The report says ``z_i ~ N(0, 1)``; the authors' code used ``N(0, 3)``, so the
spread is the ``sigma`` parameter of :func:`sample_single_dims`.

All functions work with any module that has ``encode(x) -> (mu, logvar)`` and
``decode(z) -> (N, 80, 128)``; they run without gradients, in eval mode, on the
model's device, and return NumPy arrays on the CPU.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import dsp, inversion
from .data import EMOTIONS
from .models.base import batched_numpy, condition_tensor

__all__ = [
    "latent_dim_of",
    "model_device",
    "decode_latents",
    "sample_single_dims",
    "traverse",
    "encode_mu",
    "encode_posterior",
    "encode_batched",
    "emotion_mean_latents",
    "render_audio",
]


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a parameter-less module)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def latent_dim_of(model: nn.Module) -> int:
    """Latent size of ``model``.

    ``model.latent_dim`` for a :class:`~emovae_utils.models.BaseVAE`; any other
    module with ``encode`` encodes one silent 80 x 128 spectrogram and gives the width of ``mu``.
    """
    from .models import BaseVAE

    if isinstance(model, BaseVAE):
        return int(model.latent_dim)
    x = torch.zeros(1, 80, 128, device=model_device(model))
    with _eval_no_grad(model):
        mu, _ = model.encode(x)
    return int(mu.shape[-1])


class _eval_no_grad:
    """Context manager: ``torch.no_grad`` + eval mode, restoring the old mode."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._was_training = model.training
        self._ng = torch.no_grad()

    def __enter__(self) -> nn.Module:
        self._was_training = self.model.training
        self.model.eval()
        self._ng.__enter__()
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self._ng.__exit__(*exc)
        self.model.train(self._was_training)


def decode_latents(model: nn.Module, z: np.ndarray | torch.Tensor, cond: Any = None) -> np.ndarray:
    """Decode latent vectors to dB log-mel spectrograms.

    Parameters
    ----------
    model : nn.Module
        Module with ``decode(z, cond) -> (N, n_mels, T)``.
    z : array-like, shape (N, D) or (D,)
        Latent vectors. A single vector gives a single spectrogram.
    cond : array-like, optional
        The condition of a conditioned model (:func:`emovae_utils.conditions.make_condition`),
        one row per latent (or one for all, as the model allows); unconditional models ignore it.

    Returns
    -------
    np.ndarray
        float32, shape (N, n_mels, T), or (n_mels, T) for a 1-D ``z``.
    """
    # a copy: read-only inputs (e.g. pandas ``to_numpy`` views) would make torch warn
    zt = torch.as_tensor(np.array(z, dtype=np.float32) if not torch.is_tensor(z) else z)
    single = zt.ndim == 1
    if single:
        zt = zt[None]
    if zt.ndim != 2:
        raise ValueError(f"z must be (N, D) or (D,), got shape {tuple(zt.shape)}")
    dev = model_device(model)
    with _eval_no_grad(model):
        zt = zt.to(device=dev, dtype=torch.float32)
        out = model.decode(zt) if cond is None else model.decode(zt, condition_tensor(cond, dev))
    arr = out.detach().cpu().numpy().astype(np.float32, copy=False)
    return arr[0] if single else arr


def sample_single_dims(
    model: nn.Module,
    sigma: float = 1.0,
    seed: int | None = 0,
    value: float | Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample one latent dimension at a time (the report's Table 3).

    Row ``i`` of ``z`` has ``z[i, i] ~ N(0, sigma**2)`` and every other entry 0.

    Parameters
    ----------
    model : nn.Module
        Trained VAE (``decode`` is used; ``latent_dim`` gives D).
    sigma : float, default 1.0
        Standard deviation of the sampled dimension. The report says 1; the
        authors' code used 3.
    seed : int or None, default 0
        Seed of a private ``numpy.random.Generator`` (global RNGs are untouched).
    value : float or sequence of D floats, optional
        Use this value (or one value per dimension) instead of sampling.

    Returns
    -------
    z : np.ndarray, shape (D, D), float32
        Diagonal matrix of the sampled values.
    spectrograms : np.ndarray, shape (D, n_mels, T), float32
        ``decode(z)``: dB log-mel spectrograms.
    """
    d = latent_dim_of(model)
    if value is None:
        if sigma < 0:
            raise ValueError("sigma must be >= 0")
        vals = np.random.default_rng(seed).normal(0.0, sigma, size=d)
    else:
        vals = np.broadcast_to(np.asarray(value, dtype=np.float64), (d,))
    z = np.diag(vals).astype(np.float32)
    return z, decode_latents(model, z)


def traverse(
    model: nn.Module,
    values: Iterable[float] = np.linspace(-3, 3, 7),
    dims: Sequence[int] | None = None,
) -> np.ndarray:
    """Sweep each latent dimension over ``values`` with the others at 0.

    Parameters
    ----------
    model : nn.Module
    values : iterable of float, default ``np.linspace(-3, 3, 7)``
    dims : sequence of int, optional
        Dimensions to sweep (default: all D).

    Returns
    -------
    np.ndarray, shape (len(dims), len(values), n_mels, T), float32
        ``out[k, j]`` decodes the vector with ``z[dims[k]] = values[j]``.
    """
    d = latent_dim_of(model)
    vals = np.asarray(list(values), dtype=np.float32)
    dims = list(range(d)) if dims is None else [int(i) for i in dims]
    z = np.zeros((len(dims), len(vals), d), dtype=np.float32)
    for k, i in enumerate(dims):
        z[k, :, i] = vals
    spec = decode_latents(model, z.reshape(-1, d))
    return spec.reshape(len(dims), len(vals), *spec.shape[1:])


def encode_batched(
    model: nn.Module, X: np.ndarray | torch.Tensor, batch_size: int = 256, cond: Any = None, *,
    as_sigma: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior parameters of every clip, in batches: the one batched encode of the package.

    Parameters
    ----------
    model : torch.nn.Module
        Any module with ``encode(x) -> (mu, logvar)`` (``encode(x, cond)`` when
        ``cond`` is given). Run in eval mode without gradients on the model's
        device; its training flag is restored.
    X : np.ndarray or torch.Tensor, shape (N, n_mels, T)
        Log-mel spectrograms (dB).
    batch_size : int, default 256
    cond : array-like (N, ...), optional
        One condition per clip (sliced with the batches); without it ``encode(x)``.
    as_sigma : bool, default False
        Give ``sigma = exp(logvar / 2)`` (computed on the model's device) instead of ``logvar``.

    Returns
    -------
    mu, logvar_or_sigma : np.ndarray, float32, shape (N, D)

    Raises
    ------
    ValueError
        If ``X`` holds no clip.

    Examples
    --------
    >>> from emovae_utils.models import EmotionVAE
    >>> mu, logvar = encode_batched(EmotionVAE(latent_dim=3), np.zeros((5, 80, 128), np.float32), batch_size=2)
    >>> mu.shape, logvar.dtype
    ((5, 3), dtype('float32'))
    """
    Xt = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X, dtype=torch.float32)
    if len(Xt) == 0:
        raise ValueError("X holds no clips")

    def both(x: torch.Tensor, *c: torch.Tensor) -> torch.Tensor:  # (mu | logvar or sigma), side by side
        mu, logvar = model.encode(x, *c)
        return torch.cat([mu.float(), (torch.exp(0.5 * logvar) if as_sigma else logvar).float()], dim=1)

    out = batched_numpy(model, Xt, both, width=0, batch_size=batch_size, cond=cond)
    d = out.shape[1] // 2
    return np.ascontiguousarray(out[:, :d]), np.ascontiguousarray(out[:, d:])


def encode_posterior(
    model: nn.Module, X: np.ndarray | torch.Tensor, batch_size: int = 256, cond: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of every clip under a trained encoder.

    Parameters
    ----------
    model : torch.nn.Module
        Any module with ``encode(x) -> (mu, logvar)`` (e.g.
        :class:`emovae_utils.models.EmotionVAE`). Run in eval mode without
        gradients on the model's device; its training flag is restored.
    X : np.ndarray or torch.Tensor, shape (N, n_mels, T)
        Log-mel spectrograms (dB).
    batch_size : int, default 256
    cond : array-like (N, ...), optional
        One condition per clip for a conditioned encoder (sliced with the batches);
        unconditional models ignore it.

    Returns
    -------
    mu, sigma : np.ndarray, float32, shape (N, D)
        ``sigma = exp(logvar / 2)``; :func:`encode_batched` with ``as_sigma=True``.

    Raises
    ------
    ValueError
        If ``X`` holds no clip.
    """
    return encode_batched(model, X, batch_size, cond, as_sigma=True)


def encode_mu(model: nn.Module, X: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Posterior means ``mu`` (N, D) of spectrograms ``X`` (N, n_mels, T); see :func:`encode_posterior`."""
    return encode_posterior(model, X, batch_size)[0]


def emotion_mean_latents(mu: np.ndarray, emotions: Sequence[Any]) -> pd.DataFrame:
    """Mean latent vector per emotion.

    Parameters
    ----------
    mu : np.ndarray, shape (N, D)
        Posterior means (e.g. from :func:`encode_mu`).
    emotions : sequence of length N
        Emotion label of each row.

    Returns
    -------
    pd.DataFrame
        Index ``emotion`` (RAVDESS order for the known names, then any other
        labels in order of appearance), columns ``z0 .. z{D-1}``, plus ``n``
        (number of clips). ``df[[f"z{i}" ...]].to_numpy()`` gives the array.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"mu must be (N, D), got shape {mu.shape}")
    emotions = list(emotions)
    if len(emotions) != len(mu):
        raise ValueError(f"{len(emotions)} emotion labels for {len(mu)} rows of mu")
    cols = [f"z{i}" for i in range(mu.shape[1])]
    df = pd.DataFrame(mu, columns=cols)
    df["emotion"] = emotions
    present = list(dict.fromkeys(emotions))
    order = [e for e in EMOTIONS if e in present] + [e for e in present if e not in EMOTIONS]
    out = df.groupby("emotion", sort=False)[cols].mean().reindex(order)
    out["n"] = df.groupby("emotion", sort=False).size().reindex(order).to_numpy()
    out.index.name = "emotion"
    return out


def render_audio(
    spectrograms: np.ndarray,
    out_dir: str | os.PathLike,
    names: Sequence[str] | None = None,
    config: dsp.PreprocessConfig | None = None,
) -> list[Path]:
    """Griffin-Lim each dB log-mel spectrogram and write wav files, with :func:`emovae_utils.inversion.render_wav`.

    Parameters
    ----------
    spectrograms : np.ndarray, shape (N, n_mels, T) or (n_mels, T)
    out_dir : path-like
        Created if missing.
    names : sequence of str, optional
        File names (``.wav`` appended when missing); default ``sample_00.wav`` ...
    config : emovae_utils.dsp.PreprocessConfig, optional
        Mel settings of the spectrograms and the sample rate of the files
        (default: the study's, 16 kHz).

    Returns
    -------
    list of Path
        The written files, in input order.
    """
    spec = np.asarray(spectrograms, dtype=np.float32)
    if spec.ndim == 2:
        spec = spec[None]
    if spec.ndim != 3:
        raise ValueError(f"spectrograms must be (N, n_mels, T), got shape {spec.shape}")
    if names is None:
        names = [f"sample_{i:02d}" for i in range(len(spec))]
    names = list(names)
    if len(names) != len(spec):
        raise ValueError(f"{len(names)} names for {len(spec)} spectrograms")
    out_dir = Path(out_dir)
    return [
        inversion.render_wav(s, out_dir / (name if str(name).lower().endswith(".wav") else f"{name}.wav"), config)
        for s, name in zip(spec, names)
    ]
