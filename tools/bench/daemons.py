"""Start, watch and stop the daemons under test: xsd, C xenstored and oxenstored.

Invariants:

* every daemon runs as a real process on its own Unix socket ``RUNDIR/socket``;
* :func:`start_daemon` either returns a daemon whose socket answers a request, or stops
  whatever it started and raises :class:`DaemonStartError` with a message naming the cause;
* the process measured (CPU, memory) is the daemon itself, never a launcher or shell: for
  the reference daemons the pid comes from the pid file the daemon writes;
* every daemon runs in a session of its own, as a daemon started by an init system does
  and as ``reference-xenstored`` starts Xen's (``setsid``). With autogroup scheduling
  (``/proc/sys/kernel/sched_autogroup_enabled``, on by default in most kernels) the
  session decides the daemon's share of the CPU: in the load generator's session, xsd
  shared one share with the clients it served while C had one of its own, and waited
  for a CPU five times as long a request with eight clients (5.2 against 1.1 us, from
  ``/proc/PID/schedstat``) while the other CPU was idle 13% of the time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xsd_client.protocol import HEADER, Op, encode, join_args

ROOT = Path(__file__).resolve().parents[2]
CODE = Path(os.environ.get("XSD_BENCH_CODE") or ROOT)
"""The checkout whose ``xsd`` is started (``$XSD_BENCH_CODE`` names another, so that these
tools measure an older tree with the same client side)."""
REFERENCE_SCRIPT = Path(
    os.environ.get("XSD_REFERENCE_SCRIPT", ROOT / "tools" / "peers" / "reference-xenstored")
)
"""Starts Xen's daemons without a hypervisor (``$XSD_REFERENCE_SCRIPT`` names another)."""

KINDS: dict[str, str] = {
    "xsd": "xsd",
    "xsd-durable": "xsd --state-dir",
    "c": "cxenstored",
    "ocaml": "oxenstored",
}
"""Daemon kind (as given on the command line) to the name printed in the table.
``xsd-durable`` is xsd in durable mode, its state directory in its run directory."""

CLK_TCK = os.sysconf("SC_CLK_TCK")


class DaemonStartError(RuntimeError):
    """The daemon could not be started or did not answer; the message says why."""


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One reading of a daemon's /proc entries."""

    cpu_s: float
    """utime + stime of all its threads, from /proc/PID/stat (clock-tick resolution)."""
    cpu_ns: int
    """The same quantity at nanosecond resolution, summed from /proc/PID/task/*/schedstat."""
    rss: int
    """VmRSS in bytes."""
    pss: int
    """Pss from /proc/PID/smaps_rollup in bytes (0 if unreadable)."""


def sample(pid: int) -> ProcSample:
    """Read CPU time and resident memory of process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name may contain spaces: fields count from after its closing paren.
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
    cpu_ns = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
                cpu_ns += int(f.read().split()[0])
    rss = pss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
                break
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
                break
    return ProcSample(cpu_s, cpu_ns, rss, pss)


def ping(path: Path, timeout: float = 5.0) -> None:
    """Send one READ of ``/`` and wait for any reply; raise OSError if none comes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(encode(Op.READ, 1, 0, join_args("/")))
        got = b""
        while len(got) < HEADER.size:
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("daemon closed the connection without replying")
            got += chunk


