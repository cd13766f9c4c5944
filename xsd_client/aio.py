"""The xenstore client for trio programs: the operations of :mod:`xsd_client.client`.

Theory of operation. :func:`open_client` connects and runs one *reader task* in its own
nursery; that task is the only one that reads the stream. Any task may send:

* a request takes a fresh non-zero ``req_id`` and registers a reply slot under it before
  its packet is written (under a :class:`trio.Lock`), so a reply can never arrive first;
* the reader feeds the sans-IO :class:`~xsd_client.protocol.Decoder`; a reply completes
  the slot with the same ``req_id``, a WATCH_EVENT goes to the watches holding its token
  through unbounded memory channels, so a slow watcher never stalls replies;
* a watch is registered locally before its WATCH request goes out, so its first event
  is never lost;
* when the connection ends every waiting and later request raises
  :class:`~xsd_client.errors.ConnectionClosedError` and every watch iteration ends;
  unless the client reconnects (``open_client(reconnect=True)``, see
  :mod:`xsd_client.reconnect`): the reader task then connects again, registers the
  watches again and settles the requests that had no reply; requests made meanwhile
  wait for it.

This is the only module of :mod:`xsd_client` that imports trio.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

import trio

from . import calls, reconnect
from .aio_operations import AsyncDomainOperations, AsyncOperations, AsyncTransaction
from .calls import Call, check_reply
from .client import default_socket_path
from .errors import (
    EAGAIN,
    ENOENT,
    ConnectionClosedError,
    RequestLostError,
    XenstoreError,
    error_from_name,
)
from .protocol import PAYLOAD_MAX, Decoder, Op, Packet, ProtocolError, encode
from .values import Perm, WatchEvent
from .watch_table import WatchTable

__all__ = [
    "AsyncClient",
    "AsyncTransaction",
    "AsyncWatch",
    "Perm",
    "WatchEvent",
    "open_client",
    "transact",
]

T = TypeVar("T")
_RECV_SIZE = 65536
Backoff = reconnect.Backoff
_policy = reconnect.policy


class _Slot:
    __slots__ = ("done", "error", "op", "packet", "payload", "sent", "tx_id")

    def __init__(self, op: Op = Op.READ, payload: bytes = b"", tx_id: int = 0) -> None:
        self.done = trio.Event()
        self.packet: Packet | None = None
        self.error: XenstoreError | None = None
        self.op = op  # the request, for a reconnection to send again
        self.payload = payload
        self.tx_id = tx_id
        self.sent = False


class AsyncWatch:
    """A registered watch; ``async for event in watch`` yields :class:`WatchEvent`.

    Iteration ends when the watch is removed or the connection closes. As an async
    context manager it unwatches on exit.
    """

    def __init__(self, client: AsyncClient, path: str, token: str) -> None:
        self.client = client
        self.path = path
        self.token = token
        self._send, self._receive = trio.open_memory_channel[WatchEvent](math.inf)
        self._active = True

    def __repr__(self) -> str:
        return f"<AsyncWatch {self.path!r} token={self.token!r}>"

    @property
    def active(self) -> bool:
        """False once the watch was removed or its connection closed."""
        return self._active

    def _end(self) -> None:
        self._active = False
        self._send.close()

    async def get(self) -> WatchEvent | None:
        """The next event, or None once the watch has ended (use trio's timeouts)."""
        try:
            event: WatchEvent = await self._receive.receive()
        except trio.EndOfChannel:
            return None
        return event

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WatchEvent]:
        while (event := await self.get()) is not None:
            yield event

    async def unwatch(self) -> None:
        """Remove the watch from the daemon (if still connected) and end iteration."""
        if not self._active:
            return
        self.client._forget_watch(self)
        with suppress(ENOENT, ConnectionClosedError):
            await self.client.unwatch(self.path, self.token)

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with trio.CancelScope(shield=True):
            await self.unwatch()


