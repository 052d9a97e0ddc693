"""Small helpers shared by the stages' command lines."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with this stage's settings")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override one setting"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


@contextlib.contextmanager
def component_run():
    """Inside a KFP component: log to stdout, and turn bad input into one line and exit 2."""
    from components.common.errors import TaletuneError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout, force=True)
    try:
        yield
    except TaletuneError as exc:
        print(f"error: {exc}", flush=True)
        raise SystemExit(2) from None
