"""The one place that names the container images the components run in, and their tag.

    python -m components.common.image            # the tag `make images` builds and `compile` writes
    python -m components.common.image --images   # both image names, with that tag

The tag is the git commit of the code, so a compiled pipeline always runs the code it was
compiled from, and KFP's cache (keyed by the image among the rest) never reuses a result
of other code. A checkout with uncommitted changes to what goes into the images gets
`<commit>-dirty-<hash of those changes>`: two different edits never share a tag.

`TALETUNE_REGISTRY` names the registry and owner the cluster pulls from;
`TALETUNE_IMAGE_TAG` sets the tag; `TALETUNE_IMAGE` and `TALETUNE_GPU_IMAGE` set a whole
image name. Standard library only: `make images` runs it before any virtualenv exists.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the images are built from (.dockerignore lets in no more).
IMAGE_INPUTS = ("components", "pipelines", "pyproject.toml", "docker", ".dockerignore")
REGISTRY = os.environ.get("TALETUNE_REGISTRY") or "ghcr.io/taletune"


def _git(*args: str) -> bytes:
    # safe.directory: `sudo make images` in a checkout owned by another user gets the same
    # answer as `make compile` there, instead of git's refusal.
    return subprocess.run(["git", "-c", f"safe.directory={ROOT}", "-C", str(ROOT), *args], capture_output=True, check=True).stdout


def checkout_tag() -> str | None:
    """`<commit>`, or `<commit>-dirty-<12 hex>` when what the images hold has changed since;
    None outside a git checkout (inside an image, where the commit is baked in instead)."""
    try:
        commit = _git("rev-parse", "HEAD").decode().strip()
        changed = _git("status", "--porcelain", "--untracked-files=all", "--", *IMAGE_INPUTS)
    except (OSError, subprocess.CalledProcessError):
        return None
    if not changed.strip():
        return commit
    # The diff in one form whatever the user's git settings (external diff tools, prefixes).
    digest = hashlib.sha256(_git("diff", "HEAD", "--binary", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/",
                                 "--", *IMAGE_INPUTS))
    untracked = _git("ls-files", "--others", "--exclude-standard", "-z", "--", *IMAGE_INPUTS).split(b"\0")
    for name in sorted(filter(None, untracked)):
        digest.update(name + b"\0" + (ROOT / name.decode()).read_bytes())
    return f"{commit}-dirty-{digest.hexdigest()[:12]}"


def image_tag() -> str:
    return os.environ.get("TALETUNE_IMAGE_TAG") or checkout_tag() or os.environ.get("TALETUNE_GIT_COMMIT") or "unknown"


def require_tag() -> str:
    """The tag, or RuntimeError where the code's identity is unknown (no git checkout, and
    no TALETUNE_IMAGE_TAG): images and compiled pipelines must name the code they hold."""
    if TAG == "unknown":
        raise RuntimeError("cannot tell which code this is (not a git checkout, or git is missing); "
                           "run from a git checkout, or set TALETUNE_IMAGE_TAG")
    return TAG


TAG = image_tag()
IMAGE = os.environ.get("TALETUNE_IMAGE", f"{REGISTRY}/taletune-cpu:{TAG}")
GPU_IMAGE = os.environ.get("TALETUNE_GPU_IMAGE", f"{REGISTRY}/taletune-gpu:{TAG}")


if __name__ == "__main__":
    print(f"{IMAGE}\n{GPU_IMAGE}" if "--images" in sys.argv[1:] else TAG)
