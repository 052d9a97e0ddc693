"""Flags for degenerate stories, which are kept and marked, never dropped.

    >>> flags("", "Write me a horror story")["empty"]
    True
    >>> flags("the end the end the end the end", "Write me a horror story")["repetitive"]
    True
"""

from __future__ import annotations

import re
from collections import Counter

# What a template puts around a prompt; a story made only of these and the prompt is an echo.
MARKERS = re.compile(r"###|\b(human|assistant|user|system)\b\s*:?|<\s*/?\s*(human|assistant)\s*>|<\|[^|]*\|>", re.I)
WORD = re.compile(r"\w+(?:'\w+)?")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def is_prompt_echo(text: str, prompt: str) -> bool:
    """Nothing left but the prompt (any number of times) and template markers."""
    rest = MARKERS.sub(" ", text.lower())
    rest = rest.replace(prompt.lower(), " ")
    return bool(words(text)) and not words(rest)


def dominant_ngram(tokens: list[str], max_n: int = 8) -> tuple[tuple[str, ...], float]:
    """The n-gram (n <= max_n) whose repeats cover most of the text, and that share.

    The share is count x n / len(tokens): 1.0 for "a b a b a b" with ("a", "b").
    """
    best: tuple[tuple[str, ...], float] = ((), 0.0)
    for n in range(1, min(max_n, len(tokens) // 2) + 1):
        grams = Counter(tuple(tokens[i : i + n]) for i in range(0, len(tokens) - n + 1))
        gram, count = grams.most_common(1)[0]
        if count >= 3:
            share = min(1.0, count * n / len(tokens))
            if share > best[1]:
                best = (gram, share)
    return best


def flags(text: str, prompt: str, min_share: float = 0.5) -> dict[str, bool]:
    """empty, prompt_echo, and repetitive (one n-gram repeated over at least half the words)."""
    tokens = words(text)
    _, share = dominant_ngram(tokens)
    return {
        "empty": not text.strip(),
        "prompt_echo": is_prompt_echo(text, prompt),
        "repetitive": len(tokens) >= 6 and share >= min_share,
    }
