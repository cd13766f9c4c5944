"""The daemon under fuzz: a real ``python -m xsd`` process, watched from outside.

What is watched is what a user would see: the process is alive (``poll()``), its
resident memory (``VmRSS`` in ``/proc/PID/status``), and its output (stderr, where the
daemon logs warnings and errors), scanned for tracebacks and internal errors.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from xsd_client.protocol import Op, encode, join_args

BAD_OUTPUT = ("Traceback", "internal error")


def raise_fd_limit() -> int:
    """Raise this process's descriptor limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Daemon:
    """A running xsd in ``rundir``, its output in ``rundir/xsd.out``."""

    def __init__(self, rundir: Path, args: list[str]) -> None:
        self.rundir = rundir
        self.socket = rundir / "socket"
        rundir.mkdir(parents=True, exist_ok=True)
        self.out_path = rundir / "xsd.out"
        self._out = open(self.out_path, "wb")  # noqa: SIM115 - closed in stop()
        self._scanned = 0
        self._carry = b""
        self.bad_lines: list[str] = []
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("XENSTORED_PATH", None)
        env.pop("XENSTORED_RUNDIR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xsd", "--rundir", str(rundir), *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"xsd exited with {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(self.socket))
                return
            time.sleep(0.05)
        raise RuntimeError(f"xsd does not listen on {self.socket}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kib(self) -> int:
        """Resident memory in KiB (0 once the process is gone)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def scan(self) -> list[str]:
        """New output lines that show a traceback or an internal error."""
        with open(self.out_path, "rb") as f:
            f.seek(self._scanned)
            data = f.read()
        self._scanned += len(data)
        data = self._carry + data
        cut = data.rfind(b"\n") + 1
        self._carry = data[cut:]
        found = [
            line
            for line in data[:cut].decode(errors="replace").splitlines()
            if any(bad in line for bad in BAD_OUTPUT)
        ]
        self.bad_lines += found
        return found

    def tail(self, size: int = 3000) -> str:
        with open(self.out_path, "rb") as f:
            f.seek(max(0, self.out_path.stat().st_size - size))
            return f.read().decode(errors="replace")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; the exit status (None if it had to be killed)."""
        status: int | None = self.proc.poll()
        if status is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                status = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                status = None
        self._out.close()
        return status


def call(
    sock: socket.socket, op: int, *args: bytes | str | int, req_id: int = 1, errors: bool = True
) -> bytes:
    """One request on a blocking socket; the reply's payload (events are skipped). An
    error reply raises RuntimeError, unless ``errors`` is false."""
    sock.sendall(encode(op, req_id, 0, join_args(*args)))
    buf = b""
    while True:
        while len(buf) < 16:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the daemon closed the connection")
            buf += chunk
        rop, rid, _, length = (int.from_bytes(buf[i : i + 4], "little") for i in (0, 4, 8, 12))
        while len(buf) < 16 + length:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the daemon closed the connection")
            buf += chunk
        payload, buf = buf[16 : 16 + length], buf[16 + length :]
        if rop != Op.WATCH_EVENT and rid == req_id:
            if rop == Op.ERROR and errors:
                raise RuntimeError(f"{Op(op).name} {args}: {payload!r}")
            return payload


def introduce(sock: socket.socket, domid: int) -> None:
    """What a toolstack does for a new guest: INTRODUCE, and a home the guest owns."""
    call(sock, Op.INTRODUCE, domid, 1, 1)
    call(sock, Op.MKDIR, f"/local/domain/{domid}")
    call(sock, Op.SET_PERMS, f"/local/domain/{domid}", f"n{domid}")
