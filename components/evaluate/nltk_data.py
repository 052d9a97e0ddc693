"""The NLTK resources the evaluate stage reads, asked for by name.

    python -m nltk.downloader opinion_lexicon stopwords wordnet vader_lexicon sentence_polarity

Each analysis calls `require(name)` before it reads a corpus, so a missing resource
is one clear message naming it and how to get it, instead of NLTK's long LookupError.
`punkt` is not used: tokenizing is a regular expression (`components.evaluate.text`).
"""

from __future__ import annotations

from components.common.errors import TaletuneError

# The resources, by their downloader names, and the folder each lives in.
RESOURCES = {
    "opinion_lexicon": "corpora",
    "stopwords": "corpora",
    "wordnet": "corpora",
    "vader_lexicon": "sentiment",
    "sentence_polarity": "corpora",
}


def require(name: str) -> None:
    import nltk

    for form in (f"{RESOURCES[name]}/{name}", f"{RESOURCES[name]}/{name}.zip"):  # unzipped, or the downloader's zip
        try:
            nltk.data.find(form)
            return
        except LookupError:
            pass
    raise TaletuneError(
        f"NLTK resource {name!r} is missing; install it with `python -m nltk.downloader {name}` (online), "
        f"or point NLTK_DATA at a folder that has it (searched: {', '.join(nltk.data.path[:4])})"
    )
