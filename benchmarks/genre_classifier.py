"""The genre classifier on whole books it never saw, for many choices of held-out books.

    TALETUNE_GUTENBERG_MIRROR=../shared/gutenberg NLTK_DATA=../shared/nltk_data \
        .venv/bin/python benchmarks/genre_classifier.py [--openings]

Cuts every book of the default catalog into passages as the dataset stage does (no split),
embeds each passage once as the reference does (all-MiniLM-L6-v2, the mean of its
256-token windows; about 7 minutes on 2 cores, kept in `--work`), then for each
choice of held-out books trains the classifier on the passages of every other book and
prints its balanced accuracy on the held-out books' passages: with every training
passage and with 150 per group, at C=1 and C=4. `--openings` adds the same with only
each passage's first 256 tokens embedded, the reference's earlier recipe.

Only genre books are held out: the catalog's `other` group has two books, and with one
of them held out, `other` is described by a single novel (with Sherlock Holmes held
out, 5% of its passages were called `other`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HOLDOUTS = [["7074", "29021", "1952", "43"], ["7439", "84"], ["500", "53419"], ["29021", "7074", "17893", "1952"],
            ["7439", "29021", "84", "43"], ["2591", "345"], ["1597", "15143"], ["128", "17893"], ["503", "84"]]


def passages(work: Path) -> list[dict]:
    from components.common.catalog import load_catalog
    from components.dataset.config import DatasetConfig
    from components.dataset.dedupe import duplicates
    from components.dataset.stage import _read_manifest, cut_books
    from components.ingest.config import IngestConfig
    from components.ingest.stage import run_ingest

    catalog = load_catalog("default")
    if not (work / "books" / "manifest.json").is_file():
        run_ingest(catalog, IngestConfig(), work / "books")
    config = DatasetConfig()
    rows, _ = cut_books(work / "books", _read_manifest(work / "books"), catalog, config)
    dupes = duplicates([r["response"] for r in rows], threshold=config.near_duplicate_threshold)  # as the dataset stage drops them
    return [r for i, r in enumerate(rows) if i not in dupes and r["response"]]


def vectors(rows: list[dict], work: Path, name: str, fn):
    import numpy as np

    path = work / f"{name}.npy"
    if path.is_file() and len(np.load(path)) == len(rows):
        return np.load(path)
    out = fn([r["response"] for r in rows])
    np.save(path, out)
    return out


def balanced(v, labels, books, held_out: list[str], per_group: int | None, c: float, seed: int = 42) -> float:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    test = np.isin(books, held_out)
    train = []
    for group in sorted(set(labels)):
        index = np.where(~test & (labels == group))[0]
        train += list(rng.choice(index, min(per_group or len(index), len(index)), replace=False))
    predicted = LogisticRegression(max_iter=3000, C=c).fit(v[train], labels[train]).predict(v[test])
    return float(np.mean([(predicted[labels[test] == g] == g).mean() for g in sorted(set(labels[test]))]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="runs/genre-classifier", help="where the passages' embeddings are kept")
    parser.add_argument("--openings", action="store_true", help="also embed only each passage's first 256 tokens")
    args = parser.parse_args()

    import numpy as np

    from components.evaluate.embed import embed, embed_windows

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = passages(work)
    labels, books = np.array([r["label"] for r in rows]), np.array([r["book_id"] for r in rows])
    kinds = {"windows": vectors(rows, work, "windows", embed_windows)}
    if args.openings:
        kinds["first 256 tokens"] = vectors(rows, work, "openings", embed)
    print(f"{len(rows)} passages of {len(set(books))} books")
    settings = [(None, 1.0), (None, 4.0), (150, 1.0), (150, 4.0)]
    names = [f"{p or 'all'}/C={c:g}" for p, c in settings]
    print(f"{'embedding':<17} {'held out':<28} " + " ".join(f"{n:>10}" for n in names))
    for kind, v in kinds.items():
        table = [[balanced(v, labels, books, held, p, c) for p, c in settings] for held in HOLDOUTS]
        for held, scores in zip(HOLDOUTS, table):
            print(f"{kind:<17} {','.join(held):<28} " + " ".join(f"{s:>10.3f}" for s in scores))
        means = np.mean(table, axis=0)
        print(f"{kind:<17} {'mean':<28} " + " ".join(f"{m:>10.3f}" for m in means))


if __name__ == "__main__":
    main()
