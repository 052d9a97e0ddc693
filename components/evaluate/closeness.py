"""Distance between a story set and the genre corpus, in embedding space.

    frechet(story_vectors, passage_vectors)   # 0 for identical distributions

The Fréchet distance between Gaussians fitted to the two sets of embeddings (the FID
recipe, on all-MiniLM-L6-v2 sentence embeddings instead of image features):
|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). Lower is closer. With fewer vectors
than dimensions the covariances are singular; the small ridge below keeps the square
root defined, and the figure is best read comparatively, between sets of equal size.
"""

from __future__ import annotations


def frechet(a, b, ridge: float = 1e-6) -> float:
    import numpy as np
    from scipy import linalg

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1 = np.cov(a, rowvar=False) + ridge * np.eye(a.shape[1])
    s2 = np.cov(b, rowvar=False) + ridge * np.eye(b.shape[1])
    root = linalg.sqrtm(s1 @ s2)
    if np.iscomplexobj(root):
        root = root.real  # rounding leaves tiny imaginary parts
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))
