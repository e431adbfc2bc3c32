"""Opt-in accelerators for training: hand-written kernels that replace autograd for one model.

``fit(model, X, ..., accel=...)``:

* ``None`` (default): stock PyTorch (``model.forward``, ``model.loss_function``,
  autograd, ``torch.optim.Adam``, ``clip_grad_norm_``).
* ``"gemm"``: :class:`~emovae_utils.accel.gemm.GemmAccelerator`; an error
  saying why when the model is not exactly the one it was written for.
* ``"auto"``: the accelerator on the CPU when the model qualifies, else stock
  (the reason is recorded in ``run.json``).

Examples
--------
>>> from emovae_utils.accel import select
>>> from emovae_utils.models import build
>>> select(build("emotion_vae"), "auto", "cpu")[0].name
'gemm'
>>> select(build("beta_vae"), "auto", "cpu")[0] is None
True
"""
from __future__ import annotations

from typing import Any

import torch

from .gemm import AcceleratorUnavailable, GemmAccelerator, why_not

__all__ = ["select", "AcceleratorUnavailable", "GemmAccelerator", "why_not", "ACCELERATORS"]

ACCELERATORS = {"gemm": GemmAccelerator}


def select(model: torch.nn.Module, accel: str | None, device: str | torch.device) -> tuple[Any, str]:
    """The accelerator ``fit`` uses for ``model`` on ``device``, and why.

    Returns
    -------
    accelerator : GemmAccelerator or None
        ``None``: train through autograd.
    reason : str
        What was chosen and why (recorded in ``run.json``).

    Raises
    ------
    AcceleratorUnavailable
        ``accel`` names an accelerator that cannot serve this model.
    ValueError
        Unknown ``accel``.
    """
    if accel is None:
        return None, "autograd (stock PyTorch; accel=None)"
    if accel == "auto":
        if torch.device(device).type != "cpu":
            return None, f"autograd (accel='auto' uses the hand-written path on the CPU only, not {device})"
        reason = why_not(model)
        if reason:
            return None, f"autograd ({reason})"
        return GemmAccelerator(model), "gemm (accel='auto': the authors' architecture and loss, on the CPU)"
    if accel not in ACCELERATORS:
        raise ValueError(f"accel must be None, 'auto' or one of {sorted(ACCELERATORS)}, got {accel!r}")
    return ACCELERATORS[accel](model), f"{accel} (asked for)"
