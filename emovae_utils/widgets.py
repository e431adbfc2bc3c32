"""The latent explorer's public names, kept here for notebooks and older code.

The explorer lives in :mod:`emovae_utils.explorer` (state, rendering, render
worker, blend pad, view); :func:`~emovae_utils.data.clip_label` in
:mod:`emovae_utils.data`, :func:`~emovae_utils.metrics.latents.dimension_usage`
in :mod:`emovae_utils.metrics.latents`. One call shows it::

    from emovae_utils.widgets import latent_explorer
    latent_explorer(model, X=X, index=index)      # X, index from data.load_features
"""
from __future__ import annotations

from .data import clip_label
from .explorer import *  # noqa: F403 - the explorer's public names, re-exported
from .explorer import __all__ as _EXPLORER_NAMES
from .metrics.latents import dimension_usage
from .models.sequence_vae import SequenceVAE

#: Conditions of a ``sequence_vae``: output lengths in frames (:attr:`SequenceVAE.explorer_lengths`).
SEQUENCE_LENGTHS = SequenceVAE.explorer_lengths

__all__ = [*_EXPLORER_NAMES, "dimension_usage", "clip_label", "SEQUENCE_LENGTHS"]
