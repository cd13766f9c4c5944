"""When each step of a live update happened, across the exec.

The old process marks the ``-s`` and the end of its dump; those marks travel in the
handed-over state (the shell's record, ``handover.shell_record``). The moment of the
exec itself comes after the state is written, so it travels in the environment
(:func:`mark_exec`). The new process
adds its own marks and, once it answered ``OK``, logs one line with the stall and where
it went. CLOCK_MONOTONIC is system-wide, so marks taken on both sides of the exec
compare directly.
"""

from __future__ import annotations

import os
import time

EXEC_ENV = "XSD_LIVE_UPDATE_EXEC_NS"
"""The environment variable that carries the moment of the exec to the new process."""

_marks: list[tuple[str, int]] = []


def mark(step: str, ns: int | None = None) -> None:
    """Note that ``step`` happened now (or at ``ns``, a ``time.monotonic_ns()``)."""
    _marks.append((step, time.monotonic_ns() if ns is None else ns))


def marks() -> list[list[str | int]]:
    """The marks so far, msgpack-able (for the handed-over state)."""
    return [[step, ns] for step, ns in _marks]


def mark_exec() -> None:
    """Note, in the environment the exec passes on, that the exec happens now."""
    os.environ[EXEC_ENV] = str(time.monotonic_ns())


def forget_exec() -> None:
    """The exec failed: the variable must not reach anything else we run."""
    os.environ.pop(EXEC_ENV, None)


def take_exec_mark() -> None:
    """In the new process: mark the exec (if the old process noted it) and take the
    variable out of our environment, so that our children do not inherit it."""
    ns = os.environ.pop(EXEC_ENV, "")
    if ns.isdigit():
        mark("exec", int(ns))


def restore(earlier: object) -> None:
    """Put the old process's marks before ours (ignoring anything malformed)."""
    if not isinstance(earlier, list):
        return
    old = [
        (str(m[0]), m[1])
        for m in earlier
        if isinstance(m, list) and len(m) == 2 and isinstance(m[1], int)
    ]
    _marks[:0] = old


def clear() -> None:
    """Forget every mark (a live update that failed before its exec)."""
    _marks.clear()


def summary() -> str:
    """``N ms after -s: step +ms, ...``: each step with the time since the previous."""
    if not _marks:
        return "no marks"
    start = _marks[0][1]
    parts = []
    previous = start
    for step, ns in _marks[1:]:
        parts.append(f"{step} +{(ns - previous) / 1e6:.0f}")
        previous = ns
    return f"{(previous - start) / 1e6:.0f} ms after {_marks[0][0]}: " + ", ".join(parts)
