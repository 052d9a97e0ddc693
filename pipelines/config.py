"""The experiment config: every stage's settings in one validated file.

    python -m pipelines run --config demo --set dataset.lines_per_passage=30

Order: defaults, then the YAML file (`pipelines/configs/<name>.yaml` or any path),
then `--set a.b=c` overrides. The resolved config is saved beside every run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.common.config import StrictModel, load_config, validate
from components.common.errors import TaletuneError
from components.common.modelspec import ModelSpec, merged
from components.dataset.config import DatasetConfig
from components.evaluate.config import EvaluateConfig
from components.generate.config import GenerateConfig, GenerateSettings
from components.ingest.config import IngestConfig
from components.report.config import ReportConfig
from components.train.config import TrainConfig, TrainSettings

CONFIG_DIR = Path(__file__).parent / "configs"


class Toleration(StrictModel):
    key: str
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoExecute", "NoSchedule", "PreferNoSchedule"] | None = None


# A Kubernetes quantity of bytes (100Gi, 500G); a StorageClass name (a DNS subdomain).
# Checked when the config loads: KFP's driver would refuse either only in the pod, hours in.
QUANTITY = r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?"


class GpuConfig(StrictModel):
    """The GPU nodes the train and generate tasks ask for, and the scratch volume of every
    task that holds the model on its disk (its model task, train and generate)."""

    accelerator: str = "nvidia.com/gpu"
    count: int = Field(default=1, ge=0)  # 0: train on CPU nodes
    # Requested as well as limits: the node's CPU and memory are held for the task with its GPU.
    cpu_limit: str = "8"
    memory_limit: str = "48G"
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    # Room at /tmp (the images write nothing elsewhere), an emptyDir of at most this size,
    # for the weights (14 GB for a 7B model) and their staging copy. None: no volume, the
    # container's own writable layer.
    scratch_size: str | None = "100Gi"

    @field_validator("scratch_size")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(QUANTITY, value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity of bytes; write it like 100Gi or 500G (null: no scratch volume)")
        return value


class KubernetesConfig(StrictModel):
    """How tasks run on a cluster; the local runner ignores all of it."""

    # A Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL for
    # the storage layer (k8s/s3-secret.example.yaml). None: the tasks get no S3 variables.
    s3_secret: str | None = "taletune-s3"
    # A Secret with HF_TOKEN, for gated hub models (Llama-2): each model's model task (which
    # downloads it), train and generate tasks get it as an environment variable. None: no
    # token (public models).
    hf_token_secret: str | None = None
    # Retries of the tasks whose failures can be transient: ingest (the network), the
    # sentiment model and each model's model task (downloads), train and generate (a lost
    # GPU node, S3; both resume).
    # The others fail the same way again, so they are not retried. 0: none.
    retries: int = Field(default=2, ge=0)
    # Every task's CPU and memory; the GPU tasks' come from gpu: (requests there are the limits).
    cpu_request: str = "1"
    cpu_limit: str = "2"
    memory_request: str = "2G"
    memory_limit: str = "8G"
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = []
    gpu: GpuConfig = GpuConfig()


class ExperimentConfig(StrictModel):
    name: str = Field(default="taletune", pattern=r"^[a-z0-9][a-z0-9-]*$")
    # The genre catalog: "default" (the reference study's books), a YAML path or URI,
    # or the catalog itself, inline.
    catalog: str | dict = "default"
    # The models to train and compare, each at every level: an alias, hub id, folder or
    # s3:// prefix, or a mapping with what differs for it (components/common/modelspec.py).
    models: list[ModelSpec] = Field(default=[ModelSpec(name="smollm2-135m")], min_length=1)
    ingest: IngestConfig = IngestConfig()
    dataset: DatasetConfig = DatasetConfig()
    # Shared by every model; an entry of models: overrides it for its model.
    train: TrainSettings = TrainSettings()
    # Its model cache follows train's unless set here.
    generate: GenerateSettings = GenerateSettings()
    # The training data is sampled to generate.n passages per genre unless data_per_genre is set.
    evaluate: EvaluateConfig = EvaluateConfig()
    report: ReportConfig = ReportConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    # The report is also written here, for people outside the dashboard (an s3:// prefix
    # on a cluster). None: <cache>/reports/<name>. A prefix belongs to one config: a run
    # of another config there is refused unless replace_prefix is true.
    run_prefix: str | None = None
    replace_prefix: bool = False

    @model_validator(mode="after")
    def _generate_follows_training(self):
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"two models have the same label ({', '.join(labels)}); give one a label: of its own")
        for spec in self.models:  # each model's settings must validate now, not in a task an hour later
            self.train_config(spec)
            self.generate_config(spec)
            self.gpu_for(spec)
        if "model_cache" not in self.generate.model_fields_set:
            self.generate.model_cache = self.train.model_cache
        if "data_per_genre" not in self.evaluate.model_fields_set:
            self.evaluate.data_per_genre = self.generate.n
        if "seed" not in self.evaluate.model_fields_set:
            self.evaluate.seed = self.generate.seed
        return self


    def report_prefix(self) -> str:
        from components.common import storage

        return self.run_prefix or storage.join(storage.cache_root(), "reports", self.name)

    def fingerprint(self) -> dict:
        """What makes two runs the same experiment: everything but how they are measured,
        reported and placed (so changing only those may reuse the run prefix)."""
        return self.model_dump(mode="json", exclude={"evaluate", "report", "kubernetes", "run_prefix", "replace_prefix"})

    def train_config(self, spec: ModelSpec) -> TrainConfig:
        return validate(TrainConfig, merged(self.train.model_dump(), spec.train_overrides()), f"train settings of model {spec.label}")

    def generate_config(self, spec: ModelSpec) -> GenerateConfig:
        return validate(GenerateConfig, merged(self.generate.model_dump(), spec.generate_overrides()), f"generate settings of model {spec.label}")

    def gpu_for(self, spec: ModelSpec) -> GpuConfig:
        return validate(GpuConfig, merged(self.kubernetes.gpu.model_dump(), spec.gpu or {}), f"gpu settings of model {spec.label}")


def config_path(name_or_file: str) -> Path | str:
    """`demo` means pipelines/configs/demo.yaml; anything with a suffix or slash is a path,
    and an s3:// URI is read through the storage layer (which says what S3 refused)."""
    from components.common import storage

    if storage.is_s3(name_or_file):
        return name_or_file
    if name_or_file.endswith((".yaml", ".yml")) or "/" in name_or_file:
        path = Path(name_or_file)
    else:
        path = CONFIG_DIR / f"{name_or_file}.yaml"
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    if path.is_dir():
        raise TaletuneError(f"config {name_or_file!r} is a folder ({path}); give a YAML file in it, or one of: {known}")
    if not path.is_file():
        raise TaletuneError(f"config {name_or_file!r} not found ({path}); use a file or one of: {known}")
    return path


def load_experiment(name_or_file: str = "demo", overrides: list[str] = ()) -> ExperimentConfig:
    return load_config(ExperimentConfig, config_path(name_or_file), overrides)


def runs_root() -> Path:
    """Local pipeline root: $TALETUNE_RUNS, else runs/ in the checkout."""
    return Path(os.environ.get("TALETUNE_RUNS") or Path(__file__).resolve().parent.parent / "runs")
