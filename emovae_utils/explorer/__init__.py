"""Interactive latent-space explorer for JupyterLab 4 / ipywidgets 8.

One call shows it::

    from emovae_utils.explorer import latent_explorer     # or emovae_utils.widgets
    latent_explorer(model, X=X, index=index)      # X, index from data.load_features

What it offers (any model with ``encode(x) -> (mu, logvar)``, ``decode(z)`` and
``latent_dim``; every registered variant, conditioned ones too:
``explorer_for(model, X, index)`` takes the keywords below from
``model.explorer_defaults(X, index)``):

* a **condition picker** (``conditions={label: cond}``): the chosen ``cond``
  goes to ``decode(z, cond)`` (a speaker code per actor for ``speaker_vae``,
  an output length for a sequence model, whose width the image and the audio
  follow); ``cond=`` gives one condition per clip for encoding ``X``;
* **sub-latent sliders** (``dims=``): only some dimensions get a slider, the
  others keep the start point's; a model's emotion sub-latent
  (``emotion_dims``, ``supervised_vae``) comes first, labelled "(emotion)";
* one slider per latent dimension, **ordered by use**: the mean KL divergence of
  the posterior from the prior over the clips (nats,
  :func:`~emovae_utils.metrics.latents.dimension_usage`) is shown beside each
  slider; dimensions below ``kl_threshold`` (0.01 nats) are inactive, greyed and
  folded away in an accordion (moving them changes almost nothing);
* **continuous updates**: the spectrogram and the audio follow a slider while
  it is dragged. Observers only record that a render is wanted; one worker
  thread renders the *latest* state and drops the stale ones, so a burst of
  changes gives the last value and at most a few in between, and the kernel
  never builds a queue (:meth:`LatentExplorer.wait_idle` waits for it); a
  render runs on one core (:func:`~.worker.limited_threads`: torch's and
  BLAS's thread pools stalled renders for seconds on a busy machine);
* a **start** drop-down (the origin, an emotion's mean latent, or the
  posterior mean of any clip) that stays on its choice; "back to start"
  re-applies it;
* an **emotion direction**: from the current point toward a chosen emotion's
  mean latent, ``z = (1 - a) z_sliders + a m_emotion``, amount ``a`` in 0..1;
  the sliders show the point rendered, and moving one of them starts from there;
* a **2-D pad** blending up to four chosen points (clips or emotion means)
  bilinearly, in the spirit of NSynth Super; moving it sets the sliders;
* **A/B**: the starting point's own rendering (a clip's input spectrogram),
  a short pause, then the current point;
* audio by the fast Griffin-Lim inversion (``inversion.log_mel_to_audio(...,
  method="fast")``, warm-started from the previous phase while dragging),
  loudness-normalised (RMS of the voiced part to ``loudness_dbfs``) with
  short fades; autoplay is optional and off by default;
* the spectrogram image, axes in seconds and Hz, drawn without matplotlib
  per update: the frame (axes, ticks, colour bar) is drawn once, each update
  is a colour-map lookup into its plot area and a PNG encoding (zlib).

The package, one concern a module:

* :mod:`.state`: :class:`ExplorerState`, the point and the controls' values
  without widgets (start points, emotion direction, pad blend, condition);
* :mod:`.config`: :class:`ExplorerConfig`, the settings;
* :mod:`.adapter`: the model's side (encoding the clips, decoding a point);
* :mod:`.rendering`: PNG and WAV bytes (:class:`SpectrogramRenderer`,
  :func:`prepare_audio`, :func:`wav_bytes`, :class:`PointRenderer`);
* :mod:`.worker`: :class:`RenderWorker`, the coalescing render thread;
* :mod:`.pad`: the blend pad (front end in ``pad.js``);
* :mod:`.static`: what a saved copy shows (a snapshot, not dead controls);
* :mod:`.view`: :class:`LatentExplorer` (ipywidgets), :func:`latent_explorer`,
  :func:`explorer_for`;
* :mod:`.source`: :func:`clip_from_audio`, a recording as the model's input (:class:`SourceClip`);
* :mod:`.emotion`: :class:`EmotionMixer`, emotion weights to an emotion latent;
* :mod:`.ownvoice`: :class:`OwnVoiceExplorer`, :func:`own_voice_explorer`.

**Your own voice**: :func:`own_voice_explorer` (:class:`OwnVoiceExplorer`)
starts the explorer from any recording (a RAVDESS index row, a WAV or FLAC
file, a notebook upload: :func:`clip_from_audio`, the study's preprocessing),
and, for a model with an emotion latent (``model.emotion_dims``), adds one
weight per emotion mixing the emotions' mean emotion latents
(:class:`EmotionMixer`) while content and speaker stay the recording's; it
plays the recording itself (original, A/B) and saves the current rendering::

    own_voice_explorer(model, "take1.wav", X, index)   # or index.iloc[i], upload.value

The explorer can be driven without a browser (``set_latent``, ``select``,
``set_direction``, ``set_pad``, ``update``, ``png_bytes``, ``wav_bytes``). A
saved copy of an executed notebook (no kernel) shows a snapshot instead of the
controls: the spectrogram shown last and a player of its audio, and says that
the explorer needs a live kernel. ``X`` of the wrong shape is named before the
model is called; clips with NaN or infinite values are named in one warning,
left out of the statistics and refused as start points.
"""
from .config import ExplorerConfig
from .emotion import EmotionMixer, with_emotion
from .ownvoice import OwnVoiceExplorer, own_voice_explorer
from .rendering import PointRenderer, SpectrogramRenderer, encode_png, prepare_audio, spectrogram_png, wav_bytes
from .source import SourceClip, clip_from_audio, read_audio
from .state import ORIGIN, ExplorerState, blend_weights
from .view import LatentExplorer, explorer_defaults, explorer_for, latent_explorer
from .worker import RenderWorker, limited_threads

__all__ = [
    "LatentExplorer",
    "ExplorerConfig",
    "ExplorerState",
    "latent_explorer",
    "explorer_for",
    "explorer_defaults",
    "SpectrogramRenderer",
    "PointRenderer",
    "spectrogram_png",
    "encode_png",
    "wav_bytes",
    "prepare_audio",
    "blend_weights",
    "RenderWorker",
    "limited_threads",
    "ORIGIN",
    "OwnVoiceExplorer",
    "own_voice_explorer",
    "SourceClip",
    "clip_from_audio",
    "read_audio",
    "EmotionMixer",
    "with_emotion",
]
