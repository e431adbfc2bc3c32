"""The small VAE interface every model of the study implements.

In the spirit of PyTorch-VAE's ``BaseVAE`` and pythae's model classes: a
model maps inputs to a Gaussian posterior (:meth:`BaseVAE.encode`), latents
back to inputs (:meth:`BaseVAE.decode`), and scores itself
(:meth:`BaseVAE.loss_function`). The trainer
(:func:`emovae_utils.train.fit`), generation, widgets and metrics use only
this interface, so a variant is one subclass that overrides what changes.

Every registered model (the VAEs and the classifier) derives from
:class:`Model`, which says what the model needs and offers as class
attributes, so callers read declarations instead of probing:

* :attr:`Model.condition`: the decoder/encoder condition it needs (a key of
  :data:`emovae_utils.conditions.CONDITIONS`, or None). It goes through
  ``cond``: ``forward(x, cond)`` passes it to ``encode`` and ``decode``.
* :attr:`Model.labels`: the training labels its loss reads (a key of
  ``CONDITIONS``, or None). They never reach ``forward``:
  ``loss_function(x, out, labels)`` gets them.
* :attr:`Model.generative`: whether it decodes (a VAE).
* :meth:`Model.representation` and :attr:`Model.representation_dim`: what the
  metrics probe (the posterior mean by default).
* :attr:`Model.emotion_dims`: how many leading latent dimensions form an
  emotion latent (``supervised_vae``, ``factorised_vae``), or None. Emotion
  conversion and the explorer's emotion controls act on those dimensions only.

Constructor arguments are stored as attributes of the same name (as in
scikit-learn), so :attr:`BaseVAE.config` can rebuild the model; see
:func:`emovae_utils.models.save_model`.
"""
from __future__ import annotations

import abc
import inspect
import math
import numbers
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from .losses import gaussian_kl

__all__ = ["condition_tensor", "Model", "BaseVAE", "ConfigMixin", "gaussian_kl", "batched_numpy", "check_int", "check_float",
           "check_bool"]


def _refuse(owner: str, name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{owner}({name}={value!r}): {name} must be {allowed}")


def check_int(owner: str, name: str, value: Any, low: int | None = 1, high: int | None = None,
              optional: bool = False) -> int | None:
    """``value`` as an int if it is an integer in ``low .. high``, else a ValueError naming it.

    The one check of integer arguments (model constructors, :class:`~emovae_utils.train.FitConfig`):
    floats (even 8.0), strings and bools are refused, never rounded.

    Parameters
    ----------
    owner : str
        What the argument belongs to (``"EmotionVAE"``), for the message.
    name : str
        The argument's name.
    value : object
        The given value.
    low, high : int or None, default 1 and None
        Inclusive bounds; None: unbounded.
    optional : bool, default False
        Accept None (returned as None).

    Returns
    -------
    int or None

    Examples
    --------
    >>> check_int("EmotionVAE", "latent_dim", 8)
    8
    >>> check_int("EmotionVAE", "latent_dim", 2.5)
    Traceback (most recent call last):
    ...
    ValueError: EmotionVAE(latent_dim=2.5): latent_dim must be an integer >= 1
    """
    if optional and value is None:
        return None
    bounds = (f" >= {low}" if high is None else f" in {low}..{high}") if low is not None else (
        f" <= {high}" if high is not None else "")
    allowed = f"an integer{bounds}" + (" or None" if optional else "")
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
            or (low is not None and value < low) or (high is not None and value > high)):
        raise _refuse(owner, name, value, allowed)
    return int(value)


