"""Convolutional VAE for 80 x 128 log-mel spectrograms (the authors' layout).

The 80 mel bands are the ``Conv1d`` channels and the 128 frames the time axis.
See ``shared/docs/study-reference.md`` (section *Model*) for the source of every
layer size.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["EmotionVAE", "vae_loss", "save_model", "load_model"]


class EmotionVAE(nn.Module):
    """VAE with a 1-D convolutional encoder and decoder.

    Parameters
    ----------
    latent_dim : int, default 8
        Size of the latent space (the report used 8).
    n_mels : int, default 80
        Number of mel bands (= input channels). The time axis must be 128 frames.

    Notes
    -----
    Encoder: Conv1d 80->64->32->16->16->128 (k4, s2, p1) + ReLU, time 128->4;
    Conv1d 128->256 (k3, s2, p0) + ReLU, time 4->1; Linear 256 -> 2*latent
    (first half mu, second half log-variance).
    Decoder: Linear latent->256, reshape (256, 1); ReLU before each
    ConvTranspose1d 256->128 (k3), 128->16 (k4, s2, p0), 16->16, 16->32,
    32->64, 64->80 (k4, s2, p1); time 1->3->8->16->32->64->128. No output
    activation. Kaiming-normal init on the two Linear layers only.
    With ``latent_dim=8`` the model has 283,744 parameters.
    """

    n_frames = 128

    def __init__(self, latent_dim: int = 8, n_mels: int = 80) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.n_mels = int(n_mels)
        enc: list[nn.Module] = []
        chans = [self.n_mels, 64, 32, 16, 16, 128]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            enc += [nn.Conv1d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        enc += [nn.Conv1d(128, 256, 3, stride=2, padding=0), nn.ReLU(), nn.Flatten()]
        self.encoder = nn.Sequential(*enc)
        self.fc_enc = nn.Linear(256, 2 * self.latent_dim)

        self.fc_dec = nn.Linear(self.latent_dim, 256)
        dec: list[nn.Module] = [
            nn.ReLU(), nn.ConvTranspose1d(256, 128, 3),
            nn.ReLU(), nn.ConvTranspose1d(128, 16, 4, stride=2, padding=0),
        ]
        chans = [16, 16, 32, 64, self.n_mels]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            dec += [nn.ReLU(), nn.ConvTranspose1d(c_in, c_out, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*dec)

        for lin in (self.fc_enc, self.fc_dec):
            nn.init.kaiming_normal_(lin.weight)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x`` (N, n_mels, 128) to ``(mu, logvar)``, each (N, latent_dim)."""
        h = self.fc_enc(self.encoder(x))
        return h[:, : self.latent_dim], h[:, self.latent_dim:]

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Sample ``z = mu + eps * exp(logvar / 2)`` with ``eps ~ N(0, I)``."""
        eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (N, latent_dim) to spectrograms (N, n_mels, 128)."""
        h = self.fc_dec(z).unsqueeze(-1)  # (N, 256, 1)
        return self.decoder(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(reconstruction, mu, logvar)``."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def vae_loss(
    recon: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VAE loss of the study.

    Parameters
    ----------
    recon, x : torch.Tensor
        Reconstruction and input, same shape.
    mu, logvar : torch.Tensor
        Posterior parameters, (N, latent_dim).
    beta : float, default 1.0
        Weight of the KL term.

    Returns
    -------
    total, reconstruction, kl : torch.Tensor
        Scalars. ``reconstruction`` is the MSE averaged over all elements;
        ``kl = mean_n(-0.5 * sum_j(1 + logvar - mu**2 - exp(logvar)))``;
        ``total = reconstruction + beta * kl``.
    """
    rec = F.mse_loss(recon, x, reduction="mean")
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
    return rec + beta * kl, rec, kl


def save_model(path: str | os.PathLike, model: EmotionVAE, **metadata: Any) -> Path:
    """Save weights and constructor arguments (plus free metadata) atomically.

    Parameters
    ----------
    path : path-like
        Target file (``.pt``).
    model : EmotionVAE
    **metadata
        Extra picklable values (epochs, seed, data description...).

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": {"latent_dim": model.latent_dim, "n_mels": model.n_mels},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata),
        "torch_version": torch.__version__,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_model(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[EmotionVAE, dict[str, Any]]:
    """Load a model written by :func:`save_model`.

    Returns
    -------
    model : EmotionVAE
        In eval mode, on ``map_location``.
    metadata : dict
        The ``**metadata`` given to :func:`save_model`.
    """
    payload = torch.load(Path(path), map_location=map_location, weights_only=False)
    model = EmotionVAE(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.to(map_location).eval()
    return model, dict(payload.get("metadata", {}))
