"""A factorised sequence VAE: frame-level content, a global speaker latent and a global emotion latent.

Emotion conversion needs a model that keeps *what is said* (and how it is
timed) apart from *who* says it and *how they feel*.
:class:`FactorisedSequenceVAE` reads the variable-length log-mels of
:func:`emovae_utils.data.load_sequences` with their lengths (the condition
``"lengths"``, as :class:`~emovae_utils.models.sequence_vae.SequenceVAE`) and
describes each clip by three latents:

* **content**: ``content_dim`` numbers per ``content_stride`` frames (a
  frame-level latent at a reduced rate). Its encoder normalises each hidden
  channel over the clip's time (instance normalisation, Chou et al. 2019),
  which removes the clip's global statistics (speaker timbre, overall level,
  the emotion's global colour), and ends in a narrow per-step bottleneck.
  Optionally a gradient-reversal adversary predicts emotion and speaker from
  the time-pooled content (``content_adversary_weight``; with 0 its heads are
  plain probes whose accuracies measure the leakage);
* **speaker**: ``speaker_dim`` numbers per clip, pooled over its true frames
  by a speaker encoder. Label-free, so it encodes unseen speakers;
* **emotion**: ``emotion_dim`` (8) numbers per clip, with an emotion
  classifier on its mean and a gradient-reversal speaker adversary, as
  :class:`~emovae_utils.models.supervised_vae.EmotionSupervisedVAE`.

All three have Gaussian posteriors with N(0, I) priors. The decoder reads the
content upsampled to its step rate and the two global vectors (added to its
input and, as scale and shift, to every residual block), and writes zeros into
the padded frames. Conversion is :meth:`FactorisedSequenceVAE.encode_parts` of
a clip, then :meth:`FactorisedSequenceVAE.decode_parts` with another emotion
vector: content and speaker are passed through untouched.

The flat latent
---------------
So that everything written for a :class:`~emovae_utils.models.BaseVAE`
(``encode(x, cond) -> (mu, logvar)`` each (N, latent_dim), ``decode(z, cond)``,
``sample``, :func:`~emovae_utils.generate.encode_posterior`, the training
samples of :func:`~emovae_utils.train.fit`) works unchanged, :meth:`encode`
returns the three parts packed into one vector of fixed width
``latent_dim = emotion_dim + speaker_dim + content_dim * ceil(max_frames / content_stride)``::

    z = [ emotion (emotion_dim) | speaker (speaker_dim) | content (content_dim x content steps, channel-major) ]

Content steps past a clip's own ``ceil(length / content_stride)`` hold
``mu = logvar = 0`` (no KL) and are never read by the decoder.
:meth:`~FactorisedSequenceVAE.split_latent` and :meth:`~FactorisedSequenceVAE.join_latent`
convert between the two forms; the first ``emotion_dim`` dimensions are the
:meth:`~FactorisedSequenceVAE.representation`.

How the padding is never seen
-----------------------------
As in :mod:`.sequence_vae`: every padded input value is replaced before the
first layer (``where``, so even inf or NaN is never read), every hidden
sequence is masked at its own rate after each layer, statistics (instance
norm, pooling) run over the real steps only, the decoder writes zeros past each
length, and the reconstruction is the mean squared error over the real
elements (:func:`~emovae_utils.models.losses.masked_mse`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .base import BaseVAE, check_bool, check_float, check_int
from .losses import gaussian_kl, masked_cross_entropy, masked_mse
from .registry import register
from .sequence_vae import SequenceVAE, check_lengths, check_log_mels, length_mask, masked_mean_std, step_mask
from .supervised_vae import check_labels, grad_reverse

__all__ = ["FactorisedSequenceVAE", "masked_instance_norm"]


def masked_instance_norm(h: torch.Tensor, m: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Instance normalisation over the real steps: each clip's channel to mean 0, variance 1; masked steps 0.

    Parameters
    ----------
    h : torch.Tensor, (N, C, steps)
    m : torch.Tensor, float, (N, 1, steps)
        1 at the real steps, 0 at the padded ones.
    eps : float, default 1e-5
        Added to the variance.

    Returns
    -------
    torch.Tensor, (N, C, steps)

    Examples
    --------
    >>> h = torch.tensor([[[1.0, 3.0, 99.0]]])
    >>> masked_instance_norm(h, torch.tensor([[[1.0, 1.0, 0.0]]]), eps=0.0).tolist()
    [[[-1.0, 1.0, 0.0]]]
    """
    count = m.sum(dim=2, keepdim=True)
    mean = (h * m).sum(dim=2, keepdim=True) / count
    centred = (h - mean) * m
    var = (centred * centred).sum(dim=2, keepdim=True) / count
    return centred * torch.rsqrt(var + eps)