class AsyncClient(AsyncOperations, AsyncDomainOperations):
    """A connection to a xenstore daemon for trio tasks; get one from :func:`open_client`."""

    def __init__(
        self, stream: trio.SocketStream, path: str, backoff: reconnect.Backoff | None = None
    ) -> None:
        self.path = path
        self._stream = stream
        self._backoff = backoff
        self._epoch = 0  # connections made so far, less one
        self._down = False  # reconnecting: requests wait in _pending, unsent
        self._send_lock = trio.Lock()
        self._pending: dict[int, _Slot] = {}
        self._watches: WatchTable[AsyncWatch] = WatchTable()
        self._next_req_id = 0
        self._next_token = 0
        self._closed: ConnectionClosedError | None = None

    def __repr__(self) -> str:
        return f"<AsyncClient {self.path!r}{' closed' if self._closed else ''}>"

    @property
    def closed(self) -> bool:
        """True once the connection has ended."""
        return self._closed is not None

    def _shutdown(self, reason: ConnectionClosedError) -> None:
        if self._closed is None:
            self._closed = reason
        pending, self._pending = self._pending, {}
        watches = self._watches.take_all()
        for slot in pending.values():
            slot.error = self._closed
            slot.done.set()
        for watch in watches:
            watch._end()

    async def aclose(self) -> None:
        """Close the connection: waiting requests fail, watch iterations end."""
        self._shutdown(ConnectionClosedError("connection closed by the client"))
        await self._stream.aclose()

    async def _read_loop(self) -> None:
        while not await self._read_connection() and await self._recover():
            pass

    async def _read_connection(self) -> bool:
        """Read one connection until it ends; True if the client is done with it."""
        decoder = Decoder()
        reason = ConnectionClosedError("connection closed by the daemon")
        try:
            while True:
                data = await self._stream.receive_some(_RECV_SIZE)
                decoder.receive_data(data)
                for packet in decoder:
                    self._dispatch(packet)
                if not data:
                    break
            if self._backoff is not None and self._closed is None:
                return False
        except ProtocolError as e:
            reason = ConnectionClosedError(f"daemon broke the protocol: {e}")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            if self._backoff is not None and self._closed is None:
                return False
            reason = ConnectionClosedError(f"connection lost: {e}")
        self._shutdown(reason)
        return True

    async def _recover(self) -> bool:
        """Connect again (the reader task, after the daemon went): True once the new
        connection carries the watches and the requests that had no reply; False if the
        client was closed or the back-off gave up (then it is closed)."""
        assert self._backoff is not None
        self._down = True
        self._epoch += 1
        for delay in self._backoff.delays():
            await trio.sleep(delay)
            if self._closed is not None:
                return False
            try:
                stream = await _connect(self.path)
            except OSError:
                continue
            async with self._send_lock:
                old, self._stream = self._stream, stream
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    await old.aclose()
                try:
                    await self._stream.send_all(self._resume())
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    continue  # gone again already: next attempt
            return True
        self._shutdown(ConnectionClosedError("the daemon did not come back; giving up"))
        return False

    def _resume(self) -> bytes:
        """What a new connection is sent first: the watches again, then the requests
        that are to go again; the others are settled (``reconnect.resume``)."""
        out, self._next_req_id, settled = reconnect.resume(
            self._watches.registrations(), self._pending, self._next_req_id
        )
        for slot, packet, error in settled:
            slot.packet, slot.error = packet, error
            slot.done.set()
        self._down = False
        return out

    def _dispatch(self, packet: Packet) -> None:
        if packet.op == Op.WATCH_EVENT:
            event, watches = self._watches.route(packet.payload)
            for watch in watches:
                watch._send.send_nowait(event)
            return
        slot = self._pending.pop(packet.req_id, None)
        if slot is not None:
            slot.packet = packet
            slot.done.set()

    async def _request(
        self, op: Op, payload: bytes, tx_id: int = 0, path: str | None = None
    ) -> bytes:
        if len(payload) > PAYLOAD_MAX:  # as libxenstore: refused before it is sent
            raise error_from_name("E2BIG", path)
        if self._closed is not None:
            raise self._closed
        self._next_req_id = self._next_req_id % 0xFFFFFFFF + 1
        req_id = self._next_req_id
        slot = _Slot(op, payload, tx_id)
        self._pending[req_id] = slot
        try:
            if not self._down:  # else the reconnection sends it
                async with self._send_lock:
                    slot.sent = True
                    try:
                        await self._stream.send_all(encode(op, req_id, tx_id, payload))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        slot.sent = False  # nothing of it reached a daemon that answers
                        if self._backoff is None or self._closed is not None:
                            raise
            await slot.done.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            self._shutdown(ConnectionClosedError(f"connection lost: {e}"))
        finally:
            self._pending.pop(req_id, None)
        if slot.error is not None:
            raise slot.error
        assert slot.packet is not None  # a slot is done with an error or a packet
        return check_reply(op, slot.packet, path)

    async def _send(self, call: Call[T], tx_id: int) -> T:
        return call.parse(await self._request(call.op, call.payload, tx_id, call.path))

    async def _run(self, call: Call[T]) -> T:
        return await self._send(call, 0)

    async def request(self, op: int, payload: bytes, tx_id: int = 0) -> bytes:
        """Send one raw request and return the payload of its reply."""
        return await self._request(Op(op), payload, tx_id)

    async def transaction(self) -> AsyncTransaction:
        """Start a transaction (prefer :meth:`open_transaction`)."""
        epoch = self._epoch
        tx_id = await self._run(calls.transaction_start())
        return AsyncTransaction(self, tx_id, epoch if epoch == self._epoch else -1)

    @asynccontextmanager
    async def open_transaction(self) -> AsyncIterator[AsyncTransaction]:
        """A transaction committed when the block ends normally, aborted if it raises.

        Raises:
            EAGAIN: from the commit, on a conflict; run the block again
                (:func:`transact` does that).
        """
        tx = await self.transaction()
        try:
            yield tx
        except BaseException:
            if not tx._ended:
                with trio.CancelScope(shield=True), suppress(XenstoreError):
                    await tx.abort()
            raise
        if not tx._ended:
            await tx.commit()

    async def watch(
        self, path: str, token: str | None = None, *, depth: int | None = None
    ) -> AsyncWatch:
        """Watch ``path`` and everything below it; see :meth:`Client.watch
        <xsd_client.client.Client.watch>`. Use the result with ``async with``."""
        if token is None:
            self._next_token += 1
            token = f"xsd_client:{self._next_token}"
        call = calls.watch(path, token, depth)  # bad arguments raise before anything is kept
        if self._closed is not None:
            raise self._closed
        watch = AsyncWatch(self, path, token)
        self._watches.add(watch, depth)
        try:
            await self._run(call)
        except BaseException:
            self._forget_watch(watch)
            raise
        return watch

    async def unwatch(self, path: str, token: str) -> None:
        """Remove the watch on ``path`` with ``token``."""
        call = calls.unwatch(path, token)
        watch = self._watches.find(path, token)
        if watch is not None:
            self._forget_watch(watch)
        await self._run(call)

    def _forget_watch(self, watch: AsyncWatch) -> None:
        self._watches.remove(watch)
        if watch.active:
            watch._end()

    async def reset_watches(self) -> None:
        """Drop every watch and every open transaction of this connection."""
        await self._run(calls.reset_watches())
        watches = self._watches.take_all()
        for watch in watches:
            watch._end()


