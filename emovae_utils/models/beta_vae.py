"""β-VAE: the study's model with a weighted (or capacity-controlled) KL term.

The worked example of a variant: it subclasses :class:`EmotionVAE` and
overrides only :meth:`loss_function`.

* Higgins et al. (2017): ``loss = reconstruction + beta * kl``.
* Burgess et al. (2018), with ``capacity_max``: ``loss = reconstruction +
  gamma * |kl - C|``, where the target capacity ``C`` (nats) grows linearly from
  0 to ``capacity_max`` over the first ``capacity_steps`` training steps.
"""
from __future__ import annotations

import torch

from .base import check_float, check_int
from .emotion_vae import EmotionVAE
from .registry import register

__all__ = ["BetaVAE"]


@register("beta_vae")
class BetaVAE(EmotionVAE):
    """:class:`EmotionVAE` trained with a β-weighted or capacity-controlled KL.

    Parameters
    ----------
    beta : float, default 4.0
        KL weight (Higgins et al. 2017); ``beta=1`` is the study's loss.
    capacity_max : float, optional
        Target KL in nats (Burgess et al. 2018); ``None`` uses the β form.
    capacity_steps : int, default 10000
        Training steps over which the capacity grows from 0 to ``capacity_max``.
    gamma : float, default 100.0
        Weight of ``|kl - C|`` in the capacity form.
    latent_dim, n_mels : int
        As :class:`EmotionVAE`.

    Examples
    --------
    >>> model = BetaVAE(beta=4.0)
    >>> x = torch.zeros(2, 80, 128)
    >>> losses = model.loss_function(x, model(x))
    >>> torch.allclose(losses["loss"], losses["reconstruction"] + 4.0 * losses["kl"])
    True
    """

    def __init__(self, latent_dim: int = 8, n_mels: int = 80, beta: float = 4.0,
                 capacity_max: float | None = None, capacity_steps: int = 10000, gamma: float = 100.0) -> None:
        super().__init__(latent_dim=latent_dim, n_mels=n_mels)
        owner = type(self).__name__
        self.beta = check_float(owner, "beta", beta)
        self.capacity_max = check_float(owner, "capacity_max", capacity_max, optional=True)
        self.capacity_steps = check_int(owner, "capacity_steps", capacity_steps, low=0)
        self.gamma = check_float(owner, "gamma", gamma)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # training steps taken

    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor],
                      labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        losses = super().loss_function(x, out, labels)
        rec, kl = losses["reconstruction"], losses["kl"]
        if self.capacity_max is None:
            return {**losses, "loss": rec + self.beta * kl}
        if self.training:
            self.steps += 1
        capacity = self.capacity_max * min(1.0, self.steps.item() / max(self.capacity_steps, 1))
        return {**losses, "loss": rec + self.gamma * (kl - capacity).abs(),
                "capacity": torch.tensor(capacity, dtype=kl.dtype, device=kl.device)}
