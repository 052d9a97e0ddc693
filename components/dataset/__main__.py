"""Cut cleaned books into a labelled, split Hugging Face dataset.

    python -m components.dataset --books books/ --out data/ [--catalog catalog.yaml] [--set lines_per_passage=30]
"""

from __future__ import annotations

import argparse

from components.common.cli import add_config_args, setup_logging
from components.common.config import load_config
from components.common.errors import main_guard


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m components.dataset", description=__doc__.split("\n")[0])
    parser.add_argument("--books", required=True, help="folder written by `python -m components.ingest fetch`")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--catalog", help="catalog YAML (default: the one saved beside the books)")
    add_config_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    from components.dataset.config import DatasetConfig
    from components.dataset.stage import run_dataset
    from components.common.catalog import load_catalog

    config = load_config(DatasetConfig, args.config, args.overrides)
    stats = run_dataset(args.books, config, args.out, load_catalog(args.catalog) if args.catalog else None)
    print(f"dataset in {args.out}: {stats['total']}")


if __name__ == "__main__":
    main()
