"""The child of a live update's dry run: bounded in time, never outliving the daemon.

The new program runs (``PROGRAM ARGS --check-state fd:N``) in a session of its own, so
that the time limit or an abort kills it with everything it started (its process group),
and with ``PR_SET_PDEATHSIG``, so that the kernel kills it if the daemon dies first (even
by SIGKILL, when no code of ours runs). The death signal follows the *thread* that forked
the child, so the child is forked here, in the daemon's main thread, not in one of trio's
worker threads (which end after 10 s idle): a fork of the daemon costs it a few ms, once
per dry run, while no update is under way.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import trio

DEFAULT_TIMEOUT = 60.0
"""Seconds a dry run may take (``--dry-run-timeout``); past it the child is killed."""

_PR_SET_PDEATHSIG = 1


@dataclass
class Outcome:
    """How the child ended: ``returncode`` None if it ran out of time (it was killed)."""

    returncode: int | None
    stdout: bytes
    stderr: bytes


async def run(
    argv: Sequence[str],
    *,
    pass_fds: Sequence[int],
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> Outcome:
    """Run ``argv`` to its end, at most ``timeout`` seconds; if the time runs out, or the
    caller is cancelled, kill its process group and wait for it.

    Raises:
        OSError: the program cannot be started.
    """
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            pass_fds=tuple(pass_fds),
            env=None if env is None else dict(env),
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()),
        )
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    out, err = bytearray(), bytearray()
    pidfd = os.pidfd_open(proc.pid)
    try:
        with trio.move_on_after(timeout) as limit:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, out_r, out)
                nursery.start_soon(_drain, err_r, err)
                await trio.lowlevel.wait_readable(pidfd)
    finally:
        # Ended, timed out or cancelled: whatever it left in its group goes too (the
        # group outlives its leader only while a member lives, so this kills no stranger).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(pidfd)
    if limit.cancelled_caught:
        return Outcome(None, bytes(out), bytes(err))
    return Outcome(proc.returncode, bytes(out), bytes(err))


async def _drain(fd: int, into: bytearray) -> None:
    async with trio.lowlevel.FdStream(fd) as stream:
        while chunk := await stream.receive_some(65536):
            into += chunk


def _die_with(parent: int) -> Callable[[], None]:
    """The child's last step before the exec: be killed when ``parent`` dies."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # died already, before the death signal was set
            os._exit(1)

    return preexec


def add_options(parser: argparse.ArgumentParser) -> None:
    """The dry run's option (``dry-run-timeout`` in a config file)."""
    parser.add_argument(
        "--dry-run-timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="longest a live update's dry run (the new program loading the state, at -f) "
        f"may take; past it the new program is killed and -f fails (default: {DEFAULT_TIMEOUT:g})",
    )


def positive_seconds(text: str) -> float:
    """``--dry-run-timeout``'s type: a number of seconds above 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value
