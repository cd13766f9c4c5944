"""A way back from a live update's exec: a copy of the old daemon stands by.

Right before the exec the daemon forks. The parent (the daemon's PID) execs the new
program; the child, the *guardian*, holds every descriptor the daemon had (listening
sockets, client sockets, the lock, the log) and its whole state in memory, unchanged
since the dump, and waits on a pipe whose write end only the new process holds:

* the new process writes ``S`` once it has loaded the state and adopted the sockets,
  before it reads or writes any client's socket (:func:`release`): the guardian exits
  at once (``os._exit``: nothing of the daemon's shutdown runs, no socket is removed);
* the pipe ends without it (the new process died: killed, crashed, could not load): the
  guardian takes over, with a new PID; it answers the ``-s`` with an error and serves on
  from the state it had, which is exact, since nothing was served in between;
* no word within :data:`PATIENCE` seconds while the pipe is open (a new program that does
  not know about it, an older xsd): it exits, trusting the new process.

The new process learns the write end and the guardian's PID from :data:`ENV` (taken out
of its environment first thing, :func:`take`) and reaps the guardian (:func:`reap`).
What the guardian adds to the pause is a ``pipe`` and a ``fork`` (page tables are copied,
not pages); until it exits, the old image stays in memory beside the new one.

This module runs in the new process during the pause: it imports ``os`` alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping

ENV = "XSD_LIVE_UPDATE_GUARDIAN"
"""In the exec's environment: ``FD PID``, the pipe's write end and the guardian's PID."""

DIE_AT_ENV = "XSD_TEST_DIE_AT"
"""Tests only: the new process kills itself (SIGKILL) on reaching the named point."""

PATIENCE = 120.0
"""Seconds the guardian waits for the word of a new process that is still alive."""

SERVING = b"S"
STAND_DOWN = b"X"


class Guardian:
    """The parent's side: the pipe and the forked copy."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.pid = 0

    def fork(self) -> bool:
        """Fork the guardian; True in the guardian, False in the parent (which keeps the
        pipe's write end for the new program: call :meth:`environment`)."""
        pid = os.fork()
        if pid == 0:
            os.close(self.write_fd)
            return True
        self.pid = pid
        os.close(self.read_fd)
        os.set_inheritable(self.write_fd, True)
        return False

    def close(self) -> None:
        """The fork failed: no guardian, no pipe."""
        os.close(self.read_fd)
        os.close(self.write_fd)

    def environment(self, environ: dict[str, str]) -> dict[str, str]:
        """``environ`` with :data:`ENV` for the new program (the fork's end time too,
        for the update's timeline)."""
        return {**environ, ENV: f"{self.write_fd} {self.pid} {time.monotonic_ns()}"}

    def stand_down(self) -> None:
        """The exec failed: the guardian exits; the parent serves on."""
        try:
            os.write(self.write_fd, STAND_DOWN)
        finally:
            os.close(self.write_fd)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            return

    def wait(self) -> bool:
        """In the guardian: True if the new process died before it served (take over);
        False if it serves (or never said, and lives on)."""
        import select

        # poll, not select: the pipe's number is above 1023 once the daemon holds
        # a thousand connections, which select() cannot wait on.
        poller = select.poll()
        poller.register(self.read_fd, select.POLLIN)
        try:
            if not poller.poll(PATIENCE * 1000):
                return False
            return os.read(self.read_fd, 1) == b""
        finally:
            os.close(self.read_fd)


def take(environ: MutableMapping[str, str] = os.environ) -> tuple[int, int, int] | None:
    """In the new process: the guardian's pipe, its PID and when the fork was over (a
    monotonic time in ns) from the environment (removed from it, and the pipe kept from
    what we start), or None."""
    value = environ.pop(ENV, None)
    if value is None:
        return None
    try:
        fd_text, pid_text, ns_text = value.split()
        fd, pid, ns = int(fd_text), int(pid_text), int(ns_text)
        os.set_inheritable(fd, False)
    except (ValueError, OSError):
        return None
    return fd, pid, ns


def release(taken: tuple[int, int, int] | None) -> None:
    """In the new process: say it serves; the guardian leaves. From here on the new
    process alone holds the store."""
    if taken is None:
        return
    fd = taken[0]
    try:
        os.write(fd, SERVING)
    except OSError:
        pass
    finally:
        os.close(fd)


def reap(taken: tuple[int, int, int] | None) -> None:
    """In the new process (off the pause: the import thread): wait for the guardian to
    exit, so that it leaves no zombie."""
    if taken is None:
        return
    try:
        os.waitpid(taken[1], 0)
    except ChildProcessError:
        return


def test_point(name: str) -> None:
    """Tests only: die here if :data:`DIE_AT_ENV` names this point."""
    if os.environ.get(DIE_AT_ENV) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
