"""Synthetic variable-length log-mels for the sequence models' tests (one home for both test files)."""
import torch

from emovae_utils.models.sequence_vae import length_mask


def padded_log_mels(n: int = 6, t_max: int = 50, seed: int = 0, min_length: int = 20):
    """Padded dB-like log-mels (N, 80, t_max) and lengths in [min_length, t_max] (the first = t_max).

    The padding holds 123 dB of junk, which a model must never read.
    """
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_length, t_max + 1, (n,), generator=g)
    lengths[0] = t_max
    t = torch.arange(t_max, dtype=torch.float32)
    mel = torch.arange(80, dtype=torch.float32)[:, None]
    x = -25 + 15 * torch.sin(mel / 10 + t / 7 + torch.rand(n, 1, 1, generator=g) * 6)
    x = x + torch.randn(n, 80, t_max, generator=g)
    return torch.where(length_mask(lengths, t_max)[:, None], x, 123.0), lengths
