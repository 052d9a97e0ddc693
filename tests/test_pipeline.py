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


def by_display_name(spec: dict) -> dict[str, dict]:
    """The DAG's tasks by the names the dashboard shows (KFP numbers repeated components)."""
    return {task["taskInfo"]["name"]: {**task, "id": key} for key, task in spec["root"]["dag"]["tasks"].items()}


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_every_shipped_config_compiles(name, tmp_path):
    spec, platform = compile_config(name, tmp_path)
    tasks = by_display_name(spec)
    ids = {key: task["taskInfo"]["name"] for key, task in spec["root"]["dag"]["tasks"].items()}
    config = load_experiment(name)
    levels = len(config.train.levels)
    expected = {"check", "ingest", "dataset", "evaluation-reference", "sentiment-model", "evaluate-training-data", "report"}
    for spec_ in config.models:
        m = spec_.label
        expected |= {f"model-{m}"}
        expected |= {f"train-{m}"} if config.train.mode == "nested" else {f"train-{m}-level-{k}" for k in range(1, levels + 1)}
        expected |= {f"{step}-{m}-level-{k}" for step in ("select", "generate", "evaluate") for k in range(levels + 1)}
    assert set(tasks) == expected

    def needs(task):
        return sorted(ids[d] for d in tasks[task].get("dependentTasks", []))

    # Each model pinned and fetched once, ahead of its train tasks, which all take the pinned name.
    for spec_ in config.models:
        m = spec_.label
        assert needs(f"model-{m}") == ["check"]
        trains = [n for n in tasks if n.startswith(f"train-{m}")]
        assert trains and all(needs(n) == ["dataset", f"model-{m}"] for n in trains)
        assert all(tasks[n]["inputs"]["parameters"]["base"]["taskOutputParameter"] == {
            "producerTask": tasks[f"model-{m}"]["id"], "outputParameterKey": "Output"} for n in trains)
        assert tasks[f"model-{m}"]["inputs"]["parameters"]["model"]["runtimeValue"]["constant"] == spec_.train_overrides()

    first = config.models[0].label
    assert needs(f"generate-{first}-level-2") == [f"select-{first}-level-2"]
    assert needs("evaluate-training-data") == ["dataset", "evaluation-reference", "sentiment-model"]
    assert needs(f"evaluate-{first}-level-2") == ["dataset", "evaluate-training-data", "evaluation-reference", f"generate-{first}-level-2",
                                                 "sentiment-model"]
    assert len(tasks["report"]["dependentTasks"]) == 1 + len(config.models) * (levels + 1), "every set's evaluation"
    assert needs("dataset") == ["ingest"]
    # The check task first: every other task waits for it, through ingest or the sentiment model.
    assert needs("check") == [] and needs("ingest") == ["check"] and needs("sentiment-model") == ["check"]

    def upstream(task):
        found = set(needs(task))
        for parent in needs(task):
            found |= upstream(parent)
        return found

    assert all("check" in upstream(t) for t in tasks if t != "check")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for spec_ in config.models:  # each model's train and generate tasks: its own settings, a GPU
        train_tasks = [t for n, t in tasks.items() if n.startswith(f"train-{spec_.label}")]
        assert train_tasks and all(t["inputs"]["parameters"]["model"]["runtimeValue"]["constant"]["model"] == spec_.name for t in train_tasks)
        for task in [*train_tasks, tasks[f"generate-{spec_.label}-level-1"]]:
            executor = task["componentRef"]["name"].replace("comp-", "exec-")
            resources = spec["deploymentSpec"]["executors"][executor]["container"]["resources"]
            assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu" and resources["accelerator"]["resourceCount"] == "1"
            gpu = config.gpu_for(spec_)  # requests are the limits: the node's CPU and memory held for its GPU's task
            assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == (gpu.cpu_limit, gpu.memory_limit)
            assert (resources["resourceCpuLimit"], resources["resourceMemoryLimit"]) == (gpu.cpu_limit, gpu.memory_limit)
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in executors[executor]["tolerations"]
            assert executors[executor]["secretAsEnv"][0]["secretName"] == "taletune-s3", "checkpoints and progress go to S3"
        generate = tasks[f"generate-{spec_.label}-level-1"]["inputs"]["parameters"]["model"]["runtimeValue"]["constant"]
        assert generate == {"model": spec_.name, "format": spec_.format, **spec_.generate}
    # Retried: what can fail for a while (the network, a GPU node, S3); never what fails the same way again.
    retried = {n for n, t in tasks.items() if "retryPolicy" in t}
    assert retried == {n for n in tasks if n in ("ingest", "sentiment-model") or n.startswith(("model-", "train-", "generate-"))}
    assert all(tasks[n]["retryPolicy"]["maxRetryCount"] == config.kubernetes.retries for n in retried)
    cpu = spec["deploymentSpec"]["executors"]["exec-check"]["container"]["resources"]
    assert (cpu["resourceCpuRequest"], cpu["resourceMemoryRequest"]) == (config.kubernetes.cpu_request, config.kubernetes.memory_request)
    assert "secretAsEnv" not in executors.get("exec-check", {}), "the check reads no storage"
    check = tasks["check"]["inputs"]["parameters"]
    assert check["cluster"]["runtimeValue"]["constant"] is True
    assert [m["label"] for m in check["models"]["runtimeValue"]["constant"]] == [m.label for m in config.models]
    assert check["train_config"]["componentInputParameter"] == "train_config", "the run's parameters, as sent"
    for executor_name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert container["image"] == (GPU_IMAGE if executor_name.startswith(("exec-train", "exec-generate")) else IMAGE)
        assert "pip install" not in " ".join(container["command"]), "the image already has the project"
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert defaults["catalog"]["defaultValue"]["genres"]["horror"]["prompt"] == "Write me a horror story"
    # The compiled parameters hold the config, nulls included.
    from components.common.config import from_parameter

    for stage in ("ingest", "dataset", "train", "generate", "evaluate", "report"):
        assert from_parameter(type(getattr(config, stage)), defaults[f"{stage}_config"]["defaultValue"]) == getattr(config, stage)
    secrets = executors["exec-ingest"]["secretAsEnv"]
    assert secrets[0]["secretName"] == "taletune-s3"
    assert {k["envVar"] for k in secrets[0]["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}


def test_the_7b_study_has_both_models_on_gpus_with_the_hub_token(tmp_path):
    spec, platform = compile_config("seed-study-7b", tmp_path)
    tasks = by_display_name(spec)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for label in ("falcon-7b-instruct", "llama-2-7b-hf"):
        for k in range(4):
            generate = tasks[f"generate-{label}-level-{k}"]
            assert tasks[f"evaluate-{label}-level-{k}"]
            executor = executors[generate["componentRef"]["name"].replace("comp-", "exec-")]
            assert executor["secretAsEnv"][-1]["secretName"] == "taletune-hf-token"
        for k in range(1, 4):
            train = tasks[f"train-{label}-level-{k}"]
            resources = spec["deploymentSpec"]["executors"][train["componentRef"]["name"].replace("comp-", "exec-")]["container"]["resources"]
            assert resources["accelerator"]["resourceCount"] == "1" and resources["memoryLimit"] == 64.0  # GB
    assert spec["root"]["inputDefinitions"]["parameters"]["train_config"]["defaultValue"]["precision"] == "8bit"


def test_cluster_placement_from_the_config(tmp_path):
    spec, platform = compile_config(
        "seed-study-7b", tmp_path, "kubernetes.node_selector={pool: cpu}",
        "kubernetes.tolerations=[{key: dedicated, value: taletune, effect: NoSchedule}]", "kubernetes.retries=5",
    )
    dag = by_display_name(spec)
    assert dag["ingest"]["retryPolicy"]["maxRetryCount"] == 5
    assert "retryPolicy" not in dag["dataset"] and "retryPolicy" not in dag["check"]
    # KFP's cache keys on inputs and image: off where the result also depends on the network, the hub or S3.
    uncached = {name for name, task in dag.items() if not task["cachingOptions"].get("enableCache")}
    assert uncached == {name for name in dag if name.split("-")[0] in ("ingest", "sentiment", "model", "train", "generate")}
    ingest = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-ingest"]
    assert ingest["nodeSelector"]["labels"] == {"pool": "cpu"}
    assert ingest["tolerations"][0]["key"] == "dedicated" and ingest["tolerations"][0]["effect"] == "NoSchedule"
    # GPU tasks: requests equal to limits, so their pods are not the first evicted.
    train = spec["deploymentSpec"]["executors"][dag["train-falcon-7b-instruct-level-1"]["componentRef"]["name"].replace("comp-", "exec-")]["container"]["resources"]
    assert (train["cpuRequest"], train["memoryRequest"]) == (train["cpuLimit"], train["memoryLimit"]) == (8.0, 64.0)
    # retries=0: no retry policy anywhere.
    spec, _ = compile_config("seed-study-7b", tmp_path, "kubernetes.retries=0")
    assert not [t for t in spec["root"]["dag"]["tasks"].values() if "retryPolicy" in t]


def _executor(spec: dict, platform: dict, task: dict) -> dict:
    """A task's Kubernetes settings (its executor's, in the platform spec)."""
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][task["componentRef"]["name"].replace("comp-", "exec-")]


def test_every_task_runs_as_the_images_user_and_model_tasks_get_a_scratch_volume(tmp_path):
    spec, platform = compile_config("seed-study-7b", tmp_path)
    tasks = by_display_name(spec)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"]), "every task has Kubernetes settings"
    # Stated in the pod, so a cluster that enforces runAsNonRoot can check it (the images' USER is 10001:10001).
    assert all(e["securityContext"] == {"runAsUser": "10001", "runAsGroup": "10001", "runAsNonRoot": True} for e in executors.values())
    # The tasks that put a model on their disk: its model task, train, generate. Room at /tmp, where the images write.
    holding = {n for n in tasks if n.startswith(("model-", "train-", "generate-"))}
    scratch = {"volumeName": "scratch", "mountPath": "/tmp", "sizeLimit": "100Gi"}
    for name, task in tasks.items():
        assert _executor(spec, platform, task).get("emptyDirMounts") == ([scratch] if name in holding else None), name
    # The model task downloads on a CPU node, with the hub token and S3; the GPU nodes wait for no download.
    for label in ("falcon-7b-instruct", "llama-2-7b-hf"):
        model_task = tasks[f"model-{label}"]
        executor = _executor(spec, platform, model_task)
        assert [s["secretName"] for s in executor["secretAsEnv"]] == ["taletune-s3", "taletune-s3", "taletune-hf-token"]
        assert "tolerations" not in executor and model_task["cachingOptions"] == {} and model_task["retryPolicy"]["maxRetryCount"] == 2
        resources = spec["deploymentSpec"]["executors"][model_task["componentRef"]["name"].replace("comp-", "exec-")]["container"]["resources"]
        assert "accelerator" not in resources

    # Per model, like every gpu: setting; null: no volume (the container's own disk).
    spec, platform = compile_config("seed-study-7b", tmp_path, "kubernetes.gpu.scratch_size=null", "models=[tiiuae/falcon-7b-instruct, "
                                    "{name: meta-llama/Llama-2-7b-hf, gpu: {scratch_size: 200Gi}}]")
    tasks = by_display_name(spec)
    for name, task in tasks.items():
        volumes = _executor(spec, platform, task).get("emptyDirMounts")
        if name.startswith(("model-llama", "train-llama", "generate-llama")):
            assert [v["sizeLimit"] for v in volumes] == ["200Gi"]
        else:
            assert volumes is None, name


def test_bad_scratch_settings_fail_when_the_config_loads(tmp_path):
    for setting, message in (("kubernetes.gpu.scratch_size=100GB", "'100GB' is not a Kubernetes quantity of bytes; write it like 100Gi"),
                             ("kubernetes.gpu.scratch_size=lots", "'lots' is not a Kubernetes quantity of bytes")):
        result = run_cli("pipelines", "compile", "--config", "seed-study-7b", "--out", str(tmp_path / "x.yaml"), "--set", setting)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]


