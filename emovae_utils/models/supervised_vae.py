"""Emotion-supervised VAE with an adversarial speaker head on an "emotion sub-latent".

The first ``emotion_dims`` latent dimensions are reserved for emotion: a
linear classifier on their posterior means predicts the emotion, and a second
linear head predicts the speaker from the same dimensions through a gradient
reversal layer (Ganin & Lempitsky 2015), so the head learns to find speaker
information there while the encoder is pushed to remove it. The remaining
dimensions are free (speaker, phonetics, ...). Labels are used in training
only; encoding and decoding are unconditional, so the model applies to unseen
test speakers unchanged, and :func:`emotion_sublatent` gives the part to probe.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import check_float, check_int
from .emotion_vae import EmotionVAE
from .losses import masked_cross_entropy
from .registry import register

__all__ = ["EmotionSupervisedVAE", "grad_reverse", "emotion_sublatent", "check_labels"]


def grad_reverse(x: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Gradient reversal (Ganin & Lempitsky 2015): the identity forward, ``-strength`` times the gradient backward.

    Built from stock autograd operations, no hand-written backward: ``x.detach() + (x - x.detach()) * -strength``
    equals ``x`` exactly (the bracket is exactly 0), and its derivative with respect to ``x`` is ``-strength``.

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(3, requires_grad=True)
    >>> y = grad_reverse(x, 0.5)
    >>> torch.equal(y, x)
    True
    >>> y.sum().backward()
    >>> x.grad.tolist()
    [-0.5, -0.5, -0.5]
    """
    frozen = x.detach()
    return frozen + (x - frozen) * -float(strength)