class Daemon:
    """A running daemon of one kind, with its socket and measurable pid."""

    def __init__(self, kind: str, rundir: Path, pid: int, proc: subprocess.Popen[bytes] | None):
        self.kind = kind
        self.name = KINDS[kind]
        self.rundir = rundir
        self.socket = rundir / "socket"
        self.pid = pid
        self._proc = proc

    def alive(self) -> bool:
        """True if the daemon process still exists."""
        if self._proc is not None:
            return self._proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _is_zombie(self.pid)

    def sample(self) -> ProcSample:
        """CPU and memory of the daemon process now."""
        return sample(self.pid)

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the daemon's own output, to explain a failure."""
        for name in ("xsd.out", "daemon.out"):
            path = self.rundir / name
            if path.exists():
                text = path.read_text(errors="replace").strip().splitlines()
                return "\n".join(text[-lines:])
        return ""

    def stop(self) -> None:
        """Stop the daemon and wait (bounded) for it to go."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(10)
            return
        subprocess.run(
            ["bash", str(REFERENCE_SCRIPT), "stop", str(self.rundir)],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def _wait_socket(path: Path, alive: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                ping(path)
            except OSError:
                pass
            else:
                return
        if not alive():
            raise DaemonStartError(f"{what} exited before it listened")
        time.sleep(0.05)
    raise DaemonStartError(f"{what}: no answer on {path} after {timeout:.0f} s")


def _start_xsd(rundir: Path, timeout: float, kind: str = "xsd") -> Daemon:
    out = open(rundir / "xsd.out", "wb")  # noqa: SIM115 - the child keeps the descriptor
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("XENSTORED_PATH", None)
    env.pop("XENSTORED_RUNDIR", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CODE), env.get("PYTHONPATH")) if p)
    extra = ["--state-dir", str(rundir / "state")] if kind == "xsd-durable" else []
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xsd", "--rundir", str(rundir), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=CODE,
            start_new_session=True,  # as reference-xenstored starts C's (module doc)
        )
    finally:
        out.close()
    daemon = Daemon(kind, rundir, proc.pid, proc)
    try:
        _wait_socket(daemon.socket, daemon.alive, "xsd", timeout)
    except DaemonStartError as exc:
        daemon.stop()
        raise DaemonStartError(f"{exc}; its output ends with:\n{daemon.log_tail()}") from None
    return daemon


def _start_reference(kind: str, rundir: Path, timeout: float) -> Daemon:
    if not REFERENCE_SCRIPT.exists():
        raise DaemonStartError(
            f"{KINDS[kind]}: {REFERENCE_SCRIPT} not found (set XSD_REFERENCE_SCRIPT)"
        )
    res = subprocess.run(
        ["bash", str(REFERENCE_SCRIPT), "start", str(rundir), kind],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        check=False,
        timeout=600,  # the first start may apt-install the peers
    )
    pidfile = rundir / "xenstored.pid"
    if res.returncode != 0:
        subprocess.run(["bash", str(REFERENCE_SCRIPT), "stop", str(rundir)], check=False)
        raise DaemonStartError(f"{KINDS[kind]}: start failed: {res.stderr.strip()}")
    deadline = time.monotonic() + timeout
    while not (pidfile.exists() and pidfile.read_text().strip()):
        if time.monotonic() > deadline:
            subprocess.run(["bash", str(REFERENCE_SCRIPT), "stop", str(rundir)], check=False)
            raise DaemonStartError(f"{KINDS[kind]}: no pid file {pidfile}")
        time.sleep(0.02)
    pid = int(pidfile.read_text().split()[0])
    daemon = Daemon(kind, rundir, pid, None)
    try:
        _wait_socket(daemon.socket, daemon.alive, KINDS[kind], timeout)
    except DaemonStartError as exc:
        daemon.stop()
        raise DaemonStartError(f"{exc}; its output ends with:\n{daemon.log_tail()}") from None
    return daemon


def start_daemon(kind: str, rundir: Path, timeout: float = 15.0) -> Daemon:
    """Start a fresh daemon of ``kind`` (``xsd``, ``xsd-durable``, ``c`` or ``ocaml``) in
    ``rundir``.

    Raises:
        DaemonStartError: it could not be started or does not answer on its socket.
    """
    if kind not in KINDS:
        raise DaemonStartError(f"unknown daemon kind {kind!r}; choose from {', '.join(KINDS)}")
    rundir.mkdir(parents=True, exist_ok=True)
    if kind in ("xsd", "xsd-durable"):
        return _start_xsd(rundir, timeout, kind)
    return _start_reference(kind, rundir, timeout)
