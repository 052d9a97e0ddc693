"""Training rows to token ids, with the loss on the response only.

Each row's prompt and response are rendered in the model's prompt format
(components.common.prompts): the prompt part is masked (label -100), and the response
is followed by EOS (or the format's end of turn), so the model learns to stop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path


IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def read_split(dataset_dir: str | Path, split: str) -> list[dict]:
    """Rows of a split that have a prompt (the `other` group is never trained on).

    Read before any model loads: a truncated file or a missing column fails in seconds
    and leaves the levels trained before untouched."""
    from components.common.parquet import read_split as read_parquet_split

    rows = read_parquet_split(dataset_dir, split, needs=("prompt", "response", "label"))
    return [row for row in rows if row.get("prompt") and row.get("response")]


def cap_per_genre(rows: list[dict], cap: int | None, seed: int) -> list[dict]:
    if cap is None:
        return rows
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_label.setdefault(row["label"], []).append(i)
    keep = set()
    for label, idx in sorted(by_label.items()):
        keep.update(idx if len(idx) <= cap else random.Random(f"{seed}-train-{label}").sample(idx, cap))
    return [r for i, r in enumerate(rows) if i in keep]


def encode(row: dict, tokenizer, block_size: int, fmt: str = "llama") -> Example:
    from components.common.prompts import encode_pair

    head, body = encode_pair(fmt, row["prompt"], row["response"], tokenizer)
    ids = (head + body)[:block_size]
    labels = ([IGNORE] * len(head) + body)[:block_size]
    return Example(ids, labels)


def pack(examples: list[Example], block_size: int) -> list[Example]:
    """Concatenate examples into full blocks (no padding); masks travel with the tokens."""
    ids: list[int] = []
    labels: list[int] = []
    out = []
    for ex in examples:
        ids += ex.input_ids
        labels += ex.labels
        while len(ids) >= block_size:
            out.append(Example(ids[:block_size], labels[:block_size]))
            ids, labels = ids[block_size:], labels[block_size:]
    return out


def batches(order: list[int], examples: list[Example], batch_size: int, group: int = 16) -> list[list[int]]:
    """Batches of example indices in `order`, grouped by length to cut padding.

    Within each window of `group` batches the rows are sorted by length, then the
    batches are kept in window order: close to the shuffled order, little padding.
    """
    out = []
    window = batch_size * group
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(examples[i].input_ids))
        out += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    return out


def collate(items: list[Example], pad_id: int):
    import torch

    width = max(len(ex.input_ids) for ex in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, ex in enumerate(items):
        n = len(ex.input_ids)
        ids[row, :n] = torch.tensor(ex.input_ids)
        labels[row, :n] = torch.tensor(ex.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
