"""Training any :class:`~emovae_utils.models.BaseVAE` (or a registered classifier such as
:class:`~emovae_utils.models.classifier.EmotionCNN`): reproducible, resumable, with callbacks.

The loop is written for small data sets that fit in memory: the whole training
set is one tensor on the device; each epoch draws a seeded ``torch.randperm``
and gathers its batches (no ``DataLoader``). Each step is stock PyTorch:
``model(x, cond)``, ``model.loss_function``, autograd, ``clip_grad_norm_`` and
``torch.optim.Adam``. Opt-in accelerators (``accel=``, see
:mod:`emovae_utils.accel`) replace the step for the one model they were
written for.

Runs are reproducible: seeds and thread count are fixed and recorded in
``out_dir/run.json``; checkpoints hold the model, optimiser and every RNG
state, and ``resume=True`` continues a run with a bit-identical loss history.
Checkpoints, training samples and progress are callbacks
(:mod:`emovae_utils.callbacks`).
"""
from __future__ import annotations

import math
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import accel as accelerators
from .callbacks import (
    CHECKPOINT_NAME, HISTORY_NAME, SAMPLES_DIR, Callback, Checkpoint, LambdaCallback, ProgressBar, Run,
    TrainingSamples, history_frame, set_rng_state, write_history,
)
from .io import sha1_array, write_json
from .resources import available_cores

__all__ = [
    "fit", "set_determinism", "default_threads", "load_checkpoint", "NonFiniteLossError",
    "CHECKPOINT_NAME", "HISTORY_NAME", "RUN_NAME", "SAMPLES_DIR",
]

RUN_NAME = "run.json"
# Settings that must not change between a run and its resumption.
_RESUME_KEYS = (
    "seed", "threads", "batch_size", "lr", "clip_norm", "drop_last", "n_clips", "input_shape",
    "data_sha1", "cond_sha1", "model", "accel",
)


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


def _check_data(X: Any, cond: Any, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    X = torch.as_tensor(X).detach()
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
    if cond is None:
        return X, None
    cond = torch.as_tensor(cond).detach().to(dev)
    if cond.shape[0] != X.shape[0]:
        raise ValueError(f"cond has {cond.shape[0]} rows but X has {X.shape[0]} clips; give one condition per clip")
    return X, cond


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

    def __init__(self, model: nn.Module, X: torch.Tensor, cond: torch.Tensor | None, lr: float, clip: float) -> None:
        self.model, self.X, self.cond, self.clip = model, X, cond, clip
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=lr, foreach=True)
        self.description = "Adam(foreach=True; betas=(0.9, 0.999), eps=1e-8) with clip_grad_norm_"

    def __call__(self, index: torch.Tensor | None) -> dict[str, torch.Tensor]:
        x = self.X if index is None else self.X.index_select(0, index)
        cond = self.cond if index is None or self.cond is None else self.cond.index_select(0, index)
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.model.loss_function(x, self.model(x, cond))
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
        self.malloc_tuned = cpu.tune_malloc() if not self.on_cuda else False
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


def _run_config(model: nn.Module, X: torch.Tensor, cond: torch.Tensor | None, **settings: Any) -> dict[str, Any]:
    from .models import registered_name

    try:
        name = registered_name(model)
    except ValueError:
        name = None
    config = dict(settings)
    config.update(
        n_clips=X.shape[0], input_shape=list(X.shape[1:]), data_sha1=sha1_array(X),
        cond_sha1=None if cond is None else sha1_array(cond),
        model={"class": type(model).__name__, "name": name, "config": getattr(model, "config", None),
               "n_parameters": sum(p.numel() for p in model.parameters())},
        torch_version=torch.__version__, numpy_version=np.__version__, python_version=sys.version.split()[0],
        platform=platform.platform(), cpu_count=available_cores(),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
    )
    if settings["device"].startswith("cuda"):
        config["cuda_device_name"] = torch.cuda.get_device_name(torch.device(settings["device"]))
    return config


