"""Binding the daemon's Unix sockets, on real sockets in a temporary directory."""

from __future__ import annotations

import errno
import socket
import stat
from pathlib import Path

import pytest

from xsd.server.unix_sockets import bind_unix


def test_a_stream_socket_listens_with_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "socket"
    with bind_unix(path, 0o640) as sock:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
        assert not sock.getblocking()
    assert [p.name for p in path.parent.iterdir()] == ["socket"]  # no staging name left


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "socket"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    with bind_unix(path) as sock, socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        assert sock.accept()


def test_a_datagram_socket_receives(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with bind_unix(path, kind=socket.SOCK_DGRAM) as sock:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.sendto(b"WATCHDOG=1", str(path))
        sock.setblocking(True)
        assert sock.recv(100) == b"WATCHDOG=1"


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "socket"
    path.write_text("keep me")
    with pytest.raises(OSError) as info:
        bind_unix(path)
    assert info.value.errno == errno.EEXIST
    assert "not a socket" in str(info.value)
    assert path.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["socket"]
