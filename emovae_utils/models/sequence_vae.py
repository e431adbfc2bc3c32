"""A sequence VAE on whole, variable-length log-mels, with no padding seen (the report's future work).

The study's :class:`~emovae_utils.models.EmotionVAE` sees fixed 80 x 128
windows: :func:`~emovae_utils.dsp.fix_frames` centre-crops longer clips and
repeats the last frame of shorter ones, so part of every long clip is lost
and short ones carry an invented tail. The report proposed, as future work, a
model of the whole voiced utterance. :class:`SequenceVAE` is that model: it
reads the (N, 80, T_max) right-padded output of
:func:`emovae_utils.data.load_sequences` together with each clip's true
length, and describes a clip of any length by one latent vector.

How the padding is never seen
-----------------------------
The lengths are the condition, ``cond`` (an integer tensor (N,) of frames per
clip). With the mask ``m[k, t] = t < lengths[k]``:

* the encoder multiplies its input by ``m`` before the first layer, and every
  hidden sequence by the mask at its own rate after each layer, so a padded
  position holds exactly zero, which is what a convolution's own zero
  padding holds; the posterior is then pooled (mean and standard deviation)
  over the true frames only. ``mu`` and ``logvar`` do not depend on the
  padded values, nor on how much padding there is;
* the decoder is told each frame's absolute and relative position
  (``t`` and ``t / length``) and writes zeros into the padded positions of
  its output;
* the reconstruction term of the loss is the mean squared error over the
  real (unpadded) elements only.

Speed: a stride-``stride`` (4) non-overlapping "patch" layer takes the 80
mel bands down to ``channels`` channels at a quarter of the frame rate, where
all the other layers run; one per-step linear layer returns to the frame
rate. On RAVDESS (T_max 246) an epoch of 580 clips (batch 64, one CPU
thread) costs about 0.3 s of CPU, see ``SequenceVAE``'s Notes.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .base import BaseVAE, check_float, check_int
from .losses import elbo_terms, masked_mse
from .registry import register

__all__ = ["SequenceVAE", "length_mask", "position_features", "check_lengths", "check_log_mels", "step_mask",
           "masked_mean_std"]

#: Number of rows of :func:`position_features`.
N_POSITION_FEATURES = 11


def length_mask(lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Boolean mask of the true frames: ``mask[k, t] = t < lengths[k]``.

    Parameters
    ----------
    lengths : torch.Tensor, int, (N,)
    n_frames : int
        Width of the padded array.

    Returns
    -------
    torch.Tensor, bool, (N, n_frames)

    Examples
    --------
    >>> length_mask(torch.tensor([1, 3]), 4).int().tolist()
    [[1, 0, 0, 0], [1, 1, 1, 0]]
    """
    return torch.arange(n_frames, device=lengths.device)[None, :] < lengths[:, None]


def position_features(lengths: torch.Tensor, n_steps: int, stride: int = 1) -> torch.Tensor:
    """Where each step lies in its clip: sinusoids of the relative and the absolute frame position.

    Step ``j`` stands for frames ``j * stride .. (j + 1) * stride - 1``; its
    position is their centre ``t = j * stride + (stride - 1) / 2`` and its
    relative position ``r = t / length``.

    Parameters
    ----------
    lengths : torch.Tensor, int, (N,)
        True length of each clip, in frames.
    n_steps : int
        Number of steps to describe.
    stride : int, default 1
        Frames per step.

    Returns
    -------
    torch.Tensor, float32, (N, 11, n_steps)
        ``r``, ``sin(k pi r)``, ``cos(k pi r)`` for k = 1, 2, 4, and
        ``sin(2 pi t / P)``, ``cos(2 pi t / P)`` for periods P = 16 and 64 frames.

    Examples
    --------
    >>> f = position_features(torch.tensor([8]), n_steps=2, stride=4)
    >>> f.shape, f[0, 0].tolist()  # r of the centres 1.5 and 5.5 of an 8-frame clip
    (torch.Size([1, 11, 2]), [0.1875, 0.6875])
    """
    t = torch.arange(n_steps, device=lengths.device, dtype=torch.float32) * stride + (stride - 1) / 2
    r = t[None, :] / lengths.to(torch.float32)[:, None]  # (N, n_steps)
    feats = [r]
    for k in (1, 2, 4):
        feats += [torch.sin(k * math.pi * r), torch.cos(k * math.pi * r)]
    for period in (16.0, 64.0):
        a = (2 * math.pi / period) * t
        feats += [torch.sin(a).expand_as(r), torch.cos(a).expand_as(r)]
    return torch.stack(feats, dim=1)


