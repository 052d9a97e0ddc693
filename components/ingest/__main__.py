"""Fetch and clean books by hand.

    python -m components.ingest fetch --out books/ [--catalog catalog.yaml]
    python -m components.ingest clean ../shared/gutenberg/cache/epub/84/pg84.txt > frankenstein.txt
"""

from __future__ import annotations

import argparse
import json
import sys

from components.common import storage
from components.common.cli import add_config_args, setup_logging
from components.common.config import load_config
from components.common.errors import main_guard


def cmd_fetch(args) -> None:
    """Fetch and clean every book of a catalog into OUT (books/, manifest.json)."""
    from components.common.catalog import load_catalog
    from components.ingest.config import IngestConfig
    from components.ingest.stage import run_ingest

    config = load_config(IngestConfig, args.config, args.overrides)
    manifest = run_ingest(load_catalog(args.catalog), config, args.out)
    print(f"{len(manifest['books'])} books in {args.out}")


def cmd_clean(args) -> None:
    """Clean one book file: the text to stdout (or --out), the removal report to stderr."""
    from components.ingest.clean import clean_book, decode

    text, report = clean_book(decode(storage.read_bytes(args.file), args.file), args.file)
    if args.out:
        storage.write_text(args.out, text)
    else:
        sys.stdout.write(text)
    print(json.dumps(report.to_dict(), indent=2), file=sys.stderr)


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m components.ingest", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help=cmd_fetch.__doc__, description=cmd_fetch.__doc__)
    fetch.add_argument("--out", required=True, help="output folder")
    fetch.add_argument("--catalog", default=None, help="catalog YAML (default: the reference study's books)")
    add_config_args(fetch)
    fetch.set_defaults(func=cmd_fetch)

    clean = sub.add_parser("clean", help=cmd_clean.__doc__, description=cmd_clean.__doc__)
    clean.add_argument("file", help="a plain-text book (local path or s3:// URI)")
    clean.add_argument("--out", help="write the cleaned text here instead of stdout")
    clean.add_argument("-v", "--verbose", action="store_true")
    clean.set_defaults(func=cmd_clean)

    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    args.func(args)


if __name__ == "__main__":
    main()
