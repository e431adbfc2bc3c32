"""Figures of the report, drawn with matplotlib and seaborn.

Every function draws and returns a :class:`matplotlib.figure.Figure` (or
draws into a given axis); :func:`save_figure` writes it under the report's
name. Nothing here calls ``plt.show``: notebooks display the returned figure.

One module per topic, every public name importable from here
(``from emovae_utils import plotting; plotting.plot_loss_bands(...)``):

* :mod:`~emovae_utils.plotting.common`: :func:`save_figure`, :data:`EMOTION_COLORS`.
* :mod:`~emovae_utils.plotting.audio`: the clips, :func:`plot_log_mel`,
  :func:`plot_log_mel_grid`, :func:`plot_vad`, :func:`plot_voiced_lengths`,
  :func:`plot_dataset_summary`, :func:`plot_reconstructions`, :func:`plot_latent_traversal`.
* :mod:`~emovae_utils.plotting.losses`: training curves, :func:`plot_losses`, :func:`plot_loss_bands`,
  :func:`flat_marks`.
* :mod:`~emovae_utils.plotting.latents`: the latent space,
  :func:`plot_mu_sigma_by_emotion`, :func:`plot_mu_sigma_by_dimension`,
  :func:`plot_mi_heatmaps`, :func:`plot_embedding_grid`, :func:`plot_count_sensitivity`.
* :mod:`~emovae_utils.plotting.probes`: the probes, :func:`plot_confusion_matrices`,
  :func:`plot_probe_summary`, :func:`plot_emotion_vs_speaker`.
"""

from . import audio, common, latents, losses, probes
from .audio import *  # noqa: F403 - each module's __all__ is re-exported
from .common import *  # noqa: F403
from .latents import *  # noqa: F403
from .losses import *  # noqa: F403
from .probes import *  # noqa: F403

__all__ = [
    *common.__all__,
    *audio.__all__,
    *losses.__all__,
    *latents.__all__,
    *probes.__all__,
]