def check_lengths(owner: str, cond: Any, n: int, n_frames: int | None) -> torch.Tensor:
    """``cond`` as the lengths (N,) of ``n`` clips, int64, or a ValueError saying what to pass.

    The one check of the ``"lengths"`` condition (every model that declares it).

    Parameters
    ----------
    owner : str
        The model's class name, for the message.
    cond : tensor or array or None
        True frames per clip.
    n : int
        Number of clips.
    n_frames : int or None
        Width of the padded input (no length may exceed it); None: unchecked.

    Returns
    -------
    torch.Tensor, int64, (n,)

    Examples
    --------
    >>> check_lengths("SequenceVAE", torch.tensor([3, 5], dtype=torch.int32), 2, 5).dtype
    torch.int64
    """
    if cond is None:
        raise ValueError(
            f"{owner} needs each clip's length: pass cond=lengths, an integer tensor (N,) of true "
            "frames per clip (index.n_frames of emovae_utils.data.load_sequences), e.g. "
            "model(x, lengths), model.decode(z, lengths), fit(model, X, cond=lengths, ...)"
        )
    lengths = torch.as_tensor(cond)
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise ValueError(f"cond must hold integer frame counts (a LongTensor), not {lengths.dtype}; "
                         "pass index.n_frames.to_numpy() from emovae_utils.data.load_sequences")
    if lengths.dim() != 1 or lengths.shape[0] != n:
        raise ValueError(f"cond must be the lengths, shape ({n},): one per clip, got shape {tuple(lengths.shape)}")
    if n and int(lengths.min()) < 1:
        raise ValueError(f"every length must be >= 1 frame, got {int(lengths.min())}")
    if n_frames is not None and n and int(lengths.max()) > n_frames:
        raise ValueError(f"a length of {int(lengths.max())} frames exceeds the input's {n_frames} frames; "
                         "the lengths must count the real frames of each padded clip")
    return lengths.to(torch.long)


def check_log_mels(x: torch.Tensor, n_mels: int) -> None:
    """A ValueError unless ``x`` is (N, n_mels, T): right-padded log-mels of :func:`~emovae_utils.data.load_sequences`."""
    if x.dim() != 3 or x.shape[1] != n_mels:
        raise ValueError(
            f"expected input (N, {n_mels}, T) right-padded log-mel spectrograms, got {tuple(x.shape)}; "
            "make them with emovae_utils.data.load_sequences"
        )


