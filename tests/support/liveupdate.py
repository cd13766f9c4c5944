"""Live update from the tests: ``live_update`` (``-f`` then ``-s`` over a raw connection),
and a daemon started from any command line (a venv's ``xsd``, with a test hook) for the
live-update tests whose daemon is not ``sys.executable -m xsd`` as ``XsdDaemon`` starts
it, and whose PID may change (a guardian that took over)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.support.daemons import _wait_for_socket
from tests.support.wire import RawConn
from xsd_client.protocol import Op

XSD_PROGRAM = shutil.which("xsd") or ""


def live_update(sock: Path, program: str = XSD_PROGRAM, *start: str) -> tuple[str, bytes]:
    with RawConn(str(sock), timeout=60) as conn:
        reply = conn.call(Op.CONTROL, "live-update", "-f", program)
        if reply != ("OK", b"OK\0"):
            return reply
        return conn.call(Op.CONTROL, "live-update", "-s", "-t", "10", *start)


class Daemon:
    """``command --rundir RUNDIR --pid-file RUNDIR/pid ARGS`` with ``env``."""

    def __init__(
        self, command: list[str], rundir: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.rundir = rundir
        self.socket = rundir / "socket"
        self.pid_file = rundir / "pid"
        rundir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log = open(rundir / "xsd.out", "wb")  # noqa: SIM115 - closed in stop()
        base = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
        for name in ("XENSTORED_PATH", "XENSTORED_RUNDIR"):
            base.pop(name, None)
        self.proc = subprocess.Popen(
            [*command, "--rundir", str(rundir), "--pid-file", str(self.pid_file), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=base,
        )
        _wait_for_socket(self.socket, self.proc, "xsd")

    def serving_pid(self) -> int:
        """The PID in the pid file: the daemon's, or its guardian's after a take-over."""
        return int(self.pid_file.read_text())

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.rundir / "xsd.out").read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM to whichever process serves (and the first one), then wait."""
        pids = {self.proc.pid}
        if self.pid_file.exists():
            pids.add(self.serving_pid())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid in pids - {self.proc.pid}:
            wait_gone(pid, kill_after=10)
        self.log.close()


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, kill_after: float = 10) -> bool:
    """Wait for ``pid`` to end; SIGKILL it after ``kill_after`` s. True if it ended alone."""
    deadline = time.monotonic() + kill_after
    while alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
            return False
        time.sleep(0.02)
    return True


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (zombies too)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found
