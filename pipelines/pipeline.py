# KFP reads the annotations at runtime: no `from __future__ import annotations` here.
"""The taletune DAG: ingest -> dataset -> train -> one Model per level -> generate -> evaluate per level (later: report).

    python -m pipelines compile --config full --out taletune.yaml

Stage settings are pipeline parameters (one dict per stage), so a run started from the
Kubeflow dashboard can change them; cluster settings (secrets, retries, resources,
node placement) are fixed when the pipeline is compiled.
"""


from kfp import dsl, kubernetes
from kfp.dsl import Dataset

from components.dataset.component import make_dataset
from components.evaluate.component import evaluate, evaluation_reference, sentiment_model
from components.generate.component import generate
from components.ingest.catalog import load_catalog
from components.ingest.component import ingest
from components.train.component import select_level, train
from pipelines.config import ExperimentConfig, GpuConfig, KubernetesConfig

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")


def parameters(config: ExperimentConfig) -> dict:
    """Pipeline arguments from an experiment config (the catalog is resolved inline).

    KFP parameters cannot hold null, so unset settings are left out and take their defaults.
    """
    return {
        "catalog": load_catalog(config.catalog).model_dump(exclude_none=True),
        "ingest_config": config.ingest.model_dump(exclude_none=True),
        "dataset_config": config.dataset.model_dump(exclude_none=True),
        "train_config": config.train.model_dump(exclude_none=True),
        "generate_config": config.generate.model_dump(exclude_none=True),
        "evaluate_config": evaluate_parameters(config),
    }


def evaluate_parameters(config: ExperimentConfig) -> dict:
    """The evaluate config as a parameter; a null sentiment model (VADER only) travels as "",
    since leaving it out would bring back the default model."""
    values = config.evaluate.model_dump(exclude_none=True)
    if config.evaluate.sentiment.model is None:
        values["sentiment"]["model"] = ""
    return values


def on_cluster(task: dsl.PipelineTask, k8s: KubernetesConfig, needs_s3: bool = True) -> dsl.PipelineTask:
    """Resources, retries, placement and S3 credentials for one task."""
    task.set_cpu_request(k8s.cpu_request).set_cpu_limit(k8s.cpu_limit)
    task.set_memory_request(k8s.memory_request).set_memory_limit(k8s.memory_limit)
    task.set_retry(num_retries=k8s.retries, backoff_duration="60s", backoff_factor=2)
    if needs_s3 and k8s.s3_secret:
        # Secrets reach the pod as environment variables, never as pipeline parameters.
        kubernetes.use_secret_as_env(task, secret_name=k8s.s3_secret, secret_key_to_env={k: k for k in S3_KEYS})
    for key, value in k8s.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for tol in k8s.tolerations:
        kubernetes.add_toleration(task, key=tol.key, operator=tol.operator, value=tol.value, effect=tol.effect)
    return task


def on_gpu(task: dsl.PipelineTask, gpu: GpuConfig) -> dsl.PipelineTask:
    """A GPU, and the node placement GPU nodes need (their taints, their labels)."""
    if gpu.count:
        task.set_accelerator_type(gpu.accelerator).set_accelerator_limit(gpu.count)
    task.set_cpu_limit(gpu.cpu_limit).set_memory_limit(gpu.memory_limit)
    for key, value in gpu.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for tol in gpu.tolerations:
        kubernetes.add_toleration(task, key=tol.key, operator=tol.operator, value=tol.value, effect=tol.effect)
    return task


def build_pipeline(config: ExperimentConfig, local: bool = False):
    """The pipeline function, with this config's cluster settings and parameter defaults.

    `local=True` leaves the cluster settings out: the local runner would otherwise wait
    out the retry back-off (minutes) after a task fails on bad input.
    """
    defaults = parameters(config)
    k8s = config.kubernetes

    def place(task, needs_s3=True, gpu=False):
        if local:
            return task
        on_cluster(task, k8s, needs_s3)
        return on_gpu(task, k8s.gpu) if gpu else task

    levels = len(config.train.levels)

    @dsl.pipeline(name="taletune", description="Genre storytellers from public-domain books, and how well that worked.")
    def taletune(
        catalog: dict = defaults["catalog"],
        ingest_config: dict = defaults["ingest_config"],
        dataset_config: dict = defaults["dataset_config"],
        train_config: dict = defaults["train_config"],
        generate_config: dict = defaults["generate_config"],
        evaluate_config: dict = defaults["evaluate_config"],
    ) -> Dataset:
        books = place(ingest(catalog=catalog, config=ingest_config)).set_display_name("ingest")
        data = make_dataset(books=books.outputs["books"], catalog=catalog, config=dataset_config)
        place(data, needs_s3=False).set_display_name("dataset")
        dataset = data.outputs["dataset"]

        # Nested: one task trains through every level. Independent: one task per level,
        # in parallel (the number of levels is fixed when the pipeline is compiled).
        if config.train.mode == "nested":
            trained = place(train(dataset=dataset, config=train_config), gpu=True).set_display_name("train")
            runs = dict.fromkeys(range(levels + 1), trained)
        else:
            per_level = {
                k: place(train(dataset=dataset, config=train_config, only_level=k), gpu=True).set_display_name(f"train-level-{k}")
                for k in range(1, levels + 1)
            }
            runs = {0: per_level[1], **per_level}

        # Every story set is measured against one reference (genre classifier, held-out
        # passages) and one sentiment model, each built once; the training data is a set too,
        # and the anchor its topics are aligned to.
        reference = place(evaluation_reference(dataset=dataset, config=evaluate_config), needs_s3=False)
        reference.set_display_name("evaluation-reference")
        senti = place(sentiment_model(config=evaluate_config)).set_display_name("sentiment-model")
        measured = {"reference": reference.outputs["reference"], "sentiment": senti.outputs["model"], "dataset": dataset, "config": evaluate_config}
        data_set = place(evaluate(stories=dataset, **measured), needs_s3=False).set_display_name("evaluate-training-data")
        for k in range(levels + 1):
            chosen = select_level(adapters=runs[k].outputs["adapters"], level=k)
            place(chosen, needs_s3=False).set_display_name(f"level-{k}")
            stories = generate(adapter=chosen.outputs["adapter"], catalog=catalog, config=generate_config)
            place(stories, gpu=True).set_display_name(f"generate-level-{k}")
            scored = evaluate(stories=stories.outputs["stories"], anchor=data_set.outputs["evaluation"], **measured)
            place(scored, needs_s3=False).set_display_name(f"evaluate-level-{k}")
        return dataset

    return taletune
