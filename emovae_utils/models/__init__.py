"""Models: one small interface (:class:`Model`, :class:`BaseVAE` for the VAEs), variants as registered subclasses.

Examples
--------
>>> from emovae_utils.models import available, build
>>> model = build("beta_vae", beta=4.0, latent_dim=8)
>>> type(model).__name__, model.latent_dim
('BetaVAE', 8)

Adding a variant: subclass :class:`EmotionVAE` (or :class:`BaseVAE`), override
what changes, store constructor arguments as attributes of the same name, and
decorate it with ``@register("name")``; :mod:`.beta_vae` is the worked example.
"""
from .base import BaseVAE, Model
from .losses import elbo_terms, gaussian_kl, masked_cross_entropy
from .registry import (
    ModelFileError, available, build, describe_models, load_model, model_class, register, registered_name, save_model,
)
from .emotion_vae import EmotionVAE  # noqa: E402  (registers "emotion_vae")
from .beta_vae import BetaVAE  # noqa: E402  (registers "beta_vae")
from .sigma_vae import SigmaVAE  # noqa: E402  (registers "sigma_vae")
from .tc_vae import TCVAE  # noqa: E402  (registers "tc_vae")
from .conditional_vae import SpeakerConditionedVAE  # noqa: E402  (registers "speaker_vae")
from .supervised_vae import EmotionSupervisedVAE  # noqa: E402  (registers "supervised_vae")
from .sequence_vae import SequenceVAE  # noqa: E402  (registers "sequence_vae")
from .factorised_vae import FactorisedSequenceVAE  # noqa: E402  (registers "factorised_vae")
from .classifier import EmotionCNN  # noqa: E402  (registers "emotion_cnn", the supervised ceiling; not a VAE)

__all__ = ["Model", "BaseVAE", "EmotionVAE", "BetaVAE", "SigmaVAE", "TCVAE", "SpeakerConditionedVAE", "EmotionSupervisedVAE",
           "SequenceVAE", "FactorisedSequenceVAE", "EmotionCNN",
           "build", "register", "available", "model_class", "save_model", "load_model", "registered_name",
           "ModelFileError", "describe_models", "gaussian_kl", "elbo_terms", "masked_cross_entropy"]

# build() documents the registered models: their names, parameters, condition and labels
build.__doc__ = build.__doc__.replace("{models}", describe_models().replace("\n", "\n    "))
