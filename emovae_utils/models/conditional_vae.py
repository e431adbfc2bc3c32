"""Speaker-conditioned VAE: the decoder (optionally the encoder) is told who speaks.

The question "which VAE learns emotion apart from speaker" asks the latent to
hold what varies within a speaker. A conditional VAE (Sohn, Lee & Yan 2015)
gives the decoder a description of the speaker, so the latent need not spend
capacity on it. The study's folds are speaker-independent: the test speakers
are never seen in training, so the condition must be formable for a new
speaker without any label. Two such codes are provided:

* :func:`~emovae_utils.conditions.speaker_codes` (re-exported here): the speaker's mean log-mel spectrum, averaged over
  time and over all of that speaker's clips (a long-term average spectrum, a
  classic speaker descriptor). It needs only the speaker's own audio and the
  knowledge of which clips are theirs, never an emotion label, so it is formed
  for an unseen test speaker from their own (unlabeled) test clips. In RAVDESS
  every actor reads the same design (the same 8 emotions x intensities x
  statements x repetitions, 60 clips each), so the average is over the same
  emotion mix for every speaker and carries (up to recording noise) no
  emotion information of a particular clip.
* :func:`~emovae_utils.conditions.clip_codes`: the clip's own time-averaged spectrum. Needs nothing but
  the clip, but it also carries that clip's emotion-related level and tilt
  (anger is loud, sadness soft), so the decoder can read part of the emotion
  from the condition instead of the latent.

:class:`SpeakerConditionedVAE` subclasses :class:`EmotionVAE` and keeps all its
layers (they stay the authors'); the condition enters through one added
``Linear`` per conditioned network (see the class notes).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..conditions import clip_codes, speaker_codes
from .base import check_bool, check_int
from .emotion_vae import EmotionVAE
from .registry import register

__all__ = ["SpeakerConditionedVAE", "speaker_codes", "clip_codes"]


@register("speaker_vae")
class SpeakerConditionedVAE(EmotionVAE):
    """:class:`EmotionVAE` whose decoder (and optionally encoder) gets a speaker code.

    Parameters
    ----------
    cond_dim : int, default 80
        Size of the condition: one value per mel band for :func:`speaker_codes`
        or :func:`clip_codes` (in dB, like the input).
    condition_encoder : bool, default False
        Also give the condition to the encoder (a full conditional VAE,
        q(z | x, c)); otherwise only the decoder sees it, p(x | z, c).
    latent_dim, n_mels : int
        As :class:`EmotionVAE`.

    Notes
    -----
    Injection is additive, on the first feature map of each network:

    * decoder: ``h = fc_dec(z) + cond_dec(c)``, reshaped to (N, 256, 1) and
      passed to the authors' decoder stack. This equals concatenating ``c``
      to ``z`` and widening ``fc_dec`` to ``latent_dim + cond_dim`` inputs
      (the weight splits into the two blocks), but leaves ``fc_dec`` itself
      the authors' layer.
    * encoder (``condition_encoder=True``): ``(mu, logvar) = fc_enc(encoder(x)
      + cond_enc(c))``, on the 256 features before the authors' ``fc_enc``.

    ``cond_dec`` and ``cond_enc`` are ``nn.Linear(cond_dim, 256)``
    initialised to zero (weight and bias), created after the
    :class:`EmotionVAE` layers: every layer of :class:`EmotionVAE` is
    unchanged, and under the same seed the untrained model computes exactly
    the untrained :class:`EmotionVAE`'s function, so the two start from the
    same point; the condition's pathway is learned (its gradient
    ``dL/dh * c`` is non-zero from the first step). Zero, not PyTorch's default
    initialisation, because the codes are raw dB (about -40): a default
    ``Linear`` then adds terms of size ~20 to the 256 encoder features and
    ``exp(logvar)`` overflows on the first step; with zeros training is as
    stable as the study's model. The loss is the study's (reconstruction MSE + KL). ``cond`` is
    required wherever it is used (``decode``, ``forward``, ``sample``, and
    ``encode`` when ``condition_encoder``): shape (N, cond_dim), or
    (cond_dim,) / (1, cond_dim) for the same code on every row.

    Examples
    --------
    >>> model = SpeakerConditionedVAE(latent_dim=8)
    >>> x = torch.zeros(2, 80, 128)
    >>> cond = torch.full((2, 80), -40.0)
    >>> out = model(x, cond)
    >>> out["recon"].shape
    torch.Size([2, 80, 128])
    >>> model.sample(3, cond[0]).shape
    torch.Size([3, 80, 128])
    >>> sorted(model.loss_function(x, out))
    ['kl', 'loss', 'reconstruction']
    """

    condition = "speaker_code"

    def __init__(self, latent_dim: int = 8, n_mels: int = 80, cond_dim: int = 80,
                 condition_encoder: bool = False) -> None:
        super().__init__(latent_dim=latent_dim, n_mels=n_mels)
        self.cond_dim = check_int(type(self).__name__, "cond_dim", cond_dim)
        self.condition_encoder = check_bool(type(self).__name__, "condition_encoder", condition_encoder)
        self.cond_dec = nn.Linear(self.cond_dim, self.fc_dec.out_features)
        added = [self.cond_dec]
        if self.condition_encoder:
            self.cond_enc = nn.Linear(self.cond_dim, self.fc_enc.in_features)
            added.append(self.cond_enc)
        for lin in added:  # start as EmotionVAE; see the class notes
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _cond(self, cond: torch.Tensor | None, n: int, where: str) -> torch.Tensor:
        if cond is None:
            raise ValueError(
                f"{type(self).__name__}.{where} needs cond, a speaker code of shape (N, {self.cond_dim}) "
                "(emovae_utils.conditions.speaker_codes or clip_codes)"
            )
        p = self.fc_dec.weight
        cond = torch.as_tensor(cond).to(device=p.device, dtype=p.dtype)
        if cond.dim() == 1:
            cond = cond.unsqueeze(0)
        if cond.dim() != 2 or cond.shape[1] != self.cond_dim or cond.shape[0] not in (1, n):
            raise ValueError(f"cond must be ({n}, {self.cond_dim}) or ({self.cond_dim},), got {tuple(cond.shape)}")
        return cond.expand(n, -1)

    def encode(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x`` (N, n_mels, 128) (and ``cond`` if ``condition_encoder``) to ``(mu, logvar)``."""
        self._check_input(x)
        h = self.encoder(x)
        if self.condition_encoder:
            h = h + self.cond_enc(self._cond(cond, x.shape[0], "encode"))
        h = self.fc_enc(h)
        return h[:, : self.latent_dim], h[:, self.latent_dim:]

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Map latents (N, latent_dim) and speaker codes ``cond`` to spectrograms (N, n_mels, 128)."""
        h = self.fc_dec(z) + self.cond_dec(self._cond(cond, z.shape[0], "decode"))
        return self.decoder(h.unsqueeze(-1))

    @torch.no_grad()
    def sample(self, n: int, cond: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` prior latents with speaker code(s) ``cond`` ((n, cond_dim) or (cond_dim,); required)."""
        self._cond(cond, n, "sample")
        return super().sample(n, cond, generator=generator)

    def explorer_defaults(self, X: Any = None, index: Any = None) -> dict[str, Any]:
        """A speaker picker for the latent explorer: one speaker code per actor of ``index``.

        ``conditions`` = one code per actor (:func:`speaker_codes`, the codes the trials train and
        are scored with: ``conditions.make_condition("speaker_code", X, index)``), labelled ``"Actor 01"``..., in actor
        order; ``cond`` = each clip's code (for encoding ``X``).
        """
        if X is None or index is None or "actor" not in getattr(index, "columns", []):
            raise ValueError(f"{type(self).__name__} is conditioned on the speaker: explorer_for needs X and an "
                             "index with an 'actor' column to form the speaker codes (or pass conditions=)")
        from ..data import clip_label

        actors = np.asarray(index["actor"])
        codes = speaker_codes(np.asarray(X), actors)
        keys = list(dict.fromkeys(actors.tolist()))
        try:
            keys = sorted(keys)
        except TypeError:
            pass
        conditions = {clip_label({"actor": a}): codes[int(np.flatnonzero(actors == a)[0])] for a in keys}
        return {"conditions": conditions, "cond": codes}
