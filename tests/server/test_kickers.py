"""Kicks from outside the store: the real ``systemd-notify`` and a heartbeat peer over TCP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemons import XsdDaemon
from tests.support.watchdogs import free_port, introduce, ok, read, state, wait_until
from tests.support.wire import RawConn

Start = Callable[..., XsdDaemon]
W = "/local/domain/7/watchdog"


def _notify(path: Path, *assignments: str) -> None:
    env = dict(os.environ, NOTIFY_SOCKET=str(path))
    subprocess.run(["systemd-notify", "--no-block", *assignments], env=env, check=True)


@pytest.fixture
def systemd_notify() -> None:
    if shutil.which("systemd-notify") is None:
        pytest.skip("systemd-notify is not installed")


def _domain(daemon: XsdDaemon) -> tuple[RawConn, RawConn]:
    dom0 = RawConn(str(daemon.socket))
    guest = introduce(dom0, daemon, 7)
    ok(dom0, f"{W}/0/action", "none")
    ok(dom0, f"{W}/1/action", "none")
    return dom0, guest


def test_systemd_notify_keeps_it_alive_and_it_fires_when_it_stops(
    start_xsd: Start, tmp_path: Path, systemd_notify: None
) -> None:
    sock = tmp_path / "notify.sock"
    daemon = start_xsd("--watchdog-notify", f"7:0:{sock}")
    _, guest = _domain(daemon)
    ok(guest, "watchdog/0/timeout", "400")
    _notify(sock, "READY=1", "WATCHDOG=1")  # the first kick arms it
    assert wait_until(lambda: state(guest, 7, 0) == "armed")
    end = time.monotonic() + 1.5  # almost four timeouts
    while time.monotonic() < end:
        _notify(sock, "WATCHDOG=1")
        time.sleep(0.08)
    assert read(guest, "watchdog/0/state") == "armed"
    assert read(guest, "watchdog/0/fired") == "0"
    assert wait_until(lambda: state(guest, 7, 0) == "expired")
    assert read(guest, "watchdog/bootstatus/watchdog") == "0"


def test_systemd_notify_sets_the_timeout_and_triggers(
    start_xsd: Start, tmp_path: Path, systemd_notify: None
) -> None:
    sock = tmp_path / "notify.sock"
    daemon = start_xsd("--watchdog-notify", f"7:1:{sock}")
    _, guest = _domain(daemon)
    _notify(sock, "WATCHDOG_USEC=5000000")
    assert wait_until(lambda: read(guest, "watchdog/1/timeout") == "5000")
    assert read(guest, "watchdog/1/state") == "armed"
    _notify(sock, "WATCHDOG_USEC=1500")  # rounded up to whole ms, then to the minimum
    assert wait_until(lambda: read(guest, "watchdog/1/timeout") == "10")
    _notify(sock, "WATCHDOG_USEC=5000000")
    assert wait_until(lambda: read(guest, "watchdog/1/timeout") == "5000")
    _notify(sock, "WATCHDOG=trigger")
    assert wait_until(lambda: state(guest, 7, 1) == "expired")
    assert wait_until(lambda: "triggered by sd_notify" in daemon.output())


_PEER = """
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
while True:
    s.sendall(b"ping")
    time.sleep(0.05)
"""


def test_heartbeat_peer_keeps_it_alive_and_killing_it_fires(start_xsd: Start) -> None:
    port = free_port()
    daemon = start_xsd("--watchdog-heartbeat", f"7:1:127.0.0.1:{port}")
    _, guest = _domain(daemon)
    ok(guest, "watchdog/1/timeout", "400")
    peer = subprocess.Popen([sys.executable, "-c", _PEER, str(port)])
    try:
        assert wait_until(lambda: state(guest, 7, 1) == "armed")
        time.sleep(1.5)
        assert read(guest, "watchdog/1/state") == "armed"
        assert read(guest, "watchdog/1/fired") == "0"
    finally:
        peer.send_signal(signal.SIGKILL)
        peer.wait()
    assert wait_until(lambda: state(guest, 7, 1) == "expired")
    assert read(guest, "watchdog/bootstatus/watchdog") == "1"


def test_daemon_sends_its_own_heartbeats_to_a_peer(start_xsd: Start, tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    peer_port = listener.getsockname()[1]
    sock = tmp_path / "hb.sock"
    daemon = start_xsd(
        "--watchdog-heartbeat", f"7:0:unix:{sock},peer=127.0.0.1:{peer_port},pulse=50"
    )
    conn, _ = listener.accept()
    conn.settimeout(10)
    received = b""
    while received.count(b"heartbeat\n") < 3:
        data = conn.recv(4096)
        assert data
        received += data
    conn.close()
    listener.close()
    # The Unix listener kicks (here: arms) watchdog 0 with any message.
    _, guest = _domain(daemon)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as beat:
        beat.connect(str(sock))
        beat.sendall(b"x")
        assert wait_until(lambda: state(guest, 7, 0) == "armed")
