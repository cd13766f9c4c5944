"""Watches, transactions and recipes of the blocking client, across threads and
connections, against real daemons."""

from __future__ import annotations

import threading
import time

import pytest

from xsd_client import errors
from xsd_client.client import Client, Transaction, WatchEvent
from xsd_client.recipes import ChildrenWatch, DataWatch, transact


def _paths(watch: object, n: int, timeout: float = 5) -> list[str]:
    return [watch.get(timeout).path for _ in range(n)]  # type: ignore[attr-defined]


def test_watch_iterator_sees_initial_and_subtree_events(client: Client) -> None:
    w = client.watch("/w")
    assert w.get(5) == WatchEvent("/w", w.token)
    client.write("/w/a", b"1")
    client.write("/other", b"1")  # not under /w
    client.write("/w/a/b", b"2")
    assert _paths(w, 2) == ["/w/a", "/w/a/b"]
    with pytest.raises(TimeoutError):
        w.get(0.2)
    w.unwatch()
    client.write("/w/a", b"3")
    assert list(w) == []


def test_watch_with_explicit_token_and_depth_refusal(client: Client) -> None:
    with client.watch("/x", "my-token") as w:
        assert w.get(5) == WatchEvent("/x", "my-token")
    assert not w.active


def test_a_bad_watch_argument_keeps_nothing(client: Client) -> None:
    with pytest.raises(TypeError, match="depth must be int"):
        client.watch("/x", "t", depth="1")  # type: ignore[arg-type]
    # Nothing left behind in the client to take events meant for a later watch (the
    # table is private; the daemon never heard of this watch, so only it can tell).
    assert client._watches.find("/x", "t") is None
    with client.watch("/x", "t") as w:
        assert w.get(5) == WatchEvent("/x", "t")


def test_same_token_on_two_paths_goes_to_the_right_watch(client: Client) -> None:
    a = client.watch("/one", "same")
    b = client.watch("/two", "same")
    assert a.get(5).path == "/one"
    assert b.get(5).path == "/two"
    client.write("/two/x", b"")
    assert b.get(5).path == "/two/x"
    with pytest.raises(TimeoutError):
        a.get(0.2)


def test_callback_watch_may_call_the_client(client: Client) -> None:
    seen: list[tuple[str, bytes | None]] = []
    done = threading.Event()

    def on_event(event: WatchEvent) -> None:
        # Calling back into the client from a callback must not deadlock.
        value = client.read(event.path) if client.exists(event.path) else None
        seen.append((event.path, value))
        if len(seen) == 3:
            done.set()

    client.watch("/cb", callback=on_event)
    client.write("/cb/k", b"v1")
    client.write("/cb/k", b"v2")
    assert done.wait(5)
    assert [path for path, _ in seen] == ["/cb", "/cb/k", "/cb/k"]
    assert seen[2] == ("/cb/k", b"v2")


def test_watches_and_requests_across_threads(daemon_socket: str) -> None:
    # One connection shared by writer threads and a watching thread.
    with Client(daemon_socket, timeout=10) as shared, Client(daemon_socket) as other:
        w = shared.watch("/mt")
        assert w.get(5).path == "/mt"
        got: list[str] = []

        def watcher() -> None:
            for event in w:
                got.append(event.path)
                if len(got) == 40:
                    return

        def writer(n: int) -> None:
            for i in range(10):
                shared.write(f"/mt/t{n}/k{i}", str(i))
                assert shared.read(f"/mt/t{n}/k{i}") == str(i).encode()

        watching = threading.Thread(target=watcher)
        watching.start()
        writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        watching.join(10)
        assert not watching.is_alive()
        assert sorted(got) == sorted(f"/mt/t{n}/k{i}" for n in range(4) for i in range(10))
        # A change made on another connection reaches the watch too.
        other.write("/mt/from-other", b"")
        assert w.get(5).path == "/mt/from-other"


def test_reset_watches_ends_every_watch(client: Client) -> None:
    a = client.watch("/r1")
    b = client.watch("/r2")
    client.reset_watches()
    client.write("/r1/x", b"")
    assert [e.path for e in a] in ([], ["/r1"])
    assert [e.path for e in b] in ([], ["/r2"])
    again = client.watch("/r1")  # the daemon forgot the old one: no EEXIST
    assert again.get(5).path == "/r1"


