"""Hard actions reach a real QEMU over QMP: it ends paused, reset or shut down.

QEMU (``qemu-system-x86_64 -machine none``, installed by ``.ci/run``) gets two QMP
monitors: the daemon's backend uses the first (the domain's ``watchdog/qmp`` node), the
test watches events and asks ``query-status`` on the second.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import XsdDaemon
from tests.support.watchdogs import introduce, ok, read, wait_until
from tests.support.wire import RawConn

QEMU = "qemu-system-x86_64"
W = "/local/domain/7/watchdog"


class Monitor:
    """A QMP client for the test's own monitor."""

    def __init__(self, path: Path) -> None:
        # QEMU creates the socket file when it binds, and listens just after: under
        # load a connect can fall in between and be refused, so try again briefly
        deadline = time.monotonic() + 15
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            try:
                self.sock.connect(str(path))
                break
            except ConnectionRefusedError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.file = self.sock.makefile("rwb")
        self.events: list[dict[str, Any]] = []
        assert "QMP" in self._message()
        self.execute("qmp_capabilities")

    def _message(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise EOFError("QMP closed")
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str) -> Any:
        self.file.write(json.dumps({"execute": command}).encode() + b"\n")
        self.file.flush()
        while True:
            message = self._message()
            if "event" in message:
                self.events.append(message)
            elif "error" in message:
                raise RuntimeError(message["error"])
            else:
                return message["return"]

    def status(self) -> str:
        return str(self.execute("query-status")["status"])

    def drain(self) -> None:
        """Read events until QEMU closes the monitor."""
        while True:
            try:
                message = self._message()
            except (EOFError, OSError):
                return
            if "event" in message:
                self.events.append(message)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        self.sock.close()


class Qemu:
    def __init__(self, workdir: Path) -> None:
        self.backend = workdir / "qmp-backend.sock"
        self.monitor_path = workdir / "qmp-test.sock"
        self.proc = subprocess.Popen(
            [
                QEMU,
                *("-machine", "none", "-nographic", "-nodefaults", "-S"),
                *("-qmp", f"unix:{self.backend},server=on,wait=off"),
                *("-qmp", f"unix:{self.monitor_path},server=on,wait=off"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(lambda: self.backend.exists() and self.monitor_path.exists(), 15)
        self.monitor = Monitor(self.monitor_path)

    def stop(self) -> None:
        self.monitor.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def qemu(tmp_path: Path) -> Iterator[Qemu]:
    """A real QEMU with no guest, stopped at start (-S), and the test's monitor on it."""
    if shutil.which(QEMU) is None:
        if os.environ.get("CI"):
            pytest.fail("qemu-system-x86 is not installed: .ci/run must install it")
        pytest.skip("qemu-system-x86 not installed (apt-get install -y qemu-system-x86)")
    vm = Qemu(tmp_path)
    yield vm
    vm.stop()


def _expire_with(
    start_xsd: Callable[..., XsdDaemon], qemu: Qemu, action: str
) -> tuple[RawConn, RawConn]:
    daemon = start_xsd()
    dom0 = RawConn(str(daemon.socket))
    guest = introduce(dom0, daemon, 7)
    ok(dom0, f"{W}/qmp", str(qemu.backend))
    ok(dom0, f"{W}/0/action", action)
    ok(guest, "watchdog/0/timeout", "200")
    ok(guest, "watchdog/0/control", "arm")
    assert wait_until(lambda: read(guest, "watchdog/bootstatus/result") not in ("", "pending"))
    return dom0, guest


def test_pause_stops_the_vm(start_xsd: Callable[..., XsdDaemon], qemu: Qemu) -> None:
    qemu.monitor.execute("cont")
    assert qemu.monitor.status() == "running"
    _, guest = _expire_with(start_xsd, qemu, "pause")
    assert read(guest, "watchdog/bootstatus/result") == "ok: qmp stop"
    assert qemu.monitor.status() == "paused"
    assert any(e["event"] == "STOP" for e in qemu.monitor.events)


def test_reset_resets_the_vm(start_xsd: Callable[..., XsdDaemon], qemu: Qemu) -> None:
    qemu.monitor.execute("cont")
    qemu.monitor.execute("stop")
    assert qemu.monitor.status() == "paused"
    _, guest = _expire_with(start_xsd, qemu, "reset")
    assert read(guest, "watchdog/bootstatus/result") == "ok: qmp system_reset"
    # A reset of a stopped VM puts it back before launch; QEMU reports the reset too.
    assert qemu.monitor.status() == "prelaunch"
    resets = [e for e in qemu.monitor.events if e["event"] == "RESET"]
    assert resets and resets[0]["data"]["reason"] == "host-qmp-system-reset"


def test_poweroff_shuts_the_vm_down(start_xsd: Callable[..., XsdDaemon], qemu: Qemu) -> None:
    qemu.monitor.execute("cont")
    _, guest = _expire_with(start_xsd, qemu, "destroy")  # xl's name for a hard poweroff
    assert read(guest, "watchdog/bootstatus/action") == "poweroff"
    assert read(guest, "watchdog/bootstatus/result").startswith("ok: qmp quit")
    assert qemu.proc.wait(10) == 0
    qemu.monitor.drain()  # the SHUTDOWN event is the last thing QEMU says
    shutdowns = [e for e in qemu.monitor.events if e["event"] == "SHUTDOWN"]
    assert shutdowns and shutdowns[0]["data"]["reason"] == "host-qmp-quit"


def test_an_action_qemu_refuses_is_shown_and_the_vm_keeps_running(
    start_xsd: Callable[..., XsdDaemon], qemu: Qemu
) -> None:
    qemu.monitor.execute("cont")
    _, guest = _expire_with(start_xsd, qemu, "inject-nmi")  # machine "none" has no NMI
    result = read(guest, "watchdog/bootstatus/result")
    assert result.startswith("failed: QMP inject-nmi"), result
    assert read(guest, "watchdog/0/state") == "expired"
    assert qemu.monitor.status() == "running"
    time.sleep(0.1)
    ok(guest, "watchdog/0/control", "arm")  # the timer is still usable
    assert read(guest, "watchdog/0/state") == "armed"
