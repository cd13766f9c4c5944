"""Checking the daemon's options as they are parsed: a bad value is one line, never a start.

Each converter takes the option's text (from the command line, or from the configuration
file, which goes through the same converters) and returns its value or raises
``argparse.ArgumentTypeError`` with what a good value looks like. :class:`OneLineErrorParser`
prints every parse error as one line that says what to do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``xsd: PROBLEM (xsd --help lists
    the options)``, exit status 2, no usage block."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} ({self.prog} --help lists the options)", file=sys.stderr)
        raise SystemExit(2)


def octal_mode(text: str) -> int:
    """A file mode in octal, such as ``0600`` or ``660``."""
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise argparse.ArgumentTypeError(f"{text!r} is not a file mode: use octal, e.g. 0600")
    return mode


def _number(kind: Callable[[str], Any], what: str, ok: Callable[[Any], bool]) -> Any:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or not ok(value):  # value != value: NaN
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    convert.__name__ = what
    return convert


non_negative_float: Callable[[str], float] = _number(
    float, "a number >= 0", lambda v: 0 <= v < float("inf")
)
positive_float: Callable[[str], float] = _number(
    float, "a number > 0", lambda v: 0 < v < float("inf")
)
non_negative_int: Callable[[str], int] = _number(int, "a whole number >= 0", lambda v: v >= 0)
positive_int: Callable[[str], int] = _number(int, "a whole number > 0", lambda v: v > 0)

FEATURE_LIMITS: dict[str, Callable[[str], Any]] = {
    "watchdogs_per_domain": non_negative_int,
    "watchdog_min_timeout": positive_int,
    "watchdog_max_timeout": positive_int,
    "log_check_interval": non_negative_float,
}
"""Converters for options that features add (``watchdog_actions``, ``logfile``), by
destination: what each accepts."""


def tighten(parser: argparse.ArgumentParser, limits: dict[str, Callable[[str], Any]]) -> None:
    """Give the parser's options of ``limits`` those converters."""
    for action in parser._actions:
        if action.dest in limits:
            action.type = limits[action.dest]
