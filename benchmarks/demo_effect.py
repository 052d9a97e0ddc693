"""Does training move one model's stories toward the books? The demo's effect, stage by stage.

    TALETUNE_GUTENBERG_MIRROR=../shared/gutenberg NLTK_DATA=../shared/nltk_data \
        .venv/bin/python benchmarks/demo_effect.py --config demo

Runs one model of an experiment config (the first, or `--model LABEL`) through the
same stage code the pipeline runs: ingest, dataset, the evaluation reference, train
(every level), generate (every level), then measures each level's stories against
held-out books of their genre. Per level it prints the validation loss, the two-sample
closeness (the cross-validated accuracy of telling the stories from held-out passages
cut to the same lengths: 1.0 always told apart, 0.5 indistinguishable) and genre
fidelity, each with its Wilson 95% interval, and whether level `last` is closer than
level 0 beyond both intervals. Then the seconds each stage took (`reused` where a
cache answered: delete `--work` or the cache for cold times).

`--set` overrides the config as `python -m pipelines run` does, so levers can be
measured one at a time, e.g. `--set train.learning_rate=1e-3`. The figures are also
written to `<work>/effect.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="demo", help="an experiment config name or YAML file (default: demo)")
    parser.add_argument("--model", help="the label of the model to run (default: the config's first)")
    parser.add_argument("--work", help="working folder (default: runs/demo-effect-<config>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    args = parser.parse_args()

    from components.common.catalog import load_catalog
    from components.common.cli import setup_logging
    from components.dataset.stage import run_dataset
    from components.evaluate.reference import build_reference
    from components.evaluate.stage import Corpus
    from components.evaluate.stories import read_set
    from components.generate.stage import run_generate
    from components.ingest.stage import run_ingest
    from components.train.fit import run_train
    from pipelines.config import load_experiment, runs_root

    setup_logging()
    config = load_experiment(args.config, args.overrides)
    spec = next((m for m in config.models if m.label == args.model), None) if args.model else config.models[0]
    if spec is None:
        sys.exit(f"no model labelled {args.model!r} in {args.config}; its models: {', '.join(m.label for m in config.models)}")
    work = Path(args.work or runs_root() / f"demo-effect-{config.name}")
    catalog = load_catalog(config.catalog)
    seconds: dict[str, float] = {}

    def timed(name: str, fn):
        started = time.perf_counter()
        result = fn()
        seconds[name] = round(time.perf_counter() - started, 1)
        return result

    timed("ingest", lambda: run_ingest(catalog, config.ingest, work / "books"))
    timed("dataset", lambda: run_dataset(work / "books", config.dataset, work / "dataset", catalog))
    reference = timed("reference", lambda: build_reference(work / "dataset", config.evaluate, work / "reference"))
    train = timed("train", lambda: run_train(work / "dataset", config.train_config(spec), work / "adapters"))
    levels = sorted(train)
    for k in levels:
        timed(f"generate level {k}", lambda k=k: run_generate(catalog, config.generate_config(spec), work / f"stories-{k}",
                                                                adapter=str(work / "adapters" / f"level-{k}")))
    corpus = timed("load the reference", lambda: Corpus(str(work / "dataset"), config.evaluate, str(work / "reference")))
    rows = []
    for k in levels:
        _, records, _ = read_set(work / f"stories-{k}")
        closeness = timed(f"measure level {k}", lambda records=records: corpus.closeness(records))
        fidelity = corpus.fidelity(records)
        rows.append({"level": k, "val_loss": train[k].get("val_loss"), "stories": len(records), "closeness": closeness,
                     "fidelity": {g: v["as_asked"] for g, v in fidelity.items()}})

    classifier = reference["genre_classifier"]
    print(f"\n{spec.label}: {len(rows[0]['closeness']) - 1 if 'all' in rows[0]['closeness'] else 1} genres, "
          f"{rows[0]['stories']} stories a level; genre classifier {classifier['balanced_accuracy']:.0%} balanced on "
          f"{classifier['n']} test passages ({'whole held-out books' if classifier.get('unseen_books') else 'books it trained on'})")
    genres = [g for g in rows[0]["closeness"] if g != "all"]
    print(f"{'level':>5} {'val loss':>8}  {'two-sample, all':>20}  " + "  ".join(f"{g:>20}" for g in genres) + f"  {'as asked, all':>20}")
    for r in rows:
        cells = [interval(r["closeness"].get(g, {}).get("two_sample")) for g in ["all", *genres]]
        fid = r["fidelity"]["all"]
        print(f"{r['level']:>5} {r['val_loss'] or float('nan'):>8.3f}  {cells[0]:>20}  " + "  ".join(f"{c:>20}" for c in cells[1:])
              + f"  {interval({'accuracy': fid['share'], 'ci95': fid['ci95']}):>20}")
    first, last = rows[0]["closeness"].get("all", {}).get("two_sample"), rows[-1]["closeness"].get("all", {}).get("two_sample")
    if first and last:
        beyond = last["ci95"][1] < first["ci95"][0]
        print(f"level {rows[-1]['level']} is {'closer than level 0 beyond both intervals' if beyond else 'not closer than level 0 beyond both intervals'} "
              f"({last['accuracy']:.2f} {last['ci95']} against {first['accuracy']:.2f} {first['ci95']})")
    print("\nseconds: " + ", ".join(f"{k} {v}" + (" (reused)" if reused(work, k) else "") for k, v in seconds.items()))
    (work / "effect.json").write_text(json.dumps({"model": spec.label, "levels": rows, "seconds": seconds,
                                                  "genre_classifier": classifier, "overrides": args.overrides}, indent=2) + "\n")


def interval(entry: dict | None) -> str:
    if not entry:
        return "-"
    return f"{entry['accuracy']:.2f} ({entry['ci95'][0]:.2f}-{entry['ci95'][1]:.2f})"


def reused(work: Path, stage: str) -> bool:
    """Whether a stage's output says a cache answered (its run.json)."""
    folder = {"reference": "reference", "train": "adapters"}.get(stage)
    if stage.startswith("generate level "):
        folder = f"stories-{stage.rsplit(' ', 1)[1]}"
    records = [work / folder / name for name in ("run.json", "summary.json")] if folder else []  # generate's is summary.json
    return any(r.is_file() and json.loads(r.read_text()).get("reused") for r in records)


if __name__ == "__main__":
    main()
