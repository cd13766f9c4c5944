"""The daemon process: listening, stopping, per-domain sockets, misbehaving clients."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.daemons import XsdDaemon
from tests.support.wire import HEADER, RawConn, is_closed
from xsd_client.protocol import Op


def test_help_explains_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "xsd", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--rundir", "--socket", "--socket-mode", "--domain-socket-mode", "--pid-file"):
        assert option in out


def test_says_where_it_listens_and_stops_cleanly_on_sigterm(xsd: XsdDaemon) -> None:
    assert stat.S_IMODE(xsd.socket.stat().st_mode) == 0o600
    with RawConn(str(xsd.socket)) as conn:
        assert conn.call(Op.READ, "/tool/xenstored") == ("OK", b"")
    assert xsd.stop() == 0
    assert f"listening on {xsd.socket}" in xsd.output()
    assert not xsd.socket.exists()


def test_stops_on_sigint(tmp_path: Path) -> None:
    daemon = XsdDaemon(tmp_path / "rd")
    daemon.proc.send_signal(signal.SIGINT)
    assert daemon.proc.wait(10) == 0
    daemon.stop()


def test_xenstored_path_environment_is_honoured(tmp_path: Path) -> None:
    sock = tmp_path / "elsewhere.sock"
    env = dict(os.environ, XENSTORED_PATH=str(sock), XENSTORED_RUNDIR=str(tmp_path / "rd"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "xsd"],  # an explicit --rundir would win over XENSTORED_PATH
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert str(sock) in line
        with RawConn(str(sock)) as conn:
            assert conn.call(Op.DIRECTORY, "/") == ("OK", b"tool\0")
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_header_disconnects_only_that_client(xsd: XsdDaemon) -> None:
    good = RawConn(str(xsd.socket))
    bad = RawConn(str(xsd.socket))
    bad.send_raw(HEADER.pack(Op.WRITE, 1, 0, 5000))
    assert is_closed(bad)
    assert good.call(Op.WRITE, "/still", "served") == ("OK", b"OK\0")
    # A client that vanishes mid-request changes nothing.
    half = RawConn(str(xsd.socket))
    half.send_raw(HEADER.pack(Op.WRITE, 1, 0, 10) + b"/gone")
    half.close()
    assert good.call(Op.READ, "/gone") == ("ERROR", b"ENOENT\0")
    assert good.call(Op.READ, "/still") == ("OK", b"served\0")
    good.close()


def test_introduced_domain_gets_its_own_unprivileged_socket(xsd: XsdDaemon) -> None:
    with RawConn(str(xsd.socket)) as dom0:
        assert dom0.call(Op.INTRODUCE, 7, 1, 1) == ("OK", b"OK\0")
        dom0.call(Op.WRITE, "/local/domain/7", "")
        assert dom0.call(Op.SET_PERMS, "/local/domain/7", "n7") == ("OK", b"OK\0")
        guest_socket = xsd.rundir / "domains" / "7" / "socket"
        assert guest_socket.exists()
        guest = RawConn(str(guest_socket))
        assert guest.call(Op.WRITE, "name", "guest7") == ("OK", b"OK\0")
        assert guest.call(Op.READ, "/tool/xenstored") == ("ERROR", b"EACCES\0")
        assert guest.call(Op.INTRODUCE, 8, 1, 1) == ("ERROR", b"EACCES\0")
        assert dom0.call(Op.READ, "/local/domain/7/name") == ("OK", b"guest7\0")
        assert dom0.call(Op.RELEASE, 7) == ("OK", b"OK\0")
        assert is_closed(guest)
        assert not guest_socket.exists()
        assert dom0.call(Op.READ, "/local/domain/7") == ("ERROR", b"ENOENT\0")


def test_many_concurrent_clients_are_answered_in_order(xsd: XsdDaemon) -> None:
    conns = [RawConn(str(xsd.socket)) for _ in range(50)]
    for i, conn in enumerate(conns):
        for j in range(20):
            conn.send(Op.WRITE, f"/c{i}/k{j}\0{j}".encode(), req_id=j)
    for conn in conns:
        assert [conn.recv_reply().req_id for _ in range(20)] == list(range(20))
    with RawConn(str(xsd.socket)) as check:
        assert check.call(Op.READ, "/c49/k19") == ("OK", b"19")
    for conn in conns:
        conn.close()


def test_a_second_daemon_on_the_same_socket_refuses_and_harms_nothing(xsd: XsdDaemon) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "xsd", "--rundir", str(xsd.rundir)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert second.returncode == 1
    assert "another daemon serves" in second.stderr
    with RawConn(str(xsd.socket)) as conn:
        assert conn.call(Op.DIRECTORY, "/") == ("OK", b"tool\0")


def _start_fails(rundir: Path, *args: str) -> str:
    """Start xsd where it cannot set up a socket; its stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "xsd", "--rundir", str(rundir), *args],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_a_socket_path_that_is_a_file_stops_the_start_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "socket").write_text("mine")
    err = _start_fails(tmp_path)
    assert f"xsd: cannot listen on {tmp_path}/socket: it exists and is not a socket" in err
    assert (tmp_path / "socket").read_text() == "mine"
    notify = tmp_path / "notify"
    notify.write_text("mine too")
    err = _start_fails(tmp_path / "run", "--watchdog-notify", f"1:0:{notify}")
    assert f"cannot listen on {notify}: it exists and is not a socket; not starting" in err
    assert notify.read_text() == "mine too"
    assert not (tmp_path / "run" / "socket").exists()  # what it had bound is gone


def test_a_heartbeat_port_in_use_stops_the_start_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = _start_fails(tmp_path, "--watchdog-heartbeat", f"1:0:127.0.0.1:{port}")
    assert f"xsd: cannot listen on 127.0.0.1:{port}: " in err


def test_control_connections_shows_peer_credentials(xsd: XsdDaemon) -> None:
    with RawConn(str(xsd.socket)) as conn:
        conn.call(Op.WATCH, "/x", "t")
        kind, text = conn.call(Op.CONTROL, "connections")
    assert kind == "OK"
    line = next(row for row in text.decode().splitlines() if "watches=1" in row)
    assert f"pid={os.getpid()} uid={os.getuid()} gid={os.getgid()}" in line
    assert " dom0 priv " in line
