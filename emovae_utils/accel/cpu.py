"""CPU tricks of the accelerated training path, measured to help there (``benchmarks/train.py``).

* :func:`tune_malloc`: no page faults from glibc trimming freed activations.
* :class:`FlatParameters`: all parameters and gradients as views of one flat
  buffer, so Adam and gradient clipping each run as one operation.
* :func:`cpu_adam_step`: fused Adam on one thread with subnormals flushed to
  zero (Adam's moments of dead ReLU units decay into subnormals, which made
  the step 12x slower after about 500 epochs).

Used by :func:`emovae_utils.train.fit` together with an accelerator
(``accel="gemm"`` / ``"auto"``); the default path is stock PyTorch.
"""
from __future__ import annotations

import sys

import torch
from torch import nn

__all__ = ["tune_malloc", "FlatParameters", "cpu_adam_step", "denormals_flushed"]

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


def denormals_flushed() -> bool:
    """Whether this thread flushes subnormal floats to zero (``torch.set_flush_denormal``)."""
    return torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() == 0.0


def cpu_adam_step(opt: torch.optim.Optimizer, threads: int, ftz_before: bool) -> None:
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


class FlatParameters:
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