def check_float(owner: str, name: str, value: Any, low: float | None = 0.0, high: float | None = None,
                above: bool = False, below: bool = False, optional: bool = False) -> float | None:
    """``value`` as a float if it is a finite number in range, else a ValueError naming it.

    Parameters
    ----------
    owner, name : str
        As :func:`check_int`.
    value : object
        The given value (a real number; bools and strings are refused).
    low, high : float or None, default 0.0 and None
        Bounds; None: unbounded.
    above, below : bool, default False
        Make ``low`` (``high``) exclusive: ``value > low`` (``value < high``).
    optional : bool, default False
        Accept None (returned as None).

    Returns
    -------
    float or None

    Examples
    --------
    >>> check_float("BetaVAE", "beta", 4)
    4.0
    >>> check_float("BetaVAE", "beta", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: BetaVAE(beta=nan): beta must be a finite number >= 0.0
    """
    if optional and value is None:
        return None
    parts = [] if low is None else [f"{'>' if above else '>='} {low}"]
    parts += [] if high is None else [f"{'<' if below else '<='} {high}"]
    allowed = "a finite number" + (" " + " and ".join(parts) if parts else "") + (" or None" if optional else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise _refuse(owner, name, value, allowed)
    if low is not None and (value <= low if above else value < low) or (
            high is not None and (value >= high if below else value > high)):
        raise _refuse(owner, name, value, allowed)
    return float(value)


def check_bool(owner: str, name: str, value: Any) -> bool:
    """``value`` if it is True or False (numpy's too), else a ValueError naming it.

    Examples
    --------
    >>> check_bool("SpeakerConditionedVAE", "condition_encoder", True)
    True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise _refuse(owner, name, value, "True or False")
    return bool(value)


def condition_tensor(cond: Any, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """A condition (or label) array as a tensor on ``device``: floats as float32, integers as int64 (e.g.
    lengths), bools as they are; None stays None. The one conversion every caller of ``forward(x, cond)`` uses.

    Examples
    --------
    >>> condition_tensor(np.array([3, 5], np.int32)).dtype, condition_tensor(np.ones(2)).dtype
    (torch.int64, torch.float32)
    """
    if cond is None:
        return None
    c = torch.as_tensor(np.ascontiguousarray(cond) if not torch.is_tensor(cond) else cond)
    if c.is_floating_point():
        c = c.to(torch.float32)
    elif c.dtype != torch.bool:
        c = c.to(torch.int64)
    return c.to(device)


@torch.no_grad()
def batched_numpy(model: nn.Module, X: Any, fn: Callable[..., torch.Tensor], width: int,
                  batch_size: int = 256, cond: Any = None) -> np.ndarray:
    """``fn`` over the clips ``X`` in batches, in eval mode without gradients (the mode is restored).

    Parameters
    ----------
    model : nn.Module
        Whose device and dtype the batches take, and whose mode is switched.
    X : array or tensor, (N, ...)
    fn : callable
        Batch tensor -> (n, width) tensor; ``fn(x, c)`` when ``cond`` is given.
    width : int
        Columns of the result (its shape when ``X`` is empty).
    batch_size : int, default 256
    cond : array or tensor, (N, ...), optional
        One condition per clip (:func:`condition_tensor`), sliced with the batches.

    Returns
    -------
    np.ndarray, (N, width), float32

    Examples
    --------
    >>> lin = nn.Linear(3, 2)
    >>> batched_numpy(lin, np.ones((5, 3), np.float32), lin, width=2, batch_size=2).shape
    (5, 2)
    """
    p = next(model.parameters(), None)  # a module without parameters runs in float32 on the CPU
    device, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    X = torch.as_tensor(X)
    cond = condition_tensor(cond, device)
    was_training = model.training
    model.eval()
    try:
        parts = [fn(X[i: i + batch_size].to(device=device, dtype=dtype)) if cond is None else
                 fn(X[i: i + batch_size].to(device=device, dtype=dtype), cond[i: i + batch_size])
                 for i in range(0, X.shape[0], batch_size)]
    finally:
        model.train(was_training)
    if not parts:
        return np.zeros((0, width), dtype=np.float32)
    return torch.cat(parts).float().cpu().numpy()


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


class Model(ConfigMixin, nn.Module):
    """Common base of every registered model: what it needs, what it offers, how it scores itself.

    Class attributes declare the model's needs (read them on the class or an
    instance; never probe for methods):

    Attributes
    ----------
    condition : str or None
        The condition ``forward``/``encode``/``decode`` need as ``cond`` (a key
        of :data:`emovae_utils.conditions.CONDITIONS`, e.g. ``"speaker_code"``);
        None: unconditional.
    labels : str or None
        The training labels :meth:`loss_function` reads (a key of ``CONDITIONS``,
        e.g. ``"labels"``); None: unsupervised. Labels never reach ``forward``.
    generative : bool
        The model decodes latents (``encode``, ``decode``, ``sample``): a VAE.
    emotion_dims : int or None
        The number ``k`` of leading latent dimensions ``z0 .. z{k-1}`` that form
        the emotion latent (trained to carry emotion, not speaker or content);
        None: the model has none.

    Subclasses implement ``forward(x, cond=None) -> dict``,
    :meth:`loss_function`, :meth:`representation` and
    :attr:`representation_dim`.

    Examples
    --------
    >>> from emovae_utils.models import build
    >>> m = build("supervised_vae", latent_dim=8, emotion_dims=4)
    >>> m.condition, m.labels, m.generative, m.representation_dim, m.emotion_dims
    (None, 'labels', True, 4, 4)
    >>> build("emotion_vae").emotion_dims is None
    True
    """

    condition: ClassVar[str | None] = None
    labels: ClassVar[str | None] = None
    generative: ClassVar[bool] = False
    emotion_dims: int | None = None

    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor],
                      labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training loss of a batch: a dict of scalar tensors holding ``loss`` (what is minimised).

        ``out`` is ``forward(x, cond)``; ``labels`` are the batch's training
        labels (the kind :attr:`labels` names), None when there are none.
        """
        raise NotImplementedError

    def representation(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """What the metrics probe, (N, :attr:`representation_dim`), of a batch ``x`` (with gradients)."""
        raise NotImplementedError

    @property
    def representation_dim(self) -> int:
        """Width of :meth:`representation`."""
        raise NotImplementedError

    def represent(self, X: Any, cond: Any = None, batch_size: int = 256) -> np.ndarray:
        """:meth:`representation` of clips ``X`` (N, ...) in batches: (N, representation_dim) float32.

        In eval mode (the mode is restored), without gradients; ``cond`` (N, ...)
        is sliced with the batches.
        """
        return batched_numpy(self, X, self.representation, self.representation_dim, batch_size, cond=cond)

    def explorer_defaults(self, X: Any = None, index: Any = None) -> dict[str, Any]:
        """Settings the latent explorer should start from for this model (none by default)."""
        return {}


class BaseVAE(Model, abc.ABC):
    """Interface of a VAE: ``encode``, ``decode``, ``forward``, ``loss_function``, ``sample``.

    Subclasses implement :meth:`encode`, :meth:`decode` and
    :meth:`loss_function`, set :attr:`latent_dim`, and store every constructor
    argument as an attribute of the same name. Register them with
    :func:`emovae_utils.models.register` to build, save and load them by name.
    """

    #: Size of the latent space.
    latent_dim: int
    generative: ClassVar[bool] = True

    @abc.abstractmethod
    def encode(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters ``(mu, logvar)``, each (N, latent_dim), of inputs ``x``."""

    @abc.abstractmethod
    def decode(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction (the decoder's mean) of latents ``z`` (N, latent_dim)."""

    @abc.abstractmethod
    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor],
                      labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training loss of a batch: a dict of scalar tensors with at least ``loss``,
        ``reconstruction`` and ``kl``; ``loss`` is what is minimised."""

    def representation(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The posterior mean ``mu`` (N, latent_dim)."""
        return self.encode(x, cond)[0]

    @property
    def representation_dim(self) -> int:
        """:attr:`latent_dim`. A VAE whose representation is smaller reads the first
        ``representation_dim`` dimensions of ``mu`` (a sub-latent, e.g. the supervised VAE's emotion part)."""
        return self.latent_dim

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
