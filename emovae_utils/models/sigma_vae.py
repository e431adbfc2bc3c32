"""σ-VAE: the study's model with a calibrated Gaussian decoder (Rybkin, Daniilidis & Levine 2021).

"Simple and Effective VAE Training with Calibrated Decoders" (ICML 2021):
the decoder is a Gaussian N(x̂, σ² I) whose variance is calibrated, not fixed,
and the loss is its full negative log-likelihood. It subclasses
:class:`EmotionVAE` and overrides only :meth:`~SigmaVAE.loss_function`.

Why it matters here: the study's loss, ``mse(x̂, x)`` (mean over the
80 x 128 = 10240 elements of a clip) plus the KL summed over latent
dimensions, is up to a constant the negative log-likelihood of a Gaussian
decoder with the fixed variance σ² = 10240 / 2 = 5120 dB² (σ ≈ 72 dB),
since ``sum((x - x̂)**2) / (2 σ²) = mse`` for that σ. The data's standard
deviation is about 17.5 dB, so that decoder calls almost any reconstruction
likely, the KL term dominates and unused latent dimensions collapse onto the
prior (3 of 8 in the study). A calibrated σ (σ² ≈ the reconstruction's MSE,
tens of dB²) weighs the reconstruction about ``10240 / (2 σ²)`` times more
against the KL (per element, ``1 / (2 σ²)`` instead of ``1 / 10240``;
roughly 100-200 times for an MSE of 25-50 dB²), so fewer dimensions collapse.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import check_float
from .emotion_vae import EmotionVAE
from .registry import register

__all__ = ["SigmaVAE", "softclip"]

SIGMA_MODES = ("optimal", "learned")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def softclip(t: torch.Tensor, minimum: float) -> torch.Tensor:
    """Soft lower bound: ``minimum + softplus(t - minimum)`` (the paper's ``softclip``).

    Examples
    --------
    >>> import torch
    >>> [round(v, 4) for v in softclip(torch.tensor([-100.0, 0.0, 10.0]), -6.0).tolist()]
    [-6.0, 0.0025, 10.0]
    """
    return minimum + F.softplus(t - minimum)


@register("sigma_vae")
class SigmaVAE(EmotionVAE):
    """:class:`EmotionVAE` trained with a calibrated Gaussian decoder (σ-VAE).

    Parameters
    ----------
    sigma_mode : {"optimal", "learned"}, default "optimal"
        ``"optimal"`` (the paper's recommended "optimal σ-VAE"): per batch,
        ``log σ = softclip(0.5 * log(MSE), min_log_sigma)``, MSE over all
        elements of the batch, i.e. σ² is the batch's maximum-likelihood
        variance. As in the authors' code it is not detached: σ* minimises
        the NLL, so the gradient through it vanishes (up to the soft clamp)
        and detaching would change nothing. ``"learned"``: one shared
        learnable parameter :attr:`log_sigma` (initialised at 0, as in the
        paper; with dB inputs it needs ~``log σ* / lr`` Adam steps, a few
        thousand at ``lr=1e-3``, to reach σ* ≈ 5 dB, so prefer ``"optimal"``).
    beta : float, default 1.0
        Weight of the KL term.
    min_log_sigma : float, default -6.0
        Soft lower bound of ``log σ`` (:func:`softclip`), as in the paper.
    latent_dim, n_mels : int
        As :class:`EmotionVAE` (same architecture, same weights layout).

    Notes
    -----
    Per batch of B clips of N = n_mels x 128 elements::

        nll  = 1/B sum_clips sum_elements [0.5 ((x - x̂) / σ)² + log σ + 0.5 log 2π]
             = 0.5 N mse / σ² + N (log σ + 0.5 log 2π)
        kl   = 1/B sum_clips sum_dims KL(q(z_d|x) || N(0, 1))   (the study's KL)
        loss = nll + beta * kl

    In ``"optimal"`` mode ``nll`` ≈ N (0.5 + 0.5 log(2π mse)): the objective is
    logarithmic in the MSE. ``loss_function`` returns ``loss``, ``nll``,
    ``log_sigma`` (the clamped value used), ``reconstruction`` (the element-mean
    MSE in dB², comparable with the study's model) and ``kl``. The study's loss
    weighs the reconstruction like ``σ² = N / 2`` (5120 dB²); this one weighs it
    ``N / (2 σ²)`` times more relative to the KL (see the module docstring).

    Examples
    --------
    >>> model = SigmaVAE()
    >>> x = torch.randn(2, 80, 128) * 17.5 - 40
    >>> losses = model.loss_function(x, model(x))
    >>> sorted(losses)
    ['kl', 'log_sigma', 'loss', 'nll', 'reconstruction']
    >>> torch.allclose(losses["log_sigma"], 0.5 * losses["reconstruction"].log(), rtol=1e-3)
    True
    >>> torch.allclose(losses["loss"], losses["nll"] + losses["kl"])
    True
    """

    def __init__(self, latent_dim: int = 8, n_mels: int = 80, sigma_mode: str = "optimal", beta: float = 1.0,
                 min_log_sigma: float = -6.0) -> None:
        super().__init__(latent_dim=latent_dim, n_mels=n_mels)
        if sigma_mode not in SIGMA_MODES:
            raise ValueError(f"{type(self).__name__}(sigma_mode={sigma_mode!r}): sigma_mode must be one of "
                             f"{', '.join(map(repr, SIGMA_MODES))}")
        self.sigma_mode = sigma_mode
        self.beta = check_float(type(self).__name__, "beta", beta)
        self.min_log_sigma = check_float(type(self).__name__, "min_log_sigma", min_log_sigma, low=None)
        if sigma_mode == "learned":
            #: Shared learnable log σ of the decoder (``"learned"`` mode only; before the soft clamp).
            self.log_sigma = nn.Parameter(torch.zeros(()))

    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor],
                      labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Calibrated Gaussian NLL (summed per clip, mean over clips) + ``beta`` x the study's KL.

        Returns
        -------
        dict
            ``loss`` = ``nll`` + ``beta * kl``; ``reconstruction`` (element-mean
            MSE, dB²) and ``kl`` as :class:`EmotionVAE`; ``nll``; ``log_sigma``.
        """
        losses = super().loss_function(x, out, labels)
        mse, kl = losses["reconstruction"], losses["kl"]
        if self.sigma_mode == "optimal":  # σ² = the batch's MSE (floored so that log stays finite)
            raw = 0.5 * torch.log(mse.clamp_min(torch.finfo(mse.dtype).tiny))
        else:
            raw = self.log_sigma
        log_sigma = softclip(raw, self.min_log_sigma)
        n = x[0].numel()  # elements per clip; sum((x - x̂)²) / B = n * mse
        nll = 0.5 * n * mse * torch.exp(-2 * log_sigma) + n * (log_sigma + _HALF_LOG_2PI)
        return {**losses, "loss": nll + self.beta * kl, "nll": nll, "log_sigma": log_sigma}
