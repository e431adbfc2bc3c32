"""β-TCVAE: the study's model with its KL split into MI, total correlation and dimension-wise KL.

Chen, Li, Grosse & Duvenaud (2018), "Isolating Sources of Disentanglement in
Variational Autoencoders". The KL of the ELBO, averaged over the data,
decomposes as::

    E_x KL(q(z|x) || p(z)) = I_q(x; z)                      (index-code MI)
                           + KL(q(z) || prod_d q(z_d))       (total correlation)
                           + sum_d KL(q(z_d) || p(z_d))      (dimension-wise KL)

with the aggregate posterior ``q(z) = E_x q(z|x)``, estimated from the batch
by :func:`tc_decomposition`. :class:`TCVAE` subclasses :class:`EmotionVAE`
and overrides only :meth:`~TCVAE.loss_function`.
"""
from __future__ import annotations

import math

import torch

from .base import check_float, check_int
from .emotion_vae import EmotionVAE
from .registry import register

__all__ = ["TCVAE", "tc_decomposition"]

_LOG_2PI = math.log(2 * math.pi)


def _log_weights(batch: int, dataset_size: int | None, like: torch.Tensor) -> torch.Tensor:
    """(B, B) log importance weights of q(z_i|x_j) in the estimate of q(z_i); each row sums to 1."""
    if dataset_size is None or batch < 2:
        return torch.full((batch, batch), -math.log(batch), dtype=like.dtype, device=like.device)
    n, m = int(dataset_size), batch - 1
    if n < batch:
        raise ValueError(f"dataset_size ({n}) is smaller than the batch ({batch}); give the number of training clips")
    w = torch.full((batch, batch), 1.0 / m, dtype=like.dtype, device=like.device)
    idx = torch.arange(batch, device=like.device)
    w[idx, idx] = 1.0 / n  # the clip z_i was drawn from
    w[idx, (idx + 1) % batch] = (n - m) / (n * m)  # one stratum weight per row (the paper's q(z|n_M))
    return w.log()  # (n - m) == 0 cannot happen: n >= batch = m + 1


def tc_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                     dataset_size: int | None = None) -> dict[str, torch.Tensor]:
    """Minibatch estimates of the index-code MI, total correlation and dimension-wise KL.

    Parameters
    ----------
    z : torch.Tensor, (B, D)
        One sample per clip, ``z_i ~ q(z | x_i)``.
    mu, logvar : torch.Tensor, (B, D)
        The posteriors' parameters.
    dataset_size : int, optional
        Number of clips N in the training set. Given: minibatch stratified
        sampling (MSS, Chen et al. 2018, appendix C.2), ``q(z_i) ≈ 1/N q(z_i|x_i)
        + 1/M sum of q(z_i|x_j) over M - 1 other clips + (N - M)/(N M) q(z_i|x_k)``
        for one other clip k (here k = i + 1 mod B), M = B - 1; unbiased for
        q(z_i) when the batch is drawn without replacement. (The authors'
        reference code places two of these stratum weights in one row; this
        follows the formula.) ``None``: the batch is taken as the data set,
        ``q(z_i) ≈ 1/B sum_j q(z_i|x_j)`` (the right choice with full-batch
        training, as in the study). This is the minibatch-weighted sampling
        (MWS) estimator with N = B, but without its extra ``-log N``: the
        published MWS ``1/(N M) sum_j`` underestimates q(z) by a factor ~N,
        which shifts MI by +log N, TC by +(D - 1) log N and the dimension-wise
        KL by -D log N (the gradients are unchanged), so MWS as published
        would not give TC ≈ 0 for independent latents.

    Returns
    -------
    dict
        ``mi``, ``tc``, ``dimwise_kl``: scalar tensors in nats, each the mean
        over the batch of a per-clip term (like the study's KL, summed over
        dimensions, averaged over clips)::

            mi         = mean_i [log q(z_i|x_i) - log q(z_i)]
            tc         = mean_i [log q(z_i) - sum_d log q(z_id)]
            dimwise_kl = mean_i [sum_d log q(z_id) - log p(z_i)]

    Notes
    -----
    The three terms telescope: ``mi + tc + dimwise_kl = mean_i [log q(z_i|x_i)
    - log p(z_i)]``, the one-sample Monte Carlo estimate of the study's KL
    (unbiased, whichever estimate of q(z) is used). Only the split between
    them depends on the estimator: ``log`` of a batch average is biased low
    (Jensen), more so for small batches and the joint q(z) than for its 1-D
    marginals, which biases TC low and MI high for small B.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> mu, logvar = torch.zeros(64, 4), torch.zeros(64, 4)   # every posterior = the prior
    >>> parts = tc_decomposition(torch.randn(64, 4), mu, logvar)
    >>> [round(abs(v.item()), 6) for v in parts.values()]
    [0.0, 0.0, 0.0]
    """
    b = z.shape[0]
    # log q(z_i | x_j) per dimension: (B, B, D)
    var = logvar.exp()
    log_q = -0.5 * (_LOG_2PI + logvar.unsqueeze(0) + (z.unsqueeze(1) - mu.unsqueeze(0)).pow(2) / var.unsqueeze(0))
    log_qz_given_x = log_q.diagonal(dim1=0, dim2=1).sum(0)  # (B,): log q(z_i | x_i)
    log_w = _log_weights(b, dataset_size, z)
    log_qz = torch.logsumexp(log_w + log_q.sum(2), dim=1)  # (B,)
    log_qz_marginals = torch.logsumexp(log_w.unsqueeze(2) + log_q, dim=1).sum(1)  # (B,): sum_d log q(z_id)
    log_pz = (-0.5 * (_LOG_2PI + z.pow(2))).sum(1)
    return {"mi": (log_qz_given_x - log_qz).mean(), "tc": (log_qz - log_qz_marginals).mean(),
            "dimwise_kl": (log_qz_marginals - log_pz).mean()}


