"""Bad input the user can fix: one `error:` line naming the file, the problem and the fix.

Covered: a corrupt or truncated Parquet split; a split without `label` or `response`;
a damaged ingest `manifest.json`; a book file the manifest lists but that is gone; a
config path that is a folder or not UTF-8; a config on S3 read with wrong credentials.
Each fails before any work, and what earlier runs finished stays as it was.
"""

import errno
import hashlib
import json
import urllib.request
from pathlib import Path

import pytest

from components.common.errors import TaletuneError
from tests.conftest import moto_server, run_cli

ROWS = [{"prompt": "Write me a horror story", "response": "the night was dark", "label": "horror", "text": None,
         "book_id": "1952", "book_title": "T", "position": i, "section": 0, "lines": 3} for i in range(4)]


def assert_one_clear_error(result, *needles):
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def digest(folder: Path) -> dict:
    """Every file below `folder` and its hash: what must survive a failed run unchanged."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A small, valid dataset folder (data/{train,validation,test}.parquet)."""
    from components.dataset.stage import write_parquet

    folder = tmp_path_factory.mktemp("dataset")
    for split in ("train", "validation", "test"):
        write_parquet(ROWS, folder / "data" / f"{split}.parquet")
    return folder


def copy_dataset(dataset: Path, to: Path) -> Path:
    (to / "data").mkdir(parents=True)
    for file in (dataset / "data").iterdir():
        (to / "data" / file.name).write_bytes(file.read_bytes())
    return to


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]  # a copy or a download cut short: no footer


