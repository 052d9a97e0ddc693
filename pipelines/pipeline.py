# KFP reads the annotations at runtime: no `from __future__ import annotations` here.
"""The taletune DAG: ingest -> dataset (later: train -> generate -> evaluate -> report).

    python -m pipelines compile --config full --out taletune.yaml

Stage settings are pipeline parameters (one dict per stage), so a run started from the
Kubeflow dashboard can change them; cluster settings (secrets, retries, resources,
node placement) are fixed when the pipeline is compiled.
"""


from kfp import dsl, kubernetes
from kfp.dsl import Dataset

from components.dataset.component import make_dataset
from components.ingest.catalog import load_catalog
from components.ingest.component import ingest
from pipelines.config import ExperimentConfig, KubernetesConfig

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")


def parameters(config: ExperimentConfig) -> dict:
    """Pipeline arguments from an experiment config (the catalog is resolved inline).

    KFP parameters cannot hold null, so unset settings are left out and take their defaults.
    """
    return {
        "catalog": load_catalog(config.catalog).model_dump(exclude_none=True),
        "ingest_config": config.ingest.model_dump(exclude_none=True),
        "dataset_config": config.dataset.model_dump(exclude_none=True),
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


def build_pipeline(config: ExperimentConfig, local: bool = False):
    """The pipeline function, with this config's cluster settings and parameter defaults.

    `local=True` leaves the cluster settings out: the local runner would otherwise wait
    out the retry back-off (minutes) after a task fails on bad input.
    """
    defaults = parameters(config)
    k8s = config.kubernetes

    def place(task, needs_s3=True):
        return task if local else on_cluster(task, k8s, needs_s3)

    @dsl.pipeline(name="taletune", description="Genre storytellers from public-domain books, and how well that worked.")
    def taletune(
        catalog: dict = defaults["catalog"],
        ingest_config: dict = defaults["ingest_config"],
        dataset_config: dict = defaults["dataset_config"],
    ) -> Dataset:
        books = place(ingest(catalog=catalog, config=ingest_config)).set_display_name("ingest")
        data = make_dataset(books=books.outputs["books"], catalog=catalog, config=dataset_config)
        place(data, needs_s3=False).set_display_name("dataset")
        return data.outputs["dataset"]

    return taletune
