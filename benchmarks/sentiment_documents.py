"""How a sentiment classifier trained on sentences should read a whole document.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/sentiment_documents.py MODEL_DIR [--reviews 400]

MODEL_DIR is a sentiment model folder, such as the stand-in in the model cache
(`~/.cache/taletune/models/minilm-polarity-small-v2-...`, built by `make prepare`) or
one from `python -m components.evaluate.sentiment_model --out DIR`. Each of a seeded,
balanced sample of NLTK's `movie_reviews` (whole IMDb reviews the stand-in never
trained on) is read as the evaluate stage reads a story: its last 512 words. Then:
- one 512-token window (the ending's last 512 tokens, what the reference's pipeline
  does with a long-input model);
- one window of the model's own training length (the ending's last tokens only);
- every window of that length, deciding by the mean of their logits (what the evaluate
  stage does for a model whose `training.json` gives its `max_length`).
Prints the accuracy of each, with its Wilson 95% interval, and the seconds it took.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a sentiment model folder")
    parser.add_argument("--reviews", type=int, default=400, help="reviews in all, half of each polarity (default 400)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from nltk.corpus import movie_reviews
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from components.evaluate.intervals import wilson
    from components.evaluate.nltk_data import require
    from components.evaluate.sentiment import Classifier, ending, polarity

    require("movie_reviews")
    rows = []
    for label, category in (("negative", "neg"), ("positive", "pos")):
        ids = sorted(movie_reviews.fileids(category))
        rows += [(ending(movie_reviews.raw(f)), label) for f in random.Random(f"{args.seed}-{category}").sample(ids, args.reviews // 2)]
    record = Path(args.model) / "training.json"
    trained = json.loads(record.read_text()).get("max_length", 64) if record.is_file() else 64
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, use_safetensors=True).eval()
    print(f"{len(rows)} reviews of movie_reviews, last 512 words each; the model was trained on inputs of {trained} tokens")
    for name, window, most in (("one 512-token window (left truncation)", 512, 1), (f"one {trained}-token window", trained, 1),
                               (f"every {trained}-token window, mean logits", trained, None)):
        started = time.perf_counter()
        labels = [polarity(p) for p in Classifier(tokenizer, model, window)([text for text, _ in rows], max_windows=most)]
        right = sum(p == y for p, (_, y) in zip(labels, rows))
        low, high = wilson(right, len(rows))
        print(f"{name:<45} accuracy {right / len(rows):.3f} ({low:.3f}-{high:.3f})  {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