@register("tc_vae")
class TCVAE(EmotionVAE):
    """:class:`EmotionVAE` trained with the β-TCVAE objective (Chen et al. 2018).

    Parameters
    ----------
    alpha : float, default 1.0
        Weight of the index-code mutual information.
    beta : float, default 6.0
        Weight of the total correlation (the paper's β).
    gamma : float, default 1.0
        Weight of the dimension-wise KL.
    dataset_size : int, optional
        Training clips; given, q(z) is estimated by minibatch stratified
        sampling, else the batch is taken as the data set (exact for full-batch
        training). See :func:`tc_decomposition`.
    latent_dim, n_mels : int
        As :class:`EmotionVAE`.

    Notes
    -----
    ``loss = reconstruction + alpha * mi + beta * tc + gamma * dimwise_kl``,
    with ``reconstruction`` the study's element-mean MSE and each KL part per
    clip (summed over dimensions), averaged over the batch, in nats, on the
    sampled ``z`` of :meth:`forward`. With ``alpha = beta = gamma = 1`` the three
    parts telescope to the one-sample estimate of the study's KL, so the loss
    is the study's up to that estimator: equal in expectation (same expected
    gradient), not sample by sample. ``kl`` is returned as the study's analytic
    KL (sum over dimensions, mean over clips), for comparison; it is not in
    ``loss``.

    Examples
    --------
    >>> model = TCVAE(beta=6.0)
    >>> x = torch.randn(4, 80, 128) * 17.5 - 40
    >>> losses = model.loss_function(x, model(x))
    >>> sorted(losses)
    ['dimwise_kl', 'kl', 'loss', 'mi', 'reconstruction', 'tc']
    >>> total = losses["reconstruction"] + losses["mi"] + 6.0 * losses["tc"] + losses["dimwise_kl"]
    >>> torch.allclose(losses["loss"], total)
    True
    """

    def __init__(self, latent_dim: int = 8, n_mels: int = 80, alpha: float = 1.0, beta: float = 6.0,
                 gamma: float = 1.0, dataset_size: int | None = None) -> None:
        super().__init__(latent_dim=latent_dim, n_mels=n_mels)
        owner = type(self).__name__
        self.alpha = check_float(owner, "alpha", alpha)
        self.beta = check_float(owner, "beta", beta)
        self.gamma = check_float(owner, "gamma", gamma)
        self.dataset_size = check_int(owner, "dataset_size", dataset_size, optional=True)  # training clips

    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor],
                      labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Study reconstruction + ``alpha`` MI + ``beta`` TC + ``gamma`` dimension-wise KL.

        Returns
        -------
        dict
            ``loss``; ``reconstruction`` and ``kl`` as :class:`EmotionVAE`;
            ``mi``, ``tc``, ``dimwise_kl`` from :func:`tc_decomposition` on ``out["z"]``.
        """
        losses = super().loss_function(x, out, labels)
        parts = tc_decomposition(out["z"], out["mu"], out["logvar"], self.dataset_size)
        loss = (losses["reconstruction"] + self.alpha * parts["mi"] + self.beta * parts["tc"]
                + self.gamma * parts["dimwise_kl"])
        return {**losses, "loss": loss, **parts}
