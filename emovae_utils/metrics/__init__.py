"""How much emotion and how much speaker a representation holds.

Three families of numbers, all deterministic, one module each:

* :mod:`~emovae_utils.metrics.information`: **information per latent
  dimension**, mutual information in nats between each code dimension and
  each discrete factor (:func:`latent_factor_mi`, :func:`normalised_mi`,
  :func:`mig`, :func:`mi_permutation_null`, :func:`informative_dims`,
  :func:`factor_separation`).
* :mod:`~emovae_utils.metrics.probes`: **linear probes**, cross-validated with
  scikit-learn over the actor folds of :data:`ACTOR_FOLDS` (emotion, gender) or
  the repetitions (speaker identity): :func:`probe_uar`,
  :func:`speaker_id_accuracy`, :func:`probe_representation`, :func:`actor_uar`
  (each held-out actor's UAR); per-fold features as pipeline steps fitted on
  the training actors only (:func:`pca_transform`, :class:`EncoderFoldTransform`).
* :mod:`~emovae_utils.metrics.baselines`: **baseline representations** of the
  same clips (:func:`pooled_log_mel`, :func:`pca_features`,
  :func:`egemaps_functionals`, :func:`egemaps_cached`).

Plus :mod:`~emovae_utils.convergence` (:func:`flat_epoch`, when a
training curve stops improving), :mod:`~emovae_utils.metrics.intervals` (intervals over
few seeds), :mod:`~emovae_utils.metrics.verdicts` and :mod:`~emovae_utils.metrics.controls`
(the decision rules and their controls), :mod:`~emovae_utils.metrics.tables` (:func:`summary_row`,
:func:`results_table`, :func:`probe_summary`: the probes' table over seeds and actors) and :mod:`~emovae_utils.metrics.embedding`
(:func:`tsne_embedding`). Every public name is importable from here:
``from emovae_utils import metrics; metrics.probe_uar(...)``.
"""

from ..data import ACTOR_FOLDS
from .. import convergence
from . import baselines, embedding, information, probes, tables
from .baselines import *  # noqa: F403 - each module's __all__ is re-exported
from ..convergence import *  # noqa: F403
from .embedding import *  # noqa: F403
from .information import *  # noqa: F403
from .probes import *  # noqa: F403
from .tables import *  # noqa: F403

__all__ = [
    "ACTOR_FOLDS",
    *information.__all__,
    *probes.__all__,
    *baselines.__all__,
    *tables.__all__,
    *embedding.__all__,
    *convergence.__all__,
]

# Intervals for few seeds (t over seed means, Clopper-Pearson, Welch): every verdict's one home of intervals.
from . import intervals  # noqa: E402
from .intervals import *  # noqa: E402, F403

__all__ += intervals.__all__

# Decision rules for the claims (intervals, Holm, verdicts.csv).
from . import verdicts  # noqa: E402
from .verdicts import *  # noqa: E402, F403

__all__ += verdicts.__all__

# Claim (a): active latent dimensions, which of them separate emotions, the trivial predictor.
from . import latents  # noqa: E402
from .latents import *  # noqa: E402, F403

__all__ += latents.__all__

# Controls of the rules, power before absence, the 24-actor claim's two senses (verdict_controls.csv).
from . import controls  # noqa: E402
from .controls import *  # noqa: E402, F403

__all__ += controls.__all__
