"""xsd_client across daemon crashes: watchers and transaction users carry on.

The daemon runs in durable mode and is killed with SIGKILL three times, and restarted,
while a blocking client (a raw watch, a DataWatch, a ChildrenWatch, two threads of
``transact()``, a writer) and a trio client (a watch and ``transact()``) work. Every
watch fires again after each restart, every transaction is committed exactly once
(each writes a marker and counts it, and does nothing when its marker is there), and no
exception reaches the users' code.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import trio

from tests.support.daemons import XsdDaemon
from xsd_client import aio
from xsd_client.client import Client, Transaction
from xsd_client.errors import ENOENT
from xsd_client.recipes import ChildrenWatch, DataWatch, transact

CRASHES = 3


def bump(user: str, n: int):
    """The n-th transaction of ``user``: count it once, whatever happens to its reply."""

    def fn(tx: Transaction) -> None:
        marker = f"/tx/{user}/{n}"
        try:
            tx.read(marker)
            return  # committed already (its reply was lost in a crash)
        except ENOENT:
            pass
        try:
            count = int(tx.read("/tx/count"))
        except ENOENT:
            count = 0
        tx.write("/tx/count", str(count + 1))
        tx.write(marker, "1")

    return fn


def test_watchers_and_transactions_survive_three_crashes(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    args = ("--state-dir", str(tmp_path / "state"))
    daemon = XsdDaemon(rundir, *args)
    errors: list[BaseException] = []
    done = threading.Event()
    counts: dict[str, int] = {}
    client = Client(daemon.socket, reconnect=True, timeout=30)
    client.write("/w/data", "0")
    raw = client.watch("/w")
    data_seen: list[bytes | None] = []
    kids_seen: list[list[str]] = []
    DataWatch(client, "/w/data", data_seen.append)
    ChildrenWatch(client, "/w/kids", kids_seen.append)

    def guarded(fn, *a: object) -> None:
        try:
            fn(*a)
        except BaseException as exc:
            errors.append(exc)

    def tx_user(user: str) -> None:
        n = 0
        while not done.is_set():
            transact(client, bump(user, n), idempotent=True)
            n += 1
            counts[user] = n

    def writer() -> None:
        n = 0
        while not done.is_set():
            n += 1
            client.write("/w/data", str(n))
            if n % 10 == 0:
                client.write(f"/w/kids/k{n}", "x")
            time.sleep(0.005)

    async def trio_user() -> None:
        async with aio.open_client(daemon.socket, reconnect=True) as ac:
            watch = await ac.watch("/w/kids")
            fired = 0

            async def count_events() -> None:
                nonlocal fired
                async for _ in watch:
                    fired += 1

            async def bump_async(tx: aio.AsyncTransaction, n: int) -> None:
                marker = f"/tx/trio/{n}"
                try:
                    await tx.read(marker)
                    return
                except ENOENT:
                    pass
                try:
                    count = int(await tx.read("/tx/count"))
                except ENOENT:
                    count = 0
                await tx.write("/tx/count", str(count + 1))
                await tx.write(marker, "1")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(count_events)
                n = 0
                while not done.is_set():
                    await aio.transact(ac, lambda tx, n=n: bump_async(tx, n), idempotent=True)
                    n += 1
                    counts["trio"] = n
                counts["trio-events"] = fired
                nursery.cancel_scope.cancel()

    threads = [
        threading.Thread(target=guarded, args=(tx_user, "a")),
        threading.Thread(target=guarded, args=(tx_user, "b")),
        threading.Thread(target=guarded, args=(writer,)),
        threading.Thread(target=guarded, args=(trio.run, trio_user)),
    ]
    for thread in threads:
        thread.start()
    initial_events = []
    try:
        for _ in range(CRASHES):
            time.sleep(1.0)
            before = dict(counts)
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.proc.wait()
            daemon.log.close()
            time.sleep(0.2)  # the clients find nobody for a while
            daemon = XsdDaemon(rundir, *args)
            # The raw watch fires its initial event again once re-registered.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                event = raw.get(timeout=10)
                if event is not None and event.path == "/w":
                    initial_events.append(event)
                    break
            deadline = time.monotonic() + 10  # a pause, then everyone carries on
            while time.monotonic() < deadline and not all(
                counts.get(u, 0) > before.get(u, 0) for u in ("a", "b", "trio")
            ):
                time.sleep(0.05)
            assert all(counts.get(u, 0) > before.get(u, 0) for u in ("a", "b", "trio")), (
                before,
                counts,
                errors,
                daemon.output()[-3000:],
            )
        done.set()
        for thread in threads:
            thread.join(30)
        assert not errors, errors
        assert len(initial_events) == CRASHES
        final = client.read("/w/data")
        deadline = time.monotonic() + 10
        while (not data_seen or data_seen[-1] != final) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert data_seen[-1] == final  # the DataWatch followed through the crashes
        assert kids_seen and kids_seen[-1] == client.directory("/w/kids")
        assert counts["trio-events"] > CRASHES
        # Every transaction committed exactly once: the count is the number of markers.
        markers = {u: len(client.directory(f"/tx/{u}")) for u in ("a", "b", "trio")}
        assert int(client.read("/tx/count")) == sum(markers.values())
        assert markers == {u: counts[u] for u in ("a", "b", "trio")}
    finally:
        done.set()
        client.close()
        daemon.stop()


def test_requests_in_flight_at_a_crash_are_retried_or_refused_clearly(tmp_path: Path) -> None:
    """The daemon is stopped (SIGSTOP) with requests sent to it, then killed and
    restarted: the reads and writes come back answered, the RM raises RequestLostError,
    the transaction's write raises EAGAIN; a client without reconnection just closes."""
    from xsd_client.errors import EAGAIN, ConnectionClosedError, RequestLostError

    rundir = tmp_path / "run"
    args = ("--state-dir", str(tmp_path / "state"))
    daemon = XsdDaemon(rundir, *args)
    client = Client(daemon.socket, reconnect=True, timeout=30)
    plain = Client(daemon.socket, timeout=30)
    client.write("/f/x", "1")
    client.write("/f/gone", "1")
    tx = client.transaction()
    tx.read("/f/x")
    results: dict[str, object] = {}

    def run(name: str, fn, *a: object) -> threading.Thread:
        def target() -> None:
            try:
                results[name] = fn(*a)
            except Exception as exc:
                results[name] = exc

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        threads = [
            run("read", client.read, "/f/x"),
            run("write", client.write, "/f/y", "2"),
            run("rm", client.rm, "/f/gone"),
            run("tx", tx.write, "/f/z", "3"),
            run("plain", plain.read, "/f/x"),
        ]
        time.sleep(0.3)  # all sent, none answered
    finally:
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.proc.wait()
        daemon.log.close()
    daemon = XsdDaemon(rundir, *args)
    try:
        for thread in threads:
            thread.join(20)
        assert results["read"] == b"1"
        assert results["write"] is None and client.read("/f/y") == b"2"
        assert isinstance(results["rm"], RequestLostError), results["rm"]
        assert "may or may not" in str(results["rm"])
        assert isinstance(results["tx"], EAGAIN), results["tx"]
        with pytest.raises(EAGAIN):
            tx.commit()  # the transaction died with the daemon
        assert isinstance(results["plain"], ConnectionClosedError)
        assert not isinstance(results["plain"], RequestLostError)
        # A request made after the crash is simply answered.
        assert client.read("/f/x") == b"1"
    finally:
        client.close()
        plain.close()
        daemon.stop()