def _check_inputs(name: str, *overrides: str):
    """What the check task receives for a config: its parameters as KFP sends them, and
    its models (numbers come back as floats, as through a pipeline spec)."""
    from pipelines.pipeline import parameters

    config = load_experiment(name, overrides)
    sent = json.loads(json.dumps(parameters(config)), parse_float=float, parse_int=float)
    configs = {stage: sent[f"{stage}_config"] for stage in ("ingest", "dataset", "train", "generate", "evaluate", "report")}
    models = [{"label": m.label, "train": m.train_overrides(), "generate": m.generate_overrides(), "shape": config.train_config(m).shape()}
              for m in config.models]
    return sent["catalog"], configs, models, config.report_prefix()


def test_the_check_task_names_every_bad_parameter_at_once(nltk_data):
    from components.check.stage import run_check
    from components.common.errors import TaletuneError

    catalog, configs, models, prefix = _check_inputs("demo")
    assert run_check(catalog, configs, models, prefix, cluster=False)["models"] == ["smollm2-135m", "gemma3-270m"]
    # Parameters edited in the dashboard: a bad value, a genre the catalog lacks, a level count the DAG was not compiled for.
    configs["train"]["batch_size"] = 0
    configs["generate"]["_null"].remove("genres")
    configs["generate"]["genres"] = ["westerns"]
    configs["train"]["levels"] = [{"fraction": 1.0, "epochs": 1}]
    models[1]["generate"]["model"] = "/not/in/this/pod"
    with pytest.raises(TaletuneError) as told:
        run_check(catalog, configs, models, prefix, cluster=False)
    message = str(told.value)
    assert message.startswith("3 problems: ") and "\n" not in message
    assert "invalid train config: batch_size" in message
    assert "generate.genres: westerns not in the catalog (fairy_tale, horror)" in message
    assert "the generate model of gemma3-270m '/not/in/this/pod' is not an alias" in message
    configs["train"]["batch_size"] = 4
    with pytest.raises(TaletuneError, match="compiled for 3 in nested mode"):
        run_check(catalog, configs, models[:1], prefix, cluster=False)


