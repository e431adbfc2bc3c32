"""Training loop for :class:`emovae_utils.model.EmotionVAE`.

The loop is written for small data sets that fit in memory: the whole training
set is ONE tensor on the device, each epoch draws a seeded ``torch.randperm``
and slices it (no ``DataLoader``). All parameters live in one flat buffer (the
model's parameters are views into it) so that Adam and gradient clipping run as
one fused operation on one tensor; this is the same maths as per-parameter
``torch.optim.Adam`` and ``clip_grad_norm_`` up to float32 rounding.

Runs are reproducible: seeds and thread count are fixed and recorded in
``out_dir/run.json``; checkpoints hold the model, optimiser and every RNG state,
and ``resume=True`` continues a run with a bit-identical loss trajectory.
"""
from __future__ import annotations

import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .model import vae_loss

__all__ = [
    "fit",
    "plateau_epoch",
    "set_determinism",
    "default_threads",
    "tune_malloc",
    "load_checkpoint",
    "NonFiniteLossError",
    "CHECKPOINT_NAME",
    "HISTORY_NAME",
    "RUN_NAME",
    "SAMPLES_DIR",
]

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.csv"
RUN_NAME = "run.json"
SAMPLES_DIR = "training_samples"
HISTORY_COLUMNS = ["epoch", "reconstruction", "kl", "total"]
# Settings that must not change between a run and its resumption.
_RESUME_KEYS = (
    "seed", "threads", "batch_size", "lr", "beta", "clip_norm", "drop_last",
    "n_clips", "input_shape", "data_sha1", "model",
)


