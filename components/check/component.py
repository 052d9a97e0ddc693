"""The check stage as a KFP lightweight Python component (runs in the project image).

The pipeline's first task, never retried: bad input fails here once, in seconds,
instead of in a retried task after every back-off."""

from kfp import dsl

from components.common.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def check(catalog: dict, ingest_config: dict, dataset_config: dict, train_config: dict, generate_config: dict, evaluate_config: dict,
          report_config: dict, models: list, prefix: str, cluster: bool):
    """Validate every stage's settings, the catalog and the model names, with no network."""
    from components.check.stage import run_check
    from components.common.cli import component_run

    configs = {"ingest": ingest_config, "dataset": dataset_config, "train": train_config, "generate": generate_config,
               "evaluate": evaluate_config, "report": report_config}
    with component_run():
        checked = run_check(catalog, configs, models, prefix, cluster)
    print(f"checked: {checked}")
