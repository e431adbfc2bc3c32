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

import inspect
import os
import pickle
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch

from ..io import atomic_write

__all__ = ["register", "build", "available", "model_class", "registered_name", "save_model", "load_model",
           "ModelFileError", "describe_models"]

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
    """A new model of the class registered as ``name``, constructed with ``**config``.

    Parameters
    ----------
    name : str
        A registered name (:func:`available`).
    **config
        Constructor arguments of that class; each is checked (a ValueError names
        the argument, the value and what is allowed).

    Returns
    -------
    Model

    Notes
    -----
    {models}
    """
    return model_class(name)(**config)


def describe_models() -> str:
    """The registered models as an RST list: name, class, parameters with defaults, condition and labels.

    :func:`build`'s docstring holds this list (made when :mod:`emovae_utils.models` is imported).

    Examples
    --------
    >>> print(describe_models().splitlines()[0])
    Registered models (``condition``: the ``cond`` it needs; ``labels``: the training labels it needs):
    """
    lines = ["Registered models (``condition``: the ``cond`` it needs; ``labels``: the training labels it needs):", ""]
    for name in available():
        cls = _REGISTRY[name]
        params = ", ".join(f"{p.name}={p.default!r}" for p in inspect.signature(cls.__init__).parameters.values()
                           if p.name != "self" and p.default is not inspect.Parameter.empty)
        lines.append(f"* ``{name}`` ({cls.__name__}): condition={cls.condition!r}, labels={cls.labels!r}; "
                     f"``{params}``")
    return "\n".join(lines)


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
        Extra values (epochs, seed, data description...): numbers, strings,
        bools, None, tensors, and lists, tuples and dicts (string keys) of
        them; numpy scalars are stored as Python numbers, numpy arrays and
        paths as tensors and strings. Anything else is a TypeError: the file
        holds only what ``torch.load(weights_only=True)`` reads, so loading
        one runs no code.

    Returns
    -------
    Path
        The written path.
    """
    payload = {
        "format": _FORMAT,
        "name": registered_name(model),
        "config": _plain(model.config, "config"),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "metadata": _plain(dict(metadata), "metadata"),
        "torch_version": str(torch.__version__),
    }
    return atomic_write(path, lambda p: torch.save(payload, p))


def _plain(value: Any, where: str) -> Any:
    """``value`` as what ``torch.load(weights_only=True)`` reads (see :func:`save_model`), else a TypeError."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"save_model: {where} is of type {type(value).__name__}; a model file holds only numbers, strings, "
                    "bools, None, tensors, and lists, tuples and dicts (string keys) of them: convert it "
                    "(e.g. str(value)) so the file loads without running code")


