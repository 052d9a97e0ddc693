"""The pipeline compiled to YAML, and run for real through KFP's local runner."""

import json
from pathlib import Path

import pytest
import yaml

from components.common.image import GPU_IMAGE, IMAGE
from pipelines.config import CONFIG_DIR, load_experiment
from tests.conftest import run_cli


def compile_config(name: str, tmp_path: Path, *overrides: str) -> list[dict]:
    out = tmp_path / f"{name}.yaml"
    args = ["pipelines", "compile", "--config", name, "--out", str(out)]
    for item in overrides:
        args += ["--set", item]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(out.read_text()))


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_every_shipped_config_compiles(name, tmp_path):
    spec, platform = compile_config(name, tmp_path)
    tasks = spec["root"]["dag"]["tasks"]
    config = load_experiment(name)
    levels = len(config.train.levels)
    trains = {"train"} if config.train.mode == "nested" else {"train", *(f"train-{k}" for k in range(2, levels + 1))}
    selects = {"select-level", *(f"select-level-{k}" for k in range(2, levels + 2))}
    generates = {"generate", *(f"generate-{k}" for k in range(2, levels + 2))}
    evaluates = {"evaluate", *(f"evaluate-{k}" for k in range(2, levels + 3))}  # the training data, then each level
    assert set(tasks) == {"ingest", "make-dataset", *trains, *selects, *generates, "evaluation-reference", "sentiment-model", *evaluates}
    assert tasks["generate-2"]["dependentTasks"] == ["select-level-2"]
    assert sorted(tasks["evaluate"]["dependentTasks"]) == ["evaluation-reference", "make-dataset", "sentiment-model"]
    assert sorted(tasks["evaluate-3"]["dependentTasks"]) == ["evaluate", "evaluation-reference", "generate-2", "make-dataset", "sentiment-model"]
    assert "anchor" not in tasks["evaluate"]["inputs"].get("artifacts", {})
    assert tasks["make-dataset"]["dependentTasks"] == ["ingest"]
    assert tasks["train"]["dependentTasks"] == ["make-dataset"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    train = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert train["accelerator"] == {"count": "1", "resourceCount": "1", "resourceType": "nvidia.com/gpu", "type": "nvidia.com/gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in executors["exec-train"]["tolerations"]
    generate = spec["deploymentSpec"]["executors"]["exec-generate"]["container"]["resources"]
    assert generate["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert executors["exec-generate"]["secretAsEnv"][0]["secretName"] == "taletune-s3", "progress goes to S3"
    assert executors["exec-train"]["secretAsEnv"][0]["secretName"] == "taletune-s3", "checkpoints go to S3"
    for task in tasks.values():
        assert task["retryPolicy"]["maxRetryCount"] >= 1
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert container["image"] == (GPU_IMAGE if name.startswith(("exec-train", "exec-generate")) else IMAGE)
        assert "pip install" not in " ".join(container["command"]), "the image already has the project"
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert defaults["catalog"]["defaultValue"]["genres"]["horror"]["prompt"] == "Write me a horror story"
    secrets = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-ingest"]["secretAsEnv"]
    assert secrets[0]["secretName"] == "taletune-s3"
    assert {k["envVar"] for k in secrets[0]["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}


def test_cluster_placement_from_the_config(tmp_path):
    spec, platform = compile_config(
        "full", tmp_path, "kubernetes.node_selector={pool: cpu}",
        "kubernetes.tolerations=[{key: dedicated, value: taletune, effect: NoSchedule}]", "kubernetes.retries=5",
    )
    assert spec["root"]["dag"]["tasks"]["ingest"]["retryPolicy"]["maxRetryCount"] == 5
    ingest = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-ingest"]
    assert ingest["nodeSelector"]["labels"] == {"pool": "cpu"}
    assert ingest["tolerations"][0]["key"] == "dedicated" and ingest["tolerations"][0]["effect"] == "NoSchedule"


# The demo's training, shrunk to seconds: 4 rows per genre, 64-token blocks, two levels
# (each level adds a generate and an evaluate task: most of a minute); 3 stories per
# genre and level, and a small genre classifier.
SMALL_TRAIN = ("train.max_train_rows_per_genre=4", "train.block_size=64", "train.batch_size=4", "train.max_eval_rows=8",
               "train.levels=[{fraction: 0.5, epochs: 1}, {fraction: 1.0, epochs: 2}]",
               "generate.n=3", "generate.sampling.max_new_tokens=12", "evaluate.topics.n=2", "evaluate.genre.train_per_group=10",
               "evaluate.genre.reference_per_genre=5", "evaluate.genre.test_per_group=5")


def _run(tmp_path, mirror, *overrides, env=None, models=None, sentiment=None):
    args = ["pipelines", "run", "--config", "demo"]
    # A tiny random classifier stands in for the trained sentiment model (minutes to train).
    for item in (*SMALL_TRAIN, f"evaluate.sentiment.model={sentiment or 'null'}", *overrides):
        args += ["--set", item]
    env = {"TALETUNE_RUNS": str(tmp_path / "runs"), "TALETUNE_GUTENBERG_MIRROR": str(mirror), **(env or {})}
    if models:
        env["TALETUNE_MODEL_CACHE"] = str(models)
    return run_cli(*args, env=env, timeout=600)


def test_demo_pipeline_runs_locally_with_the_book_cache_on_s3(tmp_path, mirror, smollm2, tiny_sentiment, nltk_data, s3, s3_server):
    # One run checks every stage (a pipeline run is minutes); the book cache is on S3.
    env = {"NLTK_DATA": str(nltk_data), "AWS_ENDPOINT_URL": s3_server}
    result = _run(tmp_path, mirror, f"ingest.cache={s3}/cache", models=smollm2, sentiment=tiny_sentiment, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    dataset = Path(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("dataset:")))
    assert dataset.is_relative_to(tmp_path / "runs")
    assert {p.name for p in (dataset / "data").iterdir()} == {"train.parquet", "validation.parquet", "test.parquet"}
    stats = json.loads((dataset / "stats.json").read_text())
    assert set(stats["rows"]["train"]) == {"horror", "fairy_tale", "other"}
    assert sum(stats["total"].values()) == 3 * 400  # the demo caps every group at 400 rows
    assert len(stats["books"]) == 18
    run_dir = dataset.parents[1]
    assert yaml.safe_load((run_dir / "experiment.yaml").read_text())["name"] == "demo"
    assert (run_dir / "ingest" / "books" / "manifest.json").is_file()

    # The untrained level and two trained ones of SmolLM2, each its own Model artifact; the validation loss falls.
    levels = [line for line in result.stdout.splitlines() if line.startswith("level ")]
    assert len(levels) == 3, result.stdout[-2000:]
    records = [json.loads((Path(line.split()[2]) / "training.json").read_text()) for line in levels]
    assert [r["level"] for r in records] == [0, 1, 2]
    assert records[2]["val_loss"] < records[0]["val_loss"]
    # r=16 on q_proj (576x576) and v_proj (576x192) in 30 layers: 30 * 16 * (1152 + 768)
    assert records[1]["trainable_parameters"] == 921_600
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(smollm2 / "smollm2-135m")
    PeftModel.from_pretrained(base, Path(levels[2].split()[2]))

    # Stories for the untrained model and each trained level, both genres.
    sets = [line for line in result.stdout.splitlines() if line.startswith("stories, level")]
    assert len(sets) == 3, result.stdout[-2000:]
    by_level = {}
    for line in sets:
        records = [json.loads(x) for x in Path(line.split()[3]).read_text().splitlines()]
        header, stories = records[0], records[1:]
        assert header["type"] == "header" and header["packages"]["torch"]
        assert sorted(s["id"] for s in stories) == [f"{g}-000{i}" for g in ("fairy_tale", "horror") for i in range(3)]
        by_level[header["level"]] = stories
    assert sorted(by_level) == [0, 1, 2]
    assert by_level[0][0]["adapter"] is None and by_level[2][0]["adapter"].endswith("adapter")
    assert by_level[0][0]["text"] != by_level[2][0]["text"]

    # Every set evaluated, the training data included, against one reference and sentiment model.
    evaluations = [line for line in result.stdout.splitlines() if line.startswith("evaluation, ")]
    assert len(evaluations) == 4, result.stdout[-3000:]
    assert evaluations[0].startswith("evaluation, training data (6 stories")
    assert "genre classifier: accuracy" in result.stdout
    for line in evaluations:
        metrics = json.loads((Path(line.rsplit(" ", 1)[1]).parent / "metrics.json").read_text())
        s = metrics["sets"][0]
        assert not s["errors"], (line, s["errors"])
        assert {"sentiment", "sentiment_vader", "lexicon", "topics", "diversity", "flags", "genre_fidelity", "copying", "closeness"} <= set(s)
        assert s["sentiment"]["model"] == str(tiny_sentiment)
        assert metrics["genre_classifier"]["n"] > 0
        if s["name"] != "training data":
            assert len(s["topics"]["aligned_to"]) == 2, "aligned to the training data's topics"
            assert s["stories"]["by_genre"] == {"fairy_tale": 3, "horror": 3}
    # The dashboard's view of a set: its Markdown output and its Metrics.
    reports = sorted(run_dir.glob("evaluate*/report"))
    assert len(reports) == 4 and all(r.read_text().startswith("# Story sets") for r in reports)

    # The books went to the S3 cache, and the pipeline's dataset is byte for byte what the
    # stages give when run by hand.
    from components.common import storage
    from components.dataset.stage import run_dataset
    from components.ingest.catalog import load_catalog
    from components.ingest.config import IngestConfig
    from components.ingest.stage import run_ingest

    assert "84.clean.txt" in storage.list_prefix(f"{s3}/cache/books")
    experiment = load_experiment("demo")
    run_ingest(load_catalog(experiment.catalog), IngestConfig(mirror=str(mirror), offline=True), tmp_path / "books")
    run_dataset(tmp_path / "books", experiment.dataset, tmp_path / "by-hand")
    for split in ("train", "validation", "test"):
        name = f"data/{split}.parquet"
        assert (dataset / name).read_bytes() == (tmp_path / "by-hand" / name).read_bytes()
    # Ingest again, offline and without the mirror: the books come from the S3 cache the pipeline filled.
    again = run_cli("components.ingest", "fetch", "--out", str(tmp_path / "again"), "--set", f"cache={s3}/cache", "--set", "offline=true",
                    env={"AWS_ENDPOINT_URL": s3_server, "TALETUNE_GUTENBERG_MIRROR": ""})
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("(cache)") == 18


def test_a_failing_task_stops_the_run_with_its_message(tmp_path, mirror, nltk_data):
    result = _run(tmp_path, mirror, "catalog={genres: {horror: {prompt: p, books: [999999]}}}", "ingest.offline=true",
                  env={"NLTK_DATA": str(nltk_data)})
    assert result.returncode == 2
    assert "error: ebook 999999 was not found" in result.stdout
    assert "error: the pipeline stopped" in result.stderr and "Traceback" not in result.stderr
