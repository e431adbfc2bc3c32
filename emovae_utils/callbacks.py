"""Side jobs of the training loop, as callbacks: checkpoints, training samples, progress.

:func:`emovae_utils.train.fit` calls, for each callback in order,
``on_fit_start(run)`` once, ``on_epoch_end(run, epoch, losses)`` after every
epoch and ``on_fit_end(run, finished)`` once. A callback with state to keep
across an interruption returns it from ``state_dict()``; :class:`Checkpoint`
stores it and a resumed run gives it back through ``load_state_dict``.

Examples
--------
>>> from emovae_utils.callbacks import Callback
>>> class PrintEvery100(Callback):
...     def on_epoch_end(self, run, epoch, losses):
...         if epoch % 100 == 0:
...             print(epoch, losses["total"])
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from .io import atomic_write
from .resources import available_cores, one_thread_worker

__all__ = ["Callback", "Run", "Checkpoint", "TrainingSamples", "ProgressBar", "LambdaCallback", "Validation",
           "StopWhenFlat",
           "CHECKPOINT_NAME", "HISTORY_NAME", "SAMPLES_DIR", "VALIDATION_NAME", "history_frame", "write_history"]

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.csv"
SAMPLES_DIR = "training_samples"
VALIDATION_NAME = "validation.csv"


@dataclass
class Run:
    """What callbacks see of a training run (the trainer's state)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    config: dict[str, Any]
    epochs: int
    out_dir: Path | None = None
    start_epoch: int = 0
    columns: list[str] = field(default_factory=list)
    rows: list[list[float]] = field(default_factory=list)
    callbacks: list["Callback"] = field(default_factory=list)
    stop: bool = False  # a callback sets it to end training after this epoch (early stopping)


def history_frame(rows: list[list[float]], columns: list[str]) -> pd.DataFrame:
    """Loss history rows ``[epoch, value, ...]`` as a frame (``epoch`` as int)."""
    df = pd.DataFrame(rows, columns=["epoch", *columns])
    df["epoch"] = df["epoch"].astype(np.int64)
    return df


def write_history(path: Path, history: pd.DataFrame) -> None:
    """Write the loss history CSV atomically."""
    atomic_write(path, lambda p: history.to_csv(p, index=False, float_format="%.9g"))


class Callback:
    """Base class: override the hooks you need (all do nothing here)."""

    def on_fit_start(self, run: Run) -> None:
        """Once, before the first epoch (after a resume has restored the state)."""

    def on_epoch_end(self, run: Run, epoch: int, losses: dict[str, float]) -> None:
        """After every epoch; ``losses`` holds the epoch means (``reconstruction``, ``kl``, ``total``...)."""

    def before_checkpoint(self, run: Run) -> None:
        """Just before :class:`Checkpoint` saves (e.g. finish pending work)."""

    def on_fit_end(self, run: Run, finished: bool) -> None:
        """Once, also after an error (``finished=False``)."""

    def state_dict(self) -> Any:
        """State to store in checkpoints (``None``: nothing)."""
        return None

    def load_state_dict(self, state: Any) -> None:
        """Restore what :meth:`state_dict` returned, on resume."""


class LambdaCallback(Callback):
    """``fn(epoch, losses)`` after every epoch (may raise to stop training)."""

    def __init__(self, fn: Callable[[int, dict[str, float]], None]) -> None:
        self.fn = fn

    def on_epoch_end(self, run: Run, epoch: int, losses: dict[str, float]) -> None:
        self.fn(epoch, losses)


def rng_state(gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    """Every random state a run depends on (torch, numpy, random, shuffling, CUDA)."""
    import random

    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate(), "shuffle": gen.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], gen: torch.Generator, device: torch.device) -> None:
    """Restore :func:`rng_state`."""
    import random

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    gen.set_state(state["shuffle"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class Checkpoint(Callback):
    """Save ``out_dir/checkpoint.pt`` and ``history.csv`` every ``every`` epochs and at the end.

    The checkpoint holds the model, the optimiser, every RNG state, the
    history, the run's settings and each callback's :meth:`~Callback.state_dict`,
    written atomically: a resumed run continues bit-identically (same machine
    and thread count).
    """

    def __init__(self, every: int | None = 1000) -> None:
        self.every = every

    def path(self, run: Run) -> Path:
        return run.out_dir / CHECKPOINT_NAME

    def on_epoch_end(self, run: Run, epoch: int, losses: dict[str, float]) -> None:
        if self.every and (epoch % self.every == 0 or epoch == run.epochs):
            self.save(run, epoch)

    def save(self, run: Run, epoch: int) -> None:
        for cb in run.callbacks:
            cb.before_checkpoint(run)
        state = {
            "epoch": epoch,
            "state_dict": {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()},
            "optimizer": run.optimizer.state_dict(),
            "rng": rng_state(run.generator, run.device),
            "columns": list(run.columns),
            "history": [list(r) for r in run.rows],
            "config": run.config,
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in run.callbacks},
        }
        atomic_write(self.path(run), lambda p: torch.save(state, p))
        write_history(run.out_dir / HISTORY_NAME, history_frame(run.rows, run.columns))

    def on_fit_end(self, run: Run, finished: bool) -> None:
        if finished and run.stop and run.rows:  # stopped early: the last epoch is the end
            self.save(run, int(run.rows[-1][0]))


class StopWhenFlat(Callback):
    """End training once the loss is flat by :func:`emovae_utils.convergence.flat_epoch` (early stopping).

    Every ``check_every`` epochs the rule is applied to the ``column`` of the history so far; once it
    names a flat epoch (the loss moved by less than ``tolerance`` of its plot's height over every
    stretch of ``per_epochs`` epochs it can see since then), the run stops after this epoch
    (:attr:`Run.stop`). The epoch count given to :func:`~emovae_utils.train.fit` is then the budget.
    The flat epoch found goes to ``run.config["flat_epoch"]`` (``run.json``).

    Parameters
    ----------
    per_epochs : int
        The rule's horizon (its window is the same).
    tolerance : float, default 0.01
    column : str, default "total"
    check_every : int, optional
        Default ``max(1, per_epochs // 2)``.

    Examples
    --------
    >>> import torch
    >>> from emovae_utils.models import build
    >>> from emovae_utils.train import fit
    >>> h = fit(build("emotion_vae"), torch.zeros(4, 80, 128), epochs=400, lr=1e-2, progress=False,
    ...         callbacks=[StopWhenFlat(per_epochs=20)])
    >>> len(h) < 400
    True
    """

    def __init__(self, per_epochs: int, tolerance: float = 0.01, column: str = "total",
                 check_every: int | None = None) -> None:
        self.per_epochs, self.tolerance, self.column = int(per_epochs), float(tolerance), column
        self.check_every = max(1, self.per_epochs // 2) if check_every is None else int(check_every)

    def on_epoch_end(self, run: Run, epoch: int, losses: dict[str, float]) -> None:
        from .convergence import flat_epoch

        if epoch % self.check_every or len(run.rows) <= self.per_epochs:
            return
        curve = [row[1 + run.columns.index(self.column)] for row in run.rows]
        flat = flat_epoch(np.asarray(curve), per_epochs=self.per_epochs, tolerance=self.tolerance)
        if flat is not None:
            run.stop = True
            run.config["flat_epoch"] = int(flat)


class Validation(Callback):
    """The model's loss terms on held-out validation clips after every epoch (the curve early stopping reads).

    Every epoch the model is put in eval mode and ``model.loss_function(x, model(x, cond), labels)``
    is averaged over the validation clips (batches of ``batch_size``, weighted by size), without
    gradients and with the random state left exactly as it was (training draws the same numbers
    with and without this callback). The rows go to :meth:`frame` and, with an ``out_dir``, to
    ``validation.csv`` (``epoch``, ``val_<term>``; ``val_total`` is the loss).

    Parameters
    ----------
    X : array or tensor, (M, 80, frames)
        Validation clips, disjoint from the training clips (the caller's duty; a
        :class:`~emovae_utils.trial.Trial` checks it).
    cond, labels : array or tensor, (M, ...), optional
        As for :func:`~emovae_utils.train.fit`.
    batch_size : int, default 256

    Examples
    --------
    >>> import torch
    >>> from emovae_utils.models import build
    >>> from emovae_utils.train import fit
    >>> import emovae_utils.models.classifier  # registers "emotion_cnn"
    >>> val = Validation(torch.randn(6, 80, 32), labels=torch.arange(6))
    >>> _ = fit(build("emotion_cnn"), torch.randn(8, 80, 32), epochs=2, labels=torch.arange(8), progress=False,
    ...         callbacks=[val])
    >>> list(val.frame().columns), len(val.frame())
    (['epoch', 'val_total', 'val_accuracy'], 2)
    """

    def __init__(self, X: Any, cond: Any = None, labels: Any = None, batch_size: int = 256) -> None:
        as_tensor = lambda v: None if v is None else torch.as_tensor(np.asarray(v))  # noqa: E731
        self.X, self.cond, self.labels = torch.as_tensor(np.asarray(X), dtype=torch.float32), as_tensor(cond), \
            as_tensor(labels)
        self.batch_size = int(batch_size)
        self.rows: list[list[float]] = []
        self.columns: list[str] = []

    def _scores(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        total: dict[str, float] = {}
        n = len(self.X)
        for start in range(0, n, self.batch_size):
            part = slice(start, start + self.batch_size)
            pick = lambda v: None if v is None else v[part].to(device)  # noqa: E731
            x = self.X[part].to(device)
            terms = model.loss_function(x, model(x, pick(self.cond)), pick(self.labels))
            for k, v in terms.items():
                total[k] = total.get(k, 0.0) + float(v) * len(x) / n
        return total

    def on_epoch_end(self, run: Run, epoch: int, losses: dict[str, float]) -> None:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            run.model.eval()
            try:
                terms = self._scores(run.model, run.device)
            finally:
                run.model.train()
        self.columns = ["val_total" if k == "loss" else f"val_{k}" for k in terms]
        self.rows.append([epoch, *terms.values()])

    def frame(self) -> pd.DataFrame:
        """The validation curve: ``epoch`` then ``val_<term>``, one row per epoch."""
        return pd.DataFrame(self.rows, columns=["epoch", *self.columns])

    def state_dict(self) -> Any:
        return {"rows": [list(r) for r in self.rows], "columns": list(self.columns)}

    def load_state_dict(self, state: Any) -> None:
        self.rows, self.columns = [list(r) for r in state["rows"]], list(state["columns"])

    def on_fit_end(self, run: Run, finished: bool) -> None:
        if run.out_dir is not None and self.rows:
            atomic_write(run.out_dir / VALIDATION_NAME, lambda p: self.frame().to_csv(p, index=False))


def _write_sample(s_db: np.ndarray, path: str | os.PathLike) -> str:
    """:func:`emovae_utils.inversion.render_wav` in this process, leaving numpy's global RNG as it was."""
    from . import inversion

    np_state = np.random.get_state()  # rendering may use numpy's global RNG
    try:
        inversion.render_wav(s_db, path)
    finally:
        np.random.set_state(np_state)
    return str(path)


def _pool_context() -> mp.context.BaseContext:
    """``fork`` where available: spawned workers would re-run a calling script that has no
    ``if __name__ == "__main__":`` guard (the workers only run :mod:`emovae_utils.inversion`)."""
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


class TrainingSamples(Callback):
    """Every ``every`` epochs, render the posterior-mean reconstruction of ``x0`` to a WAV.

    Written to ``out_dir/training_samples/epoch_XXXXX.wav`` by Griffin-Lim
    (:func:`emovae_utils.inversion.render_wav`). Decoding uses ``decode(mu)``, so
    no random numbers are drawn: samples do not change the trajectory.

    Rendering one clip costs 0.1-0.8 s of CPU. If training leaves ``workers``
    cores free (``threads + workers <= available_cores()``) they render while
    training goes on (``concurrent``); otherwise the samples are queued and
    rendered on ``workers`` processes while training waits (when 16 are
    queued, and before each checkpoint), since rendering beside the training
    threads on the same cores slowed training about 3x. ``workers=0``: render
    each at once in this process. Samples not yet written at a checkpoint are
    stored in it and rendered by the resumed run; all are written before
    ``fit`` returns. ``workers=None``: the free cores, else every core.
    """

    def __init__(self, x0: torch.Tensor, every: int = 100, workers: int | None = None,
                 threads: int = 1, max_queued: int = 16, cond0: torch.Tensor | None = None) -> None:
        cores = available_cores()
        free = max(cores - threads, 0)
        self.workers = (free or cores) if workers is None else int(workers)
        if self.workers < 0:
            raise ValueError(f"render_workers must be >= 0, got {workers}")
        self.concurrent = 0 < self.workers <= free
        self.mode = "concurrent" if self.concurrent else ("batched" if self.workers else "inline")
        self.x0, self.cond0, self.every, self.max_queued = x0, cond0, int(every), max_queued
        self.pool = None
        self.queue: list[tuple[np.ndarray, str]] = []
        self.pending: list[Any] = []
        self.dir: Path | None = None

    def on_fit_start(self, run: Run) -> None:
        self.dir = run.out_dir / SAMPLES_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        run.config.update(render_workers=self.workers, render_mode=self.mode)

    def _decode(self, model: torch.nn.Module) -> np.ndarray:
        with torch.no_grad():
            mu, _ = model.encode(self.x0, self.cond0)
            return model.decode(mu, self.cond0)[0].float().cpu().numpy()

    def on_epoch_end(self, run: Run, epoch: int, losses: dict[str, float]) -> None:
        if epoch % self.every == 0:
            self.submit(self._decode(run.model), self.dir / f"epoch_{epoch:05d}.wav")

    def _start(self, s_db: np.ndarray, path: str) -> None:
        from . import inversion  # the workers import only it and resources (no torch)

        if self.pool is None:
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_pool_context(),
                                            initializer=one_thread_worker)
        self.pending.append((self.pool.submit(inversion.render_wav, s_db, path), s_db, path))

    def submit(self, s_db: np.ndarray, path: str | os.PathLike) -> None:
        if self.workers == 0:
            _write_sample(s_db, path)
        elif self.concurrent:
            self._start(s_db, str(path))
        else:
            self.queue.append((s_db, str(path)))
            if len(self.queue) >= self.max_queued:
                self.flush()

    def unwritten(self) -> list[tuple[np.ndarray, str]]:
        """Samples submitted but not yet written (re-raises a rendering error)."""
        left = []
        for fut, s_db, path in self.pending:
            if fut.done():
                fut.result()
            else:
                left.append((s_db, path))
        self.pending = [p for p in self.pending if not p[0].done()]
        return left + list(self.queue)

    def flush(self) -> None:
        """Wait until every submitted sample is written."""
        jobs, self.queue = self.queue, []
        for s_db, path in jobs:
            self._start(s_db, path)
        pending, self.pending = self.pending, []
        for fut, _, _ in pending:
            fut.result()

    def before_checkpoint(self, run: Run) -> None:
        if not self.concurrent:
            self.flush()  # training waits anyway: render the queue now

    def state_dict(self) -> list[tuple[np.ndarray, str]]:
        return [(s_db, Path(p).name) for s_db, p in self.unwritten()]

    def load_state_dict(self, state: Any) -> None:
        for s_db, name in state or []:
            self.submit(s_db, self.dir / name)

    def on_fit_end(self, run: Run, finished: bool) -> None:
        try:
            if finished:
                self.flush()
        finally:
            self.queue, self.pending = [], []
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.pool = None


class ProgressBar(Callback):
    """A tqdm bar over epochs (losses refreshed at most twice a second), then one summary line.

    The summary line (epochs, wall time, final losses) is what a saved
    notebook shows when the bar's widget state is not kept.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.bar = None
        self.t0 = 0.0
        self.last = 0.0
        self.final: dict[str, float] = {}

    def on_fit_start(self, run: Run) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=run.epochs, initial=run.start_epoch, unit="epoch", mininterval=self.interval,
                        desc="fit", dynamic_ncols=True)
        self.t0 = time.perf_counter()

    def on_epoch_end(self, run: Run, epoch: int, losses: dict[str, float]) -> None:
        self.final = losses
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.last > self.interval:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)
            self.last = now

    def on_fit_end(self, run: Run, finished: bool) -> None:
        if self.bar is None:
            return
        self.bar.close()
        done = run.rows[-1][0] if run.rows else run.start_epoch
        losses = ", ".join(f"{k} {v:.4g}" for k, v in self.final.items())
        state = "done" if finished else "stopped"
        print(f"fit {state}: epoch {done} of {run.epochs} in {time.perf_counter() - self.t0:.1f} s"
              + (f"; last epoch: {losses}" if losses else ""), file=sys.stdout, flush=True)
