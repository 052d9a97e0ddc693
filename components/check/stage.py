"""The check stage: a run's settings, validated once, before any task that is retried.

KFP's retry policy has a count and a back-off and no filter on the exit code, so bad input
in a retried task fails again after every back-off. This stage runs first and is never
retried: it validates each stage's parameter (as sent, perhaps edited in the dashboard),
the catalog and every model name with the checks that need no network, and on a cluster
refuses state kept on the pod's own disk.

`local_state` is also what `python -m pipelines submit` and `schedule` refuse with.
"""

from __future__ import annotations

from pathlib import Path

from components.common.errors import TaletuneError

# What is unset means a folder under TALETUNE_CACHE, which in the images is /tmp.
UNSET = "unset: a folder in the pod"


def state_settings(ingest, trains: dict, generates: dict, evaluate, prefix: str) -> list[tuple[str, str | None]]:
    """(setting, value) of every place a run keeps state that a retried or resumed task
    reads back: caches, checkpoints, stories in progress, kept results and the report's
    prefix. `trains` and `generates` map each model's label to its merged stage config."""
    pairs = [("ingest.cache", ingest.cache)]
    for stage, key, configs in (("train", "model_cache", trains), ("train", "checkpoint_root", trains),
                                ("generate", "model_cache", generates), ("generate", "progress_root", generates)):
        values = {label: getattr(config, key) for label, config in configs.items()}
        if len(set(values.values())) == 1:  # shared by every model: named once
            pairs.append((f"{stage}.{key}", next(iter(values.values()))))
        else:
            pairs += [(f"{stage}.{key} of model {label}", value) for label, value in values.items()]
    pairs.append(("evaluate.results_root", evaluate.results_root))
    if evaluate.sentiment.model:  # no classifier: nothing downloaded or trained
        pairs.append(("evaluate.sentiment.model_cache", evaluate.sentiment.model_cache))
    pairs.append(("run_prefix", prefix))  # resolved when the pipeline is compiled
    return pairs


def local_state(pairs: list[tuple[str, str | None]]) -> list[str]:
    """The settings of `pairs` that are not on S3, as 'key (value)'."""
    from components.common import storage

    return [f"{key} ({value if value is not None else UNSET})" for key, value in pairs if not (value and storage.is_s3(value))]


def refuse_local_state(pairs: list[tuple[str, str | None]]) -> None:
    """One message naming every setting that a cluster run would keep on a pod's disk."""
    local = local_state(pairs)
    if local:
        raise TaletuneError(
            "on a cluster a retried or resumed pod starts with an empty disk, so every cache, checkpoint and result "
            f"folder must be an s3:// prefix; these are not: {', '.join(local)}. Set each to one in the config (or with "
            "--set KEY=s3://BUCKET/PREFIX) and compile or submit again"
        )


def model_problem(name: str, what: str) -> str | None:
    """Why `name` cannot be a model here, without the network (what models.resolve accepts:
    an alias, an s3:// prefix, a model folder that exists, or a hub id org/name[@revision])."""
    from components.common import storage
    from components.common.models import ALIASES, hub_id

    if name in ALIASES:
        return None
    if storage.is_s3(name):
        bucket, _ = name[len("s3://"):].partition("/")[::2]
        return None if bucket else f"{what} {name!r} has no bucket; write it as s3://BUCKET/PREFIX"
    path = Path(name).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"{what} {name!r} is a folder with no config.json, not a model folder"
    if hub_id(name) is None:  # the same rule resolve() applies, without the network
        return (f"{what} {name!r} is not an alias ({', '.join(ALIASES)}), a model folder that exists here, an s3:// prefix, "
                "or a hub id like org/name or org/name@revision")
    return None


def run_check(catalog: dict, configs: dict, models: list[dict], prefix: str, cluster: bool) -> dict:
    """Validate a run's parameters; raise one TaletuneError naming every problem.

    `configs` holds each stage's parameter by stage name (ingest, dataset, train, generate,
    evaluate, report), `models` each model's {label, train, generate, shape}: its own
    settings and the DAG's levels and mode, fixed at compile time. Returns what was checked."""
    from components.common.catalog import load_catalog
    from components.common.config import from_parameter, from_parameter_with
    from components.dataset.config import DatasetConfig
    from components.evaluate.config import EvaluateConfig
    from components.generate.config import GenerateConfig
    from components.ingest.config import IngestConfig
    from components.report.config import ReportConfig
    from components.train.config import for_model

    problems: list[str] = []

    def attempt(fn, *args):
        try:
            return fn(*args)
        except TaletuneError as exc:
            problems.append(str(exc))
            return None

    book_catalog = attempt(load_catalog, catalog)
    ingest = attempt(from_parameter, IngestConfig, configs["ingest"], "ingest config")
    if ingest is not None:
        from components.ingest.gutenberg import GutenbergFetcher

        attempt(GutenbergFetcher, ingest)  # a mirror folder must exist where the task runs
    dataset = attempt(from_parameter, DatasetConfig, configs["dataset"], "dataset config")
    evaluate = attempt(from_parameter, EvaluateConfig, configs["evaluate"], "evaluate config")
    attempt(from_parameter, ReportConfig, configs["report"], "report config")
    trains, generates = {}, {}
    for model in models:
        trains[model["label"]] = attempt(for_model, configs["train"], model["train"], model["shape"])
        generates[model["label"]] = attempt(from_parameter_with, GenerateConfig, configs["generate"], model["generate"], "generate config")
        for stage, config in (("train", trains[model["label"]]), ("generate", generates[model["label"]])):
            if config is not None:
                problems.append(model_problem(config.model, f"the {stage} model of {model['label']}"))
    if evaluate is not None and evaluate.sentiment.model:
        from components.evaluate.sentiment_model import STANDINS

        if evaluate.sentiment.model not in STANDINS:
            problems.append(model_problem(evaluate.sentiment.model, "evaluate.sentiment.model"))
    if evaluate is not None:
        for key in ("positive", "negative"):
            path = getattr(evaluate.lexicon, key)
            if path and not Path(path).is_file():
                problems.append(f"evaluate.lexicon.{key} {path} is not a file here; on a cluster a word list must be a file in the image")
        from components.evaluate.nltk_data import needed, require

        attempt(require, *needed(evaluate))  # the evaluate tasks come after hours of training
    if book_catalog is not None:
        from components.common import storage

        books = [b for _, b in book_catalog.books()]
        for book in books:
            if book.path and not storage.is_s3(book.path) and not Path(book.path).expanduser().is_file():
                problems.append(f"the catalog's book file {book.path} does not exist here")
        asked = {g for config in generates.values() if config for g in config.genres or []}
        unknown = sorted(asked - set(book_catalog.genres))
        if unknown:
            problems.append(f"generate.genres: {', '.join(unknown)} not in the catalog ({', '.join(sorted(book_catalog.genres))})")
        if dataset is not None:
            keys = {b.key for b in books}
            missing = [b for b in dataset.split.holdout_books if b not in keys]
            if missing:
                problems.append(f"dataset.split.holdout_books lists {', '.join(missing)}, which the catalog does not have")
    if cluster and ingest is not None and None not in trains.values() and None not in generates.values() and evaluate is not None:
        attempt(refuse_local_state, state_settings(ingest, trains, generates, evaluate, prefix))
    problems = list(dict.fromkeys(p for p in problems if p))
    if problems:
        raise TaletuneError(problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(problems))
    return {"models": [m["label"] for m in models], "stages": sorted(configs), "cluster": cluster}
