"""The CPU image, built here and run as KFP runs a task: non-root, read-only root filesystem, no network.

    make test-images        # what .ci/run runs (needs root or a running Docker engine)

The test starts the Docker engine where none runs, builds the CPU image with
`docker/build.py` (the commit's tag; it makes a Debian base from Debian's packages where
the Dockerfile's pinned base cannot be pulled), then runs the compiled pipeline's own ingest and
dataset container commands in it, each with the executor input KFP's launcher would
give, artifacts under /s3 as the launcher maps an s3:// pipeline root.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from components.common.image import IMAGE, TAG
from components.evaluate.nltk_data import RESOURCES

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def docker(*args, check=True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def cannot_run(why: str):
    """Skip, or fail where the run must test the image (.ci/run sets TALETUNE_REQUIRE_DOCKER=1)."""
    if os.environ.get("TALETUNE_REQUIRE_DOCKER"):
        pytest.fail(f"the image test cannot run: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def engine():
    """A running Docker engine: started here (as root) where it is installed but not running.
    It is left running for later builds."""
    if not shutil.which("docker"):
        cannot_run("no docker client: apt-get install docker.io")
    if docker("info", check=False).returncode != 0:
        if os.geteuid() != 0 or not shutil.which("dockerd"):
            cannot_run("no running Docker engine, and this test cannot start one (needs root and dockerd)")
        with open(Path(os.environ.get("TMPDIR", "/tmp")) / "taletune-dockerd.log", "ab") as log:
            subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
        for _ in range(60):
            if docker("info", check=False).returncode == 0:
                break
            time.sleep(1)
        else:
            pytest.fail("dockerd did not start; see taletune-dockerd.log")


@pytest.fixture(scope="module")
def cpu_image(engine, nltk_data) -> str:
    # build.py takes the pinned base where a registry serves it, else makes a Debian one (as root).
    command = [sys.executable, str(ROOT / "docker" / "build.py"), "cpu"]
    # The build takes the evaluation's NLTK data from NLTK_DATA where NLTK's server is out of reach.
    built = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "NLTK_DATA": str(nltk_data)})
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    return IMAGE


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("compiled") / "demo.yaml"
    result = subprocess.run([sys.executable, "-m", "pipelines", "compile", "--config", "demo", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return next(yaml.safe_load_all(out.read_text()))  # the pipeline spec; the platform spec follows


def run_task(image: str, compiled: dict, task: str, inputs: dict, s3: Path, mirror: Path) -> dict:
    """One task's container, as the launcher runs it: the compiled command and args, the
    executor input in place of its placeholder; artifacts at s3://taletune/<name> -> /s3/taletune/<name>."""
    executor = compiled["deploymentSpec"]["executors"][f"exec-{task}"]["container"]
    assert executor["image"] == image
    component = compiled["components"][f"comp-{task}"]
    artifact_types = {name: spec["artifactType"] for name, spec in component["outputDefinitions"]["artifacts"].items()}
    executor_input = {
        "inputs": inputs,
        "outputs": {
            "artifacts": {name: {"artifacts": [{"name": name, "type": kind, "uri": f"s3://taletune/{task}/{name}", "metadata": {}}]}
                          for name, kind in artifact_types.items()},
            "outputFile": f"/s3/taletune/{task}-output.json",
        },
    }
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in executor["args"]]
    result = docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none", "--user", "10001:10001",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-v", f"{mirror}:/mirror:ro", "-v", f"{s3}:/s3", "-e", "TALETUNE_GUTENBERG_MIRROR=/mirror",
        "--entrypoint", executor["command"][0], image, *executor["command"][1:], *args, check=False,
    )
    assert result.returncode == 0, f"{task} failed in the image:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads((s3 / "taletune" / f"{task}-output.json").read_text())


def test_the_cpu_image_runs_ingest_and_dataset_as_kfp_would(cpu_image, compiled, tmp_path, mirror):
    assert cpu_image.endswith(f":{TAG}") and compiled["deploymentSpec"]["executors"]["exec-ingest"]["container"]["image"] == cpu_image
    config = docker("image", "inspect", cpu_image, "--format", "{{json .Config}}").stdout
    config = json.loads(config)
    assert config["User"] == "10001:10001"
    assert config["Labels"]["org.opencontainers.image.revision"] == TAG
    assert {"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.licenses"} <= set(config["Labels"])
    assert "/tmp" in config["Volumes"]

    s3 = tmp_path / "s3"
    (s3 / "taletune").mkdir(parents=True)
    os.chmod(s3 / "taletune", 0o777)  # the task runs as uid 10001
    defaults = {name: spec["defaultValue"] for name, spec in compiled["root"]["inputDefinitions"]["parameters"].items()}
    catalog = defaults["catalog"]

    ingested = run_task(cpu_image, compiled, "ingest", {"parameterValues": {"catalog": catalog, "config": defaults["ingest_config"]}},
                        s3, mirror)
    books = s3 / "taletune" / "ingest" / "books"
    manifest = json.loads((books / "manifest.json").read_text())
    groups = [*catalog["genres"].values(), *([catalog["other"]] if catalog.get("other") else [])]
    assert len(manifest["books"]) == sum(len(g["books"]) for g in groups) > 0
    assert ingested["artifacts"]["books"]["artifacts"][0]["metadata"]["books"] == len(manifest["books"])

    dataset_inputs = {
        "parameterValues": {"catalog": catalog, "config": defaults["dataset_config"]},
        "artifacts": {"books": {"artifacts": [{"name": "books", "type": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
                                                "uri": "s3://taletune/ingest/books", "metadata": {}}]}},
    }
    run_task(cpu_image, compiled, "make-dataset", dataset_inputs, s3, mirror)
    dataset = s3 / "taletune" / "make-dataset" / "dataset"
    stats = json.loads((dataset / "stats.json").read_text())
    assert stats["total"]["train"] > 0 and set(stats["rows"]["train"]) == set(catalog["genres"]) | ({"other"} if catalog.get("other") else set())
    assert (dataset / "data" / "train.parquet").is_file() and (s3 / "taletune" / "make-dataset" / "datasheet").is_file()
    provenance = json.loads((dataset / "provenance.json").read_text())
    assert provenance["git_commit"] == TAG, "the image says which code it runs, uncommitted changes included"


def test_the_image_holds_the_nltk_data_the_evaluation_reads(cpu_image):
    result = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none", "--user", "10001:10001", cpu_image,
                    "python", "-m", "components.evaluate.nltk_data", check=False)
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in RESOURCES)