def _safe_globals() -> list[Any]:
    """What files of :func:`save_model` may hold beyond plain values: torch's version string (files written
    before it was saved as a str) and numpy scalars and arrays (metadata of earlier files, fit's
    checkpoints). Each rebuilds a value from bytes; none runs code named by the file."""
    from torch.torch_version import TorchVersion

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return [TorchVersion, np.dtype, np.ndarray, multiarray.scalar, multiarray._reconstruct,
            *{type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFD"}]


def _read(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``, every failure as a :class:`ModelFileError` saying what to do."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file; give the .pt file itself "
                             "(a trial's model is <trial folder>/model.pt)")
    resave = ("save it with emovae_utils.models.save_model(path, model) (a trained trial's model is "
              "<trial folder>/model.pt)")
    with open(path, "rb") as f:
        head = f.read(4)  # what kind of bytes: zip (torch.save), pickle, or other
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch and pickle raise many kinds on damaged bytes
        unsafe = _unsafe_globals(path) if isinstance(exc, pickle.UnpicklingError) else []
        if unsafe:
            raise ModelFileError(
                f"{path} holds Python objects other than weights and plain values ({', '.join(unsafe)}); a "
                "model file is loaded without running any of its code, so it was not loaded. If you trust it, "
                "read it with torch.load(path, weights_only=False) and re-save the model with "
                "emovae_utils.models.save_model (which writes only plain values)") from exc
        if not head:
            what = "is empty (0 bytes; written during a crash or on a full disk?)"
        elif head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
            what = "is damaged or cut short (a crash, a full disk or an interrupted copy?)"
        else:
            what = "is not a model file (not written by torch.save)"
        reason = type(exc).__name__ + (f": {str(exc).splitlines()[0]}" if str(exc) else "")
        raise ModelFileError(f"{path} {what} ({reason}); copy it again, or retrain "
                             f"and {resave}") from exc


def _unsafe_globals(path: Path) -> list[str]:
    """The globals a torch zip file names that weights-only loading refuses (none when it is no zip file)."""
    try:
        allowed = {f"{g.__module__}.{g.__qualname__}" for g in _safe_globals()}
        return [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path) if g not in allowed]
    except Exception:  # noqa: BLE001 - damaged files: no list
        return []


def _check_payload(path: Path, payload: Any) -> None:
    """A ModelFileError unless ``payload`` is a dict of :func:`save_model` (or of the study's first files)."""
    if isinstance(payload, dict) and "epoch" in payload and "optimizer" in payload:
        raise ModelFileError(
            f"{path} is a training checkpoint of emovae_utils.train.fit, not a model file: read it with "
            "emovae_utils.train.load_checkpoint(path) (resume with fit(..., resume=True)), or load the model "
            "the trial saved when it finished, <trial folder>/model.pt")
    if not isinstance(payload, dict) or not {"config", "state_dict"} <= set(payload):
        held = f"a dict with keys {sorted(map(str, payload))[:8]}" if isinstance(payload, dict) else (
            f"a {type(payload).__name__}")
        raise ModelFileError(f"{path} holds {held}, not a model of emovae_utils.models.save_model (a dict with "
                             "'name', 'config' and 'state_dict'); save models with save_model(path, model)")


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a model written by :func:`save_model` (or by the study's first versions), running no code of the file.

    The file is read with ``torch.load(weights_only=True)``: tensors and plain
    values only (plus numpy scalars and torch's version string, which earlier
    files hold), so a model file from elsewhere cannot run code.

    Returns
    -------
    model : Model
        In eval mode, on ``map_location``.
    metadata : dict
        The ``**metadata`` given to :func:`save_model`.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    ModelFileError
        Naming the file and what to do, when it is empty, damaged or cut short; not a model file (random
        bytes, a saved tensor, another dict); a training checkpoint of :func:`~emovae_utils.train.fit`;
        holds objects that would run code; names a model not registered here (listing those that are);
        or its config or weights do not fit the class.

    Examples
    --------
    >>> import tempfile, torch
    >>> from emovae_utils.models import build
    >>> path = Path(tempfile.mkdtemp()) / "tensor.pt"
    >>> torch.save(torch.zeros(3), path)
    >>> load_model(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emovae_utils.models.registry.ModelFileError: .../tensor.pt holds a Tensor, not a model of ...
    """
    path = Path(path)
    payload = _read(path)
    _check_payload(path, payload)
    name = payload.get("name", "emotion_vae")  # format 1 files hold an EmotionVAE
    retrain = ("retrain it with the notebook that wrote it (e.g. `python -m emovae_utils.pipeline "
               "--preset paper --only 02`), or delete it")
    if name not in _REGISTRY:
        raise ModelFileError(f"{path}: model {name!r} is not registered here "
                             f"(available: {', '.join(available())}); import the module that defines it, or {retrain}")
    try:
        model = build(name, **payload["config"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: its config {payload['config']} does not build {name!r}: {exc}; "
                             f"{retrain}") from exc
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: its weights do not fit {type(model).__name__}({payload['config']}): "
                             f"{str(exc).splitlines()[0]}; {retrain}") from exc
    model.to(map_location).eval()
    return model, dict(payload.get("metadata", {}))
