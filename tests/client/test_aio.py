"""The trio client: the same operations, against real daemons."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from xsd_client import errors
from xsd_client.aio import AsyncTransaction, Perm, WatchEvent, open_client, transact
from xsd_client.protocol import Op


async def test_data_operations(daemon_socket: str) -> None:
    async with open_client(daemon_socket) as c:
        await c.write("/a/b", b"\x00v")
        await c.mkdir("/a/d")
        assert await c.read("/a/b") == b"\x00v"
        assert sorted(await c.directory("/a")) == ["b", "d"]
        assert await c.exists("/a/d")
        await c.rm("/a/d")
        assert not await c.exists("/a/d")
        await c.set_perms("/a/b", [Perm("b", 0), "r0"])
        assert await c.get_perms("/a/b") == [Perm("b", 0), Perm("r", 0)]
        with pytest.raises(errors.ENOENT):
            await c.read("/nope")
        with pytest.raises(errors.EINVAL):
            await c.read("/bad//path")
        assert await c.get_domain_path(3) == "/local/domain/3"
        assert await c.is_domain_introduced(0)
        assert not await c.is_domain_introduced(9)
        with pytest.raises(errors.XenstoreError):
            await c.release(9)
        with pytest.raises(errors.XenstoreError):
            await c.resume(9)
        with pytest.raises(errors.XenstoreError):
            await c.set_target(9, 10)
        with pytest.raises(errors.EINVAL):
            await c.introduce(1, 0, 0)
        assert await c.control("check") == "OK"
        assert await c.request(Op.READ, b"/a/b\0") == b"\x00v"


async def test_directory_part_fallback(daemon_socket: str) -> None:
    names = [f"a-fairly-long-child-name-number-{i:04d}" for i in range(250)]
    async with open_client(daemon_socket) as c:
        async with c.open_transaction() as t:
            for name in names:
                await t.write(f"/big/{name}", b"")
        assert sorted(await c.directory("/big")) == names


async def test_concurrent_requests_from_many_tasks(daemon_socket: str) -> None:
    async with open_client(daemon_socket) as c:

        async def worker(n: int) -> None:
            for i in range(10):
                await c.write(f"/tasks/{n}/{i}", str(i))
                assert await c.read(f"/tasks/{n}/{i}") == str(i).encode()

        async with trio.open_nursery() as nursery:
            for n in range(8):
                nursery.start_soon(worker, n)
        assert len(await c.directory("/tasks")) == 8


async def test_watches(daemon_socket: str) -> None:
    async with open_client(daemon_socket) as c, open_client(daemon_socket) as other:
        async with await c.watch("/w", "tok") as w:
            assert await w.get() == WatchEvent("/w", "tok")
            await other.write("/w/x", b"")
            with trio.fail_after(5):
                assert (await w.get()) == WatchEvent("/w/x", "tok")
            with pytest.raises(errors.EEXIST):
                await c.watch("/w", "tok")
        assert not w.active
        await c.write("/w/y", b"")
        assert [e async for e in w] == []

        w2 = await c.watch("/w2")
        got = []
        async with trio.open_nursery() as nursery:

            async def collect() -> None:
                async for event in w2:
                    got.append(event.path)

            nursery.start_soon(collect)
            await c.write("/w2/a", b"")
            await c.reset_watches()  # ends the iteration
        assert got[0] == "/w2"


async def test_transactions_and_retry(daemon_socket: str) -> None:
    async with open_client(daemon_socket) as a, open_client(daemon_socket) as b:
        await a.write("/n", b"0")
        async with a.open_transaction() as t:
            await t.write("/n", b"1")
            assert await b.read("/n") == b"0"
        assert await b.read("/n") == b"1"

        with pytest.raises(ValueError):
            async with a.open_transaction() as t:
                await t.write("/n", b"aborted")
                raise ValueError
        assert await a.read("/n") == b"1"

        t = await a.transaction()
        await t.read("/n")
        await t.write("/n", b"2")
        await b.write("/n", b"from-b")
        with pytest.raises(errors.EAGAIN):
            await t.commit()

        attempts = 0

        async def bump(tx: AsyncTransaction) -> int:
            nonlocal attempts
            attempts += 1
            value = len(await tx.read("/n"))
            if attempts == 1:
                await b.write("/n", b"xxxxx")  # a real conflict from another connection
            await tx.write("/n", b"y" * (value + 1))
            return value + 1

        assert await transact(a, bump) == 6
        assert attempts == 2


async def test_connection_errors(tmp_path: Path, daemon_socket: str) -> None:
    with pytest.raises(errors.ConnectionClosedError):
        async with open_client(tmp_path / "none"):
            pass  # pragma: no cover
    async with open_client(daemon_socket) as c:
        await c.aclose()
        assert c.closed
        with pytest.raises(errors.ConnectionClosedError):
            await c.read("/")


async def test_errors_inside_the_block_come_out_bare(daemon_socket: str) -> None:
    with pytest.raises(KeyError):
        async with open_client(daemon_socket) as c:
            await c.read("/tool")
            raise KeyError("mine")
    with pytest.raises(errors.ENOENT):
        async with open_client(daemon_socket) as c, c.open_transaction() as t:
            await t.read("/missing")
