# KFP reads the annotations at runtime: no `from __future__ import annotations` here.
"""The taletune DAG: ingest -> dataset -> for each model: train -> for each level: select
-> generate -> evaluate; the training data evaluated once; one report of every set.

    python -m pipelines compile --config seed-study-7b --out taletune.yaml

Stage settings are pipeline parameters (one dict per stage, see `parameters`), so a run
started from the Kubeflow dashboard can change them. What shapes the DAG is fixed when
the pipeline is compiled: the models (and what differs per model), the number of
levels and the training mode (a run that changes the last two fails at once, in the
train task), and the cluster settings (secrets, retries, resources, node placement).
"""


import json

from kfp import dsl, kubernetes
from kfp.dsl import Dataset

from components.common.catalog import load_catalog
from components.common.config import to_parameter
from components.dataset.component import make_dataset
from components.evaluate.component import evaluate, evaluation_reference, sentiment_model
from components.generate.component import generate
from components.ingest.component import ingest
from components.report.component import report_component
from components.train.component import select_level, train
from pipelines.config import ExperimentConfig, GpuConfig, KubernetesConfig

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")


def parameters(config: ExperimentConfig) -> dict:
    """Pipeline arguments from an experiment config (the catalog is resolved inline).

    KFP parameters cannot hold null, so each stage's settings travel with their null keys
    listed (components.common.config.to_parameter): unset stays unset.
    """
    return {
        "catalog": load_catalog(config.catalog).model_dump(exclude_none=True),
        "ingest_config": to_parameter(config.ingest),
        "dataset_config": to_parameter(config.dataset),
        "train_config": to_parameter(config.train),
        "generate_config": to_parameter(config.generate),
        "evaluate_config": to_parameter(config.evaluate),
        "report_config": to_parameter(config.report),
    }


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


def hub_token(task: dsl.PipelineTask, k8s: KubernetesConfig) -> dsl.PipelineTask:
    """The Hugging Face token for gated models (Llama-2), from its Secret: never a parameter."""
    if k8s.hf_token_secret:
        kubernetes.use_secret_as_env(task, secret_name=k8s.hf_token_secret, secret_key_to_env={"HF_TOKEN": "HF_TOKEN"})
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
    """The pipeline function, with this config's models, cluster settings and parameter defaults.

    `local=True` leaves the cluster settings out: the local runner would otherwise wait
    out the retry back-off (minutes) after a task fails on bad input.
    """
    defaults = parameters(config)
    k8s = config.kubernetes
    levels = len(config.train.levels)
    report = report_component(1 + len(config.models) * (levels + 1))

    def place(task, name, needs_s3=True, gpu=None):
        task.set_display_name(name)
        if local:
            return task
        on_cluster(task, k8s, needs_s3)
        return hub_token(on_gpu(task, gpu), k8s) if gpu else task

    @dsl.pipeline(name="taletune", description="Genre storytellers from public-domain books, and how well that worked.")
    def taletune(
        catalog: dict = defaults["catalog"],
        ingest_config: dict = defaults["ingest_config"],
        dataset_config: dict = defaults["dataset_config"],
        train_config: dict = defaults["train_config"],
        generate_config: dict = defaults["generate_config"],
        evaluate_config: dict = defaults["evaluate_config"],
        report_config: dict = defaults["report_config"],
    ) -> Dataset:
        books = place(ingest(catalog=catalog, config=ingest_config), "ingest")
        data = place(make_dataset(books=books.outputs["books"], catalog=catalog, config=dataset_config), "dataset", needs_s3=False)
        dataset = data.outputs["dataset"]

        # Every story set is measured against one reference (genre classifier, held-out
        # passages) and one sentiment model, each built once; the training data is a set too,
        # and the anchor its topics are aligned to.
        reference = place(evaluation_reference(dataset=dataset, config=evaluate_config), "evaluation-reference")
        senti = place(sentiment_model(config=evaluate_config), "sentiment-model")
        measured = {"reference": reference.outputs["reference"], "sentiment": senti.outputs["model"], "dataset": dataset, "config": evaluate_config}
        data_set = place(evaluate(stories=dataset, **measured), "evaluate-training-data")
        evaluations = [data_set.outputs["evaluation"]]

        for spec in config.models:
            gpu = config.gpu_for(spec)
            shape = config.train_config(spec).shape()
            model = spec.train_overrides()
            # Nested: one task trains through every level. Independent: one task per level,
            # in parallel (the number of levels is fixed when the pipeline is compiled).
            if config.train.mode == "nested":
                trained = place(train(dataset=dataset, config=train_config, model=model, shape=shape), f"train-{spec.label}", gpu=gpu)
                runs = dict.fromkeys(range(levels + 1), trained)
            else:
                per_level = {k: place(train(dataset=dataset, config=train_config, model=model, shape=shape, only_level=k),
                                      f"train-{spec.label}-level-{k}", gpu=gpu) for k in range(1, levels + 1)}
                runs = {0: per_level[1], **per_level}
            for k in range(levels + 1):
                name = f"{spec.label}-level-{k}"
                chosen = place(select_level(adapters=runs[k].outputs["adapters"], level=k), f"select-{name}", needs_s3=False)
                stories = generate(adapter=chosen.outputs["adapter"], catalog=catalog, config=generate_config, model=spec.generate_overrides())
                place(stories, f"generate-{name}", gpu=gpu)
                scored = evaluate(stories=stories.outputs["stories"], anchor=data_set.outputs["evaluation"], **measured)
                evaluations.append(place(scored, f"evaluate-{name}").outputs["evaluation"])

        sets = {f"set_{i:02d}": e for i, e in enumerate(evaluations)}
        place(report(**sets, config=report_config, prefix=config.report_prefix(), experiment=json.dumps(config.fingerprint(), sort_keys=True),
                     replace=config.replace_prefix), "report")
        return dataset

    return taletune
