"""2-D maps of codes for plots (report section 5.3)."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler

from .information import _check_codes

__all__ = ["tsne_embedding"]


def tsne_embedding(
    codes: np.ndarray,
    random_state: int = 0,
    perplexity: float = 30.0,
    standardise: bool = False,
    max_iter: int = 1000,
) -> np.ndarray:
    """2-D t-SNE map of codes (sklearn, PCA initialisation, fixed seed).

    Parameters
    ----------
    codes : np.ndarray, shape (N, D)
    random_state : int, default 0
    perplexity : float, default 30
        Lowered to ``(N - 1) / 3`` for small N.
    standardise : bool, default False
        Z-score each dimension first (the VAE's ``mu`` share the prior's
        scale, so the default keeps the encoder's geometry).
    max_iter : int, default 1000
        Optimisation iterations (sklearn's default; at least 250).

    Returns
    -------
    np.ndarray, shape (N, 2)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> codes = np.concatenate([rng.normal(0, 0.1, (20, 8)), rng.normal(3, 0.1, (20, 8))])
    >>> tsne_embedding(codes, random_state=0, max_iter=250).shape
    (40, 2)
    """
    from sklearn.manifold import TSNE

    codes = _check_codes(codes)
    if codes.shape[0] < 4:
        raise ValueError("t-SNE needs at least 4 points")
    if standardise:
        codes = StandardScaler().fit_transform(codes)
    perplexity = min(perplexity, (codes.shape[0] - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state, max_iter=max_iter)
    return tsne.fit_transform(codes)
