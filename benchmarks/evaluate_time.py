"""Time of each evaluate analysis for one set of 100 stories, with the models loaded.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/evaluate_time.py --dataset runs/.../make-dataset/dataset --sentiment-model models/sentiment

The stories are 100 of the dataset's training passages cut to their first 150 words
(about 200 tokens), half horror and half fairy tale, or `--stories FILE` (a
stories.jsonl). Loading the models (sentiment classifier, MiniLM, the reference: the
genre classifier's fit and the held-out passages' embeddings, which the pipeline builds
once in its own task; the n-gram index) happens first and is reported apart; then each
analysis runs once on the set and its seconds are printed, with the total against the
issue's 60-second budget.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def passages_as_stories(dataset: str, n: int, seed: int = 0) -> list[dict]:
    from components.common.parquet import read_rows

    rows = [r for r in read_rows(Path(dataset) / "data" / "train.parquet", needs=("prompt", "response", "label")) if r.get("prompt")]
    rng = random.Random(seed)
    out = []
    for genre in sorted({r["label"] for r in rows}):
        chosen = rng.sample([r for r in rows if r["label"] == genre], n // 2)
        out += [{"genre": genre, "text": " ".join(r["response"].split()[:150]), "prompt": r["prompt"]} for r in chosen]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="the dataset stage's folder")
    parser.add_argument("--sentiment-model", help="a sentiment classifier folder (default: VADER only)")
    parser.add_argument("--stories", help="a stories.jsonl to time instead of dataset passages")
    parser.add_argument("--reference", help="a prebuilt reference (python -m components.evaluate.reference); default: built first")
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()

    from components.evaluate import stage
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.sentiment import load_classifier
    from components.evaluate.stories import read_set

    records = read_set(args.stories)[1][: args.n] if args.stories else passages_as_stories(args.dataset, args.n)
    config = EvaluateConfig(sentiment={"model": args.sentiment_model})
    started = time.perf_counter()
    corpus = stage.Corpus(args.dataset, config, args.reference)  # the reference is built here unless given
    corpus.copying(records[:1])
    if args.sentiment_model:
        load_classifier(args.sentiment_model)  # cached: the timed run reuses it
    print(f"{len(records)} stories; loading and fitting (not counted): {time.perf_counter() - started:.1f} s", flush=True)

    texts = [r["text"] for r in records]
    analyses = {
        "flags": lambda: stage.flag_shares(records),
        "diversity": lambda: stage.diversity_by_genre(records, config),
        "lexicon": lambda: stage.lexicon_words(records, config),
        "topics": lambda: stage.topic_model(texts, config),
        "sentiment_vader": lambda: stage.vader_by_genre(records),
        "genre_fidelity": lambda: corpus.fidelity(records),
        "copying": lambda: corpus.copying(records),
        "closeness": lambda: corpus.closeness(records),
    }
    if args.sentiment_model:
        analyses["sentiment"] = lambda: stage.sentiment_by_genre(records, args.sentiment_model)
    total = 0.0
    for name, fn in analyses.items():
        t = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t
        total += seconds
        print(f"  {name:16s} {seconds:6.2f} s", flush=True)
    print(f"total {total:.1f} s for {len(records)} stories (budget: 60 s)")


if __name__ == "__main__":
    main()