def _sha1(t: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; ``epoch`` is the first bad epoch (1-based)."""

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch


_MALLOC_TUNED: bool | None = None


def tune_malloc() -> bool:
    """Stop glibc from returning freed memory to the OS between training steps.

    Each step allocates and frees a few MB of activations. With glibc's default
    settings those blocks are unmapped or trimmed after each free and
    page-faulted back in on the next step (about 1,200 faults and 1.5 ms per
    30-clip step on the reference machine). This sets, once per process,
    ``M_MMAP_THRESHOLD`` to 32 MiB (allocations below it come from the heap),
    ``M_TRIM_THRESHOLD`` to 1 GiB and ``M_TOP_PAD`` to 64 MiB. The cost is that
    up to about 1 GiB of freed heap memory stays with the process.
    No-op (returns False) where glibc's ``mallopt`` is not available.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED is None:
        _MALLOC_TUNED = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                libc = ctypes.CDLL("libc.so.6")
                m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
                ok = libc.mallopt(m_mmap_threshold, 32 * 2**20)
                ok &= libc.mallopt(m_trim_threshold, 2**30)
                ok &= libc.mallopt(m_top_pad, 64 * 2**20)
                _MALLOC_TUNED = bool(ok)
            except (OSError, AttributeError):  # pragma: no cover - non-glibc
                pass
    return _MALLOC_TUNED


def default_threads() -> int:
    """Thread count used when ``threads=None``: ``min(2, os.cpu_count())``.

    Two threads were fastest on the 2-core reference machine for both the
    30-clip full-batch and the 360-clip batch-64 presets (see
    ``benchmarks/train.py``).
    """
    return max(1, min(2, os.cpu_count() or 1))


def set_determinism(seed: int, threads: int | None = None) -> int:
    """Seed torch, numpy and ``random`` and fix the torch CPU thread count.

    Parameters
    ----------
    seed : int
        Seed for ``torch.manual_seed`` (all devices), ``np.random.seed`` and
        ``random.seed``.
    threads : int, optional
        ``torch.set_num_threads(threads)``; ``None`` uses :func:`default_threads`.
        Results are bit-reproducible for a given thread count on a given machine;
        a different count can change float32 summation order.

    Returns
    -------
    int
        The thread count in effect.
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


def _atomic_write_bytes(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    _atomic_write_bytes(path, lambda p: p.write_text(json.dumps(obj, indent=2, default=str)))


def _write_history(path: Path, history: pd.DataFrame) -> None:
    _atomic_write_bytes(path, lambda p: history.to_csv(p, index=False, float_format="%.9g"))


def _history_frame(rows: list[list[float]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    df["epoch"] = df["epoch"].astype(np.int64)
    return df


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`fit` (on the CPU).

    The dict holds ``epoch`` (completed epochs), ``state_dict`` (the model's),
    ``optimizer`` (for one flat parameter),
    ``rng``, ``history`` (list of ``[epoch, reconstruction, kl, total]``) and
    ``config``.
    """
    return torch.load(Path(path), map_location="cpu", weights_only=False)


def _rng_state(gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "shuffle": gen.get_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], gen: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    gen.set_state(state["shuffle"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _decode_sample(model: nn.Module, x0: torch.Tensor) -> np.ndarray:
    """dB mel spectrogram (n_mels, frames) of the posterior-mean reconstruction of ``x0``.

    Uses ``decode(mu)``, so no random numbers are drawn: rendering samples does
    not change the training trajectory.
    """
    with torch.no_grad():
        mu, _ = model.encode(x0)
        return model.decode(mu)[0].float().cpu().numpy()


def _write_sample(s_db: np.ndarray, path: str | os.PathLike, dsp: Any = None) -> str:
    """:func:`emovae_utils.dsp.render_wav` in this process, leaving numpy's global RNG as it was."""
    if dsp is None:
        from . import dsp
    np_state = np.random.get_state()  # rendering may use numpy's global RNG
    try:
        dsp.render_wav(s_db, path)
    finally:
        np.random.set_state(np_state)
    return str(path)


def _render_sample(model: nn.Module, x0: torch.Tensor, path: Path, dsp: Any = None) -> None:
    """Decode clip ``x0`` and write its Griffin-Lim rendering (in this process)."""
    _write_sample(_decode_sample(model, x0), path, dsp)


class _SampleWriter:
    """Writes training samples on worker processes, without slowing training down.

    Griffin-Lim of one clip costs 0.1-0.8 s of CPU (mostly librosa's NNLS mel
    inversion; more for a well-trained model). Two modes:

    * ``concurrent``: training leaves cores free, so :meth:`submit` hands the
      decoded spectrogram to the ``workers`` at once and training goes on.
    * batched (training uses every core): rendering beside it would fight the
      training threads for the cores (2 torch threads on 2 cores ran about 3x
      slower), so :meth:`submit` only queues the spectrogram and the queue is
      rendered on ``workers`` processes while training waits, whenever 16 are
      queued and at every :meth:`flush`.

    :meth:`flush` returns when every sample so far is written and re-raises
    the first rendering error. ``fit`` stores the :meth:`unwritten` ones in
    each checkpoint (and a resumed run renders them), so none is lost and
    training never waits for concurrent rendering. With ``workers=0`` each
    sample is rendered at once in this process. The pool is started at the
    first sample; its workers import :mod:`emovae_utils.dsp` only.
    """

    def __init__(self, dsp: Any, workers: int, concurrent: bool, max_queued: int = 16) -> None:
        self.dsp = dsp
        self.workers = workers
        self.concurrent = concurrent
        self.max_queued = max_queued
        self.pool = None
        self.queue: list[tuple[np.ndarray, str]] = []
        self.pending: list[Any] = []

    def _submit(self, s_db: np.ndarray, path: str) -> None:
        from . import dsp  # the workers import only this module (no torch)

        if self.pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=mp.get_context("spawn"),
                initializer=dsp._one_thread_worker,
            )
        self.pending.append((self.pool.submit(dsp.render_wav, s_db, path), s_db, path))

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

    def submit(self, s_db: np.ndarray, path: Path) -> None:
        if self.workers == 0:
            _write_sample(s_db, path, self.dsp)
        elif self.concurrent:
            self._submit(s_db, str(path))
        else:
            self.queue.append((s_db, str(path)))
            if len(self.queue) >= self.max_queued:
                self.flush()

    def flush(self) -> None:
        """Wait until every submitted sample is written."""
        jobs, self.queue = self.queue, []
        for s_db, path in jobs:
            self._submit(s_db, path)
        pending, self.pending = self.pending, []
        for fut, _, _ in pending:
            fut.result()

    def close(self, flush: bool = True) -> None:
        try:
            if flush:
                self.flush()
        finally:
            self.queue, self.pending = [], []
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.pool = None


def _denormals_flushed() -> bool:
    """Whether this thread flushes subnormal floats to zero (``torch.set_flush_denormal``)."""
    return torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() == 0.0


def _cpu_adam_step(opt: torch.optim.Optimizer, threads: int, ftz_before: bool) -> None:
    """``opt.step()`` of a fused Adam on one thread, with subnormals flushed to zero.

    Adam's moment estimates of parameters whose gradient stays zero (dead ReLU
    units) decay into the subnormal range and stay there (0.9 times the
    smallest subnormal rounds back to it), and arithmetic on subnormals is
    about 20x slower on x86: the step went from 0.15 to 1.8 ms. Flushing them
    to zero (a change below 1e-38) keeps it fast; the flag is per thread, so
    the step runs on this thread alone (an elementwise update: the result does
    not depend on the thread count). Once the state exists, torch's functional
    ``adam`` is called on it directly (the same fused kernel and state, without
    the per-call overhead of ``Optimizer.step``).
    """
    from torch.optim.adam import adam  # torch's functional Adam

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    try:
        group = opt.param_groups[0]
        (p,) = group["params"]
        state = opt.state.get(p)
        if not state or len(opt.param_groups) != 1:
            opt.step()  # creates the state
        else:
            beta1, beta2 = group["betas"]
            adam(
                [p], [p.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]],
                fused=True, amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=group["lr"],
                weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
            )
    finally:
        torch.set_flush_denormal(ftz_before)
        torch.set_num_threads(threads)


class _FlatParameters:
    """Make every trainable parameter a view of one flat tensor (and grads too).

    ``flat`` is what the optimiser sees; the model's parameters share its
    storage, and autograd accumulates in place into ``grad`` (the parameters'
    ``.grad`` are views of it). :meth:`release` gives the model back ordinary
    independent tensors.
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        dev, dtype = params[0].device, params[0].dtype
        if any(p.device != dev or p.dtype != dtype for p in params):
            raise ValueError("all trainable parameters must share one device and dtype")
        # each parameter keeps its memory layout (EmotionVAE stores conv weights
        # in the order its matrix products use): flatten in memory order
        orders = []
        for p in params:
            order = sorted(range(p.dim()), key=lambda d: -p.stride(d))
            orders.append((order, sorted(range(p.dim()), key=order.__getitem__)))
        self.flat = torch.cat([p.detach().permute(o).reshape(-1) for p, (o, _) in zip(params, orders)])
        self.grad = torch.zeros_like(self.flat)
        self.flat.grad = self.grad
        offset = 0
        for p, (order, inverse) in zip(params, orders):
            n = p.numel()
            shape = [p.shape[d] for d in order]
            p.data = self.flat[offset: offset + n].view(shape).permute(inverse)
            p.grad = self.grad[offset: offset + n].view(shape).permute(inverse)
            offset += n

    def release(self) -> None:
        for p in self.params:
            p.data = p.data.clone()
            p.grad = None


def fit(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    epochs: int,
    batch_size: int | None = None,
    seed: int = 0,
    *,
    lr: float = 1e-3,
    beta: float = 1.0,
    clip_norm: float | None = 1.0,
    drop_last: bool = False,
    threads: int | None = None,
    device: str | torch.device | None = None,
    out_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = 1000,
    sample_every: int | None = 100,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    render_workers: int | None = None,
) -> pd.DataFrame:
    """Train a VAE with Adam on the study's loss; reproducible and resumable.

    Parameters
    ----------
    model : nn.Module
        Returns ``(recon, mu, logvar)`` from ``model(x)`` (e.g. ``EmotionVAE``).
        Trained in place (moved to ``device``).
    X : array or tensor, (N, 80, 128)
        Training spectrograms (dB). Held as one float32 tensor on the device.
    epochs : int
        Total number of epochs (including those done before a resume).
    batch_size : int, optional
        ``None`` (or >= N) = full batch: one step per epoch on all clips, no
        shuffling (the batch-mean loss does not depend on the order).
        Otherwise each epoch draws ``torch.randperm(N)`` from a generator seeded
        with ``seed`` and steps over consecutive slices.
    seed : int, default 0
        Seeds torch, numpy, ``random`` (see :func:`set_determinism`) and the
        shuffling generator.
    lr : float, default 1e-3
        Adam learning rate (Adam defaults otherwise: betas (0.9, 0.999), eps 1e-8).
    beta : float, default 1.0
        KL weight in :func:`emovae_utils.model.vae_loss`.
    clip_norm : float or None, default 1.0
        Clip the global gradient norm to this value (``clip_grad_norm_``
        semantics); ``None`` or 0 disables clipping.
    drop_last : bool, default False
        Drop the last incomplete batch (the authors' code did; with 30 clips and
        batch 64 that leaves no step at all, which is an error here).
    threads : int, optional
        ``torch.set_num_threads`` (global; left set after ``fit``); ``None`` =
        :func:`default_threads`. Recorded. Bitwise reproducibility (and resuming)
        needs the same count. Note: torch's OpenMP threads spin while waiting, so
        2 threads on a 2-core machine that is busy with other work can be tens
        of times slower than 1 thread; use ``threads=1`` on a shared machine.
    device : str or torch.device, optional
        ``None`` = CUDA when available, else CPU.
    out_dir : path-like, optional
        Where ``run.json``, ``history.csv``, ``checkpoint.pt`` and
        ``training_samples/epoch_XXXXX.wav`` go. Nothing is written without it.
    checkpoint_every : int or None, default 1000
        Save a checkpoint every this many epochs and at the end (needs ``out_dir``).
        Written atomically (temporary file + ``os.replace``).
    sample_every : int or None, default 100
        Every this many epochs render the reconstruction (posterior mean) of
        clip 0 by Griffin-Lim (``emovae_utils.dsp.log_mel_to_audio``, 16 kHz) to
        ``out_dir/training_samples/epoch_XXXXX.wav``. ``None``/0 disables it.
    resume : bool, default False
        Continue from ``out_dir/checkpoint.pt`` if it exists; the loss history is
        bit-identical to an uninterrupted run (same machine and thread count).
        Settings that change the trajectory must match the checkpoint.
    progress : bool, default True
        Show a tqdm bar (epochs; losses refreshed at most twice a second).
    callback : callable, optional
        ``callback(epoch, {"reconstruction": ..., "kl": ..., "total": ...})``
        after every epoch (after its checkpoint, if any). May raise to stop.
    render_workers : int, optional
        Processes that render the training samples (decoded at their epoch).
        If training leaves that many cores free (``threads + render_workers <=
        os.cpu_count()``) they render while training goes on; otherwise the
        samples are queued and rendered in parallel while training waits
        (whenever 16 are queued), since rendering beside training threads on
        the same cores slows training several times. ``None`` (default): the
        free cores if ``threads < os.cpu_count()``, else every core; 0: render
        each at once in this process. Every checkpoint waits for the samples
        before it, and all are written before ``fit`` returns.

    Notes
    -----
    The initial weights are the model's as passed in (seed before constructing
    it); their SHA-1 is recorded in ``run.json`` with the data's.
    Speed: a model with ``loss_and_grad`` (``EmotionVAE``) takes each step
    without autograd, with its batch gathered straight into its input buffer
    (other models: ``model(x)``, :func:`~emovae_utils.model.vae_loss` and
    ``backward``); the data are stored time-major for the gemm path (the model
    sees (N, 80, 128) views); parameters and gradients live in one flat buffer
    in the model's memory order (fused Adam, one-tensor clipping, no
    per-parameter loops); Adam runs on one thread with subnormals flushed to
    zero (see :func:`_cpu_adam_step`); losses stay tensors until the end of
    each epoch; and :func:`tune_malloc` stops the per-step page faults. See
    ``benchmarks/train.py``.

    Returns
    -------
    pandas.DataFrame
        Columns ``epoch`` (1-based), ``reconstruction``, ``kl``, ``total``:
        the unweighted mean over the epoch's batches. Also written to
        ``out_dir/history.csv``.

    Raises
    ------
    NonFiniteLossError
        (a ``FloatingPointError``) when a loss becomes NaN/inf, naming the first
        bad epoch. No checkpoint of that state is written; the model in memory
        holds the diverged weights (reload the last checkpoint).
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    dev = _resolve_device(device)
    threads = set_determinism(seed, threads)
    malloc_tuned = tune_malloc() if dev.type == "cpu" else False

    X = torch.as_tensor(X).detach()
    if X.dim() != 3:
        raise ValueError(f"X must be (N, n_mels, frames), got shape {tuple(X.shape)}")
    X = X.to(device=dev, dtype=torch.float32).contiguous()
    n = X.shape[0]
    if n == 0:
        raise ValueError("X is empty")
    if drop_last and batch_size is not None and batch_size > n:
        raise ValueError(
            f"drop_last=True with {n} clips and batch_size {batch_size} gives no step per epoch"
        )
    full_batch = batch_size is None or batch_size >= n
    bs = n if full_batch else int(batch_size)
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_batches = n // bs if drop_last else math.ceil(n / bs)
    if n_batches == 0:
        raise ValueError(f"drop_last=True with {n} clips and batch_size {bs} gives no step per epoch")
    clip = float(clip_norm) if clip_norm else 0.0

    out = Path(out_dir) if out_dir is not None else None
    dsp = None
    render = bool(out is not None and sample_every)
    if render:
        try:
            from . import dsp  # noqa: F811  (lazy: needs librosa, written separately)
        except ImportError as exc:  # pragma: no cover - depends on the checkout
            raise ImportError(
                "rendering training samples needs emovae_utils.dsp "
                f"({exc}); pass sample_every=None to skip them"
            ) from exc

    model.to(dev)
    model.train()
    # EmotionVAE's gemm path is fastest on time-major storage: keep the data as a
    # contiguous (N, frames, n_mels) tensor and hand the model (N, n_mels, frames)
    # views of it (same values, so the same maths).
    time_major = getattr(model, "impl", None) == "gemm"
    store = X.transpose(1, 2).contiguous() if time_major else X
    X = store.transpose(1, 2) if time_major else store
    config: dict[str, Any] = {
        "seed": seed,
        "threads": threads,
        "device": str(dev),
        "epochs": epochs,
        "batch_size": None if full_batch else bs,
        "full_batch": full_batch,
        "n_batches_per_epoch": n_batches,
        "lr": lr,
        "beta": beta,
        "clip_norm": clip or None,
        "drop_last": drop_last,
        "n_clips": n,
        "input_shape": list(X.shape[1:]),
        "data_sha1": _sha1(store),
        "model": {
            "class": type(model).__name__,
            "latent_dim": getattr(model, "latent_dim", None),
            "n_mels": getattr(model, "n_mels", None),
            "impl": getattr(model, "impl", None),
            "data_layout": "time-major" if time_major else "channel-major",
            "n_parameters": sum(p.numel() for p in model.parameters()),
        },
        "optimizer": "Adam(fused=True on one flat parameter; betas=(0.9, 0.999), eps=1e-8)"
        + ("; CPU: one thread, subnormals flushed to zero" if dev.type == "cpu" else ""),
        "step": "model.loss_and_grad" if callable(getattr(model, "loss_and_grad", None))
        else "autograd",
        "checkpoint_every": checkpoint_every,
        "sample_every": sample_every if render else None,
        "render_workers": None,
        "render_mode": None,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "malloc_tuned": malloc_tuned,
        "mkldnn_enabled": torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
    }
    if dev.type == "cuda":
        config["cuda_device_name"] = torch.cuda.get_device_name(dev)

    params = [p for p in model.parameters() if p.requires_grad]
    flat = _FlatParameters(params)
    config["initial_weights_sha1"] = _sha1(flat.flat)
    bar = None
    writer = None
    finished = False
    try:
        if render:
            cores = os.cpu_count() or 1
            free = max(cores - threads, 0)
            workers = (free or cores) if render_workers is None else int(render_workers)
            if workers < 0:
                raise ValueError(f"render_workers must be >= 0, got {render_workers}")
            concurrent = 0 < workers <= free
            config["render_workers"] = workers
            config["render_mode"] = "concurrent" if concurrent else ("batched" if workers else "inline")
            writer = _SampleWriter(dsp, workers, concurrent)
        opt = torch.optim.Adam([flat.flat], lr=lr, fused=True)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(seed)

        rows: list[list[float]] = []
        start = 0
        ckpt_path = out / CHECKPOINT_NAME if out is not None else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            if render:
                (out / SAMPLES_DIR).mkdir(exist_ok=True)
        if resume:
            if out is None:
                raise ValueError("resume=True needs out_dir")
            if ckpt_path.exists():
                ck = load_checkpoint(ckpt_path)
                for key in _RESUME_KEYS:
                    if ck["config"].get(key) != config[key]:
                        raise ValueError(
                            f"cannot resume: {key}={config[key]!r} but the checkpoint "
                            f"has {ck['config'].get(key)!r}"
                        )
                start = int(ck["epoch"])
                if start > epochs:
                    raise ValueError(f"checkpoint is at epoch {start} > epochs={epochs}")
                model.load_state_dict(ck["state_dict"])  # copies into the flat views
                config["initial_weights_sha1"] = ck["config"].get("initial_weights_sha1")
                opt.load_state_dict(ck["optimizer"])
                _set_rng_state(ck["rng"], gen, dev)
                rows = [list(r) for r in ck["history"]]
                config["resumed_from_epoch"] = start
                if writer is not None:  # samples that were still being rendered at the checkpoint
                    for s_db, name in ck.get("unwritten_samples", []):
                        writer.submit(s_db, out / SAMPLES_DIR / name)
        if out is not None:
            config["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            _write_json(out / RUN_NAME, config)

        def save_checkpoint(epoch: int) -> None:
            state = {
                "epoch": epoch,
                "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(),
                "rng": _rng_state(gen, dev),
                "history": [list(r) for r in rows],
                "config": config,
                "unwritten_samples": [(s_db, Path(p).name) for s_db, p in writer.unwritten()]
                if writer is not None else [],
            }
            _atomic_write_bytes(ckpt_path, lambda p: torch.save(state, p))
            _write_history(out / HISTORY_NAME, _history_frame(rows))

        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, initial=start, unit="epoch", mininterval=0.5,
                       desc="fit", dynamic_ncols=True)
        grad = flat.grad
        fused = callable(getattr(model, "loss_and_grad", None))
        on_cuda = dev.type == "cuda"
        ftz_before = _denormals_flushed()
        acc = torch.zeros(3, device=dev)
        inv_batches = 1.0 / n_batches
        x0 = X[:1]
        last_post = 0.0
        t_start = time.perf_counter()
        for epoch in range(start + 1, epochs + 1):
            acc.zero_()
            if not full_batch:
                perm = torch.randperm(n, generator=gen).to(dev)
            for b in range(n_batches):
                idx = None if full_batch else perm[b * bs: (b + 1) * bs]
                if fused:  # EmotionVAE: same maths without autograd; overwrites the grads
                    total, rec, kl = model.loss_and_grad(X, beta, index=idx)
                else:
                    xb = X if full_batch else store.index_select(0, idx)
                    if time_major and not full_batch:
                        xb = xb.transpose(1, 2)
                    grad.zero_()
                    recon, mu, logvar = model(xb)
                    total, rec, kl = vae_loss(recon, xb, mu, logvar, beta)
                    total.backward()
                if clip:
                    # torch.nn.utils.clip_grad_norm_ on one tensor, same formula; on the
                    # CPU a scale of exactly 1 is skipped (bit-identical, one pass less)
                    scale = torch.clamp(clip / (torch.linalg.vector_norm(grad) + 1e-6), max=1.0)
                    if on_cuda or scale.item() < 1.0:
                        grad.mul_(scale)
                if on_cuda:
                    opt.step()
                else:
                    _cpu_adam_step(opt, threads, ftz_before)
                acc += torch.stack((rec.detach(), kl.detach(), total.detach()))
            rec_m, kl_m, tot_m = (acc * inv_batches).tolist()
            if not (math.isfinite(rec_m) and math.isfinite(kl_m) and math.isfinite(tot_m)):
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch} (reconstruction={rec_m}, kl={kl_m}, "
                    f"total={tot_m}); training stopped, no checkpoint of this state was "
                    "written (the model in memory holds the diverged weights)",
                    epoch,
                )
            rows.append([epoch, rec_m, kl_m, tot_m])
            if render and epoch % sample_every == 0:
                writer.submit(_decode_sample(model, x0), out / SAMPLES_DIR / f"epoch_{epoch:05d}.wav")
            if ckpt_path is not None and checkpoint_every and (
                epoch % checkpoint_every == 0 or epoch == epochs
            ):
                if writer is not None and not writer.concurrent:
                    writer.flush()  # training waits anyway: render the queue now
                save_checkpoint(epoch)
            if bar is not None:
                bar.update(1)
                now = time.perf_counter()
                if now - last_post > 0.5:
                    bar.set_postfix(rec=f"{rec_m:.4g}", kl=f"{kl_m:.4g}", total=f"{tot_m:.4g}",
                                    refresh=False)
                    last_post = now
            if callback is not None:
                callback(epoch, {"reconstruction": rec_m, "kl": kl_m, "total": tot_m})
        if writer is not None:
            writer.close()
        elapsed = time.perf_counter() - t_start
        history = _history_frame(rows)
        if out is not None:
            _write_history(out / HISTORY_NAME, history)
            done = epochs - start
            config.update(
                finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                wall_seconds=round(elapsed, 3),
                ms_per_epoch=round(1e3 * elapsed / done, 4) if done else None,
                final=rows[-1] if rows else None,
            )
            _write_json(out / RUN_NAME, config)
        finished = True
        return history
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close(flush=finished)
        flat.release()


