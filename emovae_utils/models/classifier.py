"""A small supervised CNN emotion classifier on 80 x 128 log-mels: the ceiling for this input.

The VAEs of the study see the same (N, 80, 128) dB log-mel spectrograms; a
classifier trained end to end on the emotion labels bounds what any probe of a
latent can reach from them. :class:`EmotionCNN` is registered as
``"emotion_cnn"``, so it is built, saved and loaded by name like the VAEs
(:func:`~emovae_utils.models.build`, :func:`~emovae_utils.models.save_model`)
and trained by :func:`emovae_utils.train.fit` with the emotion indices as ``labels``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import Model, batched_numpy, check_float, check_int
from .losses import masked_cross_entropy
from .registry import register

__all__ = ["EmotionCNN"]


def _block(c_in: int, c_out: int, kernel: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm1d(c_out), nn.ReLU(), nn.Dropout1d(dropout))


@register("emotion_cnn")
class EmotionCNN(Model):
    """1-D convolutional emotion classifier over time, mel bands as channels.

    Parameters
    ----------
    n_classes : int, default 8
        Emotion classes (RAVDESS: ``emotion_id - 1``).
    n_mels : int, default 80
        Mel bands (= input channels). Any number of frames works; the study's is 128.
    channels : tuple of int, default (96, 96, 128)
        Output channels of the convolution blocks; a max-pool halves the time
        axis after every block but the last.
    kernel : int, default 5
        Kernel size (odd) of every convolution.
    hidden : int, default 64
        Size of the penultimate layer (:meth:`embed`).
    dropout : float, default 0.1
        Dropout after each convolution block (whole channels) and before the
        output layer. 0.1 was better than 0.3 on fold 0 of
        :data:`~emovae_utils.data.ACTOR_FOLDS` (UAR 0.66 vs 0.52 after 60
        epochs, batch 64, lr 3e-3).
    freq_mask, time_mask : int, default 8, 16
        SpecAugment (Park et al. 2019) in training mode only: one band of up to
        ``freq_mask`` mel bands and one span of up to ``time_mask`` frames per
        clip are set to the clip's mean. ``0`` disables either.

    Notes
    -----
    Each clip is standardised (its own mean and standard deviation over all
    bins: loudness and recording level are not emotion), then passes a
    BatchNorm over the mel bands, the convolution blocks
    (Conv1d, BatchNorm, ReLU, Dropout, MaxPool), mean and max pooling over
    time, ``Linear(2 * channels[-1], hidden)`` + ReLU (:meth:`embed`), Dropout
    and ``Linear(hidden, n_classes)``. The block dropout is channel dropout
    (``Dropout1d``: cheap on one CPU thread). With the defaults: 163,688 parameters.

    Labels (:attr:`labels` = ``"emotion"``) go to the loss only,
    ``loss_function(x, out, labels)``: integers (N,) of emotion index, or (N, 2)
    of (emotion, speaker) as for :class:`~emovae_utils.models.EmotionSupervisedVAE`
    (only column 0 is used); ``-1`` = unknown, left out of the loss and the
    accuracy. ``labels=None`` means no labels (the loss is then 0; :func:`~emovae_utils.train.fit`
    refuses to train so, all ``-1`` says it on purpose). Its
    :meth:`representation` is the embedding (:meth:`embed_tensor`).

    Examples
    --------
    >>> import torch
    >>> from emovae_utils.models import build
    >>> import emovae_utils.models.classifier  # registers "emotion_cnn"
    >>> model = build("emotion_cnn")
    >>> x = torch.randn(4, 80, 128)
    >>> out = model(x)
    >>> out["logits"].shape
    torch.Size([4, 8])
    >>> list(model.loss_function(x, out, torch.tensor([0, 3, -1, 7])))
    ['loss', 'accuracy']
    >>> model.embed(x).shape
    (4, 64)
    """

    labels = "emotion"

    def __init__(self, n_classes: int = 8, n_mels: int = 80, channels: tuple[int, ...] = (96, 96, 128),
                 kernel: int = 5, hidden: int = 64, dropout: float = 0.1, freq_mask: int = 8,
                 time_mask: int = 16) -> None:
        super().__init__()
        owner = type(self).__name__
        if check_int(owner, "kernel", kernel) % 2 == 0:
            raise ValueError(f"{owner}(kernel={kernel!r}): kernel must be a positive odd number "
                             "(same-length convolutions)")
        if isinstance(channels, (str, bytes)) or not isinstance(channels, (tuple, list)) or not channels:
            raise ValueError(f"{owner}(channels={channels!r}): channels must list at least one convolution "
                             "block's output channels, e.g. (96, 96, 128)")
        self.n_classes = check_int(owner, "n_classes", n_classes)
        self.n_mels = check_int(owner, "n_mels", n_mels)
        self.channels = tuple(check_int(owner, f"channels[{i}]", c) for i, c in enumerate(channels))
        self.kernel = int(kernel)
        self.hidden = check_int(owner, "hidden", hidden)
        self.dropout = check_float(owner, "dropout", dropout, high=1.0, below=True)
        self.freq_mask = check_int(owner, "freq_mask", freq_mask, low=0)
        self.time_mask = check_int(owner, "time_mask", time_mask, low=0)
        self.input_norm = nn.BatchNorm1d(self.n_mels)
        blocks: list[nn.Module] = []
        chans = [self.n_mels, *self.channels]
        for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:])):
            blocks.append(_block(c_in, c_out, self.kernel, self.dropout))
            if i < len(self.channels) - 1:
                blocks.append(nn.MaxPool1d(2))
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(2 * self.channels[-1], self.hidden)
        self.head = nn.Linear(self.hidden, self.n_classes)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.n_mels:
            raise ValueError(f"expected input (N, {self.n_mels}, frames) log-mel spectrograms, got "
                             f"{tuple(x.shape)}; make them with emovae_utils.data.load_features")

    def _labels(self, labels: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
        if labels is None:
            return torch.full((n,), -1, dtype=torch.long, device=device)
        labels = torch.as_tensor(labels, device=device)
        if labels.dim() == 2 and labels.shape[1] >= 1:
            labels = labels[:, 0]
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != (n,):
            raise ValueError(f"labels must be integer emotion indices ({n},) or ({n}, 2) (emotion, speaker), "
                             f"-1 for unknown; got {labels.dtype} {tuple(labels.shape)}")
        labels = labels.long()
        bad = (labels < -1) | (labels >= self.n_classes)
        if bool(bad.any()):
            raise ValueError(f"emotion indices must be in 0..{self.n_classes - 1} or -1 (unknown); got "
                             f"{labels[bad][:5].tolist()} (RAVDESS: emotion_id - 1)")
        return labels

    def _augment(self, h: torch.Tensor) -> torch.Tensor:
        """SpecAugment on standardised clips (mean 0): masked bins become 0."""
        n, m, t = h.shape
        keep = torch.ones(n, m, t, dtype=h.dtype, device=h.device)
        for size, axis, length in ((self.freq_mask, 1, m), (self.time_mask, 2, t)):
            if size <= 0:
                continue
            width = torch.randint(0, size + 1, (n, 1), device=h.device)
            start = (torch.rand(n, 1, device=h.device) * (length - width + 1)).long()
            pos = torch.arange(length, device=h.device).unsqueeze(0)
            inside = ((pos >= start) & (pos < start + width)).to(h.dtype)  # (n, length)
            keep = keep * (1 - (inside.unsqueeze(2) if axis == 1 else inside.unsqueeze(1)))
        return h * keep

    def embed_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, hidden) of ``x`` (N, n_mels, frames), with gradients."""
        self._check_input(x)
        flat = x.reshape(x.shape[0], -1)
        mean = flat.mean(dim=1)
        var = (flat.pow(2).mean(dim=1) - mean.pow(2)).clamp_min(0)  # one pass; torch.var_mean is ~8x slower here
        h = (x - mean[:, None, None]) * torch.rsqrt(var + 1e-5)[:, None, None]
        if self.training:
            h = self._augment(h)
        h = self.features(self.input_norm(h))
        h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return F.relu(self.fc(h))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Logits of ``x`` (N, n_mels, frames).

        Returns
        -------
        dict
            ``logits`` (N, n_classes) and ``embedding`` (N, hidden). ``cond`` is ignored.
        """
        emb = self.embed_tensor(x)
        logits = self.head(F.dropout(emb, self.dropout, self.training))
        return {"logits": logits, "embedding": emb}

    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor],
                      labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Cross-entropy ``loss`` and ``accuracy`` over the labelled clips (0 and 0 when none is)."""
        loss, acc = masked_cross_entropy(out["logits"], self._labels(labels, x.shape[0], x.device))
        return {"loss": loss, "accuracy": acc}

    def representation(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The embedding (N, hidden) of :meth:`embed_tensor`."""
        return self.embed_tensor(x)

    @property
    def representation_dim(self) -> int:
        """:attr:`hidden`."""
        return self.hidden

    def predict_logits(self, X: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Logits (N, n_classes), float32, in eval mode (the mode is restored), without gradients."""
        return batched_numpy(self, X, lambda x: self.head(self.embed_tensor(x)), self.n_classes, batch_size)

    def predict(self, X: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Predicted class indices (N,) (RAVDESS: ``emotion_id - 1``)."""
        return self.predict_logits(X, batch_size=batch_size).argmax(axis=1)

    def embed(self, X: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Penultimate features (N, hidden), float32, in eval mode, without gradients."""
        return self.represent(X, batch_size=batch_size)
