"""LDA topics of a story set with gensim, and their alignment across sets.

    result = topics(texts, n_topics=5, top_n=20, seed=42)
    pairs = align(reference["topics"], other["topics"])

Tokens are lower-cased words (`components.evaluate.text`), English stop words and
words under three letters removed, then WordNet-lemmatized (`normalize: lemma`) or
Porter-stemmed (`stem`, as the reference did). The model is gensim's single-process
`LdaModel` with a fixed `random_state`, so the same texts give the same topics. Each
topic gets its c_v coherence (computed in one process, for the same reason).
"""

from __future__ import annotations

from typing import Literal

from components.common.errors import TaletuneError
from components.evaluate.nltk_data import require
from components.evaluate.text import words

Normalize = Literal["lemma", "stem"]


def documents(texts: list[str], normalize: Normalize = "lemma") -> list[list[str]]:
    require("stopwords")
    require("wordnet")
    from nltk.corpus import stopwords
    from nltk.stem import PorterStemmer, WordNetLemmatizer

    stop = set(stopwords.words("english"))
    norm = PorterStemmer().stem if normalize == "stem" else WordNetLemmatizer().lemmatize
    memo: dict[str, str] = {}
    docs = []
    for text in texts:
        doc = []
        for w in words(text):
            if len(w) >= 3 and w not in stop:
                if w not in memo:
                    memo[w] = norm(w)
                doc.append(memo[w])
        docs.append(doc)
    return docs


def topics(texts: list[str], n_topics: int = 5, top_n: int = 20, seed: int = 42, passes: int = 10,
           normalize: Normalize = "lemma") -> dict:
    import logging

    from components.common.errors import require as require_package

    require_package("gensim", "pip install gensim")
    from gensim.corpora import Dictionary
    from gensim.models import CoherenceModel, LdaModel

    logging.getLogger("gensim").setLevel(logging.WARNING)  # it logs every thousand documents

    docs = [d for d in documents(texts, normalize) if d]
    if len(docs) < n_topics:
        raise TaletuneError(f"{len(docs)} non-empty stories are fewer than the {n_topics} topics asked for; lower topics.n or add stories")
    dictionary = Dictionary(docs)
    if len(docs) >= 20:  # words in one story only, or in nearly all of them, say little about topics
        dictionary.filter_extremes(no_below=2, no_above=0.9, keep_n=None)
    corpus = [dictionary.doc2bow(d) for d in docs]
    lda = LdaModel(corpus, id2word=dictionary, num_topics=n_topics, random_state=seed, passes=passes, iterations=100)
    coherence = CoherenceModel(model=lda, texts=docs, dictionary=dictionary, coherence="c_v", topn=min(top_n, 10), processes=1)
    per_topic = coherence.get_coherence_per_topic()
    return {
        "n_topics": n_topics,
        "normalize": normalize,
        "coherence": "c_v",
        "topics": [
            {"id": k, "words": [w for w, _ in lda.show_topic(k, topn=top_n)],
             "weights": [round(float(p), 5) for _, p in lda.show_topic(k, topn=top_n)], "coherence": round(float(per_topic[k]), 4)}
            for k in range(n_topics)
        ],
    }


def align(reference: list[dict], other: list[dict]) -> list[dict]:
    """Pair each topic of `other` with one of `reference`, one to one, by the overlap
    (Jaccard) of their top words, so a reader can follow a theme across sets."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    def jaccard(a, b):
        a, b = set(a["words"]), set(b["words"])
        return len(a & b) / len(a | b) if a | b else 0.0

    overlap = np.array([[jaccard(r, o) for o in other] for r in reference])
    rows, cols = linear_sum_assignment(-overlap)
    return [{"reference": int(r), "topic": int(c), "overlap": round(float(overlap[r, c]), 4)} for r, c in zip(rows, cols)]
