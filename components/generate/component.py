"""The generate stage as a KFP lightweight Python component (runs in the project image)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common.image import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def generate(adapter: Input[Model], catalog: dict, config: dict, model: dict, stories: Output[Dataset], metrics: Output[Metrics]):
    """Write n seeded stories per genre with one model's level; a retry resumes the set.

    `config` is the run's shared generate settings, `model` this model's own."""
    from components.common.catalog import load_catalog
    from components.common.cli import component_run
    from components.common.config import from_parameter_with
    from components.generate.config import GenerateConfig
    from components.generate.stage import run_generate

    with component_run():
        settings = from_parameter_with(GenerateConfig, config, model, "generate config")
        summary = run_generate(load_catalog(catalog), settings, stories.path, adapter=adapter.path)
    stories.metadata.update({k: summary[k] for k in ("model", "format", "level", "stories", "reused")})
    for key in ("stories", "new_tokens", "tokens_per_second", "empty_share", "degenerate_share", "eos_share"):
        metrics.log_metric(key, summary[key])
