"""Tokens for counting, without NLTK's punkt (which cannot be had offline).

    >>> words("Don't go -- the WOMAN's 3 cats!")
    ["don't", 'go', 'the', "woman's", 'cats']
"""

from __future__ import annotations

import re

# Letters with inner apostrophes or hyphens; numbers and punctuation are not words here.
WORD = re.compile(r"[a-z]+(?:['’-][a-z]+)*")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower().replace("’", "'"))


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