def check_labels(labels: torch.Tensor | None, n: int, n_emotions: int, n_speakers: int,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """The training labels ``"labels"`` of ``n`` clips as an int64 tensor (n, 2), or a ValueError.

    The one check of (emotion index, speaker index) labels (every model declaring ``labels = "labels"``).

    Parameters
    ----------
    labels : tensor or array (n, 2), or None
        ``-1`` = unknown; None: no labels at all (all ``-1``).
    n : int
        Number of clips.
    n_emotions, n_speakers : int
        Classes of each column (indices ``0 .. k-1``).
    device : torch.device or str, default "cpu"

    Returns
    -------
    torch.Tensor, int64, (n, 2)

    Examples
    --------
    >>> check_labels(None, 2, 8, 24).tolist()
    [[-1, -1], [-1, -1]]
    >>> check_labels(torch.tensor([[8, 0]]), 1, 8, 24)
    Traceback (most recent call last):
    ...
    ValueError: emotion indices must be in 0..7 or -1 (unknown); got [8] (RAVDESS: emotion_id - 1, actor - 1)
    """
    if labels is None:
        return torch.full((n, 2), -1, dtype=torch.long, device=device)
    labels = torch.as_tensor(labels, device=device)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != (n, 2):
        raise ValueError(f"labels must be an integer tensor ({n}, 2) of (emotion index, speaker index), "
                         f"-1 for unknown; got {labels.dtype} {tuple(labels.shape)}")
    labels = labels.long()
    for col, (what, k) in enumerate((("emotion", n_emotions), ("speaker", n_speakers))):
        bad = (labels[:, col] < -1) | (labels[:, col] >= k)
        if bool(bad.any()):
            raise ValueError(f"{what} indices must be in 0..{k - 1} or -1 (unknown); got "
                             f"{labels[bad, col][:5].tolist()} (RAVDESS: emotion_id - 1, actor - 1)")
    return labels


@register("supervised_vae")
class EmotionSupervisedVAE(EmotionVAE):
    """:class:`EmotionVAE` with an emotion classifier and an adversarial speaker head on ``mu[:, :emotion_dims]``.

    Parameters
    ----------
    emotion_dims : int, default 4
        Size of the emotion sub-latent: latent dimensions ``0 .. emotion_dims-1``.
    n_emotions : int, default 8
        Emotion classes (RAVDESS: ``emotion_id - 1``).
    n_speakers : int, default 24
        Speaker classes (RAVDESS: ``actor - 1``; held-out actors simply never
        occur as targets).
    classifier_weight : float, default 1.0
        Weight of the emotion cross-entropy in the loss.
    adversary_weight : float, default 1.0
        Strength of the gradient reversal between the speaker head and the
        encoder. ``0`` trains the speaker head as a plain probe of how much
        speaker information the sub-latent holds, without pushing the encoder.
    latent_dim, n_mels : int
        As :class:`EmotionVAE`.

    Notes
    -----
    Labels (:attr:`labels` = ``"labels"``) go to the loss only,
    ``loss_function(x, out, labels)``: an integer tensor (N, 2) of (emotion index,
    speaker index), ``-1`` = unknown (that clip is left out of that
    cross-entropy's mean; reconstruction and KL use every clip). ``labels=None``
    means no labels at all (:func:`~emovae_utils.train.fit` refuses to train so; all ``-1`` says it on
    purpose). The model is unconditional: ``forward``, ``encode``,
    ``decode`` and ``sample`` ignore ``cond``. Its :meth:`representation` is the
    emotion sub-latent ``mu[:, :emotion_dims]``.
    With ``e = mu[:, :emotion_dims]`` (the posterior mean, not the sample)::

        emotion_logits = emotion_head(e)                              # Linear(emotion_dims, n_emotions)
        speaker_logits = speaker_head(grad_reverse(e, adversary_weight))  # Linear(emotion_dims, n_speakers)
        loss = reconstruction + kl + classifier_weight * emotion_ce + speaker_ce

    ``reconstruction`` and ``kl`` are the study's (element-mean MSE; KL summed
    over dimensions, mean over clips); ``emotion_ce``/``speaker_ce`` are means
    over the labelled clips of the batch (0 when none is labelled). The
    speaker head descends ``speaker_ce``; the encoder receives
    ``-adversary_weight`` times its gradient, i.e. ascends it. ``emotion_acc``
    (accuracy over the labelled clips, 0 when none) is reported, not trained.

    Scale: the cross-entropies are a few nats, while the study's MSE on dB
    spectrograms is tens to thousands of dB² (and ``fit`` clips the global
    gradient norm to 1), so with ``classifier_weight=1`` the reconstruction
    dominates the encoder's gradient. On a synthetic set (16 clips of
    -40 dB +- 3 dB noise, emotion = one band raised by 15 dB) 300 full-batch
    steps left the accuracy at chance with weight 1 and reached 1.0 with
    weight 100; raise ``classifier_weight`` (and ``adversary_weight``) to the
    size of the reconstruction term.

    Examples
    --------
    >>> model = EmotionSupervisedVAE(emotion_dims=4)
    >>> x = torch.zeros(3, 80, 128)
    >>> labels = torch.tensor([[0, 1], [4, -1], [-1, 2]])  # (emotion, speaker), -1 unknown
    >>> out = model(x)
    >>> out["emotion_logits"].shape, out["speaker_logits"].shape
    (torch.Size([3, 8]), torch.Size([3, 24]))
    >>> sorted(model.loss_function(x, out, labels))
    ['emotion_acc', 'emotion_ce', 'kl', 'loss', 'reconstruction', 'speaker_ce']
    >>> emotion_sublatent(model, x).shape
    (3, 4)
    """

    labels = "labels"

    def __init__(self, latent_dim: int = 8, n_mels: int = 80, emotion_dims: int = 4, n_emotions: int = 8,
                 n_speakers: int = 24, classifier_weight: float = 1.0, adversary_weight: float = 1.0) -> None:
        super().__init__(latent_dim=latent_dim, n_mels=n_mels)
        owner = type(self).__name__
        self.emotion_dims = check_int(owner, "emotion_dims", emotion_dims, high=self.latent_dim)  # <= latent_dim
        self.n_emotions = check_int(owner, "n_emotions", n_emotions)
        self.n_speakers = check_int(owner, "n_speakers", n_speakers)
        self.classifier_weight = check_float(owner, "classifier_weight", classifier_weight)
        self.adversary_weight = check_float(owner, "adversary_weight", adversary_weight)
        self.emotion_head = nn.Linear(self.emotion_dims, self.n_emotions)
        self.speaker_head = nn.Linear(self.emotion_dims, self.n_speakers)

    def _labels(self, labels: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
        return check_labels(labels, n, self.n_emotions, self.n_speakers, device)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """:meth:`EmotionVAE.forward` plus ``emotion_logits`` and ``speaker_logits``."""
        out = super().forward(x, cond)
        e = out["mu"][:, : self.emotion_dims]
        out["emotion_logits"] = self.emotion_head(e)
        out["speaker_logits"] = self.speaker_head(grad_reverse(e, self.adversary_weight))
        return out

    def representation(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The emotion sub-latent ``mu[:, :emotion_dims]``."""
        return self.encode(x, cond)[0][:, : self.emotion_dims]

    @property
    def representation_dim(self) -> int:
        """:attr:`emotion_dims`."""
        return self.emotion_dims

    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor],
                      labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``reconstruction + kl + classifier_weight * emotion_ce + speaker_ce`` (see the class notes)."""
        losses = super().loss_function(x, out, labels)
        labels = self._labels(labels, x.shape[0], x.device)
        emotion_ce, emotion_acc = masked_cross_entropy(out["emotion_logits"], labels[:, 0])
        speaker_ce, _ = masked_cross_entropy(out["speaker_logits"], labels[:, 1])
        loss = losses["loss"] + self.classifier_weight * emotion_ce + speaker_ce
        return {**losses, "loss": loss, "emotion_ce": emotion_ce, "speaker_ce": speaker_ce,
                "emotion_acc": emotion_acc}


@torch.no_grad()
def emotion_sublatent(model: EmotionSupervisedVAE, X: np.ndarray | torch.Tensor,
                      batch_size: int = 256) -> np.ndarray:
    """Posterior means of the emotion sub-latent, ``mu[:, :emotion_dims]``, for probes.

    Parameters
    ----------
    model : EmotionSupervisedVAE
        Evaluated in eval mode (its mode is restored afterwards), without gradients.
    X : array or tensor, (N, n_mels, 128)
        Spectrograms (dB).
    batch_size : int, default 256
        Clips encoded at once.

    Returns
    -------
    np.ndarray, (N, emotion_dims), float32
    """
    return model.represent(X, batch_size=batch_size)
