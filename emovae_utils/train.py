"""Training any :class:`~emovae_utils.models.BaseVAE` (or a registered classifier such as
:class:`~emovae_utils.models.classifier.EmotionCNN`): reproducible, resumable, with callbacks.

The loop is written for small data sets that fit in memory: the whole training
set is one tensor on the device; each epoch draws a seeded ``torch.randperm``
and gathers its batches (no ``DataLoader``). Each step is stock PyTorch:
``model.loss_function(x, model(x, cond), labels)``, autograd, ``clip_grad_norm_``
and ``torch.optim.Adam``: the decoder condition ``cond`` reaches ``forward``, the
training ``labels`` only the loss. The settings are data, a :class:`FitConfig`. Opt-in accelerators (``accel=``, see
:mod:`emovae_utils.accel`) replace the step for the one model they were
written for.

Runs are reproducible: seeds and thread count are fixed and recorded in
``out_dir/run.json``; checkpoints hold the model, optimiser and every RNG
state, and ``resume=True`` continues a run with a bit-identical loss history.
Checkpoints, training samples and progress are callbacks
(:mod:`emovae_utils.callbacks`).
"""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import accel as accelerators
from .callbacks import (
    CHECKPOINT_NAME, HISTORY_NAME, SAMPLES_DIR, Callback, Checkpoint, LambdaCallback, ProgressBar, Run,
    StopWhenFlat, TrainingSamples, history_frame, set_rng_state, write_history,
)
from .io import sha1_array, write_json
from .resources import available_cores

__all__ = [
    "fit", "FitConfig", "set_determinism", "default_threads", "load_checkpoint", "NonFiniteLossError",
    "CHECKPOINT_NAME", "HISTORY_NAME", "RUN_NAME", "SAMPLES_DIR",
]

RUN_NAME = "run.json"
# Settings that must not change between a run and its resumption.
_RESUME_KEYS = (
    "seed", "threads", "batch_size", "lr", "clip_norm", "drop_last", "n_clips", "input_shape",
    "data_sha1", "cond_sha1", "labels_sha1", "model", "accel",
)


