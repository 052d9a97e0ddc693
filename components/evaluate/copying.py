"""How much of each story is copied verbatim from the training passages.

    index = NgramIndex(training_texts, n=8)
    index.story("the words of one story ...")   # {"copied_share": ..., "longest_run": ...}

A story's copied share is the fraction of its word 8-grams found in the training
passages; its longest run is the longest stretch of words that occurs there as a
whole (consecutive matching 8-grams, plus 7). A model that recites its books scores
high on both. Word 8-grams are kept as hashes, so the index of a whole dataset is
a few megabytes.
"""

from __future__ import annotations

import statistics

from components.evaluate.text import ngrams, words


class NgramIndex:
    def __init__(self, texts: list[str], n: int = 8):
        self.n = n
        self.grams = {hash(g) for t in texts for g in ngrams(words(t), n)}

    def story(self, text: str) -> dict:
        grams = ngrams(words(text), self.n)
        hits = [hash(g) in self.grams for g in grams]
        longest = run = 0
        for hit in hits:
            run = run + 1 if hit else 0
            longest = max(longest, run)
        return {"copied_share": sum(hits) / len(hits) if hits else 0.0, "longest_run": longest + self.n - 1 if longest else 0}

    def summary(self, texts: list[str]) -> dict:
        rows = [self.story(t) for t in texts]
        return {
            "n": self.n,
            "mean_copied_share": round(statistics.fmean(r["copied_share"] for r in rows), 4) if rows else 0.0,
            "max_copied_share": round(max((r["copied_share"] for r in rows), default=0.0), 4),
            "median_longest_run": statistics.median(r["longest_run"] for r in rows) if rows else 0,
            "max_longest_run": max((r["longest_run"] for r in rows), default=0),
        }
