"""What made an output: resolved config, seed, git commit, package versions, machine.

Every stage writes `provenance.json` next to its outputs with `write_provenance`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from components.common.errors import TaletuneError

PACKAGES = ("taletune", "kfp", "datasets", "pyarrow", "nltk", "boto3", "torch", "transformers", "peft", "gensim")


def git_commit() -> str:
    """The commit of the code that ran; `TALETUNE_GIT_COMMIT` wins (images bake it in)."""
    if os.environ.get("TALETUNE_GIT_COMMIT"):
        return os.environ["TALETUNE_GIT_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
        commit = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def code_version(*modules: str) -> str:
    """A hash of the Python source of these packages or modules: results kept by key are
    not reused after the code that made them changed (a commit alone would miss local
    edits). A package counts all its files; a module, its own file."""
    import hashlib
    import importlib

    h = hashlib.sha256()
    for name in modules:
        module = importlib.import_module(name)
        if hasattr(module, "__path__"):
            root = Path(module.__file__).parent
            files = sorted(root.rglob("*.py"))
        else:
            root, files = Path(module.__file__).parent, [Path(module.__file__)]
        for path in files:
            h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()[:16]


def folder_digest(folder: str | Path) -> str:
    """A hash of a folder's files (names and bytes), for result keys; `run.json` (whether
    the folder's task reused its result) says how the files came, not what they hold."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != "run.json"):
        h.update(str(path.relative_to(folder)).encode() + file_digest(path).encode())
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 of a file, remembered by its size, times and inode: a 7B model's 14 GB are
    read once per machine, not at every task start (reading takes half a minute)."""
    from components.common import storage

    path = Path(path).resolve()
    st = path.stat()
    stamp = f"{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}-{st.st_ino}"
    if st.st_size < DIGEST_CACHE_MIN:
        return _sha256(path)
    book = storage.local_root() / "file-digests.json"
    try:
        seen = json.loads(book.read_text()) if book.is_file() else {}
    except (OSError, ValueError):
        seen = {}  # a torn or unreadable book is only a cache: start it again
    entry = seen.get(str(path))
    if entry and entry[0] == stamp:
        return entry[1]
    digest = _sha256(path)
    seen[str(path)] = [stamp, digest]
    # Several processes may write the book at once: each write is whole (temp then
    # rename), and the loser's entry is only hashed again next time. A book that cannot
    # be written (a read-only home) costs a hash, not the task.
    with contextlib.suppress(OSError, TaletuneError):
        storage.write_text(str(book), json.dumps(seen, sort_keys=True))
    return digest


DIGEST_CACHE_MIN = 16 << 20  # smaller files are hashed every time: quicker than the book


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def provenance(config: dict, seed: int | None = None, **extra) -> dict:
    return {
        "config": config,
        "seed": seed,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
        **extra,
    }


def write_provenance(out_dir: str | Path, config: dict, seed: int | None = None, **extra) -> Path:
    from components.common import storage

    path = Path(out_dir) / "provenance.json"
    storage.write_text(str(path), json.dumps(provenance(config, seed, **extra), indent=2, sort_keys=True) + "\n")
    return path


def write_run_record(out_dir: str | Path, reused: bool, **facts) -> None:
    """`run.json` beside a stage's outputs: whether this run reused finished work (so a
    rerun can say, per task, that it repeated nothing)."""
    from components.common import storage

    storage.write_text(str(Path(out_dir) / "run.json"), json.dumps({"reused": reused, **facts}, sort_keys=True) + "\n")