def flipped(data: bytes) -> bytes:
    """The footer intact, the pages garbage: only reading the rows finds it."""
    body = bytearray(data)
    for i in range(8, len(body) // 2):
        body[i] ^= 0xFF
    return bytes(body)


# ---------------------------------------------------------------- Parquet splits


def test_truncated_split_stops_train_before_the_model_and_keeps_finished_levels(dataset, tmp_path):
    data = copy_dataset(dataset, tmp_path / "ds")
    split = data / "data" / "train.parquet"
    split.write_bytes(truncated(split.read_bytes()))
    out, ckpt = tmp_path / "adapters", tmp_path / "ckpt"
    for folder in (out / "level-1", ckpt / "key" / "level-1"):  # what an earlier run finished
        folder.mkdir(parents=True)
        (folder / "training.json").write_text('{"level": 1}\n')
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
    before = digest(tmp_path)
    result = run_cli("components.train", "--dataset", str(data), "--out", str(out), "--set", f"checkpoint_root={ckpt}",
                     "--set", "model=/nowhere/model")  # a model that cannot load: the data must be checked first
    line = assert_one_clear_error(result, str(split), "truncated or corrupt", "python -m components.dataset")
    assert "--out " + str(data) in line, "the fix names the dataset folder to rebuild"
    assert digest(tmp_path) == before, "a failed run deletes or changes nothing"


@pytest.mark.parametrize("damage", [truncated, flipped, lambda data: b"", lambda data: b"not parquet at all"])
def test_corrupt_split_is_one_clear_error_for_train(dataset, tmp_path, damage):
    from components.train.data import read_split

    data = copy_dataset(dataset, tmp_path / "ds")
    split = data / "data" / "validation.parquet"
    split.write_bytes(damage(split.read_bytes()))
    with pytest.raises(TaletuneError, match=r"validation\.parquet is not a readable Parquet file .*truncated or corrupt"):
        read_split(data, "validation")


@pytest.mark.parametrize("damage", [truncated, flipped])
def test_corrupt_split_is_one_clear_error_for_evaluate(dataset, tmp_path, damage):
    from components.evaluate.reference import passages
    from components.evaluate.stories import read_set

    data = copy_dataset(dataset, tmp_path / "ds")
    split = data / "data" / "train.parquet"
    split.write_bytes(damage(split.read_bytes()))
    for read in (lambda: passages(data, "train"), lambda: read_set(data)):
        with pytest.raises(TaletuneError, match=r"train\.parquet is not a readable Parquet file"):
            read()


def write_table(path: Path, columns: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def without(column: str) -> dict:
    return {k: [r[k] for r in ROWS] for k in ("prompt", "response", "label", "book_id") if k != column}


def test_split_without_responses_is_named_on_the_evaluate_cli(tmp_path):
    # Before: every passage was dropped unread, and the error blamed the genre classifier ("needs passages of at least two groups").
    data = tmp_path / "ds"
    for split in ("train", "validation", "test"):
        write_table(data / "data" / f"{split}.parquet", without("response"))
    result = run_cli("components.evaluate.reference", str(data), "--out", str(tmp_path / "ref"))
    assert_one_clear_error(result, "train.parquet has no response column", "python -m components.dataset")
    assert not (tmp_path / "ref").exists()


@pytest.mark.parametrize("column", ["label", "response"])
def test_split_without_a_column_is_one_clear_error_everywhere(tmp_path, column):
    from components.evaluate.reference import passages
    from components.evaluate.stories import read_set
    from components.train.data import read_split

    data = tmp_path / "ds"
    write_table(data / "data" / "train.parquet", without(column))
    for read in (lambda: read_split(data, "train"), lambda: passages(data, "train"), lambda: read_set(data)):
        with pytest.raises(TaletuneError, match=f"train.parquet has no {column} column; rebuild the dataset"):
            read()


def test_a_label_column_of_numbers_is_named(tmp_path):
    from components.train.data import read_split

    write_table(tmp_path / "data" / "train.parquet", {**without("label"), "label": [1, 2, 3, 4]})
    with pytest.raises(TaletuneError, match=r"should hold text but do not: label \(int64\)"):
        read_split(tmp_path, "train")


def test_a_full_disk_leaves_the_earlier_split_and_no_temp_file(dataset, tmp_path, monkeypatch):
    import datasets

    from components.dataset.stage import write_parquet

    target = copy_dataset(dataset, tmp_path / "ds") / "data" / "train.parquet"
    before = digest(target.parent)

    def fill_the_disk(self, target, *args, **kwargs):
        target.write(b"PAR1 half a split")
        target.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets.Dataset, "to_parquet", fill_the_disk)
    with pytest.raises(TaletuneError, match=f"no space left on the device writing {target}; free some space"):
        write_parquet(ROWS, target)
    assert digest(target.parent) == before, "the earlier split is whole and no temp file is left"


# ---------------------------------------------------------------- the ingest manifest


@pytest.fixture(scope="module")
def books(mirror, tmp_path_factory) -> Path:
    from components.common.catalog import load_catalog
    from components.ingest.config import IngestConfig
    from components.ingest.stage import run_ingest

    catalog = {"genres": {"horror": {"prompt": "Write me a horror story", "books": [1952]},
                          "fairy_tale": {"prompt": "Write me a fairy tale", "books": [7074]}}}
    out = tmp_path_factory.mktemp("books")
    cache = tmp_path_factory.mktemp("cache")
    run_ingest(load_catalog(catalog), IngestConfig(cache=str(cache), mirror=str(mirror), offline=True), out)
    return out


def copy_books(books: Path, to: Path) -> Path:
    for file in books.rglob("*"):
        if file.is_file():
            (to / file.relative_to(books)).parent.mkdir(parents=True, exist_ok=True)
            (to / file.relative_to(books)).write_bytes(file.read_bytes())
    return to


def earlier_dataset(folder: Path) -> dict:
    """An --out that holds a finished dataset already; a failed rerun must leave it."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.parquet").write_bytes(b"an earlier run's split")
    (folder / "stats.json").write_text("{}\n")
    return digest(folder)


def corrupt(manifest: Path) -> None:
    manifest.write_text(manifest.read_text()[:150])  # a copy cut short


def not_utf8(manifest: Path) -> None:
    manifest.write_bytes(manifest.read_bytes().replace(b"Yellow", b"Yell\xf6w"))


def no_books(manifest: Path) -> None:
    manifest.write_text('{"cleaner_version": "1"}\n')


def entry_without_group(manifest: Path) -> None:
    data = json.loads(manifest.read_text())
    del data["books"][0]["group"]
    manifest.write_text(json.dumps(data))


@pytest.mark.parametrize("damage, needle", [
    (corrupt, "is not valid JSON"),
    (not_utf8, "is not UTF-8 text"),
    (no_books, 'has no list of books under "books"'),
    (entry_without_group, "book 1 of the manifest has no valid group"),
])
def test_damaged_manifest_is_one_clear_error(books, tmp_path, damage, needle):
    folder = copy_books(books, tmp_path / "books")
    damage(folder / "manifest.json")
    out = tmp_path / "out"
    before = earlier_dataset(out)
    result = run_cli("components.dataset", "--books", str(folder), "--out", str(out))
    assert_one_clear_error(result, str(folder / "manifest.json"), needle, f"python -m components.ingest fetch --catalog {folder}/catalog.yaml --out {folder}")
    assert digest(out) == before


def test_a_listed_book_that_is_missing_is_named_before_any_work(books, tmp_path):
    folder = copy_books(books, tmp_path / "books")
    (folder / "books" / "1952.txt").unlink()
    out = tmp_path / "out"
    before = earlier_dataset(out)
    result = run_cli("components.dataset", "--books", str(folder), "--out", str(out))
    assert_one_clear_error(result, "lists books whose files are missing", "books/1952.txt", "python -m components.ingest fetch")
    assert digest(out) == before


def test_a_book_that_is_not_utf8_is_named(books, tmp_path):
    from components.dataset.config import DatasetConfig
    from components.dataset.stage import run_dataset

    folder = copy_books(books, tmp_path / "books")
    (folder / "books" / "7074.txt").write_bytes(b"caf\xe9\n" * 100)
    with pytest.raises(TaletuneError, match=r"7074\.txt is not UTF-8 text.*python -m components.ingest fetch"):
        run_dataset(folder, DatasetConfig(), tmp_path / "out")


# ---------------------------------------------------------------- config files


def latin1_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_bytes("seed: 7  # caf\u00e9\n".encode("latin-1"))
    return path


def folder_config(tmp_path: Path) -> Path:
    (tmp_path / "configs").mkdir()
    return tmp_path / "configs"


@pytest.mark.parametrize("make, needle", [(folder_config, "is a folder"), (latin1_config, "is not UTF-8 text (byte 0xe9 on line 1)")])
def test_bad_config_path_on_a_stage_cli(tmp_path, make, needle):
    config = make(tmp_path)
    out = tmp_path / "out"
    result = run_cli("components.dataset", "--books", str(tmp_path), "--out", str(out), "--config", str(config))
    assert_one_clear_error(result, str(config), needle)
    assert not out.exists(), "a bad config fails before any work"


def test_config_folder_on_the_pipeline_cli_is_not_called_missing(tmp_path):
    # Not UTF-8 goes through the same loader as a stage's --config (above).
    config = folder_config(tmp_path)
    result = run_cli("pipelines", "run", "--config", str(config), env={"TALETUNE_RUNS": str(tmp_path / "runs")})
    line = assert_one_clear_error(result, str(config), "is a folder")
    assert "not found" not in line
    assert not (tmp_path / "runs").exists()


def test_config_not_utf8_on_the_pipeline_loader(tmp_path):
    from pipelines.config import load_experiment

    with pytest.raises(TaletuneError, match=r"config\.yaml is not UTF-8 text .*save it as UTF-8"):
        load_experiment(str(latin1_config(tmp_path)))


@pytest.fixture(scope="module")
def s3_config_behind_auth():
    """A moto server holding s3://configs/dataset.yaml, then checking credentials
    (moto's reset-auth with 0: from now on every request must be signed by a known key)."""
    import boto3

    with moto_server() as url:
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket="configs")
        client.put_object(Bucket="configs", Key="dataset.yaml", Body=b"seed: 7\n")
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"})).read()
        yield url


def test_s3_config_with_wrong_credentials_says_so(s3_config_behind_auth, tmp_path, monkeypatch):
    from components.common import storage
    from components.common.config import load_config
    from components.dataset.config import DatasetConfig

    env = {"AWS_ENDPOINT_URL": s3_config_behind_auth, "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1"}
    result = run_cli("components.dataset", "--books", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--config", "s3://configs/dataset.yaml", env=env)
    line = assert_one_clear_error(result, "s3://configs/dataset.yaml", "refused the credentials", "AWS_ACCESS_KEY_ID")
    assert "does not exist" not in line
    assert not (tmp_path / "out").exists()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    storage.reset_client()
    with pytest.raises(TaletuneError, match="refused the credentials"):
        load_config(DatasetConfig, "s3://configs/dataset.yaml")
