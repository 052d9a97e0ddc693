"""Kept results are reused only when what made them is unchanged: the model's weights
behind its name, the arithmetic `precision: auto` resolved to, and the code.

Covers the train checkpoints, the story progress, the model cache (aliases, an S3
cache, s3:// model folders) and the file digests the keys are made of.
"""

import json
import os
from pathlib import Path

import pytest

from components.common import storage
from components.common.catalog import load_catalog
from components.common.models import MARKER, build_once, model_identity, resolve
from components.common.provenance import code_version, file_digest, folder_digest
from components.generate.config import GenerateConfig
from components.generate.stage import run_generate
from components.train.config import Level, TrainConfig
from components.train.fit import run_train
from tests.tiny import make_dataset, make_model

CATALOG = load_catalog({"genres": {"horror": {"prompt": "Write me a horror story", "books": [1]}}})


@pytest.fixture
def tiny(tmp_path):
    return make_model(tmp_path / "model", seed=0), make_dataset(tmp_path / "data")


def train_config(model: Path, tmp_path: Path) -> TrainConfig:
    return TrainConfig(model=str(model), batch_size=4, block_size=64, learning_rate=5e-3, max_eval_rows=8, precision="fp32",
                       levels=[Level(fraction=0.3, epochs=1)], checkpoint_root=str(tmp_path / "ckpt"))


def test_new_weights_behind_the_same_folder_train_again(tiny, tmp_path):
    model, data = tiny
    first = run_train(data, train_config(model, tmp_path), tmp_path / "one")
    make_model(model, seed=1)  # new weights, same path
    second = run_train(data, train_config(model, tmp_path), tmp_path / "two")
    assert not any(v.get("reused") for v in second.values()), "the old checkpoints were reused for new weights"
    assert second[0]["val_loss"] != first[0]["val_loss"]
    record = json.loads((tmp_path / "two" / "level-1" / "training.json").read_text())
    assert record["model_identity"] == model_identity(str(model))


def test_train_keys_hold_the_resolved_arithmetic_and_the_code(tiny, tmp_path, monkeypatch):
    import torch

    from components.common import models
    from components.train import fit

    model, data = tiny
    config = train_config(model, tmp_path).model_copy(update={"precision": "auto"})
    levels, identity = config.levels, model_identity(str(model))
    key = fit.task_key(Path(data), config, levels, identity)
    keys = {}
    for dtype in (None, torch.bfloat16):  # `auto` autocasts on a CPU with native bf16 only: either CPU may run this
        with monkeypatch.context() as patch:
            patch.setattr(models, "autocast_dtype", lambda precision, dtype=dtype: dtype)
            keys[dtype] = fit.task_key(Path(data), config, levels, identity)
    assert keys[None] != keys[torch.bfloat16] and key in keys.values()
    with monkeypatch.context() as patch:  # `auto` on a GPU with bf16 loads bf16 weights
        patch.setattr(torch.cuda, "is_available", lambda: True)
        patch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
        assert models.arithmetic("auto") == "cuda/bf16/autocast-None"
        assert fit.task_key(Path(data), config, levels, identity) != key
    assert models.arithmetic("bf16-mixed") == "cpu/fp32/autocast-bfloat16" and models.arithmetic("fp32") == "cpu/fp32/autocast-None"
    with monkeypatch.context() as patch:
        patch.setattr(fit, "code_version", lambda *modules: "edited")
        assert fit.task_key(Path(data), config, levels, identity) != key
    assert fit.task_key(Path(data), config, levels, identity) == key, "nothing else moves the key"


def test_new_weights_behind_the_same_folder_write_a_new_set(tiny, tmp_path):
    model, _ = tiny
    config = GenerateConfig(model=str(model), n=2, chunk_size=2, precision="fp32", sampling={"max_new_tokens": 8},
                            progress_root=str(tmp_path / "progress"))
    run_generate(CATALOG, config, tmp_path / "a")
    make_model(model, seed=1)
    run_generate(CATALOG, config, tmp_path / "b")
    first, second = ([json.loads(line) for line in (tmp_path / s / "stories.jsonl").read_text().splitlines()[1:]] for s in "ab")
    assert first[0]["model_identity"] != second[0]["model_identity"]
    assert [s["text"] for s in first] != [s["text"] for s in second], "the old model's stories were served for the new one"


def test_code_version_follows_a_module_or_a_whole_package(tmp_path, monkeypatch):
    package = tmp_path / "pkg_for_code_version"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("X = 1\n")
    (package / "b.py").write_text("Y = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    whole, module = code_version("pkg_for_code_version"), code_version("pkg_for_code_version.a")
    (package / "b.py").write_text("Y = 2\n")
    assert code_version("pkg_for_code_version") != whole, "an edit anywhere in a package changes its version"
    assert code_version("pkg_for_code_version.a") == module, "a module's version is its own file only"
    (package / "a.py").write_text("X = 2\n")
    assert code_version("pkg_for_code_version.a") != module


def test_file_digest_is_remembered_by_stat_and_sees_every_change(tmp_path, monkeypatch):
    from components.common import provenance

    monkeypatch.setattr(provenance, "DIGEST_CACHE_MIN", 0)
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 1000)
    first = file_digest(path)
    assert first == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"  # sha256 of 1000 x "a"
    reads = []
    monkeypatch.setattr(provenance, "_sha256", lambda p: reads.append(p) or "x")
    assert file_digest(path) == first and not reads, "an unchanged file is not read again"
    path.write_bytes(b"b" * 1000)  # same size; a new mtime (set, since coarse clocks may not tick) and ctime
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert file_digest(path) == "x" and reads


