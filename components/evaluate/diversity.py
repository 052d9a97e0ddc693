"""Diversity and repetition of a story set, where greedy decoding's loops show.

    >>> distinct_n([["a", "b", "a", "b"]], 2)
    0.6667

distinct-n: unique n-grams over all n-grams of the set. Repeated 4-grams: the share of
a story's 4-grams that already occurred earlier in it, averaged over stories. The
compression ratio: raw bytes over zlib-compressed bytes of the whole set (higher means
more repetitive). Self-BLEU: BLEU-4 of each story in a fixed, seeded sample against the
rest of the sample (higher means the stories are more alike).
"""

from __future__ import annotations

import random
import statistics
import zlib

from components.evaluate.text import ngrams, words


def distinct_n(token_lists: list[list[str]], n: int) -> float:
    grams = [g for tokens in token_lists for g in ngrams(tokens, n)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def repeated_ngram_share(tokens: list[str], n: int = 4) -> float:
    grams = ngrams(tokens, n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def compression_ratio(texts: list[str]) -> float:
    raw = "\n".join(texts).encode()
    return round(len(raw) / len(zlib.compress(raw, 9)), 4) if raw else 0.0


def self_bleu(token_lists: list[list[str]], sample: int = 50, seed: int = 0) -> float | None:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    pool = [t for t in token_lists if t]
    if len(pool) < 2:
        return None
    chosen = random.Random(seed).sample(pool, min(sample, len(pool)))
    smooth = SmoothingFunction().method1
    scores = [sentence_bleu(chosen[:i] + chosen[i + 1 :], hyp, smoothing_function=smooth) for i, hyp in enumerate(chosen)]
    return round(statistics.fmean(scores), 4)


def diversity(texts: list[str], sample: int = 50, seed: int = 0) -> dict:
    token_lists = [words(t) for t in texts]
    lengths = [len(t) for t in token_lists]
    return {
        "stories": len(texts),
        "mean_words": round(statistics.fmean(lengths), 2) if lengths else 0.0,
        "empty_share": round(sum(n == 0 for n in lengths) / len(lengths), 4) if lengths else 0.0,
        "distinct_1": distinct_n(token_lists, 1),
        "distinct_2": distinct_n(token_lists, 2),
        "distinct_3": distinct_n(token_lists, 3),
        "repeated_4gram_share": round(statistics.fmean(repeated_ngram_share(t) for t in token_lists), 4) if token_lists else 0.0,
        "compression_ratio": compression_ratio(texts),
        "self_bleu": self_bleu(token_lists, sample, seed),
    }
