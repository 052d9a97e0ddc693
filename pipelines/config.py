"""The experiment config: every stage's settings in one validated file.

    python -m pipelines run --config demo --set dataset.lines_per_passage=30

Order: defaults, then the YAML file (`pipelines/configs/<name>.yaml` or any path),
then `--set a.b=c` overrides. The resolved config is saved beside every run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from components.common.config import StrictModel, load_config
from components.common.errors import TaletuneError
from components.dataset.config import DatasetConfig
from components.evaluate.config import EvaluateConfig
from components.generate.config import GenerateConfig
from components.ingest.config import IngestConfig
from components.train.config import TrainConfig

CONFIG_DIR = Path(__file__).parent / "configs"


class Toleration(StrictModel):
    key: str
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoExecute", "NoSchedule", "PreferNoSchedule"] | None = None


class GpuConfig(StrictModel):
    """The GPU nodes the train and generate tasks ask for."""

    accelerator: str = "nvidia.com/gpu"
    count: int = Field(default=1, ge=0)  # 0: train on CPU nodes
    cpu_limit: str = "8"
    memory_limit: str = "48G"
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]


class KubernetesConfig(StrictModel):
    """How tasks run on a cluster; the local runner ignores all of it."""

    # A Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL for
    # the storage layer (k8s/s3-secret.example.yaml). None: the tasks get no S3 variables.
    s3_secret: str | None = "taletune-s3"
    retries: int = Field(default=2, ge=0)
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
    ingest: IngestConfig = IngestConfig()
    dataset: DatasetConfig = DatasetConfig()
    train: TrainConfig = TrainConfig()
    # Its model, model cache and template follow train and dataset unless set here.
    generate: GenerateConfig = GenerateConfig()
    # The training data is sampled to generate.n passages per genre unless data_per_genre is set.
    evaluate: EvaluateConfig = EvaluateConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()

    @model_validator(mode="after")
    def _generate_follows_training(self):
        given = self.generate.model_fields_set
        follow = {"model": self.train.model, "model_cache": self.train.model_cache,
                  "trust_remote_code": self.train.trust_remote_code, "template": self.dataset.template}
        for key, value in follow.items():
            if key not in given:
                setattr(self.generate, key, value)
        if "data_per_genre" not in self.evaluate.model_fields_set:
            self.evaluate.data_per_genre = self.generate.n
        if "seed" not in self.evaluate.model_fields_set:
            self.evaluate.seed = self.generate.seed
        return self


def config_path(name_or_file: str) -> Path:
    """`demo` means pipelines/configs/demo.yaml; anything with a suffix or slash is a path."""
    if name_or_file.endswith((".yaml", ".yml")) or "/" in name_or_file:
        path = Path(name_or_file)
    else:
        path = CONFIG_DIR / f"{name_or_file}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise TaletuneError(f"config {name_or_file!r} not found ({path}); use a file or one of: {known}")
    return path


def load_experiment(name_or_file: str = "demo", overrides: list[str] = ()) -> ExperimentConfig:
    return load_config(ExperimentConfig, config_path(name_or_file), overrides)


def runs_root() -> Path:
    """Local pipeline root: $TALETUNE_RUNS, else runs/ in the checkout."""
    return Path(os.environ.get("TALETUNE_RUNS") or Path(__file__).resolve().parent.parent / "runs")
