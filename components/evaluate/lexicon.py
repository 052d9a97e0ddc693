"""The top positive and negative lexicon words of a story set, per genre and overall.

    counts = top_words(stories, Matcher("lemma", *load_lexicon()), k=30)

The lexicon is Hu and Liu's opinion lexicon (NLTK's `opinion_lexicon`: 2,006 positive
and 4,783 negative words) or word lists the user gives. Two ways to match:
- `lemma` (the default): a story word counts when it, or its WordNet lemma as a noun,
  verb or adjective, is a lexicon word exactly. "women" counts only if "woman" is in
  the lexicon, and it is not.
- `stem`: the reference study's way, for comparison. Story words and lexicon words are
  lemmatized and then Porter-stemmed, and stems are matched. That merges words the
  lexicon keeps apart: "womanizer" (negative) stems to "woman", so every "woman" in a
  story counts as negative.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Literal

from components.common.errors import TaletuneError
from components.evaluate.nltk_data import require
from components.evaluate.text import words

Mode = Literal["lemma", "stem"]


def read_word_list(path: str | Path) -> set[str]:
    """One word a line; blank lines and `;` comments (the Hu and Liu file format) skipped."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    found = {w.strip().lower() for w in lines if w.strip() and not w.lstrip().startswith(";")}
    if not found:
        raise TaletuneError(f"lexicon file {path} has no words; give one word a line")
    return found


def load_lexicon(positive: str | None = None, negative: str | None = None) -> tuple[set[str], set[str]]:
    """(positive, negative) words: the given files, else NLTK's opinion lexicon."""
    if positive or negative:
        if not (positive and negative):
            raise TaletuneError("give both a positive and a negative word list, or neither (for the opinion lexicon)")
        return read_word_list(positive), read_word_list(negative)
    require("opinion_lexicon")
    from nltk.corpus import opinion_lexicon

    return set(opinion_lexicon.positive()), set(opinion_lexicon.negative())


class Matcher:
    """Which polarity, if any, a story word has; remembers every word it has seen."""

    def __init__(self, mode: Mode, positive: set[str], negative: set[str]):
        require("wordnet")
        from nltk.stem import PorterStemmer, WordNetLemmatizer

        self.mode = mode
        self._lemmatizer, self._stemmer = WordNetLemmatizer(), PorterStemmer()
        self._memo: dict[str, tuple[str, str] | None] = {}
        if mode == "lemma":
            self.polarity = {**{w: "positive" for w in positive}, **{w: "negative" for w in negative}}
        elif mode == "stem":
            by_stem: dict[str, set[str]] = defaultdict(set)
            for word, label in [*((w, "positive") for w in positive), *((w, "negative") for w in negative)]:
                by_stem[self._stem(word)].add(label)
            # A stem shared by both lists says nothing either way.
            self.polarity = {s: labels.pop() for s, labels in by_stem.items() if len(labels) == 1}
        else:
            raise TaletuneError(f"unknown match mode {mode!r}; use lemma or stem")

    def _lemmas(self, word: str) -> list[str]:
        return [word, *(self._lemmatizer.lemmatize(word, pos) for pos in ("n", "v", "a"))]

    def _stem(self, word: str) -> str:
        return self._stemmer.stem(self._lemmatizer.lemmatize(word))

    def match(self, word: str) -> tuple[str, str] | None:
        """(the lexicon key it matched, its polarity), or None."""
        if word not in self._memo:
            if self.mode == "stem":
                key = self._stem(word)
                self._memo[word] = (key, self.polarity[key]) if key in self.polarity else None
            else:
                self._memo[word] = next(((k, self.polarity[k]) for k in self._lemmas(word) if k in self.polarity), None)
        return self._memo[word]


def count(texts: list[str], matcher: Matcher) -> dict:
    """Words in all, and matched words per polarity: key -> (count, most common story form)."""
    total = 0
    hits: dict[str, dict[str, Counter]] = {"positive": defaultdict(Counter), "negative": defaultdict(Counter)}
    for text in texts:
        tokens = words(text)
        total += len(tokens)
        for token in tokens:
            found = matcher.match(token)
            if found:
                hits[found[1]][found[0]][token] += 1
    return {"words": total, "hits": hits}


def ranked(counted: dict, k: int) -> dict:
    out = {"words": counted["words"]}
    for label in ("positive", "negative"):
        rows = [(sum(forms.values()), key, forms.most_common(1)[0][0]) for key, forms in counted["hits"][label].items()]
        rows.sort(key=lambda r: (-r[0], r[1]))
        out[label] = [
            {"word": form, "key": key, "count": n, "per_1000": round(1000 * n / counted["words"], 3) if counted["words"] else 0.0}
            for n, key, form in rows[:k]
        ]
    return out


def top_words(stories: list[dict], matcher: Matcher, k: int = 30) -> dict:
    """Top k positive and negative words per genre and for all genres together."""
    by_genre: dict[str, list[str]] = defaultdict(list)
    for story in stories:
        by_genre[story["genre"]].append(story["text"])
    return {
        "mode": matcher.mode,
        "by_genre": {g: ranked(count(texts, matcher), k) for g, texts in sorted(by_genre.items())},
        "all": ranked(count([s["text"] for s in stories], matcher), k),
    }
