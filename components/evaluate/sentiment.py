"""Sentiment by genre: a classifier on each story's ending, and VADER as a second opinion.

    result = sentiment(records, model="distilbert/distilbert-base-uncased-finetuned-sst-2-english")

A story's sentiment follows its ending, so the classifier reads the last 512 words,
through a `text-classification` pipeline whose tokenizer truncates from the left: the
model sees the end of the story even when the story is longer than its window. The
model is any hub id, local folder or s3:// prefix. Offline, train one with
`python -m components.evaluate.sentiment_model --out DIR` and point `sentiment.model`
at DIR. VADER (NLTK's `vader_lexicon`) scores the same ending: compound >= 0.05 is
positive, <= -0.05 negative, in between neutral.
"""

from __future__ import annotations

from functools import lru_cache

from components.common import storage
from components.common.errors import TaletuneError
from components.evaluate.intervals import share
from components.evaluate.nltk_data import require
from components.evaluate.text import WORD

ENDING_WORDS = 512


def ending(text: str, n: int = ENDING_WORDS) -> str:
    """The last n words of a text, with the punctuation between them kept."""
    spans = [m.start() for m in WORD.finditer(text.lower())]
    return text[spans[-n]:] if len(spans) > n else text


@lru_cache(maxsize=2)  # every set of a run shares the loaded classifier
def load_classifier(model: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    folder = model
    if storage.is_s3(model):
        folder = str(storage.download_prefix(model, storage.join(storage.cache_root(), "sentiment", model.replace("/", "_"))))
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, truncation_side="left")
        classifier = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
    except OSError as exc:
        raise TaletuneError(
            f"cannot load the sentiment model {model} ({str(exc).splitlines()[0][:160]}); offline, train one with "
            "`python -m components.evaluate.sentiment_model --out DIR` and set sentiment.model=DIR"
        ) from None
    return pipeline("text-classification", model=classifier, tokenizer=tokenizer, truncation=True, max_length=512, device=-1)


def polarity(label: str) -> str:
    label = label.lower()
    if label.startswith("pos") or label in ("label_1", "1"):
        return "positive"
    if label.startswith("neg") or label in ("label_0", "0"):
        return "negative"
    raise TaletuneError(f"the sentiment model's label {label!r} is neither positive nor negative; use a binary sentiment model")


def classify(records: list[dict], model: str, batch_size: int = 16) -> list[str]:
    classify_fn = load_classifier(model)
    outputs = classify_fn([ending(r["text"]) or " " for r in records], batch_size=batch_size)
    return [polarity(o["label"]) for o in outputs]


def vader(records: list[dict]) -> list[str]:
    require("vader_lexicon")
    from nltk.sentiment.vader import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    out = []
    for r in records:
        score = analyzer.polarity_scores(ending(r["text"]))["compound"]
        out.append("positive" if score >= 0.05 else "negative" if score <= -0.05 else "neutral")
    return out


def tally(records: list[dict], labels: list[str]) -> dict:
    """Positive and negative counts and shares (Wilson 95%) per genre and for all."""
    out = {}
    for genre in ["all", *sorted({r["genre"] for r in records})]:
        chosen = [lab for r, lab in zip(records, labels) if genre == "all" or r["genre"] == genre]
        out[genre] = {k: share(sum(lab == k for lab in chosen), len(chosen)) for k in sorted(set(labels) | {"positive", "negative"})}
    return out
