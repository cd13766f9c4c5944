"""The daemons tests run against: xsd and Xen's reference daemons, as real processes.

Every daemon runs on a real Unix socket. The reference daemons are started by
``tools/peers/reference-xenstored`` (``.ci/run`` installs them); on a developer machine
without them the tests that need them are skipped, in CI they fail. Test modules import from here
(``from tests.support.daemons import XsdDaemon``), never from a conftest.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SCRIPT = ROOT / "tools" / "peers" / "reference-xenstored"
XEN_BIN = Path("/usr/lib/xen-4.17/bin")


def _wait_for_socket(path: Path, proc: subprocess.Popen[bytes] | None, what: str) -> None:
    """Return once the daemon accepts connections on ``path``."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            return
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.02)
        finally:
            probe.close()
    raise RuntimeError(f"{what}: not accepting on {path} after 15 s")


def need_reference() -> None:
    """Skip (or, in CI, fail) when Xen's reference daemons and clients are missing."""
    have = (
        REFERENCE_SCRIPT.exists()
        and (XEN_BIN / "xenstored").exists()
        and shutil.which("xenstore-read")
    )
    if not have:
        if os.environ.get("CI"):
            pytest.fail("reference peers are not installed: .ci/run must install them")
        pytest.skip("reference peers not installed: tools/peers/reference-xenstored install")


class XsdDaemon:
    """A running ``xsd`` process."""

    def __init__(self, rundir: Path, *args: str) -> None:
        self.rundir = rundir
        self.socket = rundir / "socket"
        rundir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log = open(rundir / "xsd.out", "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("XENSTORED_PATH", None)
        env.pop("XENSTORED_RUNDIR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xsd", "--rundir", str(rundir), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        _wait_for_socket(self.socket, self.proc, "xsd")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.rundir / "xsd.out").read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class ReferenceDaemon:
    """Xen's C xenstored (kind "c") or oxenstored ("ocaml") started by the peers script."""

    def __init__(self, rundir: Path, kind: str = "c", domains: str = "all") -> None:
        self.rundir = rundir
        self.kind = kind
        # Which domain ids the hypervisor stand-in (tools/peers/xen-standin.c) says exist
        # ("all", or a list "0,1,5"). Every id, by default: as in xsd, where domain 0
        # naming an id makes it a domain (docs/differences.md, "Which domains exist").
        env = dict(os.environ, XSD_STANDIN_DOMAINS=domains)
        subprocess.run(
            ["bash", str(REFERENCE_SCRIPT), "start", str(rundir), kind],
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        self.socket = rundir / "socket"
        _wait_for_socket(self.socket, None, f"{kind} xenstored")

    @property
    def pid(self) -> int:
        return int((self.rundir / "xenstored.pid").read_text().split()[0])

    def stop(self) -> None:
        subprocess.run(["bash", str(REFERENCE_SCRIPT), "stop", str(self.rundir)], check=False)
