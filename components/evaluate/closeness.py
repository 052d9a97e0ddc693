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


def two_sample(stories, passages, seed: int = 42, folds: int = 5) -> dict:
    """A classifier two-sample test: the cross-validated accuracy of telling the stories
    from held-out passages by their embeddings, with a Wilson 95% interval.

    1.0: always told apart; 0.5: indistinguishable. The larger side is subsampled
    (seeded) to the smaller one's size, so chance is exactly 0.5; unlike the Fréchet
    distance, the figure has an interval, so two sets can be compared honestly.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from components.evaluate.intervals import wilson

    rng = np.random.default_rng(seed)
    n = min(len(stories), len(passages))
    if n < 2:
        raise ValueError("the two-sample test needs at least 2 stories and 2 passages")
    a = np.asarray(stories)[rng.choice(len(stories), n, replace=False)]
    b = np.asarray(passages)[rng.choice(len(passages), n, replace=False)]
    x, y = np.vstack([a, b]), np.array([1] * n + [0] * n)
    cv = StratifiedKFold(min(folds, n), shuffle=True, random_state=seed)
    predicted = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=cv)
    correct = int((predicted == y).sum())
    low, high = wilson(correct, 2 * n)
    return {"accuracy": round(correct / (2 * n), 4), "ci95": [round(low, 4), round(high, 4)], "n": 2 * n}
