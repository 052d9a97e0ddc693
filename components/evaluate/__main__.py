"""Evaluate story sets: sentiment, lexicon words, topics, diversity, fidelity and copying.

    python -m components.evaluate runs/.../generate-4/stories runs/.../make-dataset/dataset --dataset runs/.../make-dataset/dataset --out eval/

Each argument is a `stories.jsonl` (or the folder holding one) or a dataset folder,
whose training passages are evaluated as the "training data" set. `--dataset` adds
genre fidelity, copying and closeness, measured against that dataset (and its
`--reference`, built once by `python -m components.evaluate.reference`). Writes
`metrics.json`, `report.md` and `provenance.json` into `--out`. An analysis that
cannot run is reported as `error:` and the others still run (exit code 2).
"""

from __future__ import annotations

import argparse
import sys

from components.common.cli import add_config_args, setup_logging
from components.common.config import load_config
from components.common.errors import main_guard


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m components.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("stories", nargs="+", help="stories.jsonl files (or their folders) and dataset folders")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--dataset", help="the dataset stage's folder: enables genre fidelity, copying and closeness")
    parser.add_argument("--reference", help="that dataset's reference, from `python -m components.evaluate.reference` (else built here)")
    add_config_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    from components.evaluate.config import EvaluateConfig
    from components.evaluate.stage import run_evaluate

    metrics = run_evaluate(args.stories, load_config(EvaluateConfig, args.config, args.overrides), args.out, args.dataset, args.reference)
    problems = [(s["name"], key, message) for s in metrics["sets"] for key, message in s["errors"].items()]
    for name, key, message in problems:
        print(f"error: {name}: {key}: {message}", file=sys.stderr)
    print(f"report: {args.out}/report.md")
    if problems:
        raise SystemExit(2)


if __name__ == "__main__":
    main()
