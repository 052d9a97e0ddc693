"""The train stage as KFP lightweight Python components (run in the project image)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common.image import GPU_IMAGE, IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def train(dataset: Input[Dataset], config: dict, adapters: Output[Model], metrics: Output[Metrics], only_level: int = 0):
    """Fine-tune with LoRA at every training level (or `only_level`); resumes after a retry."""
    from components.common.cli import component_run
    from components.common.config import validate
    from components.train.config import TrainConfig
    from components.train.fit import run_train

    with component_run():
        settings = {**config, "only_level": only_level} if only_level else config
        summary = run_train(dataset.path, validate(TrainConfig, settings, "train config"), adapters.path)
    last = summary[max(summary)]
    adapters.metadata["levels"] = sorted(summary)
    adapters.metadata["model"] = last["model"]
    for k, record in summary.items():
        metrics.log_metric(f"level{k}_val_loss", record["val_loss"])
        metrics.log_metric(f"level{k}_perplexity", record["perplexity"])
    metrics.log_metric("final_train_loss", last.get("train_loss") or 0.0)
    metrics.log_metric("tokens_per_second", last.get("tokens_per_second") or 0.0)
    metrics.log_metric("trainable_parameters", last["trainable_parameters"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def select_level(adapters: Input[Model], level: int, adapter: Output[Model]):
    """One training level's adapter as its own Model artifact (level 0: the untrained base)."""
    import json
    import shutil

    source = f"{adapters.path}/level-{level}"
    shutil.copytree(source, adapter.path)
    record = json.load(open(f"{source}/training.json"))
    for key in ("model", "level", "fraction", "epochs", "val_loss", "perplexity"):
        adapter.metadata[key] = record[key]
