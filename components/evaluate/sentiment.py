"""Sentiment by genre: a classifier on each story's ending, and VADER as a second opinion.

    result = sentiment(records, model="distilbert/distilbert-base-uncased-finetuned-sst-2-english")

A story's sentiment follows its ending, so the classifier reads the last 512 words,
through a `text-classification` pipeline whose tokenizer truncates from the left: the
model sees the end of the story even when the story is longer than its window. The
model is any hub id, local folder or s3:// prefix. Offline, `minilm-polarity` (or
`minilm-polarity-small`) names a stand-in trained once from installed packages (see
`sentiment_model`). VADER (NLTK's
`vader_lexicon`) scores the same ending: compound >= 0.05 is positive, <= -0.05
negative, in between neutral.
"""

from __future__ import annotations

from functools import lru_cache

from components.common.errors import TaletuneError
from components.evaluate.intervals import share
from components.evaluate.nltk_data import require
from components.evaluate.text import WORD

ENDING_WORDS = 512


def ending(text: str, n: int = ENDING_WORDS) -> str:
    """The last n words of a text, with the punctuation between them kept."""
    spans = [m.start() for m in WORD.finditer(text.lower())]
    return text[spans[-n]:] if len(spans) > n else text


def model_folder(model: str, cache: str | None = None) -> str:
    """A local folder for the sentiment model: hub id, folder, s3:// prefix, or the stand-in alias."""
    from components.evaluate.sentiment_model import STANDINS, build_standin
    from components.common.models import resolve

    if model in STANDINS:
        return str(build_standin(model, cache))
    try:
        return str(resolve(model, cache))
    except TaletuneError as exc:
        raise TaletuneError(f"cannot load the sentiment model: {exc}; offline, set sentiment.model={next(iter(STANDINS))} (trained once, "
                            "here, from installed packages) or train one with `python -m components.evaluate.sentiment_model --out DIR` "
                            "and set sentiment.model=DIR") from None


@lru_cache(maxsize=2)  # every set of a run shares the loaded classifier
def load_classifier(model: str, cache: str | None = None):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    folder = model_folder(model, cache)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, truncation_side="left")
        classifier = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise TaletuneError(
            f"cannot load the sentiment model {model} ({str(exc).splitlines()[0][:160]}); it must be a text classifier "
            "with safetensors weights and a tokenizer"
        ) from None
    return pipeline("text-classification", model=classifier, tokenizer=tokenizer, truncation=True, max_length=512, device=-1)


def polarity(label: str) -> str:
    label = label.lower()
    if label.startswith("pos") or label in ("label_1", "1"):
        return "positive"
    if label.startswith("neg") or label in ("label_0", "0"):
        return "negative"
    raise TaletuneError(f"the sentiment model's label {label!r} is neither positive nor negative; use a binary sentiment model")


def classify(records: list[dict], model: str, batch_size: int = 16, cache: str | None = None) -> list[str]:
    classify_fn = load_classifier(model, cache)
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
