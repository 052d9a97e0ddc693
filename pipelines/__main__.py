"""Compile, run locally, submit and schedule the taletune pipeline.

    python -m pipelines prepare --config demo             # models into the model cache, once (`make run` does this first)
    python -m pipelines run --config demo                 # what `make run` does
    python -m pipelines compile --config seed-study-7b --out taletune.yaml
    python -m pipelines submit --config seed-study-7b --host http://localhost:8080
    python -m pipelines schedule --config seed-study-7b --cron "0 0 3 * * 1" --host http://localhost:8080
    python -m pipelines runs --host http://localhost:8080 --limit 5

Cluster commands authenticate as kfp.Client does (pipelines/cluster.py): --host or
KFP_HOST, with --token or KFP_TOKEN where the endpoint asks for one; with no host, inside
a pod of the cluster, the in-cluster endpoint and the pod's service account.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import warnings
from pathlib import Path

import yaml

from components.common.cli import setup_logging
from components.common.errors import TaletuneError, main_guard


def _experiment(args):
    from pipelines.config import load_experiment

    return load_experiment(args.config, args.overrides)


def preflight(config) -> None:
    """Fail fast, with one message, on what would otherwise fail inside a task."""
    from components.common import storage
    from components.common.catalog import load_catalog
    from components.ingest.gutenberg import GutenbergFetcher

    from components.evaluate.nltk_data import needed, require

    from components.common.runprefix import claim

    load_catalog(config.catalog)
    GutenbergFetcher(config.ingest)  # checks the mirror path
    storage.check_writable(config.ingest.cache_root())
    require(*needed(config.evaluate))  # the evaluate tasks come after minutes of training
    claim(config.report_prefix(), config.fingerprint(), config.replace_prefix)  # the report task, at the end, claims it again


def cmd_prepare(args) -> None:
    """Put what the run's tasks load into the model cache, once: every model of the config
    (aliases converted to safetensors, hub models downloaded) and the sentiment model
    (the offline stand-in trained). The tasks would do it themselves; this does it ahead."""
    import time

    from components.common.models import resolve
    from components.evaluate.sentiment import model_folder

    config = _experiment(args)
    for spec in config.models:
        settings, started = config.train_config(spec), time.perf_counter()
        print(f"model {spec.label}: {resolve(settings.model, settings.model_cache)}  ({time.perf_counter() - started:.0f} s)", flush=True)
    sentiment = config.evaluate.sentiment
    if sentiment.model:
        started = time.perf_counter()
        print(f"sentiment model: {model_folder(sentiment.model, sentiment.model_cache)}  ({time.perf_counter() - started:.0f} s)")


def cmd_run(args) -> None:
    """Run the pipeline on this machine with KFP's local runner (SubprocessRunner)."""
    import kfp.local

    from pipelines.config import runs_root
    from pipelines.pipeline import build_pipeline

    config = _experiment(args)
    preflight(config)
    root = runs_root()
    root.mkdir(parents=True, exist_ok=True)
    # The image only matters on a cluster; locally the tasks run in this environment.
    warnings.filterwarnings("ignore", message=".*non-Python base image.*")
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    pipeline = build_pipeline(config, local=True)
    print(f"running pipeline {config.name!r} locally; artifacts under {root}", flush=True)
    try:
        result = pipeline()
    except RuntimeError as exc:
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).rstrip(".")  # KFP colours its messages
        raise TaletuneError(f"the pipeline stopped: {message}. The failing task's log, with its error line, is above") from None
    dataset = Path(result.output.path)
    run_dir = dataset.parents[1]
    (run_dir / "experiment.yaml").write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
    print(f"\nrun folder: {run_dir}")
    print(f"dataset:    {dataset}  (datasheet: {dataset / 'datasheet.md'})")
    print_summary(run_dir)


def _reused(folder: Path) -> str:
    record = folder / "run.json"
    return "  [reused: nothing recomputed]" if record.is_file() and json.loads(record.read_text()).get("reused") else ""


def print_summary(run_dir: Path) -> None:
    """Each task's result, model by model and level by level, and whether it was reused."""
    for record in sorted(run_dir.glob("train*/adapters/run.json")):
        print(f"train, {json.loads(record.read_text())['model']}: {record.parent}{_reused(record.parent)}")
    levels = [json.loads(p.read_text()) | {"path": p.parent} for p in run_dir.glob("select-level*/adapter/training.json")]
    for info in sorted(levels, key=lambda i: (i["model"], i["level"])):
        loss = f"val_loss {info['val_loss']:.4f}, perplexity {info['perplexity']:.2f}" if info.get("val_loss") is not None else "no validation rows"
        print(f"{info['model']} level {info['level']}: {info['path']}  ({loss})")
    sets = [json.loads(p.read_text()) | {"path": p.parent} for p in run_dir.glob("generate*/stories/summary.json")]
    for info in sorted(sets, key=lambda i: (i["model"], i["level"])):
        print(f"stories, {info['model']} level {info['level']}: {info['path'] / 'stories.jsonl'}  ({info['stories']} stories, "
              f"{info['tokens_per_second']:.0f} tokens/s, {info['degenerate_share']:.0%} flagged)"
              + ("  [reused: no story generated]" if info.get("reused") else ""))
    for summary in sorted(run_dir.glob("evaluation-reference*/reference/reference.json")):
        report = json.loads(summary.read_text())["genre_classifier"]
        if report["accuracy"] is not None:
            books = f"whole books it never saw ({', '.join(report['test_books'])})" if report.get("unseen_books") else "books it trained on"
            print(f"genre classifier: balanced accuracy {report['balanced_accuracy']:.0%} on {report['n']} passages of {books}, "
                  f"by genre {report['by_label']}{_reused(summary.parent)}")
    evaluations = [(json.loads(p.read_text())["sets"][0], p.parent) for p in run_dir.glob("evaluate*/evaluation/metrics.json")]
    for s, folder in sorted(evaluations, key=lambda e: (e[0]["kind"] != "training_data", e[0].get("model") or "", e[0].get("level") or 0)):
        print(f"evaluation, {evaluation_line(s)}: {folder / 'report.md'}{_reused(folder)}")
    for html in sorted(run_dir.glob("report*/html")):
        record = html.parent / "report" / "run.json"
        prefix = json.loads(record.read_text())["prefix"] if record.is_file() else None
        print(f"\nreport: {html}" + (f"  (also {prefix}/report.html)" if prefix else "") + _reused(html.parent / "report"))


