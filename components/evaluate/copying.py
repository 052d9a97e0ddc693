"""How much of each story is copied verbatim from the training passages.

    index = NgramIndex(training_texts, n=8)
    index.story("the words of one story ...")   # {"copied_share": ..., "longest_run": ...}

A story's copied share is the fraction of its word 8-grams found in the training
passages; its longest run is the longest stretch of words that occurs there as a
whole (consecutive matching 8-grams, plus 7). A model that recites its books scores
high on both. Word 8-grams are kept as hashes, so the index of a whole dataset is
a few megabytes. The training data itself is measured with `leave_self_out`: a
passage's n-grams count as copied only when another passage has them too (against
itself every passage would be 100% copied).
"""

from __future__ import annotations

import statistics
from collections import Counter

from components.evaluate.text import ngrams, words


class NgramIndex:
    def __init__(self, texts: list[str], n: int = 8):
        self.n = n
        # How many passages hold each n-gram, so a passage can be left out of its own count.
        self.grams = Counter(g for t in texts for g in {hash(g) for g in ngrams(words(t), n)})

    def story(self, text: str, leave_self_out: bool = False) -> dict:
        grams = [hash(g) for g in ngrams(words(text), self.n)]
        own = 1 if leave_self_out else 0
        hits = [self.grams.get(g, 0) > own for g in grams]
        longest = run = 0
        for hit in hits:
            run = run + 1 if hit else 0
            longest = max(longest, run)
        return {"copied_share": sum(hits) / len(hits) if hits else 0.0, "longest_run": longest + self.n - 1 if longest else 0}

    def summary(self, texts: list[str], leave_self_out: bool = False) -> dict:
        rows = [self.story(t, leave_self_out) for t in texts]
        return {
            "n": self.n,
            "against": "the other training passages" if leave_self_out else "the training passages",
            "mean_copied_share": round(statistics.fmean(r["copied_share"] for r in rows), 4) if rows else 0.0,
            "max_copied_share": round(max((r["copied_share"] for r in rows), default=0.0), 4),
            "median_longest_run": statistics.median(r["longest_run"] for r in rows) if rows else 0,
            "max_longest_run": max((r["longest_run"] for r in rows), default=0),
        }
