"""One exception type for bad input, and the CLI wrapper that turns it into one line.

Stage code raises `TaletuneError("what is wrong; how to fix it")`. Command-line
entry points run through `main_guard`, which prints `error: ...` to stderr and exits 2
instead of showing a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

T = TypeVar("T")


class TaletuneError(Exception):
    """Bad input or environment: the message names the problem and the fix."""


def main_guard(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TaletuneError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper


def require(module: str, install: str):
    """Import an optional dependency, or fail with the exact install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise TaletuneError(f"{module} is not installed; install it with: {install}") from None
