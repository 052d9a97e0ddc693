"""The dataset stage on real mirrored books: labels, splits without leakage, determinism."""

import hashlib
import json

import pytest

from components.common.errors import TaletuneError
from components.dataset.config import DatasetConfig
from components.dataset.stage import run_dataset
from components.common.catalog import load_catalog
from components.ingest.config import IngestConfig
from components.ingest.stage import run_ingest

CATALOG = {
    "genres": {
        "horror": {"prompt": "Write me a horror story", "books": [1952, 43]},
        "fairy_tale": {"prompt": "Write me a fairy tale", "books": [7074, 29021]},
    },
    "other": {"books": [1661]},
}


@pytest.fixture(scope="module")
def books(mirror, tmp_path_factory):
    out = tmp_path_factory.mktemp("books")
    cache = tmp_path_factory.mktemp("cache")
    run_ingest(load_catalog(CATALOG), IngestConfig(cache=str(cache), mirror=str(mirror), offline=True), out)
    return out


def load(out):
    from datasets import load_dataset

    return load_dataset("parquet", data_dir=str(out / "data"))


def test_rows_labels_and_text(books, tmp_path):
    stats = run_dataset(books, DatasetConfig(), tmp_path)
    ds = load(tmp_path)
    assert set(ds) == {"train", "validation", "test"}
    assert ds["train"].column_names == ["prompt", "response", "label", "text", "book_id", "book_title", "position", "section", "lines"]
    horror = ds["train"].filter(lambda r: r["label"] == "horror")[0]
    assert horror["prompt"] == "Write me a horror story"
    assert horror["text"] == f"### Human: Write me a horror story \n ### Assistant: {horror['response']} \n"
    assert 10 <= horror["lines"] <= 50
    other = ds["train"].filter(lambda r: r["label"] == "other")
    assert len(other) and other[0]["prompt"] is None and other[0]["text"] is None
    assert sum(stats["total"].values()) == sum(len(ds[s]) for s in ds)
    sheet = (tmp_path / "datasheet.md").read_text()
    assert "| horror |" in sheet and "The Yellow Wallpaper" in sheet
    assert json.loads((tmp_path / "provenance.json").read_text())["seed"] == 42


def test_no_passage_in_two_splits(books, tmp_path):
    run_dataset(books, DatasetConfig(), tmp_path)
    ds = load(tmp_path)
    seen = {}
    for split in ds:
        for row in ds[split]:
            key = (row["book_id"], row["position"])
            assert key not in seen, f"{key} in {seen.get(key)} and {split}"
            seen[key] = split
    responses = [r for s in ds for r in ds[s]["response"]]
    assert len(responses) == len(set(responses))


def test_near_duplicates_are_removed(books, tmp_path):
    # A book that repeats another's text with small changes adds no rows.
    copy = (books / "books" / "1952.txt").read_text().replace("John", "Jon")
    dup = tmp_path / "books"
    (dup / "books").mkdir(parents=True)
    manifest = json.loads((books / "manifest.json").read_text())
    for entry in manifest["books"]:
        (dup / "books" / f"{entry['key']}.txt").write_text((books / "books" / f"{entry['key']}.txt").read_text())
    (dup / "books" / "copy.txt").write_text(copy)
    manifest["books"].append({**manifest["books"][0], "key": "copy", "title": "Copy"})
    (dup / "manifest.json").write_text(json.dumps(manifest))
    (dup / "catalog.yaml").write_text((books / "catalog.yaml").read_text())
    stats = run_dataset(dup, DatasetConfig(), tmp_path / "out")
    assert stats["books"]["copy"]["passages"] > 0
    assert stats["books"]["copy"]["near_duplicates"] + stats["books"]["copy"]["exact_duplicates"] == stats["books"]["copy"]["passages"]


def test_holdout_books_go_whole_to_test(books, tmp_path):
    config = DatasetConfig(split={"holdout_books": [1952, 7074]})
    run_dataset(books, config, tmp_path)
    ds = load(tmp_path)
    assert set(ds["test"]["book_id"]) == {"1952", "7074"}
    assert not {"1952", "7074"} & set(list(ds["train"]["book_id"]) + list(ds["validation"]["book_id"]))
    with pytest.raises(TaletuneError, match="not in the books"):
        run_dataset(books, DatasetConfig(split={"holdout_books": [4242]}), tmp_path / "x")


def test_the_row_cap_leaves_held_out_books_whole(books, tmp_path):
    whole = run_dataset(books, DatasetConfig(split={"holdout_books": [1952, 7074]}), tmp_path / "a")
    capped = run_dataset(books, DatasetConfig(max_rows_per_genre=10, split={"holdout_books": [1952, 7074]}), tmp_path / "b")
    assert capped["rows"]["test"] == whole["rows"]["test"] and sum(whole["rows"]["test"].values()) > 2 * 10 / 2
    for label in ("horror", "fairy_tale"):
        assert capped["rows"]["train"][label] + capped["rows"]["validation"].get(label, 0) == 10, "the cap counts only the other books"


def test_same_inputs_and_seed_give_byte_identical_output(books, tmp_path):
    def digest(out):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*")) if p.is_file()}

    run_dataset(books, DatasetConfig(max_rows_per_genre=30), tmp_path / "a")
    run_dataset(books, DatasetConfig(max_rows_per_genre=30), tmp_path / "b")
    run_dataset(books, DatasetConfig(max_rows_per_genre=30, seed=7), tmp_path / "c")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["train.parquet"] != digest(tmp_path / "c")["train.parquet"]


def test_row_cap_per_genre(books, tmp_path):
    stats = run_dataset(books, DatasetConfig(max_rows_per_genre=20), tmp_path)
    for label in ("horror", "fairy_tale", "other"):
        assert sum(stats["rows"][s].get(label, 0) for s in stats["rows"]) == 20


def test_empty_validation_and_test_splits_load_and_read_as_no_rows(books, tmp_path):
    from components.common.parquet import read_split
    from components.evaluate.reference import passages

    run_dataset(books, DatasetConfig(), tmp_path)  # an earlier run's splits in the same folder
    stats = run_dataset(books, DatasetConfig.model_validate({"split": {"validation": 0, "test": 0}}), tmp_path)
    assert stats["total"]["validation"] == stats["total"]["test"] == 0 and stats["total"]["train"] > 0
    assert set(load(tmp_path)) == {"train"}, "load_dataset takes the folder (it refuses an empty split file)"
    assert read_split(tmp_path, "validation", needs=("label", "response")) == [] and passages(tmp_path, "test") == []
    assert len(read_split(tmp_path, "train")) == stats["total"]["train"]


def test_falcon_template(books, tmp_path):
    run_dataset(books, DatasetConfig(template="falcon"), tmp_path)
    row = load(tmp_path)["train"].filter(lambda r: r["label"] == "fairy_tale")[0]
    assert row["text"] == f"<human> Write me a fairy tale\n<assistant> {row['response']}"


def test_missing_manifest(tmp_path):
    with pytest.raises(TaletuneError, match="no manifest.json"):
        run_dataset(tmp_path, DatasetConfig(), tmp_path / "out")
