"""The generate stage as a KFP lightweight Python component (runs in the project image)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common.image import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def generate(adapter: Input[Model], catalog: dict, config: dict, stories: Output[Dataset], metrics: Output[Metrics]):
    """Write n seeded stories per genre with one level's adapter; a retry resumes the set."""
    from components.common.cli import component_run
    from components.common.config import validate
    from components.generate.config import GenerateConfig
    from components.generate.stage import run_generate
    from components.ingest.catalog import load_catalog

    with component_run():
        summary = run_generate(load_catalog(catalog), validate(GenerateConfig, config, "generate config"), stories.path, adapter=adapter.path)
    stories.metadata.update({"level": summary["level"], "model": config.get("model", "smollm2-135m"), "stories": summary["stories"]})
    for key in ("stories", "new_tokens", "tokens_per_second", "empty_share", "degenerate_share", "eos_share"):
        metrics.log_metric(key, summary[key])
