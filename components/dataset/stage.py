"""The dataset stage: cleaned books in, a Hugging Face dataset (Parquet per split) out.

    python -m components.dataset --books books/ --out data/

Writes `<out>/data/{train,validation,test}.parquet`, `<out>/datasheet.md`,
`<out>/stats.json` and `provenance.json`. Load it with
`datasets.load_dataset("parquet", data_dir="<out>/data")`. The same books, config and
seed give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path

from components.common import storage
from components.common.errors import TaletuneError
from components.common.parquet import write_parquet
from components.common.provenance import write_provenance
from components.dataset.chunk import chunk_text
from components.dataset.config import DatasetConfig
from components.dataset.datasheet import write_datasheet
from components.dataset.dedupe import duplicates
from components.common.prompts import render
from components.common.catalog import Catalog, load_catalog

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# What this stage and the datasheet read of each manifest entry, checked before any work
# so a damaged manifest fails at once, not after the splits are written.
ENTRY_FIELDS = {"key": str, "group": str, "title": str, "chars": int, "removed": dict}


def run_dataset(books_dir: str | Path, config: DatasetConfig, out_dir: str | Path, catalog: Catalog | None = None) -> dict:
    """Cut, de-duplicate, cap and split; write the splits and the datasheet. Returns the stats."""
    books_dir, out = Path(books_dir), Path(out_dir)
    manifest = _read_manifest(books_dir)
    catalog = catalog or load_catalog(str(books_dir / "catalog.yaml"))
    if config.template == "chat":
        render("chat", "", "")  # fails with the explanation before any work

    rows, per_book = cut_books(books_dir, manifest, catalog, config)
    dupes = duplicates([r["response"] for r in rows], threshold=config.near_duplicate_threshold)
    for i, (kind, _) in dupes.items():
        per_book[rows[i]["book_id"]][f"{kind}_duplicates"] += 1
    rows = [r for i, r in enumerate(rows) if i not in dupes]
    # Held-out books stay whole: the cap thins only the books that training draws from.
    rows, capped = cap_rows(rows, config.max_rows_per_genre, config.seed, keep_books=set(config.split.holdout_books))
    splits = split_rows(rows, config)

    for name in SPLITS:
        path = out / "data" / f"{name}.parquet"
        if splits[name]:
            write_parquet(splits[name], path)
        else:  # `load_dataset` refuses a folder holding an empty split file; stats.json says it has no rows
            path.unlink(missing_ok=True)
    stats = {
        "rows": {name: dict(sorted(Counter(r["label"] for r in splits[name]).items())) for name in SPLITS},
        "total": {name: len(splits[name]) for name in SPLITS},
        "duplicates": dict(Counter(kind for kind, _ in dupes.values())),
        "capped": capped,
        "books": per_book,
        "holdout_books": config.split.holdout_books,
        "template": config.template,
        "lines_per_passage": config.lines_per_passage,
    }
    storage.write_text(str(out / "stats.json"), json.dumps(stats, indent=2, sort_keys=True) + "\n")
    write_datasheet(out / "datasheet.md", stats, manifest, config)
    write_provenance(out, {"dataset": config.model_dump()}, seed=config.seed)
    log.info("rows: %s", stats["total"])
    return stats


def _read_manifest(books_dir: Path) -> dict:
    """The ingest stage's manifest, checked whole before any work: it parses, every entry
    has what the stage reads, and every book file it lists is there."""
    path = books_dir / "manifest.json"
    if not path.is_file():
        raise TaletuneError(
            f"{books_dir} has no manifest.json; make the books folder with `python -m components.ingest fetch --out {books_dir}`"
        )
    manifest = _parse_manifest(path, _refetch_hint(books_dir))
    missing = [f"books/{e['key']}.txt" for e in manifest["books"] if not (books_dir / "books" / f"{e['key']}.txt").is_file()]
    if missing:
        raise TaletuneError(
            f"{path} lists books whose files are missing from {books_dir}: {', '.join(missing)}; {_refetch_hint(books_dir)}"
        )
    return manifest


def _refetch_hint(books_dir: Path) -> str:
    # The catalog saved beside the books makes the same folder again (cached books are not re-downloaded).
    return f"write the books folder again with `python -m components.ingest fetch --catalog {books_dir / 'catalog.yaml'} --out {books_dir}`"


def _parse_manifest(path: Path, hint: str) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise TaletuneError(f"{path} is not UTF-8 text, so it is corrupt; {hint}") from None
    except json.JSONDecodeError as exc:
        raise TaletuneError(
            f"{path} is not valid JSON ({exc.msg}: line {exc.lineno}, column {exc.colno}); it is corrupt or truncated: {hint}"
        ) from None
    books = manifest.get("books") if isinstance(manifest, dict) else None
    if not isinstance(books, list):
        raise TaletuneError(f"{path} has no list of books under \"books\", so it is not an ingest manifest; {hint}")
    for number, entry in enumerate(books, start=1):
        fields = entry if isinstance(entry, dict) else {}
        absent = [k for k, kind in ENTRY_FIELDS.items() if not isinstance(fields.get(k), kind)]
        if absent:
            raise TaletuneError(f"{path}: book {number} of the manifest has no valid {', '.join(absent)}; {hint}")
    return manifest


def _read_book(books_dir: Path, key: str) -> str:
    path = books_dir / "books" / f"{key}.txt"
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TaletuneError(f"{path} is not UTF-8 text, so it is corrupt; {_refetch_hint(books_dir)}") from None


def cut_books(books_dir: Path, manifest: dict, catalog: Catalog, config: DatasetConfig) -> tuple[list[dict], dict]:
    """Every passage of every book, as a row, in catalog order; and per-book counts."""
    groups = catalog.groups()
    rows: list[dict] = []
    per_book: dict[str, Counter] = {}
    for entry in manifest["books"]:
        group = entry["group"]
        if group not in groups:
            raise TaletuneError(f"book {entry['key']} belongs to {group!r}, which the catalog does not list")
        text = _read_book(books_dir, entry["key"])
        passages = chunk_text(text, config.lines_per_passage, config.min_lines)
        per_book[entry["key"]] = Counter(passages=len(passages), exact_duplicates=0, near_duplicates=0)
        prompt = catalog.prompt(group)
        for position, passage in enumerate(passages):
            rows.append(
                {
                    "prompt": prompt,
                    "response": passage.text,
                    "label": group,
                    "text": render(config.template, prompt, passage.text) if prompt is not None else None,
                    "book_id": entry["key"],
                    "book_title": entry["title"],
                    "position": position,
                    "section": passage.section,
                    "lines": passage.lines,
                }
            )
    for genre in catalog.genres:
        if not any(r["label"] == genre for r in rows):
            raise TaletuneError(
                f"genre {genre!r} has no passages; its books are too short for lines_per_passage={config.lines_per_passage}"
            )
    return rows, {k: dict(v) for k, v in per_book.items()}


def cap_rows(rows: list[dict], cap: int | None, seed: int, keep_books: set[str] = frozenset()) -> tuple[list[dict], dict]:
    """At most `cap` rows per label, a seeded sample that keeps catalog order; the rows of
    `keep_books` are all kept and not counted."""
    if cap is None:
        return rows, {}
    keep: set[int] = {i for i, row in enumerate(rows) if row["book_id"] in keep_books}
    capped = {}
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if i not in keep:
            by_label.setdefault(row["label"], []).append(i)
    for label, idx in by_label.items():
        if len(idx) > cap:
            capped[label] = len(idx) - cap
            idx = random.Random(f"{seed}-cap-{label}").sample(idx, cap)
        keep.update(idx)
    return [r for i, r in enumerate(rows) if i in keep], capped


def split_rows(rows: list[dict], config: DatasetConfig) -> dict[str, list[dict]]:
    """Held-out books go to test; the rest is split per label by a seeded shuffle."""
    holdout = set(config.split.holdout_books)
    known = {r["book_id"] for r in rows}
    missing = sorted(holdout - known)
    if missing:
        raise TaletuneError(f"split.holdout_books lists {', '.join(missing)}, which are not in the books")
    splits: dict[str, list[int]] = {name: [] for name in SPLITS}
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row["book_id"] in holdout:
            splits["test"].append(i)
        else:
            by_label.setdefault(row["label"], []).append(i)
    for label, idx in sorted(by_label.items()):
        idx = idx[:]
        random.Random(f"{config.seed}-split-{label}").shuffle(idx)
        n_test = 0 if holdout else round(len(idx) * config.split.test)
        n_val = round(len(idx) * config.split.validation)
        splits["test"] += idx[:n_test]
        splits["validation"] += idx[n_test : n_test + n_val]
        splits["train"] += idx[n_test + n_val :]
    return {name: [rows[i] for i in sorted(idx)] for name, idx in splits.items()}
