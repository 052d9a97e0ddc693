"""`datasheet.md`: what is in the dataset, where it came from, and what was removed."""

from __future__ import annotations

from pathlib import Path

from components.common import storage
from components.dataset.config import DatasetConfig

# The reference study's row counts, for comparison (50-line passages).
REFERENCE_ROWS = {"horror": 994, "fairy_tale": 1336}


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_datasheet(path: Path, stats: dict, manifest: dict, config: DatasetConfig) -> None:
    labels = sorted({label for split in stats["rows"].values() for label in split})
    split_rows = []
    for label in labels:
        counts = [stats["rows"][s].get(label, 0) for s in ("train", "validation", "test")]
        split_rows.append([label, *counts, sum(counts), REFERENCE_ROWS.get(label, "")])
    split_rows.append(["**all**", *(stats["total"][s] for s in ("train", "validation", "test")), sum(stats["total"].values()), ""])

    book_rows = []
    for entry in manifest["books"]:
        b = stats["books"].get(entry["key"], {})
        removed = sum(entry["removed"].values())
        book_rows.append(
            [
                entry["key"],
                entry["title"],
                entry["group"],
                f"{entry['chars']:,}",
                f"{removed:,}",
                ", ".join(sorted(k for k in entry["removed"] if k not in ("header", "licence"))) or "-",
                b.get("passages", 0),
                b.get("exact_duplicates", 0) + b.get("near_duplicates", 0),
            ]
        )
    dupes = stats["duplicates"]
    text = f"""# Datasheet

Passages of {config.lines_per_passage} lines or fewer (never crossing a heading or scene
break; fragments under {config.min_lines} lines dropped), labelled by genre. `text` is
rendered with the `{config.template}` template; rows of the `other` group have no prompt
and no `text`: they are negatives for the genre classifier and are never trained on.

Load it with:

```python
from datasets import load_dataset
ds = load_dataset("parquet", data_dir="data")
```

## Rows per split

{_table(["label", "train", "validation", "test", "total", "reference study"], split_rows)}

Seed {config.seed}; validation share {config.split.validation}, test share {config.split.test}
(per label); held-out books (all in test): {", ".join(config.split.holdout_books) or "none"}.
Rows capped per genre: {stats["capped"] or "no cap"}.

## Leakage

Each passage is in exactly one split. Before splitting, {dupes.get("exact", 0)} exact and
{dupes.get("near", 0)} near duplicates (MinHash Jaccard over word 5-grams at or above
{config.near_duplicate_threshold}) were removed, keeping the first occurrence.

## Books and cleaning

Characters kept after cleaning, characters removed (header, licence, front and back
matter, illustrations, footnotes), what besides the licence was removed, passages cut,
and duplicates dropped.

{_table(["book", "title", "group", "kept", "removed", "removed besides licence", "passages", "duplicates"], book_rows)}
"""
    storage.write_text(str(path), text)