def plateau_epoch(loss: pd.Series | np.ndarray, window: int = 500, tolerance: float = 0.05) -> int:
    """The epoch from which a loss curve stays flat: the report's "losses flatten near epoch N".

    The curve is smoothed by a centred running median over ``window`` epochs.
    It is flat from the first epoch after which the smoothed loss stays within
    ``tolerance`` times its whole decrease (first minus last smoothed value) of
    its final value, for every later epoch.

    Parameters
    ----------
    loss : pandas.Series or np.ndarray
        One value per epoch, epoch 1 first.
    window : int
        Running-median width in epochs (at least 1).
    tolerance : float
        Fraction of the total decrease.

    Returns
    -------
    int
        1-based epoch (late, within the last ``tolerance`` share, for a curve that keeps falling
        steadily); 1 when it never decreases.
    """
    values = pd.Series(np.asarray(loss, dtype=float))
    if values.empty:
        raise ValueError("empty loss curve")
    smooth = values.rolling(max(1, int(window)), center=True, min_periods=1).median().to_numpy()
    drop = smooth[0] - smooth[-1]
    if not drop > 0:
        return 1
    unsettled = np.flatnonzero(np.abs(smooth - smooth[-1]) > tolerance * drop)
    return int(unsettled[-1] + 2) if len(unsettled) else 1
