"""The blocking client: every operation, every error class, against real daemons."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xsd_client import errors
from xsd_client.client import Client, Perm, default_socket_path
from xsd_client.protocol import ERROR_NAMES, Op, encode


def test_read_write_bytes_and_str(client: Client) -> None:
    client.write("/t/a", b"\x00bin\xffary\n")
    client.write("/t/s", "text é")
    client.write("/t/empty", b"")
    assert client.read("/t/a") == b"\x00bin\xffary\n"
    assert client.read("/t/s") == "text é".encode()
    assert client.read("/t/empty") == b""
    assert client.read("/t") == b""  # an implicit parent has an empty value


def test_mkdir_rm_exists(client: Client) -> None:
    client.mkdir("/m/d")
    assert client.exists("/m/d")
    assert client.read("/m/d") == b""
    client.write("/m/d", b"v")
    client.mkdir("/m/d")  # an existing node is left alone
    assert client.read("/m/d") == b"v"
    client.write("/m/d/deep/er", b"1")
    client.rm("/m/d")
    assert not client.exists("/m/d")
    assert not client.exists("/m/d/deep/er")
    assert client.exists("/m")


def test_directory_small_and_empty(client: Client) -> None:
    for name in ("b", "a", "c"):
        client.write(f"/dir/{name}", b"")
    assert sorted(client.directory("/dir")) == ["a", "b", "c"]
    assert client.directory("/dir/a") == []
    with pytest.raises(errors.ENOENT):
        client.directory("/dir/missing")


def test_directory_falls_back_to_directory_part(client: Client) -> None:
    names = [f"child-with-a-rather-long-name-{i:04d}" for i in range(300)]
    with client.transaction() as t:
        for name in names:
            t.write(f"/big/{name}", b"")
    # One reply could not hold the list: the daemon itself says so.
    with pytest.raises(errors.E2BIG):
        client.request(Op.DIRECTORY, b"/big\0")
    assert sorted(client.directory("/big")) == names


def test_perms_roundtrip(client: Client) -> None:
    client.write("/p/node", b"x")
    assert client.get_perms("/p/node") == [Perm("n", 0)]
    client.set_perms("/p/node", [Perm("b", 0), "r0"])
    assert client.get_perms("/p/node") == [Perm("b", 0), Perm("r", 0)]
    assert [str(p) for p in client.get_perms("/p/node")] == ["b0", "r0"]


def test_perm_parsing() -> None:
    assert Perm.parse("r12") == Perm("r", 12)
    assert str(Perm("w", 3)) == "w3"
    for bad in ("", "r", "x1", "r-1", "rq"):
        with pytest.raises(ValueError):
            Perm.parse(bad)


def test_domain_operations(client: Client) -> None:
    assert client.get_domain_path(7) == "/local/domain/7"
    assert client.is_domain_introduced(0)
    assert not client.is_domain_introduced(42)
    with pytest.raises(errors.XenstoreError):  # never introduced
        client.release(42)
    with pytest.raises(errors.XenstoreError):
        client.resume(42)
    with pytest.raises(errors.XenstoreError):
        client.set_target(42, 43)
    with pytest.raises(errors.EINVAL):
        client.introduce(1, 0, 0)  # event channel 0 is invalid


def test_control(client: Client) -> None:
    assert "check" in client.control("help")
    assert client.control("check") == "OK"
    with pytest.raises(errors.EINVAL):
        client.control("no-such-command")


def test_raw_request_and_type_checks(client: Client) -> None:
    assert client.request(Op.READ, b"/tool\0") == b""
    with pytest.raises(TypeError, match="path"):
        client.read(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value"):
        client.write("/x", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="domid"):
        client.get_domain_path("7")  # type: ignore[arg-type]


# --- errors ---------------------------------------------------------------------------


def test_every_wire_name_has_one_registered_class() -> None:
    assert set(errors.ERRORS) == set(ERROR_NAMES)
    for name in ERROR_NAMES:
        cls = errors.ERRORS[name]
        assert cls.__name__ == name == cls.errno_name
        assert getattr(errors, name) is cls
        err = errors.error_from_name(name, "/some/path")
        assert type(err) is cls
        assert isinstance(err, errors.XenstoreError)
        assert isinstance(err, OSError)
        assert err.filename == "/some/path"
        assert err.errno == getattr(__import__("errno"), name)
    assert type(errors.error_from_name("EQUOTA")) is errors.EINVAL  # as libxenstore
    assert issubclass(errors.ENOENT, FileNotFoundError)
    assert issubclass(errors.EACCES, PermissionError)
    assert issubclass(errors.EEXIST, FileExistsError)
    assert issubclass(errors.ConnectionClosedError, ConnectionError)


def test_errors_raised_by_a_real_daemon(client: Client) -> None:
    with pytest.raises(errors.ENOENT) as exc:
        client.read("/no/such/node")
    assert exc.value.filename == "/no/such/node"
    with pytest.raises(errors.EINVAL):
        client.read("/bad//path")
    with pytest.raises(errors.EINVAL):
        client.write("/bad path with spaces", b"")
    w = client.watch("/dup", "tok")
    with pytest.raises(errors.EEXIST):
        client.watch("/dup", "tok")
    w.unwatch()
    with pytest.raises(errors.ENOENT):
        client.unwatch("/dup", "tok")
    t = client.transaction()
    with pytest.raises(errors.EBUSY):  # no nesting
        client.request(Op.TRANSACTION_START, b"\0", tx_id=t.tx_id)
    t.abort()
    with pytest.raises(errors.ENOENT):  # the transaction is gone
        client.request(Op.READ, b"/\0", tx_id=t.tx_id)
    with pytest.raises(errors.E2BIG):
        client.write("/" + "a" * 4000, b"x" * 200)  # payload over 4096 never leaves
    with pytest.raises(errors.ENOSYS):
        client.request(Op.INVALID, b"")  # no such message type
    with pytest.raises(ValueError, match="already ended"):
        t.commit()


def test_error_payloads_of_an_unprivileged_domain(xsd: object) -> None:
    # Only xsd can give a Unix socket an unprivileged identity (reference daemons
    # need a hypervisor for INTRODUCE): EACCES and EPERM come from there.
    sock = str(xsd.socket)  # type: ignore[attr-defined]
    with Client(sock, timeout=10) as dom0:
        dom0.introduce(5, 1, 1)
        dom0.write("/secret", b"x")
        dom0.write("/local/domain/5", b"")
        dom0.set_perms("/local/domain/5", ["n5"])  # the guest owns its home
        domsock = Path(sock).parent / "domains" / "5" / "socket"
        if not domsock.exists():
            pytest.skip(f"xsd has no per-domain socket at {domsock}")
        with Client(domsock, timeout=10) as guest:
            with pytest.raises(errors.EACCES):
                guest.write("/secret", b"y")
            guest.write("/local/domain/5/mine", b"v")
            with pytest.raises(errors.EPERM):
                guest.set_perms("/local/domain/5/mine", ["n0"])
        dom0.release(5)


# --- connection -----------------------------------------------------------------------


def test_socket_path_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XENSTORED_PATH", raising=False)
    monkeypatch.delenv("XENSTORED_RUNDIR", raising=False)
    assert default_socket_path() == "/var/run/xenstored/socket"
    monkeypatch.setenv("XENSTORED_RUNDIR", "/run/x")
    assert default_socket_path() == "/run/x/socket"
    monkeypatch.setenv("XENSTORED_PATH", "/elsewhere/sock")
    assert default_socket_path() == "/elsewhere/sock"


def test_connect_from_environment(daemon_socket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XENSTORED_PATH", raising=False)
    monkeypatch.setenv("XENSTORED_RUNDIR", os.path.dirname(daemon_socket))
    with Client() as c:
        assert c.path == daemon_socket
        assert c.exists("/tool")
    monkeypatch.setenv("XENSTORED_PATH", daemon_socket)
    monkeypatch.setenv("XENSTORED_RUNDIR", "/nonexistent")
    with Client() as c:
        assert c.exists("/tool")


def test_connect_failure(tmp_path: Path) -> None:
    with pytest.raises(errors.ConnectionClosedError) as exc:
        Client(tmp_path / "nothing-here")
    assert exc.value.filename == str(tmp_path / "nothing-here")


def test_closed_client_refuses_requests(daemon_socket: str) -> None:
    c = Client(daemon_socket)
    w = c.watch("/")
    c.close()
    assert c.closed
    with pytest.raises(errors.ConnectionClosedError):
        c.read("/")
    assert [e.path for e in w] in ([], ["/"])  # what was queued, then the end
    assert not w.active


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A listening socket a test answers by hand, for what no real daemon does."""
    path = str(tmp_path / "sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        yield path, listener


def test_daemon_going_away_fails_waiters(stand_in: tuple[str, socket.socket]) -> None:
    # A server that accepts, reads one request and hangs up: the waiter must wake.
    path, listener = stand_in

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(100)
        conn.close()

    server = threading.Thread(target=serve)
    server.start()
    with Client(path, timeout=10) as c:
        with pytest.raises(errors.ConnectionClosedError):
            c.read("/x")
        assert c.closed
    server.join()


def test_a_reply_the_reader_cannot_handle_ends_the_connection(
    stand_in: tuple[str, socket.socket],
) -> None:
    # A stand-in daemon (the real ones send nothing a client cannot read): it answers
    # the READ, and the client's handling of that reply fails (planted below). The
    # waiter must get ConnectionClosedError, not wait until its timeout.
    path, listener = stand_in

    def serve() -> None:
        conn, _ = listener.accept()
        header = conn.recv(16)
        req_id = int.from_bytes(header[4:8], "little")
        conn.recv(100)
        conn.sendall(encode(Op.READ, req_id, 0, b"v"))
        conn.recv(100)  # until the client hangs up
        conn.close()

    server = threading.Thread(target=serve)
    server.start()
    with Client(path, timeout=30) as c:

        def broken(packet: object) -> None:
            raise RuntimeError("planted")

        c._dispatch = broken  # type: ignore[method-assign]
        started = time.monotonic()
        with pytest.raises(errors.ConnectionClosedError, match="planted"):
            c.read("/x")
        assert time.monotonic() - started < 10
        assert c.closed
    server.join()


def test_reply_timeout_keeps_connection_usable(stand_in: tuple[str, socket.socket]) -> None:
    path, listener = stand_in
    with Client(path, timeout=0.2) as c:
        conn, _ = listener.accept()
        with pytest.raises(TimeoutError):
            c.read("/x")
        assert not c.closed
        conn.close()


def test_importing_the_client_never_imports_trio() -> None:
    code = (
        "import sys, xsd_client, xsd_client.client, xsd_client.cli, xsd_client.recipes,"
        " xsd_client.errors\n"
        "bad = sorted(m for m in sys.modules if m == 'trio' or m.startswith('trio.'))\n"
        "print(bad)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(root)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