class _SequenceEncoder(nn.Module):
    """Patches of ``stride`` frames -> ``channels`` channels, then residual convolutions, all masked.

    With ``instance_norm`` every hidden sequence is normalised over time (:func:`masked_instance_norm`).
    """

    def __init__(self, n_mels: int, channels: int, stride: int, kernel_size: int, n_layers: int,
                 instance_norm: bool) -> None:
        super().__init__()
        self.stride, self.instance_norm = stride, instance_norm
        self.patch = nn.Linear(stride * n_mels, channels)  # one patch of `stride` frames (time-major) -> one step
        self.blocks = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
                                    for _ in range(n_layers))

    def _norm(self, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return masked_instance_norm(h, m) if self.instance_norm else h

    def forward(self, xn: torch.Tensor, lengths: torch.Tensor, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``xn`` (N, >= steps * stride, n_mels): normalised, time-major, 0 at padded frames.

        Returns the hidden sequence (N, channels, steps), 0 at padded steps, and its mask (N, 1, steps).
        """
        n_steps, m = step_mask(lengths, n_frames, self.stride)
        patches = xn[:, : n_steps * self.stride].reshape(xn.shape[0], n_steps, -1)
        h = self._norm(F.relu(self.patch(patches)).transpose(1, 2) * m, m)
        for conv in self.blocks:
            h = self._norm(h + F.relu(conv(h)) * m, m)
        return h, m


@register("factorised_vae")
class FactorisedSequenceVAE(BaseVAE):
    """Sequence VAE with content (per step), speaker and emotion (per clip) latents; ``cond`` = lengths.

    Parameters
    ----------
    content_dim : int, default 4
        Width of the content latent at each content step (the bottleneck).
    content_stride : int, default 8
        Frames per content step (8 frames = 128 ms at 62.5 frames/s); a
        multiple of ``stride``. A clip of ``L`` frames has ``ceil(L / content_stride)`` content steps.
    speaker_dim : int, default 16
        Width of the speaker latent.
    emotion_dim : int, default 8
        Width of the emotion latent (the :meth:`representation`).
    max_frames : int, default 256
        Longest clip the model takes (RAVDESS: 246 voiced frames); fixes the
        width of the flat latent (see the module notes).
    n_mels : int, default 80
    channels : int, default 32
        Width of every hidden sequence (the three encoders and the decoder).
    stride : int, default 4
        Frames per step of the speaker and emotion encoders and of the decoder.
    kernel_size : int, default 5
        Kernel of the hidden convolutions (odd), in steps.
    n_layers : int, default 2
        Residual convolutions of each encoder and of the decoder.
    content_beta, speaker_beta, emotion_beta : float, default 0.1, 0.1, 1.0
        Weights of the three KL terms. The content KL is summed over the
        content dimensions and a clip's real steps (about 30 on RAVDESS), hence
        its smaller weight; with ``speaker_beta=1`` the speaker latent collapsed
        on RAVDESS (KL 0.2 nats, its information moved into the content).
    n_emotions, n_speakers : int, default 8 and 24
        Classes of the labels (RAVDESS: ``emotion_id - 1``, ``actor - 1``).
    classifier_weight : float, default 10.0
        Weight of the emotion cross-entropy (head on the emotion mean).
    adversary_weight : float, default 10.0
        Strength of the gradient reversal from the speaker head into the emotion encoder.
    content_adversary_weight : float, default 0.0
        Strength of the gradient reversal from the content heads (emotion and
        speaker, on the time-pooled content) into the content encoder; 0: they are probes.
    speaker_adversary_weight : float, default 10.0
        Strength of the gradient reversal from an emotion head on the speaker
        mean into the speaker encoder (keeps emotion out of the label-free
        speaker latent); 0: a probe of the emotion the speaker latent holds.
    conversion_weight : float, default 0.0
        Weight of a conversion loss: in training, each clip is also decoded
        with another clip's emotion latent (a permutation of the batch), the
        result is read by the model's own emotion encoder and head, and the
        cross-entropy against that other clip's emotion is added (gradients
        reach the decoder, so it must *use* the emotion latent); 0: off.
    content_instance_norm : bool, default True
        Instance-normalise the content encoder's hidden sequences; False (an
        ablation) leaves the clip's global statistics in the content path.
    db_offset, db_scale : float, default -25.0 and 20.0
        The network works on ``(x - db_offset) / db_scale`` and outputs
        ``db_offset + db_scale * y`` (as :class:`~emovae_utils.models.sequence_vae.SequenceVAE`).

    Notes
    -----
    Encoders (each :class:`_SequenceEncoder`: Linear on patches + ReLU, then
    ``n_layers`` residual blocks ``h + ReLU(Conv1d(h))``, masked):

    * content: patches of ``content_stride`` frames, instance norm after the
      patch layer and after every block, then a 1x1 convolution to
      ``2 * content_dim`` per step (mean, log-variance);
    * speaker, emotion: patches of ``stride`` frames, no normalisation; mean
      and standard deviation over the real steps -> Linear to ``2 * dim``.

    Decoder at ``stride`` frames per step: content repeated
    ``content_stride // stride`` times, ``ReLU(Conv1x1(content) + Linear(g))``
    with ``g = [speaker, emotion]``, ``n_layers`` blocks
    ``h + ReLU(Conv1d(h) * (1 + a_l(g)) + b_l(g))``, Linear(channels, stride * n_mels).

    Loss (labels (N, 2) = (emotion index, speaker index), ``-1`` unknown)::

        loss = reconstruction + content_beta * kl_content + speaker_beta * kl_speaker + emotion_beta * kl_emotion
               + classifier_weight * emotion_ce + speaker_ce
               + content_emotion_ce + content_speaker_ce + speaker_emotion_ce
               + conversion_weight * conversion_ce          (training only, with conversion_weight > 0)

    Every head descends its own cross-entropy; the encoder behind a head
    reversed with strength ``w`` receives ``-w`` times its gradient.
    ``kl`` is the unweighted sum of the three KL terms (each summed over its
    dimensions, content also over real steps, and averaged over clips). The
    ``*_acc`` terms are accuracies over the labelled clips, reported, not trained.

    Measured (defaults, 103,296 parameters, latent_dim 152; shared 2-core Xeon,
    one torch thread): :func:`~emovae_utils.train.fit` on the 1,140 clips of
    actors 1-19 (T_max 246, batch 64) costs about 1.2 s of CPU per epoch, 0.26 s on
    the 360 clips of actors 1-6. Trained on actors 1-6 for 150 epochs (seed 0):
    masked MSE 71.6 dB² (train), 72.8 dB² on actors 7-10; the emotion head's
    accuracy on actors 7-10 0.45 (train 0.97; chance 0.125); the probes on
    actors 7-10: content -> emotion 0.34, speaker latent -> emotion 0.17 (the
    adversary at work; 0.31 with ``speaker_adversary_weight=0``). The time-pooled
    content still identifies the 6 training speakers (probe 0.71): instance
    norm removes the global statistics, not all of the speaker.

    Examples
    --------
    >>> import torch
    >>> model = FactorisedSequenceVAE()
    >>> x, lengths = torch.zeros(2, 80, 246), torch.tensor([246, 85])
    >>> parts = model.encode_parts(x, lengths)
    >>> {k: tuple(v.shape) for k, v in parts.items()}  # content: ceil(246 / 8) = 31 steps
    {'content': (2, 4, 31), 'speaker': (2, 16), 'emotion': (2, 8)}
    >>> y = model.decode_parts(parts["content"], parts["speaker"], torch.ones(2, 8), lengths, n_frames=246)
    >>> y.shape, bool((y[1, :, 85:] == 0).all())  # another emotion; zeros past each length
    (torch.Size([2, 80, 246]), True)
    >>> out = model(x, lengths)
    >>> losses = model.loss_function(x, out, torch.tensor([[3, 0], [-1, 5]]))
    >>> [k for k in ("loss", "reconstruction", "kl", "emotion_ce", "speaker_ce") if k in losses]
    ['loss', 'reconstruction', 'kl', 'emotion_ce', 'speaker_ce']
    >>> model.latent_dim, model.representation(x, lengths).shape
    (152, torch.Size([2, 8]))
    """

    condition = "lengths"
    labels = "labels"
    #: The latent explorer's length picker and its defaults, as :class:`~.sequence_vae.SequenceVAE`'s.
    explorer_lengths = SequenceVAE.explorer_lengths
    explorer_defaults = SequenceVAE.explorer_defaults

    def __init__(self, content_dim: int = 4, content_stride: int = 8, speaker_dim: int = 16, emotion_dim: int = 8,
                 max_frames: int = 256, n_mels: int = 80, channels: int = 32, stride: int = 4, kernel_size: int = 5,
                 n_layers: int = 2, content_beta: float = 0.1, speaker_beta: float = 0.1, emotion_beta: float = 1.0,
                 n_emotions: int = 8, n_speakers: int = 24, classifier_weight: float = 10.0,
                 adversary_weight: float = 10.0, content_adversary_weight: float = 0.0,
                 speaker_adversary_weight: float = 10.0, content_instance_norm: bool = True,
                 conversion_weight: float = 0.0,
                 db_offset: float = -25.0, db_scale: float = 20.0) -> None:
        super().__init__()
        owner = type(self).__name__
        for name, value in (("content_dim", content_dim), ("content_stride", content_stride),
                            ("speaker_dim", speaker_dim), ("emotion_dim", emotion_dim), ("max_frames", max_frames),
                            ("n_mels", n_mels), ("channels", channels), ("stride", stride),
                            ("kernel_size", kernel_size), ("n_emotions", n_emotions), ("n_speakers", n_speakers)):
            setattr(self, name, check_int(owner, name, value))
        self.n_layers = check_int(owner, "n_layers", n_layers, low=0)
        for name, value in (("content_beta", content_beta), ("speaker_beta", speaker_beta),
                            ("emotion_beta", emotion_beta), ("classifier_weight", classifier_weight),
                            ("adversary_weight", adversary_weight),
                            ("content_adversary_weight", content_adversary_weight),
                            ("speaker_adversary_weight", speaker_adversary_weight),
                            ("conversion_weight", conversion_weight)):
            setattr(self, name, check_float(owner, name, value))
        self.content_instance_norm = check_bool(owner, "content_instance_norm", content_instance_norm)
        self.db_offset = check_float(owner, "db_offset", db_offset, low=None)
        self.db_scale = check_float(owner, "db_scale", db_scale, above=True)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"{owner}(kernel_size={kernel_size}): use an odd kernel, so the hidden "
                             "convolutions keep the step count and stay centred")
        if self.content_stride % self.stride:
            raise ValueError(f"{owner}(content_stride={content_stride}): content_stride must be a multiple of "
                             f"stride ({self.stride}), so each content step covers whole decoder steps")
        self.content_steps = -(-self.max_frames // self.content_stride)
        self.latent_dim = self.emotion_dim + self.speaker_dim + self.content_dim * self.content_steps
        self._build()

    def _build(self) -> None:
        """The layers (see the class notes)."""
        c, k, L = self.channels, self.kernel_size, self.n_layers
        self.content_encoder = _SequenceEncoder(self.n_mels, c, self.content_stride, k, L,
                                                instance_norm=self.content_instance_norm)
        self.content_out = nn.Conv1d(c, 2 * self.content_dim, 1)
        self.speaker_encoder = _SequenceEncoder(self.n_mels, c, self.stride, k, L, instance_norm=False)
        self.speaker_out = nn.Linear(2 * c, 2 * self.speaker_dim)
        self.emotion_encoder = _SequenceEncoder(self.n_mels, c, self.stride, k, L, instance_norm=False)
        self.emotion_out = nn.Linear(2 * c, 2 * self.emotion_dim)
        g = self.speaker_dim + self.emotion_dim
        self.dec_content = nn.Conv1d(self.content_dim, c, 1)
        self.dec_global = nn.Linear(g, c)
        self.dec_film = nn.Linear(g, 2 * c * L)  # scale and shift of every decoder block
        self.dec_blocks = nn.ModuleList(nn.Conv1d(c, c, k, padding=k // 2) for _ in range(L))
        self.dec_out = nn.Linear(c, self.stride * self.n_mels)  # each step writes its `stride` frames
        self.emotion_head = nn.Linear(self.emotion_dim, self.n_emotions)
        self.speaker_head = nn.Linear(self.emotion_dim, self.n_speakers)
        self.content_probe = nn.Conv1d(self.content_dim, c, 3, padding=1)
        self.content_emotion_head = nn.Linear(2 * c, self.n_emotions)
        self.content_speaker_head = nn.Linear(2 * c, self.n_speakers)
        self.speaker_emotion_head = nn.Linear(self.speaker_dim, self.n_emotions)

    # -- checks ---------------------------------------------------------------------------------------------
    def _lengths(self, cond: Any, n: int, n_frames: int | None) -> torch.Tensor:
        lengths = check_lengths(type(self).__name__, cond, n, n_frames)
        if n and int(lengths.max()) > self.max_frames:
            raise ValueError(f"a clip of {int(lengths.max())} frames is longer than max_frames={self.max_frames}; "
                             "build the model with a larger max_frames (or cut the clips)")
        return lengths

    # -- encoders -------------------------------------------------------------------------------------------
    def _normalised(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Time-major ``(x - db_offset) / db_scale`` (N, T', n_mels), 0 at padded frames, padded to whole content steps."""
        T = x.shape[2]
        real = length_mask(lengths, T).unsqueeze(1)
        xn = torch.where(real, (x - self.db_offset) / self.db_scale, 0.0)  # on x's own (contiguous) layout
        return F.pad(xn.transpose(1, 2), (0, 0, 0, -(-T // self.content_stride) * self.content_stride - T))

    def _posteriors(self, x: torch.Tensor, cond: Any) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]],
                                                                 torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, logvar)`` of each part, the lengths and the content mask (N, 1, steps).

        ``content`` (N, content_dim, ceil(T / content_stride)), zero at padded steps; ``speaker``, ``emotion`` (N, dim).
        """
        check_log_mels(x, self.n_mels)
        T = x.shape[2]
        lengths = self._lengths(cond, x.shape[0], T)
        xn = self._normalised(x, lengths)
        h, m = self.content_encoder(xn, lengths, T)
        mu_c, logvar_c = (self.content_out(h) * m).chunk(2, dim=1)
        parts = {"content": (mu_c, logvar_c)}
        for name, encoder, head, dim in (("speaker", self.speaker_encoder, self.speaker_out, self.speaker_dim),
                                         ("emotion", self.emotion_encoder, self.emotion_out, self.emotion_dim)):
            out = head(masked_mean_std(*encoder(xn, lengths, T)))
            parts[name] = (out[:, :dim], out[:, dim:])
        return parts, lengths, m

    def encode_parts(self, x: torch.Tensor, lengths: Any) -> dict[str, torch.Tensor]:
        """Posterior means of the three latents of padded ``x`` (N, n_mels, T) with ``lengths`` (N,).

        Returns
        -------
        dict
            ``content`` (N, content_dim, ceil(T / content_stride)), zero past each
            clip's ``ceil(length / content_stride)`` steps; ``speaker`` (N, speaker_dim);
            ``emotion`` (N, emotion_dim).
        """
        parts = self._posteriors(x, lengths)[0]
        return {name: mu for name, (mu, _) in parts.items()}

    def join_latent(self, content: torch.Tensor, speaker: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """The flat latent (N, latent_dim) of the parts; content (N, content_dim, steps <= content_steps) zero-padded."""
        n = content.shape[0]
        content = F.pad(content, (0, self.content_steps - content.shape[2]))
        return torch.cat([emotion, speaker, content.reshape(n, -1)], dim=1)

    def split_latent(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parts of flat latents ``z`` (N, latent_dim): content (N, content_dim, content_steps), speaker, emotion."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected flat latents (N, {self.latent_dim}) = [emotion | speaker | content], got "
                             f"{tuple(z.shape)}; decode separate parts with decode_parts")
        e, s = self.emotion_dim, self.emotion_dim + self.speaker_dim
        return {"content": z[:, s:].reshape(z.shape[0], self.content_dim, self.content_steps),
                "speaker": z[:, e:s], "emotion": z[:, :e]}

    def encode(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat posterior ``(mu, logvar)``, each (N, latent_dim) = [emotion | speaker | content] (module notes).

        ``cond``: the lengths (N,); only ``x[k, :, :cond[k]]`` is read.
        """
        parts = self._posteriors(x, cond)[0]
        return tuple(self.join_latent(parts["content"][i], parts["speaker"][i], parts["emotion"][i])
                     for i in (0, 1))

    # -- decoder --------------------------------------------------------------------------------------------
    def decode_parts(self, content: torch.Tensor, speaker: torch.Tensor, emotion: torch.Tensor, lengths: Any,
                     n_frames: int | None = None) -> torch.Tensor:
        """Log-mels (N, n_mels, T) from content (N, content_dim, steps), speaker (N, speaker_dim), emotion (N, emotion_dim).

        ``T`` is ``n_frames`` (default: the longest length); ``content`` needs at
        least ``ceil(T / content_stride)`` steps (more are ignored); frames at or
        past each clip's length are zero. Conversion: the content and speaker of
        :meth:`encode_parts` with another emotion vector.
        """
        lengths = self._lengths(lengths, content.shape[0], n_frames)
        T = int(lengths.max()) if n_frames is None else int(n_frames)
        if content.dim() != 3 or content.shape[1] != self.content_dim or (
                content.shape[2] * self.content_stride < T):
            raise ValueError(f"content must be (N, {self.content_dim}, >= {-(-T // self.content_stride)}) for "
                             f"{T} frames, got {tuple(content.shape)}")
        n_steps, m = step_mask(lengths, T, self.stride)
        c = content.repeat_interleave(self.content_stride // self.stride, dim=2)[:, :, :n_steps]
        g = torch.cat([speaker, emotion], dim=1)
        h = F.relu(self.dec_content(c) + self.dec_global(g).unsqueeze(2)) * m
        film = self.dec_film(g).reshape(g.shape[0], self.n_layers, 2, self.channels, 1)
        for i, conv in enumerate(self.dec_blocks):
            h = h + F.relu(conv(h) * (1 + film[:, i, 0]) + film[:, i, 1]) * m
        # db_offset + db_scale * dec_out(h), folded into the weights: (N, steps, stride * n_mels)
        y = F.linear(h.transpose(1, 2), self.dec_out.weight * self.db_scale,
                     self.dec_out.bias * self.db_scale + self.db_offset)
        y = y.reshape(g.shape[0], n_steps * self.stride, self.n_mels)[:, :T]
        # contiguous (N, n_mels, T): the masked loss on a transposed view is several times slower
        return torch.where(length_mask(lengths, T).unsqueeze(2), y, 0.0).transpose(1, 2).contiguous()

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None = None,
               n_frames: int | None = None) -> torch.Tensor:
        """Log-mels (N, n_mels, T) of flat latents ``z`` (N, latent_dim) at the lengths ``cond`` (N,)."""
        parts = self.split_latent(z)
        return self.decode_parts(parts["content"], parts["speaker"], parts["emotion"], cond, n_frames)

    # -- training ---------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Encode, draw each part, decode to the input's width, and run the heads.

        Returns
        -------
        dict
            ``recon`` (like ``x``, zero at padded frames); flat ``mu``, ``logvar``,
            ``z`` (N, latent_dim); ``lengths``; the content mask ``content_mask``
            (N, 1, steps); logits ``emotion_logits``, ``speaker_logits``
            (emotion latent), ``content_emotion_logits``, ``content_speaker_logits``,
            ``speaker_emotion_logits``.
        """
        parts, lengths, m = self._posteriors(x, cond)
        z = {name: self.reparameterize(mu, logvar) for name, (mu, logvar) in parts.items()}
        z["content"] = z["content"] * m  # padded steps: exactly 0, as their mu
        recon = self.decode_parts(z["content"], z["speaker"], z["emotion"], lengths, n_frames=x.shape[2])
        mu_c, mu_s, mu_e = parts["content"][0], parts["speaker"][0], parts["emotion"][0]
        pooled = masked_mean_std(F.relu(self.content_probe(grad_reverse(mu_c, self.content_adversary_weight))) * m, m)
        flat = {key: self.join_latent(parts["content"][i], parts["speaker"][i], parts["emotion"][i])
                for i, key in enumerate(("mu", "logvar"))}
        extra = self._conversion(z, lengths, x.shape[2]) if self.training and self.conversion_weight > 0 else {}
        return {"recon": recon, **flat, **extra, "z": self.join_latent(z["content"], z["speaker"], z["emotion"]),
                "lengths": lengths, "content_mask": m,
                "emotion_logits": self.emotion_head(mu_e),
                "speaker_logits": self.speaker_head(grad_reverse(mu_e, self.adversary_weight)),
                "content_emotion_logits": self.content_emotion_head(pooled),
                "content_speaker_logits": self.content_speaker_head(pooled),
                "speaker_emotion_logits": self.speaker_emotion_head(grad_reverse(mu_s, self.speaker_adversary_weight))}

    def _conversion(self, z: dict[str, torch.Tensor], lengths: torch.Tensor, n_frames: int) -> dict[str, torch.Tensor]:
        """Each clip decoded with another clip's emotion draw, and the emotion logits the model reads from it."""
        perm = torch.randperm(lengths.shape[0], device=lengths.device)
        converted = self.decode_parts(z["content"], z["speaker"], z["emotion"][perm].detach(), lengths, n_frames)
        xn = self._normalised(converted, lengths)
        mu_e = self.emotion_out(masked_mean_std(*self.emotion_encoder(xn, lengths, n_frames)))[:, : self.emotion_dim]
        return {"conversion_logits": self.emotion_head(mu_e), "conversion_source": perm}

    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor],
                      labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Masked reconstruction, the three weighted KL terms and the heads' cross-entropies (class notes).

        Returns
        -------
        dict
            ``loss``, ``reconstruction``, ``kl`` (unweighted sum), ``kl_content``,
            ``kl_speaker``, ``kl_emotion``, ``emotion_ce``, ``emotion_acc``,
            ``speaker_ce``, ``speaker_acc``, ``content_emotion_ce``,
            ``content_emotion_acc``, ``content_speaker_ce``, ``content_speaker_acc``,
            ``speaker_emotion_ce``, ``speaker_emotion_acc`` and, with a conversion loss in training,
            ``conversion_ce``, ``conversion_acc``: scalar tensors.
        """
        if "lengths" not in out:
            raise ValueError("out must come from FactorisedSequenceVAE.forward(x, lengths): it lacks 'lengths'")
        rec = masked_mse(out["recon"], x, length_mask(out["lengths"], x.shape[2]).unsqueeze(1))
        kl_dims = gaussian_kl(out["mu"], out["logvar"])  # padded content steps: mu = logvar = 0, KL exactly 0
        e, s = self.emotion_dim, self.emotion_dim + self.speaker_dim
        kls = {"kl_emotion": kl_dims[:, :e].sum(1).mean(), "kl_speaker": kl_dims[:, e:s].sum(1).mean(),
               "kl_content": kl_dims[:, s:].sum(1).mean()}
        labels = check_labels(labels, x.shape[0], self.n_emotions, self.n_speakers, x.device)
        terms: dict[str, torch.Tensor] = {}
        for name, column in (("emotion", 0), ("speaker", 1), ("content_emotion", 0), ("content_speaker", 1),
                             ("speaker_emotion", 0)):
            terms[f"{name}_ce"], terms[f"{name}_acc"] = masked_cross_entropy(out[f"{name}_logits"],
                                                                              labels[:, column])
        if "conversion_logits" in out:
            terms["conversion_ce"], terms["conversion_acc"] = masked_cross_entropy(
                out["conversion_logits"], labels[out["conversion_source"], 0])
        loss = (rec + self.content_beta * kls["kl_content"] + self.speaker_beta * kls["kl_speaker"]
                + self.emotion_beta * kls["kl_emotion"] + self.classifier_weight * terms["emotion_ce"]
                + terms["speaker_ce"] + terms["content_emotion_ce"] + terms["content_speaker_ce"]
                + terms["speaker_emotion_ce"] + self.conversion_weight * terms.get("conversion_ce", 0.0))
        return {"loss": loss, "reconstruction": rec, "kl": kls["kl_content"] + kls["kl_speaker"] + kls["kl_emotion"],
                **kls, **terms}

    # -- what the rest of the package reads -------------------------------------------------------------------
    def representation(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The emotion latent's mean (N, emotion_dim): the first ``emotion_dim`` dimensions of the flat ``mu``."""
        return self.encode(x, cond)[0][:, : self.emotion_dim]

    @property
    def representation_dim(self) -> int:
        """:attr:`emotion_dim`."""
        return self.emotion_dim

    @property
    def emotion_dims(self) -> int:
        """:attr:`emotion_dim`: the emotion latent leads the flat latent (:attr:`Model.emotion_dims`)."""
        return self.emotion_dim

    @torch.no_grad()
    def sample(self, n: int, cond: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` flat latents drawn from N(0, I) at the lengths ``cond`` (n,); (n, n_mels, max(cond))."""
        self._lengths(cond, n, None)
        return super().sample(n, cond=cond, generator=generator)