@dataclass(frozen=True)
class FitConfig:
    """The settings of :func:`fit`, as data (in the spirit of pythae's ``*Config`` classes).

    Every field is checked when the config is made: a ValueError names the
    field, the value and what is allowed (integers are ints, never rounded).

    Parameters
    ----------
    epochs : int
        Total number of epochs (including those done before a resume), >= 1.
    batch_size : int, optional
        ``None`` (or >= N) = full batch: one step per epoch on all clips, no
        shuffling. Otherwise each epoch draws ``torch.randperm(N)`` from a
        generator seeded with ``seed`` and steps over consecutive slices.
    lr : float, default 1e-3
        Adam learning rate (Adam defaults otherwise: betas (0.9, 0.999), eps 1e-8).
    clip_norm : float or None, default 1.0
        ``clip_grad_norm_`` to this global norm; ``None`` or 0 disables it.
    drop_last : bool, default False
        Drop the last incomplete batch (the authors' code did; with 30 clips
        and batch 64 that leaves no step at all, which is an error here).
    threads : int, optional
        ``torch.set_num_threads`` (global; left set after ``fit``); ``None`` =
        :func:`default_threads` (1, which degrades gracefully on a busy
        machine). Recorded. Bitwise reproducibility (and resuming) needs the same count.
    device : str, optional
        ``None`` = CUDA when available, else CPU.
    accel : {None, "auto", "gemm"}, default None
        ``None``: stock PyTorch. ``"gemm"``: the hand-written path of
        :mod:`emovae_utils.accel.gemm` (an error saying why for any model it
        was not written for). ``"auto"``: that path on the CPU when the model
        qualifies, else stock; the choice and reason go to ``run.json``. Only
        :class:`~emovae_utils.models.EmotionVAE` without ``cond`` or ``labels``
        qualifies: a classifier always trains through autograd (``"gemm"`` is an error for it).
    checkpoint_every : int or None, default 1000
        :class:`~emovae_utils.callbacks.Checkpoint` every this many epochs and
        at the end (needs ``out_dir``).
    sample_every : int or None, default 100
        :class:`~emovae_utils.callbacks.TrainingSamples` of clip 0 every this
        many epochs (needs ``out_dir``); ``None``/0 disables them. Generative
        models only: ignored for any other (a classifier has nothing to render).
    render_workers : int, optional
        Processes rendering the samples; see :class:`~emovae_utils.callbacks.TrainingSamples`.
    resume : bool, default False
        Continue from ``out_dir/checkpoint.pt`` if it exists (bit-identical
        history on the same machine and thread count); settings that change
        the trajectory must match.
    progress : bool, default True
        :class:`~emovae_utils.callbacks.ProgressBar`.
    stop_when_flat : int or None, default None
        Early stopping: :class:`~emovae_utils.callbacks.StopWhenFlat` with this horizon (epochs) on the
        total loss (:func:`emovae_utils.convergence.flat_epoch`, tolerance ``flat_tolerance``);
        ``epochs`` is then the budget. ``run.json`` records ``flat_epoch`` and ``stopped_early``.
    flat_tolerance : float, default 0.01

    Examples
    --------
    >>> cfg = FitConfig.from_mapping({"epochs": 5, "lr": 1e-3})
    >>> cfg.batch_size, cfg.settings()
    (None, {'epochs': 5, 'lr': 0.001})
    >>> FitConfig(epochs=5, lr=3e-3).settings()
    {'epochs': 5, 'lr': 0.003}
    """

    epochs: int
    batch_size: int | None = None
    lr: float = 1e-3
    clip_norm: float | None = 1.0
    drop_last: bool = False
    threads: int | None = None
    device: str | None = None
    accel: str | None = None
    checkpoint_every: int | None = 1000
    sample_every: int | None = 100
    render_workers: int | None = None
    resume: bool = False
    progress: bool = True
    stop_when_flat: int | None = None
    flat_tolerance: float = 0.01

    def __post_init__(self) -> None:
        from .models.base import check_bool, check_float, check_int

        owner = "FitConfig"
        check_int(owner, "epochs", self.epochs)
        check_int(owner, "batch_size", self.batch_size, optional=True)
        check_float(owner, "lr", self.lr, above=True)
        check_float(owner, "clip_norm", self.clip_norm, optional=True)
        check_int(owner, "threads", self.threads, optional=True)
        check_int(owner, "checkpoint_every", self.checkpoint_every, low=0, optional=True)
        check_int(owner, "sample_every", self.sample_every, low=0, optional=True)
        check_int(owner, "render_workers", self.render_workers, low=0, optional=True)
        check_int(owner, "stop_when_flat", self.stop_when_flat, optional=True)
        check_float(owner, "flat_tolerance", self.flat_tolerance, above=True)
        for name in ("drop_last", "resume", "progress"):
            check_bool(owner, name, getattr(self, name))
        if self.device is not None and not isinstance(self.device, (str, torch.device)):
            raise ValueError(f"FitConfig(device={self.device!r}): device must be None, a string such as 'cpu' "
                             "or 'cuda:0', or a torch.device")
        if self.accel is not None and self.accel != "auto" and self.accel not in accelerators.ACCELERATORS:
            raise ValueError(f"FitConfig(accel={self.accel!r}): accel must be None, 'auto' or one of "
                             f"{sorted(accelerators.ACCELERATORS)}")
        object.__setattr__(self, "_given", None)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> "FitConfig":
        """The config of ``settings`` over ``defaults``, remembering which keys ``settings`` gave.

        :meth:`settings` then returns exactly those keys (a trial's spec, and so its id,
        holds only the settings given explicitly).
        """
        unknown = sorted(set(settings) - set(cls.names()))
        if unknown:
            raise ValueError(f"unknown fit settings {unknown}; known: {', '.join(cls.names())}")
        cfg = cls(**{**dict(defaults or {}), **dict(settings)})
        object.__setattr__(cfg, "_given", tuple(settings))
        return cfg

    def settings(self, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The settings that describe this config: the keys given to :meth:`from_mapping` (in their
        order), or else ``epochs`` and the fields that differ from ``defaults`` over the class defaults."""
        if self._given is not None:
            return {k: getattr(self, k) for k in self._given}
        base = FitConfig(epochs=self.epochs, **dict(defaults or {}))
        return {k: getattr(self, k) for k in self.names() if k == "epochs" or getattr(self, k) != getattr(base, k)}


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; ``epoch`` is the first bad epoch (1-based)."""

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch


def default_threads() -> int:
    """Thread count used when ``threads=None``: 1.

    One thread degrades gracefully on a busy machine: torch's OpenMP threads
    spin-wait for each other, so 2 threads on a 2-core machine with one other
    busy process ran 300x slower (1068 vs 3.3 ms per epoch), while one thread
    keeps its speed. Ask for more threads on a quiet machine (the presets do
    where it measured faster; ``benchmarks/train.py --busy`` measures both).
    """
    return 1


def set_determinism(seed: int, threads: int | None = None) -> int:
    """Seed torch, numpy and ``random`` and fix the torch CPU thread count.

    Parameters
    ----------
    seed : int
        Seed for ``torch.manual_seed`` (all devices), ``np.random.seed`` and ``random.seed``.
    threads : int, optional
        ``torch.set_num_threads(threads)``; ``None`` uses :func:`default_threads`.
        Results are bit-reproducible for a given thread count on a given
        machine; a different count can change float32 summation order.

    Returns
    -------
    int
        The thread count in effect.

    Examples
    --------
    >>> set_determinism(0, threads=1)
    1
    """
    threads = default_threads() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return threads


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`fit` (on the CPU).

    The dict holds ``epoch`` (completed epochs), ``state_dict`` (the model's),
    ``optimizer``, ``rng``, ``columns`` and ``history`` (rows ``[epoch, *columns]``),
    ``config`` and ``callbacks`` (each callback's stored state).

    Raises
    ------
    ValueError
        The file is there but is no checkpoint (truncated, empty, other bytes), naming it.
    """
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except (FileNotFoundError, PermissionError, IsADirectoryError):  # these name the path themselves
        raise
    except Exception as exc:  # noqa: BLE001 - torch and pickle raise many kinds on damaged bytes
        raise ValueError(f"{path} is not a readable checkpoint (cut short by a crash or a full disk?): "
                         f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(ck, dict) or "epoch" not in ck:
        raise ValueError(f"{path} is not a readable checkpoint: it holds no checkpoint of fit")
    return ck


def _tensor(values: Any) -> torch.Tensor:
    """``values`` as a tensor; a read-only array (e.g. the feature cache's) is copied, not shared, since torch
    warns that it cannot guard such memory."""
    if isinstance(values, np.ndarray) and not values.flags.writeable:
        values = values.copy()
    return torch.as_tensor(values).detach()


def _check_data(X: Any, dev: torch.device) -> torch.Tensor:
    X = _tensor(X)
    if X.dim() != 3:
        raise ValueError(f"X must be (N, n_mels, frames) spectrograms, got shape {tuple(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError("X is empty: no clips to train on")
    X = X.to(device=dev, dtype=torch.float32).contiguous()
    bad = torch.nonzero(~torch.isfinite(X).flatten(1).all(dim=1)).flatten().tolist()
    if bad:
        raise ValueError(
            f"X holds NaN or inf values in {len(bad)} of {X.shape[0]} clips (first: {bad[:5]}); the input "
            "is bad, not the training: rebuild the features (emovae_utils.data.load_features) or drop those clips"
        )
    return X


def _per_clip(values: Any, name: str, n: int, dev: torch.device) -> torch.Tensor | None:
    """``cond`` or ``labels`` as a tensor on ``dev``, one row per clip (None stays None)."""
    if values is None:
        return None
    values = _tensor(values).to(dev)
    if values.shape[0] != n:
        what = "condition" if name == "cond" else "label row"
        raise ValueError(f"{name} has {values.shape[0]} rows but X has {n} clips; give one {what} per clip")
    return values


def _batching(n: int, batch_size: int | None, drop_last: bool) -> tuple[bool, int, int]:
    full_batch = batch_size is None or batch_size >= n
    bs = n if full_batch else int(batch_size)
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_batches = n // bs if drop_last and not full_batch else math.ceil(n / bs)
    if drop_last and batch_size is not None and batch_size > n or n_batches == 0:
        raise ValueError(f"drop_last=True with {n} clips and batch_size {batch_size} gives no step per epoch")
    return full_batch, bs, n_batches


class _AutogradStep:
    """One stock training step: forward, ``loss_function``, backward, clip, Adam."""

    def __init__(self, model: nn.Module, X: torch.Tensor, cond: torch.Tensor | None, labels: torch.Tensor | None,
                 lr: float, clip: float) -> None:
        self.model, self.X, self.cond, self.labels, self.clip = model, X, cond, labels, clip
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=lr, foreach=True)
        self.description = "Adam(foreach=True; betas=(0.9, 0.999), eps=1e-8) with clip_grad_norm_"
        self.malloc_tuned = False

    def __call__(self, index: torch.Tensor | None) -> dict[str, torch.Tensor]:
        x = self.X if index is None else self.X.index_select(0, index)
        cond = self.cond if index is None or self.cond is None else self.cond.index_select(0, index)
        labels = self.labels if index is None or self.labels is None else self.labels.index_select(0, index)
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.model.loss_function(x, self.model(x, cond), labels)
        if "loss" not in losses:
            raise KeyError(f"{type(self.model).__name__}.loss_function returned {sorted(losses)}; it must "
                           "return a dict holding 'loss' (the scalar to minimise)")
        losses["loss"].backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        return losses

    def close(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)  # the model leaves fit without gradients


class _AcceleratedStep:
    """A step through an accelerator, with the CPU tricks of :mod:`emovae_utils.accel.cpu`."""

    def __init__(self, acc: Any, X: torch.Tensor, lr: float, clip: float, threads: int, dev: torch.device) -> None:
        from .accel import cpu

        self.acc, self.clip, self.threads, self.on_cuda = acc, clip, threads, dev.type == "cuda"
        self.X = X.transpose(1, 2).contiguous().transpose(1, 2)  # time-major storage, (N, 80, 128) view
        acc.store_weights()
        self.flat = cpu.FlatParameters([p for p in acc.model.parameters()])
        self.optimizer = torch.optim.Adam([self.flat.flat], lr=lr, fused=True)
        self.malloc_tuned = cpu.tune_malloc() if not self.on_cuda else False  # recorded in run.json
        self.ftz_before = cpu.denormals_flushed()
        self._adam = cpu.cpu_adam_step
        self.description = ("Adam(fused=True on one flat parameter; betas=(0.9, 0.999), eps=1e-8), one-tensor "
                            "clipping" + ("" if self.on_cuda else "; CPU: one thread, subnormals flushed to zero"))

    def __call__(self, index: torch.Tensor | None) -> dict[str, torch.Tensor]:
        losses = self.acc.loss_and_grad(self.X, index=index)
        grad = self.flat.grad
        if self.clip:  # clip_grad_norm_'s formula on one tensor; a scale of exactly 1 is skipped on the CPU
            scale = torch.clamp(self.clip / (torch.linalg.vector_norm(grad) + 1e-6), max=1.0)
            if self.on_cuda or scale.item() < 1.0:
                grad.mul_(scale)
        if self.on_cuda:
            self.optimizer.step()
        else:
            self._adam(self.optimizer, self.threads, self.ftz_before)
        return losses

    def close(self) -> None:
        self.flat.release()
        self.acc.restore_weights()


def _run_config(model: nn.Module, X: torch.Tensor, cond: torch.Tensor | None, labels: torch.Tensor | None,
                **settings: Any) -> dict[str, Any]:
    from .models import registered_name

    try:
        name = registered_name(model)
    except ValueError:
        name = None
    config = dict(settings)
    config.update(
        n_clips=X.shape[0], input_shape=list(X.shape[1:]), data_sha1=sha1_array(X),
        cond_sha1=None if cond is None else sha1_array(cond),
        labels_sha1=None if labels is None else sha1_array(labels),
        model={"class": type(model).__name__, "name": name, "config": model.config,
               "n_parameters": sum(p.numel() for p in model.parameters())},
        torch_version=torch.__version__, numpy_version=np.__version__, python_version=sys.version.split()[0],
        platform=platform.platform(), cpu_count=available_cores(),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
    )
    if settings["device"].startswith("cuda"):
        config["cuda_device_name"] = torch.cuda.get_device_name(torch.device(settings["device"]))
    return config


def _stored_config(ck: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's run settings. One written before labels had their own argument (``labels_sha1``
    absent: the labels were ``cond``) is read with its ``cond_sha1`` as ``labels_sha1`` for a model that
    declares labels."""
    stored = dict(ck["config"])
    if "labels_sha1" not in stored:
        from .models import available, model_class

        name = (stored.get("model") or {}).get("name")
        declares_labels = name in available() and model_class(name).labels is not None
        stored["labels_sha1"] = stored.get("cond_sha1") if declares_labels else None
        stored["cond_sha1"] = None if declares_labels else stored.get("cond_sha1")
    return stored


def _resume(run: Run, path: Path) -> None:
    ck = load_checkpoint(path)
    stored = _stored_config(ck)
    for key in _RESUME_KEYS:
        if stored.get(key) != run.config[key]:
            raise ValueError(f"cannot resume from {path}: {key}={run.config[key]!r} but the checkpoint has "
                             f"{stored.get(key)!r}; use the same settings, or another out_dir")
    if int(ck["epoch"]) > run.epochs:
        raise ValueError(f"cannot resume: the checkpoint is at epoch {ck['epoch']} > epochs={run.epochs}")
    run.start_epoch = int(ck["epoch"])
    run.model.load_state_dict(ck["state_dict"])  # copies into the (possibly flat) parameters
    run.optimizer.load_state_dict(ck["optimizer"])
    set_rng_state(ck["rng"], run.generator, run.device)
    run.columns, run.rows = list(ck["columns"]), [list(r) for r in ck["history"]]
    run.config["initial_weights_sha1"] = ck["config"].get("initial_weights_sha1")
    run.config["resumed_from_epoch"] = run.start_epoch
    stored = ck.get("callbacks", {})
    for cb in run.callbacks:
        if type(cb).__name__ in stored:
            cb.load_state_dict(stored[type(cb).__name__])


def fit(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    config: FitConfig | Mapping[str, Any] | None = None,
    *,
    cond: np.ndarray | torch.Tensor | None = None,
    labels: np.ndarray | torch.Tensor | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    callbacks: Sequence[Callback | Callable[[int, dict[str, float]], None]] = (),
    **settings: Any,
) -> pd.DataFrame:
    """Train a model with Adam on its own ``loss_function``; reproducible and resumable.

    Parameters
    ----------
    model : Model
        Any registered model of :mod:`emovae_utils.models` (a VAE, or a
        classifier such as :class:`~emovae_utils.models.classifier.EmotionCNN`);
        trained in place (moved to ``config.device``). Each step computes
        ``model.loss_function(x, model(x, cond), labels)`` on the batch.
    X : array or tensor, (N, 80, 128)
        Training spectrograms (dB). Held as one float32 tensor on the device;
        NaN or inf is an error naming the clips.
    config : FitConfig or mapping, optional
        The settings (:class:`FitConfig`; ``epochs`` is required). A mapping
        is read as ``FitConfig(**config)``.
    cond : array or tensor, (N, ...), optional
        The decoder/encoder condition per clip (the kind ``model.condition``
        names, e.g. speaker codes), gathered with each batch and passed as ``model(x, cond)``.
    labels : array or tensor, (N, ...), optional
        The training labels per clip (the kind ``model.labels`` names), gathered
        with each batch and passed to the loss only: ``loss_function(x, out, labels)``.
    seed : int, default 0
        Seeds torch, numpy, ``random`` (:func:`set_determinism`) and the shuffling.
    out_dir : path-like, optional
        Where ``run.json``, ``history.csv``, ``checkpoint.pt`` and
        ``training_samples/epoch_XXXXX.wav`` go. Nothing is written without it.
    callbacks : sequence
        More :class:`~emovae_utils.callbacks.Callback` objects, or callables
        ``fn(epoch, losses)``, run after the built-in ones every epoch (after
        the epoch's checkpoint). May raise to stop.
    **settings
        :class:`FitConfig` fields as keywords (``fit(model, X, epochs=3)``),
        overriding those of ``config``.

    Returns
    -------
    pandas.DataFrame
        ``epoch`` (1-based), then the epoch mean of each term of the model's
        ``loss_function`` over its batches. VAEs: ``reconstruction``, ``kl``,
        ``total`` (its ``loss``) and any other terms. Other models: their terms
        in the order ``loss_function`` returns them, ``loss`` named ``total``
        (:class:`~emovae_utils.models.classifier.EmotionCNN`: ``total``,
        ``accuracy``). Also ``out_dir/history.csv``.

    Raises
    ------
    NonFiniteLossError
        When a loss becomes NaN/inf, naming the first bad epoch. No checkpoint
        of that state is written; the model in memory holds the diverged weights.

    Examples
    --------
    >>> import torch
    >>> from emovae_utils.models import build
    >>> from emovae_utils.train import FitConfig, fit
    >>> X = torch.randn(8, 80, 128)
    >>> history = fit(build("beta_vae", beta=4.0), X, FitConfig(epochs=2, progress=False))
    >>> list(history.columns)
    ['epoch', 'reconstruction', 'kl', 'total']
    """
    cfg = _fit_config(config, settings)
    run, step, batching = _setup(model, X, cfg, cond, labels, seed, out_dir, callbacks)
    out, config_ = run.out_dir, run.config
    finished = False
    started: list[Callback] = []
    try:
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        for cb in run.callbacks:
            cb.on_fit_start(run)
            started.append(cb)
        if cfg.resume and (out / CHECKPOINT_NAME).exists():
            _resume(run, out / CHECKPOINT_NAME)
            if cfg.progress:  # the bar is the last callback
                run.callbacks[-1].bar.update(run.start_epoch - run.callbacks[-1].bar.n)
        if out is not None:
            config_["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_json(out / RUN_NAME, config_)
        t_start = time.perf_counter()
        _epochs(run, step, *batching)
        elapsed = time.perf_counter() - t_start
        history = history_frame(run.rows, run.columns)
        finished = True
    finally:
        for cb in started:
            cb.on_fit_end(run, finished)
        step.close()
    if out is not None:
        write_history(out / HISTORY_NAME, history)
        done = (int(run.rows[-1][0]) if run.rows else cfg.epochs) - run.start_epoch
        config_.update(stopped_early=bool(run.stop), epochs_done=int(run.rows[-1][0]) if run.rows else 0)
        config_.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), wall_seconds=round(elapsed, 3),
                       ms_per_epoch=round(1e3 * elapsed / done, 4) if done else None,
                       final=run.rows[-1] if run.rows else None)
        write_json(out / RUN_NAME, config_)
    return history


def _fit_config(config: FitConfig | Mapping[str, Any] | None, settings: Mapping[str, Any]) -> FitConfig:
    """``config`` (a FitConfig, a mapping, or None) with the keyword ``settings`` over it."""
    if config is None:
        return FitConfig(**settings)
    if not isinstance(config, FitConfig):
        return FitConfig(**{**dict(config), **settings})
    return dataclasses.replace(config, **settings) if settings else config


def _setup(model: nn.Module, X: Any, cfg: FitConfig, cond: Any, labels: Any, seed: int,
           out_dir: str | os.PathLike | None, callbacks: Sequence[Any]) -> tuple[Run, Any, tuple]:
    """Check the inputs, seed, build the step (autograd or accelerated), the run record and its callbacks.

    Returns the :class:`~emovae_utils.callbacks.Run`, the step and the batching ``(n, full_batch, bs,
    n_batches, device)`` of :func:`_epochs`.
    """
    from .models import Model

    if not isinstance(model, Model):
        raise TypeError(f"fit trains registered emovae_utils.models models (subclasses of "
                        f"emovae_utils.models.Model, e.g. any BaseVAE or EmotionCNN), got {type(model).__name__}; "
                        "subclass BaseVAE (see emovae_utils/models/beta_vae.py)")
    if cond is not None and model.condition is None:
        raise ValueError(f"{type(model).__name__} declares no condition (condition=None), so cond would be "
                         f"ignored; training labels go in labels= (it declares labels={model.labels!r})")
    if labels is not None and model.labels is None:
        raise ValueError(f"{type(model).__name__} declares no training labels (labels=None); its loss would "
                         "ignore them")
    if labels is None and model.labels is not None:
        raise ValueError(
            f"{type(model).__name__} trains on labels ({model.labels!r}) but fit got none, so its classification "
            f"loss would be 0: pass fit(..., labels=emovae_utils.conditions.make_condition({model.labels!r}, X, "
            f"index)) (index: the clips' rows of data.load_features), or give a Trial cond={model.labels!r}; "
            "-1 marks an unknown label (all -1: train without labels on purpose)")
    sample_every = cfg.sample_every if model.generative else None  # nothing to render for a classifier
    dev = _resolve_device(cfg.device)
    threads = set_determinism(seed, cfg.threads)
    X = _check_data(X, dev)
    n = X.shape[0]
    cond, labels = _per_clip(cond, "cond", n, dev), _per_clip(labels, "labels", n, dev)
    full_batch, bs, n_batches = _batching(n, cfg.batch_size, cfg.drop_last)
    clip = float(cfg.clip_norm) if cfg.clip_norm else 0.0
    out = Path(out_dir) if out_dir is not None else None
    if cfg.resume and out is None:
        raise ValueError("resume=True needs out_dir")

    model.to(dev)
    model.train()
    initial_sha1 = sha1_array(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    acc, accel_reason = _accelerator(model, cfg.accel, dev, cond, labels)
    step = _AcceleratedStep(acc, X, cfg.lr, clip, threads, dev) if acc is not None else _AutogradStep(
        model, X, cond, labels, cfg.lr, clip)
    config = _run_config(
        model, X, cond, labels, seed=seed, threads=threads, device=str(dev), epochs=cfg.epochs,
        batch_size=None if full_batch else bs, full_batch=full_batch, n_batches_per_epoch=n_batches, lr=cfg.lr,
        clip_norm=clip or None, drop_last=cfg.drop_last, accel=acc.name if acc is not None else None,
        accel_reason=accel_reason, optimizer=step.description, initial_weights_sha1=initial_sha1,
        checkpoint_every=cfg.checkpoint_every if out is not None else None,
        sample_every=sample_every if out is not None and sample_every else None,
        malloc_tuned=step.malloc_tuned,
    )
    builtin: list[Callback] = []
    if out is not None and sample_every:
        builtin.append(TrainingSamples(X[:1], sample_every, cfg.render_workers, threads,
                                       cond0=None if cond is None else cond[:1]))
    if out is not None and cfg.checkpoint_every:
        builtin.append(Checkpoint(cfg.checkpoint_every))
    if cfg.stop_when_flat:
        builtin.append(StopWhenFlat(cfg.stop_when_flat, cfg.flat_tolerance))
    user = [cb if isinstance(cb, Callback) else LambdaCallback(cb) for cb in callbacks]
    bar = [ProgressBar()] if cfg.progress else []
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    run = Run(model=model, optimizer=step.optimizer, generator=gen, device=dev, config=config, epochs=cfg.epochs,
              out_dir=out, callbacks=builtin + user + bar)
    return run, step, (n, full_batch, bs, n_batches, dev)


def _accelerator(model: nn.Module, accel: str | None, dev: torch.device, cond: torch.Tensor | None,
                 labels: torch.Tensor | None) -> tuple[Any, str]:
    """The accelerator for ``model`` (or None) and why. A non-VAE always goes through
    :func:`emovae_utils.accel.select`, so that ``accel="gemm"`` is refused with the reason."""
    if accel is not None and model.generative and cond is not None:
        return None, "autograd (the accelerator takes no cond)"
    if accel is not None and model.generative and labels is not None:
        return None, "autograd (the accelerator takes no labels)"
    return accelerators.select(model, accel, dev)


def _epochs(run: Run, step: Any, n: int, full_batch: bool, bs: int, n_batches: int, dev: torch.device) -> None:
    """The epoch loop: batches, loss means, the finite check, callbacks."""
    acc = keys = None
    inv_batches = 1.0 / n_batches
    for epoch in range(run.start_epoch + 1, run.epochs + 1):
        if not full_batch:
            perm = torch.randperm(n, generator=run.generator).to(dev)
        for b in range(n_batches):
            losses = step(None if full_batch else perm[b * bs: (b + 1) * bs])
            if keys is None:  # VAEs: reconstruction, kl, loss first, then any other terms; else the model's order
                first = ("reconstruction", "kl", "loss") if {"reconstruction", "kl"} <= set(losses) else ()
                keys = list(first) + [k for k in losses if k not in first]
                columns = ["total" if k == "loss" else k for k in keys]
                if run.columns and run.columns != columns:
                    raise ValueError(f"the model's loss terms {columns} differ from the checkpoint's {run.columns}")
                run.columns = columns
                acc = torch.zeros(len(keys), device=dev)
            acc += torch.stack([losses[k].detach().to(acc.dtype) for k in keys])
        values = (acc * inv_batches).tolist()
        acc.zero_()
        if not all(math.isfinite(v) for v in values):
            raise NonFiniteLossError(
                f"non-finite loss at epoch {epoch} ({dict(zip(run.columns, values))}); training stopped, no "
                "checkpoint of this state was written (the model in memory holds the diverged weights): "
                "lower lr, or check the data", epoch)
        run.rows.append([epoch, *values])
        losses_now = dict(zip(run.columns, values))
        for cb in run.callbacks:
            cb.on_epoch_end(run, epoch, losses_now)
        if run.stop:
            break
