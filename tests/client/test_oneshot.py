"""The thread-free client of the one-shot commands, against real daemons: the same
requests, replies and errors as the threaded client, and a clean end of the connection."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from xsd_client import errors
from xsd_client.oneshot import OneShotClient
from xsd_client.protocol import PAYLOAD_MAX, Op, encode
from xsd_client.values import Perm


@pytest.fixture
def oneshot(daemon_socket: str) -> Iterator[OneShotClient]:
    with OneShotClient(daemon_socket) as c:
        yield c


def test_data_operations(oneshot: OneShotClient) -> None:
    oneshot.write("/o/a", b"\x00bin\xff\n")
    oneshot.mkdir("/o/d")
    assert oneshot.read("/o/a") == b"\x00bin\xff\n"
    assert sorted(oneshot.directory("/o")) == ["a", "d"]
    oneshot.set_perms("/o/a", ["b0", "r5"])
    assert oneshot.get_perms("/o/a") == [Perm("b", 0), Perm("r", 5)]
    assert oneshot.exists("/o/d")
    oneshot.rm("/o/d")
    assert not oneshot.exists("/o/d")
    assert oneshot.request(Op.READ, b"/o/a\0") == b"\x00bin\xff\n"
    assert oneshot.control("check") == "OK"


def test_directory_too_long_for_one_reply(oneshot: OneShotClient) -> None:
    names = [f"child-with-a-rather-long-name-{i:04d}" for i in range(300)]
    with oneshot.transaction() as t:
        for name in names:
            t.write(f"/big/{name}", b"")
    assert sorted(oneshot.directory("/big")) == names


def test_transactions_commit_abort_and_conflict(oneshot: OneShotClient, daemon_socket: str) -> None:
    with oneshot.transaction() as t:
        t.write("/tx/a", b"1")
        assert oneshot.exists("/tx/a") is False  # not applied before the commit
    assert oneshot.read("/tx/a") == b"1"
    t = oneshot.transaction()
    t.write("/tx/a", b"2")
    t.abort()
    assert oneshot.read("/tx/a") == b"1"
    t = oneshot.transaction()
    assert t.read("/tx/a") == b"1"
    t.write("/tx/a", b"3")
    with OneShotClient(daemon_socket) as other:
        other.write("/tx/a", b"4")
    with pytest.raises(errors.EAGAIN):
        t.commit()
    assert oneshot.read("/tx/a") == b"4"


def test_errors_name_the_path(oneshot: OneShotClient) -> None:
    with pytest.raises(errors.ENOENT) as exc:
        oneshot.read("/no/such/node")
    assert exc.value.filename == "/no/such/node"
    assert exc.value.errno_name == "ENOENT"
    with pytest.raises(errors.EINVAL):
        oneshot.control("no-such-command")
    # Refused before it is sent, as the threaded client and libxenstore do.
    with pytest.raises(errors.E2BIG):
        oneshot.write("/o/big", b"x" * PAYLOAD_MAX)
    assert oneshot.read("/") == b""  # the connection is still good


def test_connect_failure_and_environment(
    tmp_path: Path, daemon_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(errors.ConnectionClosedError) as exc:
        OneShotClient(tmp_path / "nothing-here")
    assert exc.value.filename == str(tmp_path / "nothing-here")
    monkeypatch.delenv("XENSTORED_PATH", raising=False)
    monkeypatch.setenv("XENSTORED_RUNDIR", os.path.dirname(daemon_socket))
    with OneShotClient() as c:
        assert c.path == daemon_socket
        assert c.exists("/tool")


def test_closed_client_refuses_requests(daemon_socket: str) -> None:
    c = OneShotClient(daemon_socket)
    c.close()
    assert c.closed
    with pytest.raises(errors.ConnectionClosedError, match="closed by the client"):
        c.read("/")
    c.close()  # twice is fine


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A listening socket a test answers by hand, for what no real daemon does."""
    path = str(tmp_path / "sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        yield path, listener


def serve(listener: socket.socket, answer: bytes) -> threading.Thread:
    """Accept one connection, read one request, send ``answer`` (the request id is
    filled in where it says ``REQ_ID``), then hang up."""

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            header = conn.recv(16)
            conn.recv(4096)
            req_id = header[4:8]
            conn.sendall(answer.replace(b"REQ_ID", req_id))

    server = threading.Thread(target=run)
    server.start()
    return server


def test_replies_to_other_requests_and_events_are_skipped(
    stand_in: tuple[str, socket.socket],
) -> None:
    path, listener = stand_in
    other = encode(Op.READ, 99999, 0, b"not yours")
    event = encode(Op.WATCH_EVENT, 0, 0, b"/x\0tok\0")
    mine = encode(Op.READ, 0, 0, b"yours")
    mine = mine[:4] + b"REQ_ID" + mine[8:]
    server = serve(listener, other + event + mine)
    with OneShotClient(path) as c:
        assert c.read("/x") == b"yours"
    server.join()


def test_daemon_going_away(stand_in: tuple[str, socket.socket]) -> None:
    path, listener = stand_in
    server = serve(listener, b"")
    with OneShotClient(path) as c:
        with pytest.raises(errors.ConnectionClosedError, match="closed by the daemon"):
            c.read("/x")
        assert c.closed
        with pytest.raises(errors.ConnectionClosedError, match="closed by the daemon"):
            c.read("/x")  # and stays so
    server.join()


def test_broken_framing_ends_the_connection(stand_in: tuple[str, socket.socket]) -> None:
    path, listener = stand_in
    server = serve(listener, encode(Op.READ, 1, 0, b"value")[:-2])  # cut short
    with OneShotClient(path) as c:
        with pytest.raises(errors.ConnectionClosedError, match="broke the protocol"):
            c.read("/x")
        assert c.closed
    server.join()
