"""The daemon as the system sees it: its name, its run directory, its socket, what it
tells systemd. Real ``python -m xsd`` processes; a real live update through ``xsc``."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemons import XsdDaemon
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def xsc(sock: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XENSTORED_")}
    env["XENSTORED_PATH"] = str(sock)
    return subprocess.run(
        [sys.executable, "-m", "xsd_client.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def program(tmp_path: Path) -> str:
    """A new program for a live update: a shell script that runs this checkout's daemon
    with this interpreter (the console script may belong to another install)."""
    wrapper = tmp_path / "xsd-new"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m xsd "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def listening_line(proc: subprocess.Popen[str]) -> str:
    """The daemon's ``listening on`` line (from its stderr, after the log's start line)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on" in line:
            return line.strip()
    raise AssertionError(f"xsd exited with {proc.wait()} before listening")


def named_xsd(pid: int) -> None:
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "xsd"
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"xsd"
    if shutil.which("pidof"):
        found = subprocess.run(["pidof", "xsd"], capture_output=True, text=True).stdout.split()
        assert str(pid) in found
    if shutil.which("ps"):
        ps = subprocess.run(["ps", "-C", "xsd", "-o", "pid="], capture_output=True, text=True)
        assert str(pid) in ps.stdout.split()


def test_the_process_is_called_xsd_before_and_after_a_live_update(
    xsd: XsdDaemon, tmp_path: Path
) -> None:
    named_xsd(xsd.pid)
    with RawConn(str(xsd.socket)) as conn:
        conn.write("/kept", "yes")
    done = xsc(xsd.socket, "live-update", program(tmp_path))
    assert done.returncode == 0, done.stderr
    with RawConn(str(xsd.socket)) as conn:
        assert conn.call(Op.READ, "/kept") == ("OK", b"yes")
    cmdline = Path(f"/proc/{xsd.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--live-update" in cmdline  # the new program runs, in the same process
    named_xsd(xsd.pid)


def test_rundir_is_created_with_mode_0755_whatever_the_umask(tmp_path: Path) -> None:
    rundir = tmp_path / "a" / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xsd", "--rundir", str(rundir)],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.umask(0o077),
    )
    try:
        listening_line(proc)
        assert stat.S_IMODE(rundir.stat().st_mode) == 0o755
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_explicit_rundir_wins_over_xenstored_path(tmp_path: Path) -> None:
    env = dict(os.environ, XENSTORED_PATH=str(tmp_path / "elsewhere"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "xsd", "--rundir", str(tmp_path / "rd")],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert listening_line(proc) == f"xsd: listening on {tmp_path}/rd/socket"
        assert not (tmp_path / "elsewhere").exists()
    finally:
        proc.terminate()
        proc.wait(10)
    help_text = subprocess.run(
        [sys.executable, "-m", "xsd", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "RUNDIR/socket if --rundir is given, $XENSTORED_PATH" in " ".join(help_text.split())


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> socket.socket:
    """A datagram socket standing in for systemd's; the daemons started see it."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    return sock


def messages_until(sock: socket.socket, wanted: str) -> list[str]:
    """Datagrams received until one holds ``wanted``."""
    got: list[str] = []
    while not got or wanted not in got[-1]:
        got.append(sock.recv(4096).decode())
    return got


def test_systemd_hears_status_lines_while_starting_updating_and_stopping(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    daemon = XsdDaemon(tmp_path / "rd")
    try:
        started = messages_until(notify_socket, "READY=1")
        assert started[0] == "STATUS=Starting"
        assert started[-1] == f"READY=1\nSTATUS=Serving on {daemon.socket}"
        done = xsc(daemon.socket, "live-update", program(tmp_path))
        assert done.returncode == 0, done.stderr
        update = messages_until(notify_socket, "READY=1")
        reloading = [m for m in update if m.startswith("RELOADING=1")]
        assert reloading and "STATUS=Live update: executing the new program" in reloading[0]
        assert update[-1] == f"READY=1\nSTATUS=Serving on {daemon.socket} (live updated)"
    finally:
        assert daemon.stop() == 0
    assert messages_until(notify_socket, "STOPPING=1")[-1] == (
        "STOPPING=1\nSTATUS=Stopping: SIGTERM"
    )
