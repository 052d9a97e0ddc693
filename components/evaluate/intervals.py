"""95% intervals for shares, so a difference between two sets of 100 stories can be judged.

    >>> [round(x, 4) for x in wilson(45, 100)]
    [0.3561, 0.5476]
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval: sound near 0 and 1 and for small n, unlike p ± z·se."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def share(successes: int, n: int) -> dict:
    low, high = wilson(successes, n)
    return {"count": successes, "n": n, "share": round(successes / n, 4) if n else None, "ci95": [round(low, 4), round(high, 4)]}