def _resume(run: Run, path: Path) -> None:
    ck = load_checkpoint(path)
    for key in _RESUME_KEYS:
        if ck["config"].get(key) != run.config[key]:
            raise ValueError(f"cannot resume from {path}: {key}={run.config[key]!r} but the checkpoint has "
                             f"{ck['config'].get(key)!r}; use the same settings, or another out_dir")
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
    *,
    cond: np.ndarray | torch.Tensor | None = None,
    epochs: int,
    batch_size: int | None = None,
    seed: int = 0,
    lr: float = 1e-3,
    clip_norm: float | None = 1.0,
    drop_last: bool = False,
    threads: int | None = None,
    device: str | torch.device | None = None,
    accel: str | None = None,
    out_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = 1000,
    sample_every: int | None = 100,
    render_workers: int | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback | Callable[[int, dict[str, float]], None]] = (),
) -> pd.DataFrame:
    """Train a model with Adam on its own ``loss_function``; reproducible and resumable.

    Parameters
    ----------
    model : BaseVAE or classifier
        Any model of :mod:`emovae_utils.models`; trained in place (moved to
        ``device``). Besides the VAEs, any ``nn.Module`` with
        ``forward(x, cond) -> dict`` and ``loss_function(x, out) -> dict`` holding
        ``loss`` trains, e.g. :class:`~emovae_utils.models.classifier.EmotionCNN`
        with the labels as ``cond``.
    X : array or tensor, (N, 80, 128)
        Training spectrograms (dB). Held as one float32 tensor on the device;
        NaN or inf is an error naming the clips.
    cond : array or tensor, (N, ...), optional
        A condition per clip (e.g. speaker), gathered with each batch and
        passed as ``model(x, cond)``.
    epochs : int
        Total number of epochs (including those done before a resume).
    batch_size : int, optional
        ``None`` (or >= N) = full batch: one step per epoch on all clips, no
        shuffling. Otherwise each epoch draws ``torch.randperm(N)`` from a
        generator seeded with ``seed`` and steps over consecutive slices.
    seed : int, default 0
        Seeds torch, numpy, ``random`` (:func:`set_determinism`) and the shuffling.
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
    device : str or torch.device, optional
        ``None`` = CUDA when available, else CPU.
    accel : {None, "auto", "gemm"}, default None
        ``None``: stock PyTorch. ``"gemm"``: the hand-written path of
        :mod:`emovae_utils.accel.gemm` (an error saying why for any model it
        was not written for). ``"auto"``: that path on the CPU when the model
        qualifies, else stock; the choice and reason go to ``run.json``. Only
        :class:`~emovae_utils.models.EmotionVAE` qualifies: a classifier always
        trains through autograd (``"gemm"`` is an error for it).
    out_dir : path-like, optional
        Where ``run.json``, ``history.csv``, ``checkpoint.pt`` and
        ``training_samples/epoch_XXXXX.wav`` go. Nothing is written without it.
    checkpoint_every : int or None, default 1000
        :class:`~emovae_utils.callbacks.Checkpoint` every this many epochs and
        at the end (needs ``out_dir``).
    sample_every : int or None, default 100
        :class:`~emovae_utils.callbacks.TrainingSamples` of clip 0 every this
        many epochs (needs ``out_dir``); ``None``/0 disables them. VAEs only:
        ignored for any other model (a classifier has nothing to render).
    render_workers : int, optional
        Processes rendering the samples; see :class:`~emovae_utils.callbacks.TrainingSamples`.
    resume : bool, default False
        Continue from ``out_dir/checkpoint.pt`` if it exists (bit-identical
        history on the same machine and thread count); settings that change
        the trajectory must match.
    progress : bool, default True
        :class:`~emovae_utils.callbacks.ProgressBar`.
    callbacks : sequence
        More :class:`~emovae_utils.callbacks.Callback` objects, or callables
        ``fn(epoch, losses)``, run after the built-in ones every epoch (after
        the epoch's checkpoint). May raise to stop.

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
    >>> from emovae_utils.train import fit
    >>> X = torch.randn(8, 80, 128)
    >>> history = fit(build("beta_vae", beta=4.0), X, epochs=2, progress=False)
    >>> list(history.columns)
    ['epoch', 'reconstruction', 'kl', 'total']
    """
    from .models import BaseVAE

    is_vae = isinstance(model, BaseVAE)
    if not is_vae and not (isinstance(model, nn.Module) and callable(getattr(model, "loss_function", None))):
        raise TypeError(f"fit trains emovae_utils.models.BaseVAE models or nn.Modules with a loss_function "
                        f"(e.g. emovae_utils.models.classifier.EmotionCNN), got {type(model).__name__}; "
                        "subclass BaseVAE (see emovae_utils/models/beta_vae.py)")
    if not is_vae:
        sample_every = None  # training samples render a VAE's reconstruction; nothing to render here
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    dev = _resolve_device(device)
    threads = set_determinism(seed, threads)
    X, cond = _check_data(X, cond, dev)
    n = X.shape[0]
    full_batch, bs, n_batches = _batching(n, batch_size, drop_last)
    clip = float(clip_norm) if clip_norm else 0.0
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ValueError("resume=True needs out_dir")

    model.to(dev)
    model.train()
    initial_sha1 = sha1_array(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    # A non-VAE always goes through select, so that accel="gemm" is refused with the reason.
    acc, accel_reason = accelerators.select(model, accel, dev) if cond is None or accel is None or not is_vae else (
        None, "autograd (the accelerator takes no cond)")
    step = _AcceleratedStep(acc, X, lr, clip, threads, dev) if acc is not None else _AutogradStep(
        model, X, cond, lr, clip)
    config = _run_config(
        model, X, cond, seed=seed, threads=threads, device=str(dev), epochs=epochs,
        batch_size=None if full_batch else bs, full_batch=full_batch, n_batches_per_epoch=n_batches, lr=lr,
        clip_norm=clip or None, drop_last=drop_last, accel=acc.name if acc is not None else None,
        accel_reason=accel_reason, optimizer=step.description, initial_weights_sha1=initial_sha1,
        checkpoint_every=checkpoint_every if out is not None else None,
        sample_every=sample_every if out is not None and sample_every else None,
        malloc_tuned=getattr(step, "malloc_tuned", False),
    )
    builtin: list[Callback] = []
    if out is not None and sample_every:
        builtin.append(TrainingSamples(X[:1], sample_every, render_workers, threads,
                                       cond0=None if cond is None else cond[:1]))
    if out is not None and checkpoint_every:
        builtin.append(Checkpoint(checkpoint_every))
    user = [cb if isinstance(cb, Callback) else LambdaCallback(cb) for cb in callbacks]
    bar = [ProgressBar()] if progress else []
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    run = Run(model=model, optimizer=step.optimizer, generator=gen, device=dev, config=config, epochs=epochs,
              out_dir=out, callbacks=builtin + user + bar)
    finished = False
    started: list[Callback] = []
    try:
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        for cb in run.callbacks:
            cb.on_fit_start(run)
            started.append(cb)
        if resume and (out / CHECKPOINT_NAME).exists():
            _resume(run, out / CHECKPOINT_NAME)
            if bar:
                bar[0].bar.update(run.start_epoch - bar[0].bar.n)
        if out is not None:
            config["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_json(out / RUN_NAME, config)
        t_start = time.perf_counter()
        _epochs(run, step, n, full_batch, bs, n_batches, dev)
        elapsed = time.perf_counter() - t_start
        history = history_frame(run.rows, run.columns)
        finished = True
    finally:
        for cb in started:
            cb.on_fit_end(run, finished)
        step.close()
    if out is not None:
        write_history(out / HISTORY_NAME, history)
        done = epochs - run.start_epoch
        config.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), wall_seconds=round(elapsed, 3),
                      ms_per_epoch=round(1e3 * elapsed / done, 4) if done else None,
                      final=run.rows[-1] if run.rows else None)
        write_json(out / RUN_NAME, config)
    return history


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
