"""The dataset's Parquet files: their columns, one writer and one reader.

    rows = read_rows("runs/.../dataset/data/train.parquet", needs=("prompt", "response", "label"))

Every stage that reads the dataset stage's splits goes through `read_rows`, so a
truncated or corrupt file, or one without the columns a stage needs, is one
`TaletuneError` naming the file, what is wrong and how to rebuild it, instead of a
pyarrow traceback. `write_parquet` writes a split atomically: into a temporary file
beside the target, synced and renamed over it only once whole, and removed on any
failure (a full disk included), so a good file from an earlier run is never left half
overwritten.
"""

from __future__ import annotations

from pathlib import Path

from components.common.errors import TaletuneError


def features():
    """The columns of every split, as `datasets` features (its Parquet metadata keeps them)."""
    from datasets import Features, Value

    return Features(
        {
            "prompt": Value("string"),
            "response": Value("string"),
            "label": Value("string"),
            "text": Value("string"),
            "book_id": Value("string"),
            "book_title": Value("string"),
            "position": Value("int32"),
            "section": Value("int32"),
            "lines": Value("int32"),
        }
    )


def rebuild_hint(path: Path) -> str:
    """How to make a split again: the dataset folder is the parent of `data/`."""
    folder = path.parent.parent if path.parent.name == "data" else path.parent
    return f"rebuild the dataset with `python -m components.dataset --books BOOKS --out {folder}` (BOOKS: the ingest stage's folder)"


# ---------------------------------------------------------------- reading


def read_rows(path: str | Path, needs: tuple[str, ...] = ()) -> list[dict]:
    """Every row of a split, after checking the file opens and has the `needs` columns as text."""
    path = Path(path)
    if not path.is_file():
        raise TaletuneError(f"{path} does not exist; pass the dataset stage's output folder, or {rebuild_hint(path)}")
    table = _read_table(path)
    _check_columns(path, table.schema, needs)
    return table.to_pylist()


def read_split(dataset_dir: str | Path, split: str, needs: tuple[str, ...] = ()) -> list[dict]:
    """Every row of `<dataset>/data/<split>.parquet`. A split the dataset stage left empty
    (`split.validation: 0`) has no file, since `load_dataset` refuses a folder holding an
    empty split; its `stats.json` says 0 rows, and it reads as no rows."""
    path = Path(dataset_dir) / "data" / f"{split}.parquet"
    if not path.is_file() and _empty_in_stats(Path(dataset_dir), split):
        return []
    return read_rows(path, needs)


def _empty_in_stats(dataset_dir: Path, split: str) -> bool:
    import json

    try:
        return json.loads((dataset_dir / "stats.json").read_text())["total"][split] == 0
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _read_table(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # The whole file is read here: a bad footer fails on open, a bad page on decode.
        return pq.read_table(path)
    except PermissionError:
        raise TaletuneError(f"cannot read {path}: permission denied; make it readable for this user") from None
    except (pa.ArrowException, OSError) as exc:
        raise TaletuneError(
            f"{path} is not a readable Parquet file ({_reason(exc)}); it is truncated or corrupt: {rebuild_hint(path)}"
        ) from None


def _reason(exc: Exception) -> str:
    """pyarrow's explanation on one line, without the path it repeats."""
    text = " ".join(str(exc).split())
    if text.startswith("Could not open Parquet input source") and "': " in text:
        text = text.split("': ", 1)[1]
    text = text.split(". Either the file is corrupted")[0].rstrip(".")
    return text[:200] or type(exc).__name__


def _check_columns(path: Path, schema, needs: tuple[str, ...]) -> None:
    """Missing columns, or columns of numbers where text belongs, are named together."""
    missing = [c for c in needs if c not in schema.names]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise TaletuneError(f"{path} has no {', '.join(missing)} column{plural}; {rebuild_hint(path)}")
    wrong = [f"{c} ({schema.field(c).type})" for c in needs if not _is_text(schema.field(c).type)]
    if wrong:
        raise TaletuneError(f"{path} has columns that should hold text but do not: {', '.join(wrong)}; {rebuild_hint(path)}")


def _is_text(kind) -> bool:
    import pyarrow as pa

    # A column of nulls counts: a split of only `other` passages has no prompts.
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


# ---------------------------------------------------------------- writing


def write_parquet(rows: list[dict], path: str | Path) -> None:
    """Write one split atomically and durably (`storage.atomic_file`): a failure, a full
    disk included, leaves the earlier file (if any) as it was and no temp file."""
    import datasets

    from components.common import storage

    datasets.disable_progress_bars()
    schema = features()
    # An empty split is a table with the columns and no rows; `from_list([])` would give
    # one with no columns, which datasets refuses.
    table = datasets.Dataset.from_list(rows, features=schema) if rows else datasets.Dataset.from_dict({k: [] for k in schema}, features=schema)
    try:
        with storage.atomic_file(Path(path)) as fh:
            table.to_parquet(fh)
    except OSError as exc:  # not a full disk (storage names that): a folder that cannot be written
        raise TaletuneError(f"cannot write {path}: {exc.strerror or exc}; pick a writable --out, then run the stage again") from None