@asynccontextmanager
async def open_client(
    path: str | os.PathLike[str] | None = None, *, reconnect: bool | Backoff = False
) -> AsyncIterator[AsyncClient]:
    """Connect to a daemon; the client closes when the block ends.

    Args:
        path: the daemon's Unix socket; default
            :func:`~xsd_client.client.default_socket_path`.
        reconnect: carry on when the daemon restarts (True, or a
            :class:`~xsd_client.reconnect.Backoff`): see :mod:`xsd_client.reconnect`.
            Off by default.

    Raises:
        ConnectionClosedError: the socket cannot be connected.
    """
    where = os.fspath(path) if path is not None else default_socket_path()
    try:
        stream = await _connect(where)
    except OSError as e:
        raise ConnectionClosedError(
            e.errno, f"cannot connect to xenstored: {e.strerror}", where
        ) from e
    client = AsyncClient(stream, where, _policy(reconnect))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client._read_loop)
            try:
                yield client
            finally:
                with trio.CancelScope(shield=True):
                    await client.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The reader task never fails, so a group holds the block's own exception:
        # hand it back bare, as if no nursery were involved.
        if len(group.exceptions) != 1:
            raise
        exc = group.exceptions[0]
        context = exc.__context__
        try:
            raise exc  # with its own cause; its context is put back below
        finally:
            exc.__context__ = context


async def _connect(where: str) -> trio.SocketStream:
    """A stream connected to the daemon socket at ``where``.

    Raises:
        OSError: it cannot be connected.
    """
    # Not trio.open_unix_socket: a non-blocking AF_UNIX connect meeting a full backlog
    # (C xenstored listens with a backlog of 1) fails with EAGAIN without connecting,
    # and trio then takes the socket for connected. A blocking connect in a thread
    # waits for room instead.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await trio.to_thread.run_sync(sock.connect, where)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


async def transact(
    client: AsyncClient,
    fn: Callable[[AsyncTransaction], Awaitable[T]],
    *,
    max_tries: int | None = None,
    idempotent: bool = False,
) -> T:
    """Run ``await fn(tx)`` in a transaction, again from scratch on EAGAIN.

    Args:
        max_tries: give up (re-raising EAGAIN) after this many attempts; None: never.
        idempotent: run it again, too, when a daemon restart lost the commit's reply
            (see :func:`xsd_client.recipes.transact`).

    Returns:
        What the successful attempt of ``fn`` returned.
    """
    tries = 0
    while True:
        tries += 1
        try:
            async with client.open_transaction() as tx:
                result = await fn(tx)
        except (EAGAIN, RequestLostError) as exc:
            if isinstance(exc, RequestLostError) and not idempotent:
                raise
            if max_tries is not None and tries >= max_tries:
                raise
            await trio.sleep(0)
            continue
        return result
