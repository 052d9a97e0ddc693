"""Sentiment by genre: a classifier on each story's ending, and VADER as a second opinion.

    result = sentiment(records, model="distilbert/distilbert-base-uncased-finetuned-sst-2-english")

A story's sentiment follows its ending, so the classifier reads the last 512 words. A
model that reads long inputs (the reference's DistilBERT) sees the last 512 tokens of
them in one window, as the study did; a model trained on short inputs (the offline
stand-in, trained on sentences) reads them in windows of its own length, and the mean
of its window logits decides: on whole movie reviews that took the stand-in from 0.66
to 0.83 (docs/benchmarks.md). The model is any hub id, local folder or s3:// prefix.
Offline, `minilm-polarity` (or `minilm-polarity-small`) names a stand-in trained once
from installed packages (see `sentiment_model`). VADER (NLTK's
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
def load_classifier(model: str, cache: str | None = None) -> "Classifier":
    import json
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = model_folder(model, cache)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        classifier = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).eval()
    except (OSError, ValueError) as exc:
        raise TaletuneError(
            f"cannot load the sentiment model {model} ({str(exc).splitlines()[0][:160]}); it must be a text classifier "
            "with safetensors weights and a tokenizer"
        ) from None
    # The stand-in says how long its training inputs were; other models read up to 512 tokens at once.
    record = Path(folder) / "training.json"
    trained = json.loads(record.read_text()).get("max_length") if record.is_file() else None
    limit = min(512, getattr(classifier.config, "max_position_embeddings", 512) or 512)
    return Classifier(tokenizer, classifier, min(trained or limit, limit))


class Classifier:
    """A binary text classifier that reads a text in windows of `window` tokens and
    decides by the mean of the windows' logits; a text that fits one window is read as is,
    and with `max_windows=1` only the last window is read (left truncation)."""

    def __init__(self, tokenizer, model, window: int):
        self.tokenizer, self.model, self.window = tokenizer, model, window

    def __call__(self, texts: list[str], batch_size: int = 32, max_windows: int | None = None) -> list[str]:
        import torch

        tok = self.tokenizer
        # The tokenizer's own special tokens around each window ([CLS] ... [SEP], <s> ... </s>).
        wrap = tok("", add_special_tokens=True)["input_ids"]
        head = [t for t in wrap[:1] if t is not None and t in (tok.cls_token_id, tok.bos_token_id)]
        tail = wrap[len(head):]
        body = self.window - len(wrap)
        pieces, owner = [], []
        for i, text in enumerate(texts):
            ids = tok(text or " ", add_special_tokens=False, truncation=False, verbose=False)["input_ids"] or [tok.unk_token_id]
            for piece in windows(ids, body, max_windows):
                pieces.append([*head, *piece, *tail])
                owner.append(i)
        logits = torch.zeros(len(texts), self.model.config.num_labels)
        counts = torch.zeros(len(texts), 1)
        with torch.inference_mode():
            for b in range(0, len(pieces), batch_size):
                batch = pieces[b : b + batch_size]
                enc = tok.pad({"input_ids": batch}, return_tensors="pt")
                index = torch.tensor(owner[b : b + batch_size])
                logits.index_add_(0, index, self.model(**enc).logits.float())
                counts.index_add_(0, index, torch.ones(len(batch), 1))
        labels = self.model.config.id2label
        return [labels[int(k)] for k in (logits / counts.clamp(min=1)).argmax(-1)]


def windows(ids: list, size: int, most: int | None = None) -> list[list]:
    """`ids` cut into windows of `size` from the end backwards (the last window first), so
    the ending is always read whole and only the opening window may be short."""
    return [ids[max(0, end - size) : end] for end in range(len(ids), 0, -size)][: most or None]


def polarity(label: str) -> str:
    label = label.lower()
    if label.startswith("pos") or label in ("label_1", "1"):
        return "positive"
    if label.startswith("neg") or label in ("label_0", "0"):
        return "negative"
    raise TaletuneError(f"the sentiment model's label {label!r} is neither positive nor negative; use a binary sentiment model")


def classify(records: list[dict], model: str, batch_size: int = 32, cache: str | None = None) -> list[str]:
    classifier = load_classifier(model, cache)
    # One window of a long-input model reads only the last `window` tokens, as the study's pipeline did.
    max_windows = None if classifier.window < 512 else 1
    return [polarity(label) for label in classifier([ending(r["text"]) for r in records], batch_size, max_windows)]


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
