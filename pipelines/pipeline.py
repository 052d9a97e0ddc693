# KFP reads the annotations at runtime: no `from __future__ import annotations` here.
"""The taletune DAG: ingest -> dataset -> for each model: its weights pinned and cached once
-> train -> for each level: select -> generate -> evaluate; the training data evaluated
once; one report of every set.

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

from components.check.component import check
from components.common.catalog import load_catalog
from components.common.config import to_parameter
from components.common.models import is_hub
from components.dataset.component import make_dataset
from components.evaluate.component import evaluate, evaluation_reference, sentiment_model
from components.generate.component import generate
from components.ingest.component import ingest
from components.report.component import report_component
from components.train.component import prepare_model, select_level, train
from pipelines.config import ExperimentConfig, GpuConfig, KubernetesConfig

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")
# The images' user and group (docker/Dockerfile*: USER 10001:10001).
IMAGE_UID = IMAGE_GID = 10001
# Where the images write everything (HOME, HF_HOME and TALETUNE_CACHE are under it).
SCRATCH = "/tmp"


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


def on_cluster(task: dsl.PipelineTask, k8s: KubernetesConfig, needs_s3: bool = True, retry: bool = False) -> dsl.PipelineTask:
    """Resources, retries, placement and S3 credentials for one task.

    KFP's retry policy is a count and a back-off, with no filter on the exit code (the
    pipeline spec's RetryPolicy has no other field), so a retried task is retried on bad
    input too. Only tasks whose failures can be transient get one (`retry`): a download,
    a preempted or lost GPU node, a dropped S3 connection. The deterministic tasks fail
    once, and the `check` task has caught bad input before any retried task starts.

    The KFP SDK sets no ephemeral-storage request (its ResourceSpec has cpu, memory and
    accelerator only); the namespace's LimitRange (k8s/) gives each container one.

    Every task runs as the images' own non-root user, stated in the pod: a cluster that
    enforces runAsNonRoot cannot check a user named only in the image, and an image
    rebuilt without its USER line still never runs as root. (KFP's backend adds the rest:
    no privilege escalation, no capabilities, the runtime's seccomp profile.)
    """
    kubernetes.set_security_context(task, run_as_user=IMAGE_UID, run_as_group=IMAGE_GID, run_as_non_root=True)
    task.set_cpu_request(k8s.cpu_request).set_cpu_limit(k8s.cpu_limit)
    task.set_memory_request(k8s.memory_request).set_memory_limit(k8s.memory_limit)
    if retry and k8s.retries:
        task.set_retry(num_retries=k8s.retries, backoff_duration="60s", backoff_factor=2)
    if needs_s3 and k8s.s3_secret:
        # Secrets reach the pod as environment variables, never as pipeline parameters.
        kubernetes.use_secret_as_env(task, secret_name=k8s.s3_secret, secret_key_to_env={k: k for k in S3_KEYS})
        # AWS S3 outside us-east-1 signs for the bucket's region; MinIO needs none.
        kubernetes.use_secret_as_env(task, secret_name=k8s.s3_secret, secret_key_to_env={"AWS_DEFAULT_REGION": "AWS_DEFAULT_REGION"},
                                     optional=True)
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


def scratch_volume(task: dsl.PipelineTask, gpu: GpuConfig) -> dsl.PipelineTask:
    """Room at /tmp, up to `gpu.scratch_size`, for a task that puts a model's weights on
    its disk (14 GB for a 7B model, and a staging copy): an emptyDir on the node's disk.

    An emptyDir, not a PersistentVolumeClaim: a new volume's root belongs to root, and the
    KFP SDK cannot set the pod's fsGroup that would make it writable by the images' uid
    10001; an emptyDir is writable by every user. Its size is a limit (the kubelet evicts
    a pod past it), not a reservation: the SDK cannot request ephemeral-storage, so the
    node pool's disks must hold it (docs/cluster.md), and the namespace's LimitRange must
    allow it (k8s/overlays/cloud)."""
    if gpu.scratch_size:
        kubernetes.empty_dir_mount(task, volume_name="scratch", mount_path=SCRATCH, size_limit=gpu.scratch_size)
    return task


def holds_model(task: dsl.PipelineTask, k8s: KubernetesConfig, gpu: GpuConfig) -> dsl.PipelineTask:
    """What a task that loads or downloads a model needs: the hub token and the model's scratch volume."""
    return scratch_volume(hub_token(task, k8s), gpu)


def on_gpu(task: dsl.PipelineTask, gpu: GpuConfig) -> dsl.PipelineTask:
    """A GPU, and the node placement GPU nodes need (their taints, their labels).

    Requests equal limits: a GPU node's CPU and memory are reserved for the task that holds
    its GPU, and a task that bursts past a smaller request is the first evicted under
    memory pressure, hours into training. (The pod's QoS class also counts KFP's own
    containers, which the SDK does not size.)"""
    if gpu.count:
        task.set_accelerator_type(gpu.accelerator).set_accelerator_limit(gpu.count)
    task.set_cpu_request(gpu.cpu_limit).set_cpu_limit(gpu.cpu_limit)
    task.set_memory_request(gpu.memory_limit).set_memory_limit(gpu.memory_limit)
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

    def place(task, name, needs_s3=True, gpu=None, retry=False, holds=None):
        """`gpu`: the GPU settings of a task that needs one; `holds`: those of the model
        whose weights the task puts on its disk (train, generate, the model task)."""
        task.set_display_name(name)
        if retry:
            # The tasks retried are also those whose result depends on more than their KFP
            # inputs (gutenberg.org, the hub's current revision, S3 caches): KFP's cache,
            # keyed by inputs and image, could serve a stale result. They decide reuse
            # themselves, by content (task and set keys), and cheaply.
            task.set_caching_options(False)
        if local:
            return task
        on_cluster(task, k8s, needs_s3, retry)
        if gpu:
            on_gpu(task, gpu)
        return holds_model(task, k8s, holds) if holds else task

    # What the check task validates each model's settings as (fixed when compiled, as for train and generate).
    models = [{"label": spec.label, "train": spec.train_overrides(), "generate": spec.generate_overrides(),
               "shape": config.train_config(spec).shape()} for spec in config.models]

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
        # Not retried, and needing no S3: bad input fails here once. Every other task
        # descends from ingest or the sentiment model, which wait for it.
        checked = place(check(catalog=catalog, ingest_config=ingest_config, dataset_config=dataset_config, train_config=train_config,
                              generate_config=generate_config, evaluate_config=evaluate_config, report_config=report_config,
                              models=models, prefix=config.report_prefix(), cluster=not local), "check", needs_s3=False)
        books = place(ingest(catalog=catalog, config=ingest_config).after(checked), "ingest", retry=True)  # the network
        data = place(make_dataset(books=books.outputs["books"], catalog=catalog, config=dataset_config), "dataset", needs_s3=False)
        dataset = data.outputs["dataset"]

        # Every story set is measured against one reference (genre classifier, held-out
        # passages) and one sentiment model, each built once; the training data is a set too,
        # and the anchor its topics are aligned to.
        reference = place(evaluation_reference(dataset=dataset, config=evaluate_config), "evaluation-reference")
        senti = place(sentiment_model(config=evaluate_config).after(checked), "sentiment-model", retry=True)  # a download
        measured = {"reference": reference.outputs["reference"], "sentiment": senti.outputs["model"], "dataset": dataset, "config": evaluate_config}
        data_set = place(evaluate(stories=dataset, **measured), "evaluate-training-data")
        evaluations = [data_set.outputs["evaluation"]]

        for spec in config.models:
            gpu = config.gpu_for(spec)
            shape = config.train_config(spec).shape()
            model = spec.train_overrides()
            # One task pins the model's name to its hub commit and fills the model cache, on
            # a CPU node, before any train task starts: the levels trained in parallel load
            # one commit (a branch may move while a level waits hours for a GPU), and the
            # model comes from the hub once, not once per level. Retried: a download.
            # Locally, a model that is not a hub id has nothing to pin, and `prepare` (or the
            # first train task, the only one running) fills the cache: no task, no subprocess.
            pinned = ""
            if not local or is_hub(spec.name):
                pinned = place(prepare_model(config=train_config, model=model).after(checked), f"model-{spec.label}", retry=True,
                               holds=gpu).output
            # Nested: one task trains through every level. Independent: one task per level,
            # in parallel (the number of levels is fixed when the pipeline is compiled).
            if config.train.mode == "nested":
                # Retried: a preempted or lost GPU node, S3; a retry resumes from its checkpoints.
                trained = place(train(dataset=dataset, config=train_config, model=model, shape=shape, base=pinned), f"train-{spec.label}",
                                gpu=gpu, retry=True, holds=gpu)
                runs = dict.fromkeys(range(levels + 1), trained)
            else:
                per_level = {k: place(train(dataset=dataset, config=train_config, model=model, shape=shape, only_level=k, base=pinned),
                                      f"train-{spec.label}-level-{k}", gpu=gpu, retry=True, holds=gpu) for k in range(1, levels + 1)}
                runs = {0: per_level[1], **per_level}
            for k in range(levels + 1):
                name = f"{spec.label}-level-{k}"
                chosen = place(select_level(adapters=runs[k].outputs["adapters"], level=k), f"select-{name}", needs_s3=False)
                # The base comes from the adapter's record: the commit its level was trained on.
                stories = generate(adapter=chosen.outputs["adapter"], catalog=catalog, config=generate_config, model=spec.generate_overrides())
                place(stories, f"generate-{name}", gpu=gpu, retry=True, holds=gpu)  # resumes the set from its finished chunks
                scored = evaluate(stories=stories.outputs["stories"], anchor=data_set.outputs["evaluation"], **measured)
                evaluations.append(place(scored, f"evaluate-{name}").outputs["evaluation"])

        sets = {f"set_{i:02d}": e for i, e in enumerate(evaluations)}
        place(report(**sets, config=report_config, prefix=config.report_prefix(), experiment=json.dumps(config.fingerprint(), sort_keys=True),
                     replace=config.replace_prefix), "report")
        return dataset

    return taletune
