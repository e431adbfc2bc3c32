"""Build, save and load VAEs by registered name.

Examples
--------
>>> from emovae_utils.models import available, build
>>> "emotion_vae" in available()
True
>>> build("emotion_vae", latent_dim=4).latent_dim
4
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from ..io import atomic_write

__all__ = ["register", "build", "available", "model_class", "registered_name", "save_model", "load_model",
           "ModelFileError"]

_REGISTRY: dict[str, type] = {}
_FORMAT = 2  # 1: the study's first files (EmotionVAE only, no "name")
T = TypeVar("T", bound=type)


class ModelFileError(ValueError):
    """A model file cannot be rebuilt; the message says how to get a usable one."""


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a :class:`~emovae_utils.models.BaseVAE` buildable as ``name``.

    Examples
    --------
    >>> from emovae_utils.models import EmotionVAE, register
    >>> @register("my_vae")
    ... class MyVAE(EmotionVAE):
    ...     pass
    """
    def deco(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        return cls
    return deco


def available() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def model_class(name: str) -> type:
    """The class registered as ``name`` (its declarations, e.g. ``condition`` and ``labels``, without building it).

    Examples
    --------
    >>> model_class("speaker_vae").condition, model_class("supervised_vae").labels
    ('speaker_code', 'labels')
    """
    if name not in _REGISTRY:
        raise KeyError(f"no model registered as {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def build(name: str, **config: Any) -> torch.nn.Module:
    """A new model of the class registered as ``name``, constructed with ``**config``."""
    return model_class(name)(**config)


def registered_name(model: torch.nn.Module) -> str:
    """The name ``type(model)`` is registered under (exact class, not a parent's)."""
    for name, cls in _REGISTRY.items():
        if type(model) is cls:
            return name
    raise ValueError(
        f"{type(model).__name__} is not registered; decorate it with "
        "@emovae_utils.models.register('a_name') to save and load it by name"
    )


def save_model(path: str | os.PathLike, model: torch.nn.Module, **metadata: Any) -> Path:
    """Save a registered model's name, config and weights (plus free metadata), atomically.

    Parameters
    ----------
    path : path-like
        Target file (``.pt``).
    model : BaseVAE
        An instance of a registered class.
    **metadata
        Extra picklable values (epochs, seed, data description...).

    Returns
    -------
    Path
        The written path.
    """
    payload = {
        "format": _FORMAT,
        "name": registered_name(model),
        "config": model.config,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "metadata": dict(metadata),
        "torch_version": torch.__version__,
    }
    return atomic_write(path, lambda p: torch.save(payload, p))


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a model written by :func:`save_model` (or by the study's first versions).

    Returns
    -------
    model : BaseVAE
        In eval mode, on ``map_location``.
    metadata : dict
        The ``**metadata`` given to :func:`save_model`.

    Raises
    ------
    ModelFileError
        When the file's class is not registered here or its weights do not fit.
    """
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=False)
    name = payload.get("name", "emotion_vae")  # format 1 files hold an EmotionVAE
    retrain = ("retrain it with the notebook that wrote it (e.g. `python -m emovae_utils.pipeline "
               "--preset paper --only 02`), or delete it")
    if name not in _REGISTRY:
        raise ModelFileError(f"{path}: model {name!r} is not registered here "
                             f"(available: {', '.join(available())}); import the module that defines it, or {retrain}")
    model = build(name, **payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: its weights do not fit {type(model).__name__}({payload['config']}): "
                             f"{str(exc).splitlines()[0]}; {retrain}") from exc
    model.to(map_location).eval()
    return model, dict(payload.get("metadata", {}))
