"""Static checks of the Dockerfiles, the lock files and the image tag (no Docker needed; the
manifests are tests/test_k8s.py's).

checkov runs in `make check-infra`, which `.ci/run` calls; it has too many dependencies
for the test environment.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_each_image_runs_as_non_root_from_locked_dependencies(dockerfile):
    text = (ROOT / "docker" / dockerfile).read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    installs = [line for line in text.splitlines() if "pip install" in line and "vllm" not in line]
    assert installs and all("--require-hashes -r /tmp/locks/" in line for line in installs)
    assert "ARG BASE_IMAGE=python:3.11" in text and "@sha256:" in text.split("ARG BASE_IMAGE=", 1)[1].splitlines()[0]


def test_the_lock_files_pin_every_package_with_its_hashes():
    for name in ("requirements-cpu.lock", "torch-cpu.lock", "requirements-gpu.lock", "models.lock"):
        entries = [line for line in (ROOT / "docker" / name).read_text().splitlines() if line and line[0].isalnum()]
        assert entries and all("==" in line and line.endswith("\\") for line in entries), name
    gpu = (ROOT / "docker" / "requirements-gpu.lock").read_text()
    assert "\ntorch==2.13.0 " in gpu and "\nbitsandbytes==" in gpu
    assert "torch==2.13.0+cpu" in (ROOT / "docker" / "torch-cpu.lock").read_text()
    assert "\ntorch==" not in (ROOT / "docker" / "requirements-cpu.lock").read_text()


def test_the_dockerfile_downloads_the_nltk_resources_the_code_names():
    from components.evaluate.nltk_data import RESOURCES

    text = (ROOT / "docker" / "Dockerfile").read_text()
    line = next(line for line in text.splitlines() if "nltk.downloader -e -d /opt/nltk_data" in line)
    assert line.split("/opt/nltk_data", 1)[1].split(";")[0].split() == list(RESOURCES)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_the_image_tag_is_the_commit_and_names_uncommitted_changes(tmp_path, monkeypatch):
    from components.common import image

    repo = tmp_path / "repo"
    (repo / "components").mkdir(parents=True)
    (repo / "components" / "a.py").write_text("x = 1\n")
    (repo / "README.md").write_text("docs\n")
    git(repo, "init", "-q")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one")
    commit = git(repo, "rev-parse", "HEAD")
    monkeypatch.setattr(image, "ROOT", repo)
    assert image.checkout_tag() == commit
    (repo / "README.md").write_text("other docs\n")  # not in the images: same tag
    assert image.checkout_tag() == commit

    (repo / "components" / "a.py").write_text("x = 2\n")
    edited = image.checkout_tag()
    assert edited.startswith(f"{commit}-dirty-") and len(edited.rsplit("-", 1)[1]) == 12
    (repo / "components" / "a.py").write_text("x = 3\n")
    assert image.checkout_tag() not in (edited, commit), "another edit, another tag"
    (repo / "components" / "a.py").write_text("x = 2\n")
    assert image.checkout_tag() == edited, "the same edit, the same tag"
    (repo / "components" / "new.py").write_text("y = 1\n")
    assert image.checkout_tag() != edited, "an untracked file goes into the image too"

    monkeypatch.setattr(image, "ROOT", tmp_path / "not-a-checkout")
    assert image.checkout_tag() is None


def test_compiled_pipelines_name_the_images_by_the_commit(tmp_path):
    from components.common.image import GPU_IMAGE, IMAGE, checkout_tag

    assert IMAGE.endswith(f"/taletune-cpu:{checkout_tag()}") and GPU_IMAGE.endswith(f"/taletune-gpu:{checkout_tag()}")
    out = tmp_path / "p.yaml"
    env = {**os.environ, "TALETUNE_REGISTRY": "registry.example.com/team"}
    result = subprocess.run([sys.executable, "-m", "pipelines", "compile", "--config", "seed-study-7b", "--out", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    images = {e["container"]["image"] for e in yaml.safe_load_all(out.read_text()).__next__()["deploymentSpec"]["executors"].values()}
    assert images == {f"registry.example.com/team/taletune-cpu:{checkout_tag()}", f"registry.example.com/team/taletune-gpu:{checkout_tag()}"}


def test_compile_refuses_when_it_cannot_tell_which_code_it_is(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TALETUNE_IMAGE_TAG", "TALETUNE_GIT_COMMIT")}
    env["GIT_DIR"] = str(tmp_path / "no-repository")  # git finds no checkout
    result = subprocess.run([sys.executable, "-m", "pipelines", "compile", "--config", "demo", "--out", str(tmp_path / "p.yaml")],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot tell which code this is" in result.stderr and "TALETUNE_IMAGE_TAG" in result.stderr
    assert not (tmp_path / "p.yaml").exists()
    env["TALETUNE_IMAGE_TAG"] = "v1"
    assert subprocess.run([sys.executable, "-m", "pipelines", "compile", "--config", "demo", "--out", str(tmp_path / "p.yaml")],
                          cwd=ROOT, env=env, capture_output=True, text=True).returncode == 0
    assert ":v1" in (tmp_path / "p.yaml").read_text()
