"""Command-line pieces the benchmarks share (``tools.bench``, ``tools.bench_lu``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def comma_list(text: str) -> list[str]:
    """``a, b,,c`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def count(text: str) -> int:
    """``1000``, ``10k``, ``1.5M`` -> an int.

    Raises:
        ValueError: not a number; argparse.ArgumentTypeError: a negative one.
    """
    t = text.strip().lower().replace("_", "")
    scale = {"k": 1000, "m": 1_000_000}.get(t[-1:], 1)
    value = int(float(t[:-1] if scale > 1 else t) * scale)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def directory(text: str) -> Path:
    """An existing directory (``--rundir``), or one line that says what to do."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory: create it first")
    return path


def add_output_options(p: argparse.ArgumentParser) -> None:
    """``--rundir`` (where the daemons run) and ``--json FILE`` (every figure)."""
    p.add_argument(
        "--rundir",
        type=directory,
        default=None,
        help="where the daemons' run directories go (default: a temp dir)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write every figure to FILE as JSON",
    )
