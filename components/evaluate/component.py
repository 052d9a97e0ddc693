"""The evaluate stage as KFP lightweight Python components (run in the project image).

- `evaluation_reference`: the genre classifier and held-out passage embeddings, built
  once from the dataset;
- `sentiment_model`: the sentiment classifier, downloaded or trained once, as a Model;
- `evaluate`: one story set (a generate task's stories, or the dataset's own passages),
  measured against both; its Markdown output is what the dashboard shows for the set.
"""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.common.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluation_reference(dataset: Input[Dataset], config: dict, reference: Output[Artifact], metrics: Output[Metrics]):
    """Train the genre classifier on the dataset's passages; embed its held-out passages."""
    from components.common.cli import component_run
    from components.common.config import from_parameter
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.reference import build_reference

    with component_run():
        summary = build_reference(dataset.path, from_parameter(EvaluateConfig, config, "evaluate config"), reference.path)
    report = summary["genre_classifier"]
    reference.metadata.update({"genre_classifier_accuracy": report["accuracy"], "test_passages": report["n"], "reused": summary["reused"]})
    if report["accuracy"] is not None:  # None: the dataset has no test passages
        metrics.log_metric("genre_classifier_accuracy", report["accuracy"])
        metrics.log_metric("genre_classifier_balanced_accuracy", report["balanced_accuracy"])
    for label, accuracy in report["by_label"].items():
        metrics.log_metric(f"accuracy_{label}", accuracy)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def sentiment_model(config: dict, model: Output[Model], metrics: Output[Metrics]):
    """The sentiment classifier of every evaluate task: a hub id, folder or s3:// prefix, or the offline stand-in."""
    import json
    import shutil
    from pathlib import Path

    from components.common.cli import component_run
    from components.common.config import from_parameter
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.sentiment import model_folder

    with component_run():
        settings = from_parameter(EvaluateConfig, config, "evaluate config").sentiment
        Path(model.path).mkdir(parents=True, exist_ok=True)
        model.metadata["model"] = settings.model or ""
        if settings.model:
            shutil.copytree(model_folder(settings.model, settings.model_cache), model.path, dirs_exist_ok=True)
            training = Path(model.path) / "training.json"
            if training.is_file():
                accuracy = json.loads(training.read_text())["held_out_accuracy"]
                model.metadata["held_out_accuracy"] = accuracy
                metrics.log_metric("held_out_accuracy", accuracy)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    stories: Input[Dataset],
    dataset: Input[Dataset],
    reference: Input[Artifact],
    sentiment: Input[Model],
    config: dict,
    evaluation: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[Markdown],
    anchor: Optional[Input[Dataset]] = None,
):
    """Every analysis of one story set; topics aligned to the anchor set's (the training data)."""
    import json
    import shutil

    from components.common.cli import component_run
    from components.common.config import from_parameter
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.stage import headline, run_evaluate

    with component_run():
        settings = from_parameter(EvaluateConfig, config, "evaluate config")
        anchor_topics = None
        if anchor is not None:
            anchor_sets = json.load(open(f"{anchor.path}/metrics.json"))["sets"]
            anchor_topics = next((s["topics"]["topics"] for s in anchor_sets if "topics" in s), None)
        result = run_evaluate([stories.path], settings, evaluation.path, dataset=dataset.path, reference=reference.path,
                              anchor=anchor_topics, sentiment_folder=sentiment.path)  # the sentiment_model task's copy
    s = result["sets"][0]
    shutil.copyfile(f"{evaluation.path}/report.md", report.path)
    evaluation.metadata.update({"set": s["name"], "kind": s["kind"], "model": s["model"] or "", "level": -1 if s["level"] is None else s["level"],
                                "errors": sorted(s["errors"]), "reused": result["reused"]})
    for key, value in headline(s).items():
        metrics.log_metric(key, value)
