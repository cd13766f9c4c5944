"""Fixtures: the xsd daemon and Xen's reference daemons, each on its own socket.

Every daemon runs as a real process on a real Unix socket. The reference daemons come
from ``../shared/peers`` (installed by ``.ci/run``); on a developer machine without them
the tests that need them are skipped, in CI they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XSD_SHARED", ROOT.parent / "shared"))
REFERENCE_SCRIPT = SHARED / "peers" / "reference-xenstored"
XEN_BIN = Path("/usr/lib/xen-4.17/bin")


def _wait_for_socket(path: Path, proc: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if path.exists():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        time.sleep(0.02)
    raise RuntimeError(f"{what}: no socket at {path} after 15 s")


def need_reference() -> None:
    """Skip (or, in CI, fail) when Xen's reference daemons and clients are missing."""
    have = REFERENCE_SCRIPT.exists() and (XEN_BIN / "xenstored").exists() and shutil.which(
        "xenstore-read"
    )
    if not have:
        if os.environ.get("CI"):
            pytest.fail("reference peers are not installed: .ci/run must install them")
        pytest.skip("reference peers not installed (run ../shared/peers/reference-xenstored install)")


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

    def __init__(self, rundir: Path, kind: str = "c") -> None:
        self.rundir = rundir
        self.kind = kind
        subprocess.run(
            ["bash", str(REFERENCE_SCRIPT), "start", str(rundir), kind],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.socket = rundir / "socket"
        _wait_for_socket(self.socket, None, f"{kind} xenstored")

    @property
    def pid(self) -> int:
        return int((self.rundir / "xenstored.pid").read_text().split()[0])

    def stop(self) -> None:
        subprocess.run(["bash", str(REFERENCE_SCRIPT), "stop", str(self.rundir)], check=False)


@pytest.fixture
def xsd(tmp_path: Path) -> Iterator[XsdDaemon]:
    """A fresh xsd daemon; its socket is ``xsd.socket``."""
    daemon = XsdDaemon(tmp_path / "xsd")
    yield daemon
    daemon.stop()


@pytest.fixture
def cxenstored(tmp_path: Path) -> Iterator[ReferenceDaemon]:
    """A fresh reference C xenstored 4.17."""
    need_reference()
    daemon = ReferenceDaemon(tmp_path / "cxs", "c")
    yield daemon
    daemon.stop()


@pytest.fixture
def xs_env() -> Iterator[dict[str, str]]:
    """The environment for running Xen's command-line clients (set XENSTORED_PATH on it)."""
    yield {k: v for k, v in os.environ.items() if not k.startswith("XENSTORED_")}