def evaluation_line(s: dict) -> str:
    """A set's name and its headline numbers, for the end of a local run."""
    from components.evaluate.stage import headline

    h = headline(s)
    parts = [f"{h['stories']:.0f} stories"]
    for key, label in (("positive_ending", "positive endings"), ("genre_as_asked", "as asked"), ("copied_8gram_share", "copied 8-grams")):
        if key in h:
            parts.append(f"{h[key]:.0%} {label}")
    if "distinct_2" in h:
        parts.append(f"distinct-2 {h['distinct_2']:.2f}")
    closeness = (s.get("closeness") or {}).get("all", {}).get("two_sample")
    if closeness:  # 1.0: always told from held-out book passages; 0.5: indistinguishable
        parts.append(f"told from the books {closeness['accuracy']:.0%} ({closeness['ci95'][0]:.0%}-{closeness['ci95'][1]:.0%})")
    errors = f"; not computed: {', '.join(sorted(s['errors']))}" if s["errors"] else ""
    return f"{s['name']} ({', '.join(parts)}{errors})"


def cmd_compile(args) -> None:
    """Compile the pipeline to a KFP YAML package for the dashboard or `submit`."""
    from kfp import compiler

    from pipelines.cluster import cluster_images
    from pipelines.pipeline import build_pipeline

    config = _experiment(args)
    images = cluster_images()
    out = args.out or f"taletune-{config.name}.yaml"
    compiler.Compiler().compile(build_pipeline(config), package_path=out)
    print(f"compiled {out} (images {', '.join(images)})")


def _cluster(args):
    from pipelines.cluster import connect

    return connect(args.host, args.token, args.namespace)


def _for_cluster(args):
    """The config, refused before anything reaches the cluster if it keeps state on a pod's disk."""
    from pipelines.cluster import refuse_local_state

    config = _experiment(args)
    refuse_local_state(config)
    return config


def cmd_submit(args) -> None:
    """Upload the pipeline as a version of pipeline taletune-<config name> and start a run of
    it in the experiment (both created if missing). Every cache and result folder of the
    config must be an s3:// prefix: a retried or resumed pod starts with an empty disk."""
    from pipelines.cluster import submit

    config = _for_cluster(args)
    submit(_cluster(args), config, args.experiment)


def cmd_schedule(args) -> None:
    """Create or update the recurring run taletune-<config name> in the experiment: run again,
    it leaves exactly one (replaced if its pipeline, parameters or cron changed, else left
    alone). Cron in KFP's six-field form, seconds first, in the scheduler's time zone
    (usually UTC); a missed slot is not caught up. Caches must be on S3, as for submit."""
    from pipelines.cluster import check_schedule, schedule

    check_schedule(args.cron, args.max_concurrency)
    config = _for_cluster(args)
    schedule(_cluster(args), config, args.experiment, args.cron, args.max_concurrency)


def cmd_runs(args) -> None:
    """List the experiment's newest runs, newest first: created time, state, id and name."""
    from pipelines.cluster import list_runs

    list_runs(_cluster(args), args.experiment, args.limit)


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = (("prepare", cmd_prepare), ("run", cmd_run), ("compile", cmd_compile), ("submit", cmd_submit), ("schedule", cmd_schedule),
                ("runs", cmd_runs))
    for name, fn in commands:
        p = sub.add_parser(name, help=fn.__doc__.split(".")[0], description=fn.__doc__)
        p.set_defaults(func=fn)
        if name != "runs":
            p.add_argument("--config", default="demo", help="config name in pipelines/configs/ or a YAML path (default: demo)")
            p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a setting, e.g. dataset.seed=7")
        if name == "compile":
            p.add_argument("--out", help="output YAML (default: taletune-<name>.yaml)")
        if name in ("submit", "schedule", "runs"):
            p.add_argument("--host", help="Kubeflow Pipelines endpoint (default: $KFP_HOST; none inside a pod of the cluster: the in-cluster one)")
            p.add_argument("--token", help="a bearer token for the endpoint (default: $KFP_TOKEN, which keeps it out of the process list)")
            p.add_argument("--namespace", help="the multi-user profile namespace (default: $KFP_NAMESPACE, else the client's own)")
            p.add_argument("--experiment", default="taletune", help="KFP experiment name (default: taletune)")
        if name == "schedule":
            p.add_argument("--cron", required=True, help='six fields, seconds first: "0 0 3 * * 1" is Mondays at 03:00')
            p.add_argument("--max-concurrency", type=int, default=1, help="runs of the schedule at once (default: 1)")
        if name == "runs":
            p.add_argument("--limit", type=int, default=10, help="how many runs (default: 10)")
    args = parser.parse_args(argv)
    setup_logging()
    with contextlib.suppress(BrokenPipeError):
        args.func(args)


if __name__ == "__main__":
    main()
