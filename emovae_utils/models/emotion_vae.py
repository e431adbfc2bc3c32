"""The authors' convolutional VAE for 80 x 128 log-mel spectrograms, on stock layers.

The 80 mel bands are the ``Conv1d`` channels and the 128 frames the time axis.
See ``docs/study-reference.md`` (section *Model*) for the source of every layer
size. The training loss is the study's: the element-mean squared error plus the
KL divergence summed over latent dimensions and averaged over clips.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import BaseVAE, check_int
from .losses import elbo_terms
from .registry import register

__all__ = ["EmotionVAE"]

#: Encoder channels of the five k4/s2/p1 convolutions (after the mel bands).
ENCODER_CHANNELS = (64, 32, 16, 16, 128)
#: Decoder channels of the four k4/s2/p1 transposed convolutions (before the mel bands).
DECODER_CHANNELS = (16, 16, 32, 64)


@register("emotion_vae")
class EmotionVAE(BaseVAE):
    """VAE with a 1-D convolutional encoder and decoder (the study's model).

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
    activation. PyTorch's default initialisation, Kaiming-normal on the two
    Linear layers. With ``latent_dim=8`` the model has 283,744 parameters.
    Unconditional: ``cond`` is ignored.

    Examples
    --------
    >>> import torch
    >>> from emovae_utils.models import EmotionVAE
    >>> model = EmotionVAE(latent_dim=8)
    >>> out = model(torch.zeros(2, 80, 128))
    >>> out["recon"].shape, out["mu"].shape
    (torch.Size([2, 80, 128]), torch.Size([2, 8]))
    >>> sorted(model.loss_function(torch.zeros(2, 80, 128), out))
    ['kl', 'loss', 'reconstruction']
    """

    n_frames = 128

    def __init__(self, latent_dim: int = 8, n_mels: int = 80) -> None:
        super().__init__()
        owner = type(self).__name__
        self.latent_dim = check_int(owner, "latent_dim", latent_dim)
        self.n_mels = check_int(owner, "n_mels", n_mels)
        enc: list[nn.Module] = []
        chans = [self.n_mels, *ENCODER_CHANNELS]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            enc += [nn.Conv1d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        enc += [nn.Conv1d(chans[-1], 256, 3, stride=2, padding=0), nn.ReLU(), nn.Flatten()]
        self.encoder = nn.Sequential(*enc)
        self.fc_enc = nn.Linear(256, 2 * self.latent_dim)

        self.fc_dec = nn.Linear(self.latent_dim, 256)
        dec: list[nn.Module] = [
            nn.ReLU(), nn.ConvTranspose1d(256, 128, 3),
            nn.ReLU(), nn.ConvTranspose1d(128, DECODER_CHANNELS[0], 4, stride=2, padding=0),
        ]
        chans = [*DECODER_CHANNELS, self.n_mels]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            dec += [nn.ReLU(), nn.ConvTranspose1d(c_in, c_out, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*dec)

        for lin in (self.fc_enc, self.fc_dec):
            nn.init.kaiming_normal_(lin.weight)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.n_mels or x.shape[2] != self.n_frames:
            raise ValueError(
                f"expected input (N, {self.n_mels}, {self.n_frames}) log-mel spectrograms, "
                f"got {tuple(x.shape)}; make them with emovae_utils.data.load_features"
            )

    def encode(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x`` (N, n_mels, 128) to ``(mu, logvar)``, each (N, latent_dim)."""
        self._check_input(x)
        h = self.fc_enc(self.encoder(x))
        return h[:, : self.latent_dim], h[:, self.latent_dim:]

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Map latents (N, latent_dim) to spectrograms (N, n_mels, 128)."""
        return self.decoder(self.fc_dec(z).unsqueeze(-1))  # (N, 256, 1) -> ...

    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor],
                      labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The study's loss: ``mse(recon, x)`` (element mean) + KL (summed over dims, mean over clips).

        Returns
        -------
        dict
            ``loss`` = ``reconstruction`` + ``kl``, each a scalar tensor.
        """
        return elbo_terms(F.mse_loss(out["recon"], x), out["mu"], out["logvar"])
