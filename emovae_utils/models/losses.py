"""The loss terms the models share: Gaussian KL, the study's ELBO terms, masked cross-entropy.

One home for each term, so every variant scores itself with the same code:

* :func:`gaussian_kl`: KL(N(mu, exp(logvar)) || N(0, I)) per clip and dimension;
* :func:`elbo_terms`: ``{"loss": reconstruction + beta * kl, "reconstruction", "kl"}``,
  the study's KL summed over dimensions and averaged over clips;
* :func:`masked_cross_entropy`: cross-entropy and accuracy over the labelled rows (``-1`` = unknown);
* :func:`masked_mse`: the element-mean squared error over the real (unpadded) frames of variable-length clips.

Examples
--------
>>> import torch
>>> terms = elbo_terms(torch.tensor(2.0), torch.zeros(3, 4), torch.zeros(3, 4))
>>> {k: v.item() for k, v in terms.items()}
{'loss': 2.0, 'reconstruction': 2.0, 'kl': 0.0}
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["gaussian_kl", "elbo_terms", "masked_cross_entropy", "masked_mse"]


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per clip and dimension.

    Parameters
    ----------
    mu, logvar : torch.Tensor, (N, latent_dim)

    Returns
    -------
    torch.Tensor, (N, latent_dim)
        ``-0.5 * (1 + logvar - mu**2 - exp(logvar))``, in nats.

    Examples
    --------
    >>> import torch
    >>> gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).sum().item()
    0.0
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def elbo_terms(reconstruction: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
               beta: float | None = None) -> dict[str, torch.Tensor]:
    """The study's loss terms from a reconstruction term and the posterior.

    Parameters
    ----------
    reconstruction : torch.Tensor, scalar
        E.g. the element-mean squared error.
    mu, logvar : torch.Tensor, (N, latent_dim)
        The posterior's parameters.
    beta : float, optional
        KL weight; ``None`` adds the KL unweighted (the study's loss).

    Returns
    -------
    dict
        ``loss`` = ``reconstruction + kl`` (or ``+ beta * kl``), ``reconstruction``,
        ``kl`` (:func:`gaussian_kl` summed over dimensions, mean over clips).

    Examples
    --------
    >>> import torch
    >>> elbo_terms(torch.tensor(1.0), torch.ones(2, 3), torch.zeros(2, 3), beta=2.0)["loss"].item()
    4.0
    """
    kl = gaussian_kl(mu, logvar).sum(dim=1).mean()
    loss = reconstruction + kl if beta is None else reconstruction + beta * kl
    return {"loss": loss, "reconstruction": reconstruction, "kl": kl}


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy and accuracy over the rows with ``target >= 0`` (``-1`` = unknown).

    Parameters
    ----------
    logits : torch.Tensor, (N, n_classes)
    target : torch.Tensor, int, (N,)
        Class indices; ``-1`` leaves the row out.

    Returns
    -------
    ce, accuracy : torch.Tensor, scalars
        Means over the labelled rows; both 0 when none is labelled (``ce`` keeps
        the graph and contributes no gradient). ``accuracy`` is detached.

    Examples
    --------
    >>> import torch
    >>> ce, acc = masked_cross_entropy(torch.tensor([[9.0, 0.0], [0.0, 9.0]]), torch.tensor([0, -1]))
    >>> round(ce.item(), 4), acc.item()
    (0.0001, 1.0)
    """
    known = target >= 0
    if not bool(known.any()):
        zero = logits.sum() * 0.0  # keeps the graph (and the device/dtype); contributes no gradient
        return zero, zero.detach()
    logits, target = logits[known], target[known]
    acc = (logits.argmax(dim=1) == target).to(logits.dtype).mean()
    return F.cross_entropy(logits, target), acc.detach()


def masked_mse(recon: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(recon - x) ** 2`` over the real elements: the reconstruction term of padded clips.

    Parameters
    ----------
    recon : torch.Tensor, (N, n_mels, T)
        Zero at the padded frames (the sequence models write zeros there).
    x : torch.Tensor, (N, n_mels, T)
        The padded input; its padded values (even inf or NaN) are never read.
    mask : torch.Tensor, bool, (N, 1, T)
        True at the real frames.

    Returns
    -------
    torch.Tensor, scalar
        The sum over ``n_mels * mask.sum()`` real elements, divided by their number.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[1.0, 2.0, float("nan")]]])
    >>> masked_mse(torch.tensor([[[0.0, 0.0, 0.0]]]), x, torch.tensor([[[True, True, False]]])).item()
    2.5
    """
    # recon is 0 at the padded frames; so is the target after where(): they add nothing
    target = torch.where(mask, x, 0.0)
    return F.mse_loss(recon, target, reduction="sum") / (mask.sum() * x.shape[1])