def test_an_alias_converted_from_another_package_version_is_converted_again(tmp_path):
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "weights").write_text(str(len(calls)))

    first = build_once("m", str(tmp_path), build, {"package": "p==1"})
    assert build_once("m", str(tmp_path), build, {"package": "p==1"}) == first and len(calls) == 1
    again = build_once("m", str(tmp_path), build, {"package": "p==2"})
    assert len(calls) == 2 and (again / "weights").read_text() == "2"
    assert json.loads((again / MARKER).read_text())["package"] == "p==2"


def test_a_killed_download_from_an_s3_model_cache_is_never_taken_as_complete(s3, tmp_path, monkeypatch):
    cache = f"{s3}/models"

    def build(folder):
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (folder / name).write_text(name)

    build_once("m", cache, build)  # uploads the folder, its marker last
    monkeypatch.setenv("TALETUNE_CACHE", str(tmp_path / "elsewhere"))  # another machine: an empty local staging area
    real, seen = storage.download_file, []

    def killed_after_three(uri, path):
        if len(seen) == 3:
            raise KeyboardInterrupt  # the pod is killed mid-download
        seen.append(uri)
        real(uri, path)

    monkeypatch.setattr(storage, "download_file", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        build_once("m", cache, lambda folder: pytest.fail("built again"))
    local = tmp_path / "elsewhere" / "staging" / "m"
    assert not (local / MARKER).exists(), "a half-downloaded model looks complete"
    monkeypatch.setattr(storage, "download_file", real)
    folder = build_once("m", cache, lambda folder: pytest.fail("built again"))
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json", "model.safetensors", "tokenizer.json", MARKER])
    assert not list(folder.parent.glob(".m.*.tmp")), "no temporary folder is left behind"


def test_an_s3_model_folder_follows_its_objects(s3, tmp_path, monkeypatch):
    uri = f"{s3}/models/story-model"
    for name, text in {"config.json": "{}", "model.safetensors": "old", "extra.txt": "stale"}.items():
        storage.write_text(f"{uri}/{name}", text)
    first = resolve(uri)
    identity = model_identity(uri)
    assert (first / "model.safetensors").read_text() == "old" and (first / MARKER).is_file()
    assert resolve(uri) == first and model_identity(uri) == identity
    # New weights under the same prefix, and a file removed: the copy follows both.
    storage.write_text(f"{uri}/model.safetensors", "new")
    storage.delete(f"{uri}/extra.txt")
    again = resolve(uri)
    assert (again / "model.safetensors").read_text() == "new" and not (again / "extra.txt").exists()
    assert model_identity(uri) != identity


def test_an_s3_prefix_without_a_model_is_one_clear_error(s3):
    from components.common.errors import TaletuneError

    storage.write_text(f"{s3}/models/x/readme.txt", "not a model")
    with pytest.raises(TaletuneError, match="not a model folder"):
        resolve(f"{s3}/models/x")


def test_folder_digest_names_files_and_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("x")
    digest = folder_digest(tmp_path / "a")
    (tmp_path / "a" / "run.json").write_text("{}")
    assert folder_digest(tmp_path / "a") == digest, "run.json says how files came, not what they are"
    (tmp_path / "a" / "x.txt").rename(tmp_path / "a" / "y.txt")
    assert folder_digest(tmp_path / "a") != digest


def test_builders_on_one_machine_take_turns_and_the_second_finds_it_made(tmp_path):
    import threading
    import time

    calls = []

    def slow_build(folder):
        calls.append(folder)
        time.sleep(0.3)  # long enough for the other thread to arrive mid-build
        (folder / "weights").write_text("whole")

    results = []
    threads = [threading.Thread(target=lambda: results.append(build_once("m", str(tmp_path), slow_build, {"package": "p==1"})))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results[0] == results[1] and (results[0] / "weights").read_text() == "whole"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.") and not p.name.endswith(".lock")]


def test_a_rebuild_into_an_s3_cache_leaves_none_of_the_old_files(s3, tmp_path, monkeypatch):
    cache = f"{s3}/models"

    def sharded(folder):
        for name in ("model-00001.safetensors", "model-00002.safetensors", "config.json"):
            (folder / name).write_text("old")

    def whole(folder):
        for name in ("model.safetensors", "config.json"):
            (folder / name).write_text("new")

    build_once("m", cache, sharded, {"package": "p==1"})
    build_once("m", cache, whole, {"package": "p==2"})
    assert storage.list_prefix(f"{cache}/m") == sorted(["config.json", "model.safetensors", MARKER])
    storage.write_text(f"{cache}/m/{MARKER}", '{"package": "p=')  # torn: read as not built, not a traceback
    monkeypatch.setenv("TALETUNE_CACHE", str(tmp_path / "elsewhere"))
    folder = build_once("m", cache, whole, {"package": "p==2"})
    assert (folder / "model.safetensors").read_text() == "new"
