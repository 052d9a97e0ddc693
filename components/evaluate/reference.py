"""What every story set is measured against, built once from the dataset.

    NLTK_DATA=../shared/nltk_data python -m components.evaluate.reference runs/.../make-dataset/dataset --out reference/

- a genre classifier (logistic regression on MiniLM embeddings of whole passages, the
  mean of their 256-token windows) trained on a seeded sample of the training passages
  of every catalog group, `other` included, with its accuracy on a seeded sample of the
  test split: whole books it never saw with `split.holdout_books` (`unseen_books`);
- a seeded sample of held-out passages per genre, the reference of the closeness
  measures (each story set is compared with them cut to its stories' lengths).

Embedding is most of an evaluation's cost, so the pipeline builds this once and every
evaluate task loads it. Files: `genre_classifier.{safetensors,json}`,
`closeness.json` and `reference.json` (the classifier's accuracy, the counts and
the provenance).
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from components.common.errors import TaletuneError, main_guard
from components.common.provenance import provenance
from components.evaluate.config import EvaluateConfig
from components.evaluate.genre_classifier import GenreClassifier

CLOSENESS = "closeness.json"
OTHER = "other"  # the catalog's negative examples: no stories are asked for in it
SUMMARY = "reference.json"


def passages(dataset: str | Path, split: str) -> list[dict]:
    """The dataset's passages of one split, `other` included ({label, response, book_id, ...})."""
    from components.common.parquet import read_split

    return [r for r in read_split(dataset, split, needs=("response", "label")) if r.get("response")]


@dataclass
class Reference:
    classifier: GenreClassifier
    held_out: dict = field(default_factory=dict)  # genre -> texts of held-out passages (closeness cuts them to story length)
    summary: dict = field(default_factory=dict)

    @classmethod
    def build(cls, dataset: str | Path, config: EvaluateConfig) -> "Reference":
        from components.evaluate.embed import embed_windows

        rng = random.Random(config.seed)
        train = passages(dataset, "train")
        by_group: dict[str, list[dict]] = {}
        for r in train:
            by_group.setdefault(r["label"], []).append(r)
        sample = [r for _, rows in sorted(by_group.items()) for r in rng.sample(rows, min(config.genre.train_per_group or len(rows), len(rows)))]
        # Whole passages (the mean of their 256-token windows), not their first 256 tokens:
        # on the heldout-books split that took balanced accuracy on unseen books from 0.85
        # to 0.90 (docs/benchmarks.md).
        classifier = GenreClassifier.fit([r["response"] for r in sample], [r["label"] for r in sample], config.seed,
                                         embed_windows([r["response"] for r in sample]))

        # Only sampled passages are embedded (embedding is the cost): up to
        # genre.test_per_group per group for the accuracy.
        test = passages(dataset, "test")
        groups = sorted({r["label"] for r in test})
        scored, held_out, notes = [], {}, {}
        for group in groups:
            index = [i for i, r in enumerate(test) if r["label"] == group]
            scored += sorted(random.Random(config.seed).sample(index, min(len(index), config.genre.test_per_group)))
        for genre in sorted(g for g in set(by_group) | set(groups) if g != OTHER):
            index = [i for i, r in enumerate(test) if r["label"] == genre]
            if len(index) < 2:
                notes[genre] = f"the dataset's test split has {len(index)} passages of {genre}; closeness needs at least 2"
                continue
            chosen = sorted(random.Random(config.seed).sample(index, min(len(index), config.genre.reference_per_genre)))
            held_out[genre] = [test[i]["response"] for i in chosen]
        vectors = embed_windows([test[i]["response"] for i in scored]) if scored else None
        train_books = {r.get("book_id") for r in train}
        test_books = sorted({test[i].get("book_id") for i in scored} - {None})
        report = {"trained_on": len(sample), "test_books": test_books,
                  # The headline: with split.holdout_books no test passage comes from a book the classifier saw.
                  "unseen_books": bool(test_books) and not (set(test_books) & train_books),
                  "embedding": "all-MiniLM-L6-v2, mean of 256-token windows",
                  **classifier.accuracy([test[i]["response"] for i in scored], [test[i]["label"] for i in scored], vectors)}
        summary = {"genre_classifier": report, "closeness_passages": {g: len(v) for g, v in held_out.items()}, "closeness_errors": notes,
                   "dataset": str(dataset)}
        return cls(classifier, held_out, summary)

    def save(self, folder: str | Path) -> Path:
        """Write into a temporary folder, then rename: a reader never sees half a reference."""
        import shutil

        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.classifier.save(tmp)
        (tmp / CLOSENESS).write_text(json.dumps(self.held_out, indent=1) + "\n")
        (tmp / SUMMARY).write_text(json.dumps(self.summary, indent=2) + "\n")
        if folder.exists():
            # KFP creates an output artifact's folder before the task runs; fill it in place.
            for item in tmp.iterdir():
                item.replace(folder / item.name)
            tmp.rmdir()
        else:
            tmp.replace(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Reference":
        folder = Path(folder)
        if not (folder / SUMMARY).is_file():
            raise TaletuneError(f"{folder} is not an evaluation reference (no {SUMMARY}); build it with `python -m components.evaluate.reference`")
        held_out = json.loads((folder / CLOSENESS).read_text()) if (folder / CLOSENESS).is_file() else {}
        return cls(GenreClassifier.load(folder), held_out, json.loads((folder / SUMMARY).read_text()))


def build_reference(dataset: str | Path, config: EvaluateConfig, out: str | Path) -> dict:
    """Build (or reuse, when the same dataset, settings and code built one before) and save."""
    import hashlib
    import logging

    from components.common import storage
    from components.common.provenance import code_version, folder_digest, write_run_record
    from components.evaluate.stage import results_root

    settings = config.model_dump(include={"genre", "seed"})
    blob = json.dumps([folder_digest(Path(dataset) / "data"), settings, code_version("components.evaluate", "components.common")], sort_keys=True)
    kept = storage.join(results_root(config), "references", hashlib.sha256(blob.encode()).hexdigest()[:16])
    if storage.exists(storage.join(kept, SUMMARY)):
        logging.getLogger(__name__).info("reused: the reference for this dataset was built already (%s); nothing embedded", kept)
        storage.copy_prefix(kept, str(out))
        write_run_record(out, reused=True)
        return {**json.loads((Path(out) / SUMMARY).read_text()), "reused": True}
    reference = Reference.build(dataset, config)
    reference.summary["provenance"] = provenance(config.model_dump(), config.seed)
    reference.save(out)
    names = sorted(p.name for p in Path(out).iterdir() if p.is_file())
    for name in sorted(names, key=lambda n: n == SUMMARY):  # the summary last: it marks the reference whole
        storage.write_bytes(storage.join(kept, name), (Path(out) / name).read_bytes())
    write_run_record(out, reused=False)
    return {**reference.summary, "reused": False}


@main_guard
def main(argv: list[str] | None = None) -> None:
    from components.common.cli import add_config_args, setup_logging
    from components.common.config import load_config

    parser = argparse.ArgumentParser(prog="python -m components.evaluate.reference", description=__doc__.split("\n")[0])
    parser.add_argument("dataset", help="the dataset stage's output folder")
    parser.add_argument("--out", required=True, help="output folder")
    add_config_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    summary = build_reference(args.dataset, load_config(EvaluateConfig, args.config, args.overrides), args.out)
    report = summary["genre_classifier"]
    print(f"genre classifier: accuracy {report['accuracy']} on {report['n']} test passages {report['by_label']}; reference in {args.out}")


if __name__ == "__main__":
    main()
