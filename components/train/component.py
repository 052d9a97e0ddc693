"""The train stage as KFP lightweight Python components (run in the project image)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common.image import GPU_IMAGE, IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prepare_model(config: dict, model: dict) -> str:
    """Pin one model's name to its hub commit and put its weights in the model cache, once
    for all of its train tasks; returns the pinned name (`org/name@<commit>`; any other
    model's name as it is). On a CPU node: the GPU nodes wait for no download."""
    from components.common.cli import component_run
    from components.common.models import prepare_base
    from components.train.config import for_model

    with component_run():
        settings = for_model(config, model)
        pinned = prepare_base(settings.model, settings.model_cache)
    print(f"model {settings.model}: {pinned}")
    return pinned


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def train(dataset: Input[Dataset], config: dict, model: dict, shape: dict, adapters: Output[Model], metrics: Output[Metrics],
          only_level: int = 0, base: str = ""):
    """Fine-tune one model with LoRA at every training level (or `only_level`); resumes after a retry.

    `config` is the run's shared train settings, `model` this model's own (fixed at
    compile time), `shape` the levels and mode the DAG was compiled for, `base` the
    model's name as the model task pinned it ("": pinned here)."""
    from components.common.cli import component_run
    from components.train.config import for_model
    from components.train.fit import run_train

    with component_run():
        summary = run_train(dataset.path, for_model(config, model, shape, only_level), adapters.path, base=base or None)
    last = summary[max(summary)]
    adapters.metadata.update({"levels": sorted(summary), "model": last["model"], "format": last["format"], "reused": last.get("reused", False)})
    for k, record in summary.items():
        if record["val_loss"] is not None:  # None: the dataset has no validation rows
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
    for key in ("model", "format", "level", "fraction", "epochs", "val_loss", "perplexity"):
        adapter.metadata[key] = record.get(key)
