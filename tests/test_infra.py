"""Static checks of the Dockerfile and the Kubernetes manifests (no Docker or cluster needed).

checkov runs in `make check-infra`, which `.ci/run` calls; it has too many dependencies
for the test environment.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return str(path)


def test_hadolint_passes_on_every_dockerfile():
    files = sorted((ROOT / "docker").glob("Dockerfile*"))
    assert files
    result = subprocess.run([tool("hadolint"), *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifests_match_the_kubernetes_schemas():
    files = sorted((ROOT / "k8s").glob("*.yaml"))
    assert files
    result = subprocess.run([tool("kubernetes-validate"), "--strict", *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_non_root():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
