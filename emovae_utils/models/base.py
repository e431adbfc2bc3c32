"""The small VAE interface every model of the study implements.

In the spirit of PyTorch-VAE's ``BaseVAE`` and pythae's model classes: a
model maps inputs to a Gaussian posterior (:meth:`BaseVAE.encode`), latents
back to inputs (:meth:`BaseVAE.decode`), and scores itself
(:meth:`BaseVAE.loss_function`). The trainer
(:func:`emovae_utils.train.fit`), generation, widgets and metrics use only
this interface, so a variant is one subclass that overrides what changes.

Conditioning (speaker, emotion, ...) goes through ``cond``: ``forward(x, cond)``
passes it to ``encode`` and ``decode``; unconditional models ignore it.

Constructor arguments are stored as attributes of the same name (as in
scikit-learn), so :attr:`BaseVAE.config` can rebuild the model; see
:func:`emovae_utils.models.save_model`.
"""
from __future__ import annotations

import abc
import inspect
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

__all__ = ["BaseVAE", "ConfigMixin", "gaussian_kl", "batched_numpy"]


@torch.no_grad()
def batched_numpy(model: nn.Module, X: Any, fn: Callable[[torch.Tensor], torch.Tensor], width: int,
                  batch_size: int = 256) -> np.ndarray:
    """``fn`` over the clips ``X`` in batches, in eval mode without gradients (the mode is restored).

    Parameters
    ----------
    model : nn.Module
        Whose device and dtype the batches take, and whose mode is switched.
    X : array or tensor, (N, ...)
    fn : callable
        Batch tensor -> (n, width) tensor.
    width : int
        Columns of the result (its shape when ``X`` is empty).
    batch_size : int, default 256

    Returns
    -------
    np.ndarray, (N, width), float32

    Examples
    --------
    >>> lin = nn.Linear(3, 2)
    >>> batched_numpy(lin, np.ones((5, 3), np.float32), lin, width=2, batch_size=2).shape
    (5, 2)
    """
    p = next(model.parameters())
    X = torch.as_tensor(X)
    was_training = model.training
    model.eval()
    try:
        parts = [fn(X[i: i + batch_size].to(device=p.device, dtype=p.dtype)) for i in range(0, X.shape[0], batch_size)]
    finally:
        model.train(was_training)
    if not parts:
        return np.zeros((0, width), dtype=np.float32)
    return torch.cat(parts).float().cpu().numpy()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per clip and dimension.

    Parameters
    ----------
    mu, logvar : torch.Tensor, (N, latent_dim)

    Returns
    -------
    torch.Tensor, (N, latent_dim)
        ``-0.5 * (1 + logvar - mu**2 - exp(logvar))``, in nats.

    Examples
    --------
    >>> import torch
    >>> gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).sum().item()
    0.0
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


class ConfigMixin:
    """Adds :attr:`config`: the constructor arguments, read back from attributes of the same name.

    Any registered model (a :class:`BaseVAE`, or a classifier such as
    :class:`~emovae_utils.models.classifier.EmotionCNN`) uses it so that
    :func:`~emovae_utils.models.save_model` can rebuild it.

    Examples
    --------
    >>> class Thing(ConfigMixin):
    ...     def __init__(self, size: int = 3) -> None:
    ...         self.size = size
    >>> Thing(size=5).config
    {'size': 5}
    """

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (read back from the attributes of the same name)."""
        names = [name for name, par in inspect.signature(type(self).__init__).parameters.items()
                 if name != "self" and par.kind in (par.POSITIONAL_OR_KEYWORD, par.KEYWORD_ONLY)]
        missing = [name for name in names if not hasattr(self, name)]
        if missing:
            raise AttributeError(
                f"{type(self).__name__} does not store constructor argument(s) {missing} as "
                "attributes of the same name; set them in __init__ so the model can be saved"
            )
        return {name: getattr(self, name) for name in names}


class BaseVAE(ConfigMixin, nn.Module, abc.ABC):
    """Interface of a VAE: ``encode``, ``decode``, ``forward``, ``loss_function``, ``sample``.

    Subclasses implement :meth:`encode`, :meth:`decode` and
    :meth:`loss_function`, set :attr:`latent_dim`, and store every constructor
    argument as an attribute of the same name. Register them with
    :func:`emovae_utils.models.register` to build, save and load them by name.
    """

    #: Size of the latent space.
    latent_dim: int

    @abc.abstractmethod
    def encode(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters ``(mu, logvar)``, each (N, latent_dim), of inputs ``x``."""

    @abc.abstractmethod
    def decode(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction (the decoder's mean) of latents ``z`` (N, latent_dim)."""

    @abc.abstractmethod
    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training loss of a batch: a dict of scalar tensors with at least ``loss``,
        ``reconstruction`` and ``kl``; ``loss`` is what is minimised."""

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Draw ``z = mu + eps * exp(logvar / 2)`` with ``eps = torch.randn_like(mu)``."""
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Encode, draw ``z``, decode.

        Returns
        -------
        dict
            ``recon`` (like ``x``), ``mu``, ``logvar``, ``z`` (each (N, latent_dim)).
        """
        mu, logvar = self.encode(x, cond)
        z = self.reparameterize(mu, logvar)
        return {"recon": self.decode(z, cond), "mu": mu, "logvar": logvar, "z": z}

    @torch.no_grad()
    def sample(self, n: int, cond: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` latents drawn from the prior N(0, I).

        Parameters
        ----------
        n : int
            Number of samples.
        cond : torch.Tensor, optional
            Condition for each sample (conditional models).
        generator : torch.Generator, optional
            Source of the latents (default: torch's global generator).
        """
        p = next(self.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=p.dtype).to(p.device)
        return self.decode(z, cond)

    def explorer_defaults(self, X: Any = None, index: Any = None) -> dict[str, Any]:
        """Keywords the latent explorer (:func:`emovae_utils.explorer.explorer_for`) needs for this model.

        A conditioned model returns its condition picker (``conditions``, and
        ``cond`` for the clips ``X``, one row of ``index`` each); none here.
        """
        return {}