def step_mask(lengths: torch.Tensor, n_frames: int, stride: int) -> tuple[int, torch.Tensor]:
    """Steps of ``stride`` frames covering ``n_frames``, and the (N, 1, steps) float mask of the real ones.

    Step ``j`` is real when ``j < ceil(length / stride)`` (it holds at least one real frame).

    Examples
    --------
    >>> n_steps, m = step_mask(torch.tensor([5, 9]), 10, 4)
    >>> n_steps, m[:, 0].tolist()
    (3, [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    """
    n_steps = -(-n_frames // stride)
    real = torch.div(lengths + stride - 1, stride, rounding_mode="floor")
    return n_steps, length_mask(real, n_steps).unsqueeze(1).to(torch.float32)


def masked_mean_std(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over the real steps: (N, C, steps) and mask (N, 1, steps) -> (N, 2 C).

    ``h`` must be zero at the masked steps.

    Examples
    --------
    >>> h = torch.tensor([[[1.0, 3.0, 0.0]]])
    >>> [round(v, 4) for v in masked_mean_std(h, torch.tensor([[[1.0, 1.0, 0.0]]]))[0].tolist()]
    [2.0, 1.0]
    """
    count = m.sum(dim=2)  # (N, 1) real steps
    mean = h.sum(dim=2) / count
    var = (h * h).sum(dim=2) / count - mean * mean
    std = torch.sqrt(var.clamp_min(0) + 1e-6)
    return torch.cat([mean, std], dim=1)


@register("sequence_vae")
class SequenceVAE(BaseVAE):
    """VAE of whole variable-length log-mels; ``cond`` = the clips' lengths in frames.

    Parameters
    ----------
    latent_dim : int, default 8
        Size of the latent space.
    n_mels : int, default 80
        Mel bands (= input channels).
    channels : int, default 32
        Width of the hidden sequences.
    stride : int, default 4
        Frames per step of the hidden sequences (patch size of the first
        convolution and of the last, transposed, one).
    kernel_size : int, default 5
        Kernel of the hidden convolutions (odd; in steps of ``stride`` frames).
    n_layers : int, default 2
        Residual convolutions in the encoder, and again in the decoder.
    beta : float, default 1.0
        KL weight; ``beta=1`` is the study's loss.
    db_offset, db_scale : float, default -25.0 and 20.0
        The network works on ``(x - db_offset) / db_scale`` and outputs
        ``db_offset + db_scale * y`` (RAVDESS's voiced log-mels have mean -25
        dB, standard deviation 17.5 dB), so it starts near the data's level
        instead of spending thousands of Adam steps reaching it. Fixed, not learnt.

    Notes
    -----
    Encoder: mask the input; Linear(stride * n_mels, channels) + ReLU on
    patches of ``stride`` frames (a Conv1d with kernel = stride = ``stride``;
    step ``j`` is real when ``j < ceil(length / stride)``); ``n_layers`` residual blocks ``h + ReLU(Conv1d(h))``
    (``kernel_size``, same padding), masked after each; mean and standard
    deviation over the real steps -> Linear(2 * channels, 2 * latent_dim)
    (first half mu, second half log-variance).

    Decoder: ``ReLU(Linear(z) + Conv1d_1x1(position_features))`` at each
    step, the same residual blocks, then Linear(channels, stride * n_mels),
    each step writing its ``stride`` frames (a ConvTranspose1d with kernel =
    stride = ``stride``); cropped to the requested frames and zero at the padded ones.

    With the defaults the model has 43,152 parameters. Measured on a
    shared 2-core Xeon with one torch thread, :func:`emovae_utils.train.fit` on
    580 RAVDESS clips (T_max 246, batch 64, 10 steps) costs about 0.34 s of
    thread CPU per epoch, against 0.23 s for
    :class:`~emovae_utils.models.EmotionVAE` on the same clips' 128-frame
    windows: nearly twice the frames (half of them padding, which the
    elementwise masking passes still touch).

    Examples
    --------
    >>> import torch
    >>> from emovae_utils.models.sequence_vae import SequenceVAE
    >>> model = SequenceVAE(latent_dim=8)
    >>> x, lengths = torch.zeros(2, 80, 246), torch.tensor([246, 85])
    >>> out = model(x, lengths)
    >>> out["recon"].shape, out["mu"].shape
    (torch.Size([2, 80, 246]), torch.Size([2, 8]))
    >>> bool((out["recon"][1, :, 85:] == 0).all())  # padded frames of the output are zero
    True
    >>> sorted(model.loss_function(x, out))
    ['kl', 'loss', 'reconstruction']
    >>> model.sample(3, cond=torch.tensor([100, 120, 90])).shape  # as long as the longest
    torch.Size([3, 80, 120])
    """

    condition = "lengths"

    def __init__(self, latent_dim: int = 8, n_mels: int = 80, channels: int = 32, stride: int = 4,
                 kernel_size: int = 5, n_layers: int = 2, beta: float = 1.0,
                 db_offset: float = -25.0, db_scale: float = 20.0) -> None:
        super().__init__()
        owner = type(self).__name__
        self.latent_dim = check_int(owner, "latent_dim", latent_dim)
        self.n_mels = check_int(owner, "n_mels", n_mels)
        self.channels = check_int(owner, "channels", channels)
        self.stride = check_int(owner, "stride", stride)
        self.kernel_size = check_int(owner, "kernel_size", kernel_size)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"SequenceVAE(kernel_size={kernel_size}): use an odd kernel, so the "
                             "hidden convolutions keep the step count and stay centred")
        self.n_layers = check_int(owner, "n_layers", n_layers, low=0)
        self.beta = check_float(owner, "beta", beta)
        self.db_offset = check_float(owner, "db_offset", db_offset, low=None)
        self.db_scale = check_float(owner, "db_scale", db_scale, above=True)  # dB

        c, s, k = self.channels, self.stride, self.kernel_size
        self.enc_in = nn.Linear(s * self.n_mels, c)  # one patch of s frames (time-major) -> one step
        self.enc_blocks = nn.ModuleList(nn.Conv1d(c, c, k, padding=k // 2) for _ in range(self.n_layers))
        self.fc_enc = nn.Linear(2 * c, 2 * self.latent_dim)

        self.fc_dec = nn.Linear(self.latent_dim, c)
        self.dec_pos = nn.Conv1d(N_POSITION_FEATURES, c, 1)
        self.dec_blocks = nn.ModuleList(nn.Conv1d(c, c, k, padding=k // 2) for _ in range(self.n_layers))
        self.dec_out = nn.Linear(c, s * self.n_mels)  # each step writes its s frames

    # -- checks -------------------------------------------------------------------------------------------
    def _lengths(self, cond: Any, n: int, n_frames: int | None) -> torch.Tensor:
        return check_lengths(type(self).__name__, cond, n, n_frames)

    def _check_input(self, x: torch.Tensor) -> None:
        check_log_mels(x, self.n_mels)

    # -- the network ----------------------------------------------------------------------------------------
    def _steps(self, lengths: torch.Tensor, n_frames: int) -> tuple[int, torch.Tensor]:
        """Hidden steps for ``n_frames`` frames, and the (N, 1, steps) float mask of the real ones."""
        return step_mask(lengths, n_frames, self.stride)

    def _blocks(self, h: torch.Tensor, blocks: nn.ModuleList, m: torch.Tensor) -> torch.Tensor:
        for conv in blocks:
            h = h + F.relu(conv(h)) * m
        return h

    def encode(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Map padded ``x`` (N, n_mels, T) and lengths ``cond`` (N,) to ``(mu, logvar)``, each (N, latent_dim).

        Only ``x[k, :, :cond[k]]`` is read.
        """
        self._check_input(x)
        lengths = self._lengths(cond, x.shape[0], x.shape[2])
        T = x.shape[2]
        n_steps, m = self._steps(lengths, T)
        n, s = x.shape[0], self.stride
        # Time-major (N, T, n_mels) copy in which every padded frame holds db_offset (where(), not a
        # product: any padding, even inf or NaN, is replaced), i.e. exactly 0 after the normalisation.
        h = torch.where(length_mask(lengths, T).unsqueeze(2), x.transpose(1, 2), self.db_offset)
        if n_steps * s != T:
            h = F.pad(h, (0, 0, 0, n_steps * s - T), value=self.db_offset)
        # enc_in((h - db_offset) / db_scale), the normalisation folded into the weights (one pass less)
        w = self.enc_in.weight / self.db_scale
        h = F.linear(h.reshape(n, n_steps, s * self.n_mels), w, self.enc_in.bias - self.db_offset * w.sum(dim=1))
        h = F.relu(h).transpose(1, 2) * m  # (N, channels, steps)
        h = self._blocks(h, self.enc_blocks, m)
        out = self.fc_enc(masked_mean_std(h, m))
        return out[:, : self.latent_dim], out[:, self.latent_dim:]

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None = None,
               n_frames: int | None = None) -> torch.Tensor:
        """Map latents (N, latent_dim) and lengths ``cond`` (N,) to spectrograms (N, n_mels, T).

        ``T`` is ``n_frames`` (default: the longest length); frames at or past
        each clip's length are zero.
        """
        lengths = self._lengths(cond, z.shape[0], n_frames)
        T = int(lengths.max()) if n_frames is None else int(n_frames)
        n_steps, m = self._steps(lengths, T)
        pos = position_features(lengths, n_steps, self.stride).to(z.dtype)
        h = F.relu(self.fc_dec(z).unsqueeze(2) + self.dec_pos(pos)) * m
        h = self._blocks(h, self.dec_blocks, m)
        # db_offset + db_scale * dec_out(h), folded into the weights; (N, steps, s * n_mels) -> (N, n_mels, T)
        y = F.linear(h.transpose(1, 2), self.dec_out.weight * self.db_scale,
                     self.dec_out.bias * self.db_scale + self.db_offset)
        y = y.reshape(z.shape[0], n_steps * self.stride, self.n_mels)[:, :T]
        return (y * length_mask(lengths, T).unsqueeze(2)).transpose(1, 2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Encode, draw ``z``, decode to the input's width.

        Returns
        -------
        dict
            ``recon`` (like ``x``, zero at padded frames), ``mu``, ``logvar``,
            ``z`` (each (N, latent_dim)) and ``lengths`` (N,), which
            :meth:`loss_function` uses to mask the padding.
        """
        mu, logvar = self.encode(x, cond)
        z = self.reparameterize(mu, logvar)
        lengths = self._lengths(cond, x.shape[0], x.shape[2])
        return {"recon": self.decode(z, lengths, n_frames=x.shape[2]), "mu": mu, "logvar": logvar, "z": z,
                "lengths": lengths}

    def loss_function(self, x: torch.Tensor, out: dict[str, torch.Tensor],
                      labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The study's loss on the real frames: masked element-mean squared error + ``beta`` * KL.

        The reconstruction term is the mean of ``(recon - x) ** 2`` over the
        ``n_mels * sum(lengths)`` real elements; the KL is summed over latent
        dimensions and averaged over clips.

        Returns
        -------
        dict
            ``loss`` = ``reconstruction`` + ``beta`` * ``kl``, each a scalar tensor.
        """
        if "lengths" not in out:
            raise ValueError("out must come from SequenceVAE.forward(x, lengths): it lacks 'lengths'")
        rec = masked_mse(out["recon"], x, length_mask(out["lengths"], x.shape[2]).unsqueeze(1))
        return elbo_terms(rec, out["mu"], out["logvar"], beta=self.beta)

    @torch.no_grad()
    def sample(self, n: int, cond: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` latents drawn from N(0, I) at the lengths ``cond`` (N,); (n, n_mels, max(cond))."""
        self._lengths(cond, n, None)
        return super().sample(n, cond=cond, generator=generator)

    #: The latent explorer's length picker: output lengths in frames (16 kHz, hop 256: 62.5 frames per second).
    explorer_lengths = {"1.0 s": 63, "2.05 s": 128, "3.0 s": 188}

    def explorer_defaults(self, X: Any = None, index: Any = None) -> dict[str, Any]:
        """A length picker for the latent explorer: ``conditions`` = :attr:`explorer_lengths`.

        ``cond`` = each clip's length (``index["n_frames"]``, at most the width of ``X``, else that width).
        """
        import numpy as np

        out: dict[str, Any] = {"conditions": dict(self.explorer_lengths)}
        if X is not None:
            if index is not None and "n_frames" in getattr(index, "columns", []):
                from ..conditions import make_condition

                out["cond"] = make_condition("lengths", np.asarray(X), index)  # n_frames, capped at X's width
            else:
                out["cond"] = np.full(len(X), np.shape(X)[-1], np.int64)
        return out