def test_on_a_cluster_the_check_task_refuses_state_on_the_pods_disk(nltk_data):
    from components.check.stage import run_check
    from components.common.errors import TaletuneError

    catalog, configs, models, prefix = _check_inputs("seed-study-7b", "run_prefix=s3://taletune/reports/seed-study-7b")
    assert run_check(catalog, configs, models, prefix, cluster=True)["cluster"] is True
    configs["generate"]["progress_root"] = "/tmp/stories"  # edited in the dashboard
    with pytest.raises(TaletuneError, match=r"these are not: generate.progress_root \(/tmp/stories\)\."):
        run_check(catalog, configs, models, prefix, cluster=True)
    assert run_check(catalog, configs, models, prefix, cluster=False)  # the local runner keeps its disk


# The demo's training, shrunk to seconds: 4 rows per genre, 64-token blocks, one trained
# level besides the untrained one (each level of each model adds a generate and an
# evaluate task: most of a minute); 3 stories per genre and level, a small genre classifier.
SMALL_TRAIN = ("train.max_train_rows_per_genre=4", "train.block_size=64", "train.batch_size=4", "train.max_eval_rows=8",
               "train.levels=[{fraction: 1.0, epochs: 2}]",
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


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    from tests.tiny import make_model

    return make_model(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama")


def test_demo_pipeline_runs_locally_with_the_book_cache_on_s3(tmp_path, mirror, smollm2, tiny_llama, tiny_sentiment, nltk_data, s3,
                                                              s3_server):
    # One run checks every stage (a pipeline run is minutes): two models (the real SmolLM2
    # in its chat format, a tiny random Llama in the llama format), the book cache on S3.
    env = {"NLTK_DATA": str(nltk_data), "AWS_ENDPOINT_URL": s3_server}
    models = f"models=[smollm2-135m, {{name: {tiny_llama}, label: tiny}}]"
    result = _run(tmp_path, mirror, f"ingest.cache={s3}/cache", models, models=smollm2, sentiment=tiny_sentiment, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    dataset = Path(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("dataset:")))
    assert dataset.is_relative_to(tmp_path / "runs")
    assert {p.name for p in (dataset / "data").iterdir()} == {"train.parquet", "validation.parquet", "test.parquet"}
    stats = json.loads((dataset / "stats.json").read_text())
    assert set(stats["rows"]["train"]) == {"horror", "fairy_tale", "other"}
    for label in ("horror", "fairy_tale", "other"):  # the demo caps every group at 400 rows, held-out books aside
        assert stats["rows"]["train"][label] + stats["rows"]["validation"][label] == 400
    import pyarrow.parquet as pq

    held_out = set(pq.read_table(dataset / "data" / "test.parquet").column("book_id").to_pylist())
    assert held_out == {"7074", "29021", "17893", "1952"}, "whole held-out books are the test split"
    assert len(stats["books"]) == 18
    run_dir = dataset.parents[1]
    assert yaml.safe_load((run_dir / "experiment.yaml").read_text())["name"] == "demo"
    assert (run_dir / "ingest" / "books" / "manifest.json").is_file()

    # Each model's untrained level and its trained one, each its own Model artifact,
    # trained in the model's own prompt format; the validation loss falls.
    lines = result.stdout.splitlines()
    levels = [line for line in lines if line.startswith(("smollm2-135m level", f"{tiny_llama} level"))]
    assert len(levels) == 4, result.stdout[-2000:]
    records = [json.loads((Path(line.split()[3]) / "training.json").read_text()) for line in levels]
    assert [(r["model"], r["level"], r["format"]) for r in records] == [
        (str(tiny_llama), k, "llama") for k in range(2)] + [("smollm2-135m", k, "chat") for k in range(2)]
    smol = records[2:]
    assert smol[1]["val_loss"] < smol[0]["val_loss"]
    # r=16 on every linear layer of 30: q and o (576x576), k and v (576x192), gate and up (576x1536), down (1536x576)
    assert smol[1]["trainable_parameters"] == 30 * 16 * (2 * 1152 + 2 * 768 + 3 * 2112)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(smollm2 / "smollm2-135m")
    PeftModel.from_pretrained(base, Path(levels[3].split()[3]))

    # Stories for each model untrained and trained, both genres, in the model's format.
    sets = [line for line in lines if line.startswith("stories, ")]
    assert len(sets) == 4, result.stdout[-2000:]
    by_level = {}
    for line in sets:
        records = [json.loads(x) for x in Path(line.split(": ", 1)[1].split()[0]).read_text().splitlines()]
        header, stories = records[0], records[1:]
        assert header["type"] == "header" and header["packages"]["torch"]
        assert sorted(s["id"] for s in stories) == [f"{g}-000{i}" for g in ("fairy_tale", "horror") for i in range(3)]
        assert header["training"]["level"] == header["level"] and header["format"] == stories[0]["format"]
        by_level[header["model"], header["level"]] = stories
    assert sorted(by_level) == sorted((m, k) for m in ("smollm2-135m", str(tiny_llama)) for k in range(2))
    smol = {k: v for (m, k), v in by_level.items() if m == "smollm2-135m"}
    assert smol[0][0]["adapter"] is None and smol[1][0]["adapter"].endswith("adapter") and smol[1][0]["format"] == "chat"
    assert smol[0][0]["text"] != smol[1][0]["text"]

    # Every set evaluated, the training data once, against one reference and sentiment model.
    evaluations = [line for line in lines if line.startswith("evaluation, ")]
    assert len(evaluations) == 5, result.stdout[-3000:]
    assert evaluations[0].startswith("evaluation, training data (6 stories")
    assert "genre classifier: balanced accuracy" in result.stdout and "of whole books it never saw" in result.stdout
    identities = []
    for line in evaluations:
        folder = Path(line.split(": ")[-1].split()[0]).parent
        metrics = json.loads((folder / "metrics.json").read_text())
        s = metrics["sets"][0]
        identities.append((s["kind"], s["model"], s["level"]))
        # The tiny random model's stories can be too few words for topics; everything else runs.
        assert set(s["errors"]) <= ({"topics"} if s["model"] == str(tiny_llama) else set()), (line, s["errors"])
        assert {"sentiment", "sentiment_vader", "lexicon", "diversity", "flags", "genre_fidelity", "copying", "closeness"} <= set(s)
        assert s["sentiment"]["model"] == str(tiny_sentiment)
        assert metrics["genre_classifier"]["n"] > 0
        assert (folder / "stories.jsonl").is_file()
        if s["kind"] == "training_data":
            assert s["copying"]["all"]["against"] == "the other training passages"
        elif s["model"] == "smollm2-135m":
            assert len(s["topics"]["aligned_to"]) == 2, "aligned to the training data's topics"
            assert s["stories"]["by_genre"] == {"fairy_tale": 3, "horror": 3}
            assert s["training"]["level"] == s["level"]
    assert identities == [("training_data", None, None)] + [("stories", m, k) for m in sorted(("smollm2-135m", str(tiny_llama))) for k in range(2)]
    # The dashboard's view of a set: its Markdown output and its Metrics.
    reports = sorted(run_dir.glob("evaluate*/report"))
    assert len(reports) == 5 and all(r.read_text().startswith("# Story sets") for r in reports)

    # One report of every set, in the dashboard (an HTML artifact) and under the run's prefix.
    report_line = next(line for line in lines if line.startswith("report: "))
    html = Path(report_line.split()[1]).read_text()
    for name in ("smollm2-135m", "tiny", "training data"):
        assert name in html
    assert all(f"level {k}" in html for k in range(2))
    assert (tmp_path / "cache" / "reports" / "demo" / "report.html").read_text() == html

    # The books went to the S3 cache, and the pipeline's dataset is byte for byte what the
    # stages give when run by hand.
    from components.common import storage
    from components.dataset.stage import run_dataset
    from components.common.catalog import load_catalog
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


@pytest.mark.slow  # two runs of the pipeline, about four minutes; stage-level reuse is in tests/test_keys.py
def test_a_rerun_of_the_demo_pipeline_does_no_repeated_work(tmp_path, mirror, smollm2, tiny_llama, tiny_sentiment, nltk_data, s3, s3_server):
    env = {"NLTK_DATA": str(nltk_data), "AWS_ENDPOINT_URL": s3_server}
    models = f"models=[smollm2-135m, {{name: {tiny_llama}, label: tiny}}]"
    first = _run(tmp_path, mirror, f"ingest.cache={s3}/cache", models, models=smollm2, sentiment=tiny_sentiment, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    # The rerun says, task by task, that it reused its result.
    again = _run(tmp_path, mirror, f"ingest.cache={s3}/cache", models, models=smollm2, sentiment=tiny_sentiment, env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    told = [line for line in again.stdout.splitlines() if line.startswith(("train, ", "stories, ", "genre classifier", "evaluation, ", "report: "))]
    assert len(told) == 2 + 4 + 1 + 5 + 1
    assert all("[reused" in line for line in told), [line for line in told if "[reused" not in line]


def test_a_failing_task_stops_the_run_with_its_message(tmp_path, mirror, nltk_data):
    # Held-out books the catalog has not would stop the run in its first task, the check.
    result = _run(tmp_path, mirror, "catalog={genres: {horror: {prompt: p, books: [999999]}}}", "ingest.offline=true",
                  "dataset.split.holdout_books=[]", env={"NLTK_DATA": str(nltk_data)})
    assert result.returncode == 2
    assert "error: ebook 999999 was not found" in result.stdout
    assert "error: the pipeline stopped" in result.stderr and "Traceback" not in result.stderr


def test_prepare_puts_each_model_in_the_cache_ahead_of_a_run(tmp_path, tiny_llama):
    result = run_cli("pipelines", "prepare", "--config", "demo", "--set", f"models=[{tiny_llama}]", "--set", "evaluate.sentiment.model=null")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"model tiny-llama: {tiny_llama}" in result.stdout and "sentiment model" not in result.stdout
    bad = run_cli("pipelines", "prepare", "--config", "demo", "--set", "models=[nope-model]")
    assert bad.returncode == 2 and "unknown model 'nope-model'" in bad.stderr and "Traceback" not in bad.stderr