def test_transaction_commit_and_abort(client: Client) -> None:
    with client.transaction() as t:
        t.write("/tx/a", b"1")
        t.mkdir("/tx/d")
        assert t.read("/tx/a") == b"1"
        assert sorted(t.directory("/tx")) == ["a", "d"]
        assert not client.exists("/tx/a")  # invisible outside until commit
        t.set_perms("/tx/a", ["r0"])
        assert [str(p) for p in t.get_perms("/tx/a")] == ["r0"]
        assert t.exists("/tx/d")
    assert client.read("/tx/a") == b"1"

    with pytest.raises(RuntimeError), client.transaction() as t:
        t.write("/tx/b", b"2")
        t.rm("/tx/a")
        raise RuntimeError("abort it")
    assert not client.exists("/tx/b")
    assert client.exists("/tx/a")

    t = client.transaction()
    t.write("/tx/c", b"")
    t.abort()
    assert not client.exists("/tx/c")


def test_conflict_raises_eagain_and_transact_retries(daemon_socket: str) -> None:
    with Client(daemon_socket, timeout=10) as a, Client(daemon_socket, timeout=10) as b:
        a.write("/counter", b"0")
        # A plain transaction that loses the race raises EAGAIN from the commit.
        t = a.transaction()
        t.read("/counter")
        t.write("/counter", b"from-a")
        b.write("/counter", b"from-b")
        with pytest.raises(errors.EAGAIN):
            t.commit()
        assert a.read("/counter") == b"from-b"

        # transact() runs the function again; the first run meets a real conflict
        # made by the second connection between its read and its commit.
        b.write("/counter", b"10")
        attempts = 0

        def increment(tx: Transaction) -> int:
            nonlocal attempts
            attempts += 1
            value = int(tx.read("/counter"))
            if attempts == 1:
                b.write("/counter", b"100")
            tx.write("/counter", str(value + 1))
            return value + 1

        assert transact(a, increment) == 101
        assert attempts == 2
        assert a.read("/counter") == b"101"

        def always_conflict(tx: Transaction) -> None:
            tx.read("/counter")
            tx.write("/counter", b"x")
            b.write("/counter", b"y")

        with pytest.raises(errors.EAGAIN):
            transact(a, always_conflict, max_tries=3)


def test_concurrent_increments_from_threads_all_count(daemon_socket: str) -> None:
    with Client(daemon_socket, timeout=10) as one, Client(daemon_socket, timeout=10) as two:
        one.write("/n", b"0")

        def bump(tx: Transaction) -> None:
            tx.write("/n", str(int(tx.read("/n")) + 1))

        def worker(c: Client) -> None:
            for _ in range(15):
                transact(c, bump)

        threads = [threading.Thread(target=worker, args=(c,)) for c in (one, two, one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert one.read("/n") == b"60"


def _wait_for(predicate: object, timeout: float = 5) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_data_watch(client: Client) -> None:
    values: list[bytes | None] = []

    @DataWatch(client, "/dw/node")
    def changed(value: bytes | None) -> bool | None:
        values.append(value)
        return value != b"stop"

    assert values == [None]  # called at once with the current state
    client.write("/dw/node", b"one")
    _wait_for(lambda: values[-1:] == [b"one"])
    client.write("/dw/node/child", b"")  # fires, but the value did not change
    client.write("/dw/node", b"two")
    _wait_for(lambda: values[-1:] == [b"two"])
    client.rm("/dw/node")
    _wait_for(lambda: values[-1:] == [None])
    client.write("/dw/node", b"stop")
    _wait_for(lambda: values[-1:] == [b"stop"])
    client.write("/dw/node", b"after")
    time.sleep(0.2)
    assert values == [None, b"one", b"two", None, b"stop"]


def test_children_watch(client: Client) -> None:
    lists: list[list[str]] = []
    watch = ChildrenWatch(client, "/cw", lambda names: lists.append(sorted(names)))
    assert lists == [[]]
    client.write("/cw/a", b"")
    _wait_for(lambda: lists[-1] == ["a"])
    client.write("/cw/a", b"value change only")
    client.write("/cw/b", b"")
    _wait_for(lambda: lists[-1] == ["a", "b"])
    client.rm("/cw/a")
    _wait_for(lambda: lists[-1] == ["b"])
    watch.stop()
    assert watch.stopped
    client.write("/cw/c", b"")
    time.sleep(0.2)
    assert lists == [[], ["a"], ["a", "b"], ["b"]]
