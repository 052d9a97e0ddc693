"""Story sets to evaluate: the generate stage's `stories.jsonl`, or a dataset's passages.

    name, records, notes = read_set("runs/.../generate-4/stories/stories.jsonl")

A dataset folder (the dataset stage's output) gives its training passages of every
genre as one set, "the original training data" in the reference study's words, so
generated stories can be compared with what the model was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.common.errors import TaletuneError

UNLABELLED = "unlabelled"


def read_set(source: str | Path, per_genre: int | None = None, seed: int = 42) -> tuple[str, list[dict], list[str]]:
    """(set name, records with genre and text, notes on what was odd in the input).

    A dataset's passages are sampled (seeded) to `per_genre` per genre, so the training
    data is measured at the size of a story set: distinct-n and self-BLEU depend on it.
    """
    path = Path(source)
    if (path / "data" / "train.parquet").is_file():
        return _dataset(path, per_genre, seed)
    if path.is_dir() and (path / "stories.jsonl").is_file():
        path = path / "stories.jsonl"
    if not path.is_file():
        raise TaletuneError(f"{source} is neither a stories.jsonl file nor a dataset folder; pass the generate or dataset stage's output")
    return _stories(path)


def _dataset(folder: Path, per_genre: int | None, seed: int) -> tuple[str, list[dict], list[str]]:
    import random

    from components.common.parquet import read_rows

    rows = read_rows(folder / "data" / "train.parquet", needs=("prompt", "response", "label"))
    by_genre: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("prompt") and r.get("response"):
            by_genre.setdefault(r["label"], []).append({"genre": r["label"], "text": r["response"]})
    notes, records = [], []
    for genre, chosen in sorted(by_genre.items()):
        if per_genre and len(chosen) > per_genre:
            notes.append(f"{per_genre} of the {len(chosen)} {genre} training passages, sampled with seed {seed}")
            chosen = random.Random(seed).sample(chosen, per_genre)
        records += chosen
    return "training data", records, notes


def _stories(path: Path) -> tuple[str, list[dict], list[str]]:
    records, notes, header = [], [], {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise TaletuneError(f"{path} line {number} is not JSON; give a JSONL file (one JSON object a line), "
                                    "such as the generate stage's stories.jsonl") from None
            if not isinstance(record, dict):
                raise TaletuneError(f"{path} line {number} is not a JSON object")
            if record.get("type") == "header":
                header = record
                continue
            if "text" not in record:
                raise TaletuneError(f"{path} line {number} has no `text`; each story record needs `text` and `genre`")
            records.append(record)
    missing = sum(1 for r in records if not r.get("genre"))
    if missing:
        notes.append(f"{missing} of {len(records)} records have no genre; they count as '{UNLABELLED}' and only in the overall figures")
        for r in records:
            r["genre"] = r.get("genre") or UNLABELLED
    level = header.get("level", records[0].get("level") if records else None)
    name = f"{header.get('model') or (records[0].get('model') if records else None) or path.parent.name} level {level}" if level is not None else path.stem
    return name, records, notes


def read_identity(source: str | Path) -> dict:
    """What a set is, as structured fields: the training data, or a model at a level
    (with its prompt format and the level's training figures, from the stories' header)."""
    path = Path(source)
    if (path / "data" / "train.parquet").is_file():
        return {"kind": "training_data", "model": None, "level": None, "format": None, "training": None}
    if path.is_dir():
        path = path / "stories.jsonl"
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    try:
        header = json.loads(first) if first.strip() else {}
    except json.JSONDecodeError:
        header = {}
    if not isinstance(header, dict) or header.get("type") != "header":
        header = {}
    return {"kind": "stories", **{k: header.get(k) for k in ("model", "level", "format", "training")}}
