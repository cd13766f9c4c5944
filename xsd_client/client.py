"""A blocking xenstore client: one socket, many threads, one background reader.

Theory of operation. A :class:`Client` owns one Unix socket to the daemon and one
*reader thread*, which is the only code that ever reads the socket. Any thread may send:

* a request takes a fresh non-zero ``req_id``, registers a one-shot reply slot under it,
  and only then writes its packet (under the send lock), so a reply can never arrive
  before its slot exists;
* the reader feeds bytes to the sans-IO :class:`~xsd_client.protocol.Decoder`; a reply
  fills the slot with the same ``req_id`` (both Xen daemons echo it), a WATCH_EVENT goes
  to the watches registered under its token; a reply nobody waits for (a request that
  timed out) is dropped;
* a watch is registered locally *before* its WATCH request is sent, so its first event is
  never lost; events for tokens nobody holds any more are dropped;
* user callbacks never run on the reader thread: they run one at a time, in arrival
  order, on a separate *callback thread*, so a callback may itself call the client;
* when the connection ends (closed by us, by the daemon, or broken framing), every waiting
  and every later request fails with :class:`~xsd_client.errors.ConnectionClosedError`,
  and every watch iterator ends; unless the client reconnects (``reconnect=True``, see
  :mod:`xsd_client.reconnect`): then the reader thread connects again, registers the
  watches again and settles the requests that had no reply, and requests made
  meanwhile wait for it.

Importing this module never imports trio (``xsd_client.aio`` is the trio client).
"""

from __future__ import annotations

import os

# The C halves of socket, queue and threading: the Python wrappers add nothing used here
# and cost a one-shot ``xsc read`` milliseconds of imports (selectors, enum conversions,
# heapq, weakref). Queues are imported with the first watch, ``threading`` with the
# first watch callback.
from _socket import SHUT_RDWR
from _thread import allocate_lock, get_ident, start_new_thread

from . import calls, reconnect
from ._typing import TypeVar
from .calls import Call, check_reply
from .client_watch import Watch
from .errors import (
    ConnectionClosedError,
    XenstoreError,
    error_from_name,
)
from .oneshot import DEFAULT_RUNDIR, connect, default_socket_path
from .operations import DomainOperations, Operations, Transaction
from .protocol import PAYLOAD_MAX, Decoder, Op, Packet, ProtocolError, encode
from .values import Perm, WatchEvent
from .watch_table import WatchTable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # collections.abc imports collections, functools...: ~3 ms
    import threading
    from _queue import SimpleQueue
    from collections.abc import Callable

__all__ = [
    "DEFAULT_RUNDIR",
    "Client",
    "Perm",
    "Transaction",
    "Watch",
    "WatchEvent",
    "default_socket_path",
]

T = TypeVar("T")

_RECV_SIZE = 65536
_policy = reconnect.policy


if TYPE_CHECKING:
    _Callback = tuple[Callable[[WatchEvent], object], WatchEvent]


class _Slot:
    """A one-shot reply slot: the reader fills it, one requester waits on it."""

    __slots__ = ("_done", "error", "op", "packet", "payload", "sent", "tx_id")

    def __init__(self, op: Op = Op.READ, payload: bytes = b"", tx_id: int = 0) -> None:
        self._done = allocate_lock()
        self._done.acquire()
        self.packet: Packet | None = None
        self.error: XenstoreError | None = None
        self.op = op  # the request, for a reconnection to send again
        self.payload = payload
        self.tx_id = tx_id
        self.sent = False

    def set(self, packet: Packet | None, error: XenstoreError | None = None) -> None:
        self.packet = packet
        self.error = error
        self._done.release()

    def wait(self, timeout: float | None) -> bool:
        return self._done.acquire(timeout=-1 if timeout is None else timeout)


class Client(Operations, DomainOperations):
    """A connection to a xenstore daemon, safe to share between threads.

    Args:
        path: the daemon's Unix socket; default :func:`default_socket_path`.
        timeout: seconds to wait for each reply (None: wait forever). A request that
            times out raises :class:`TimeoutError`; the connection stays usable.
        reconnect: carry on when the daemon restarts (True, or a
            :class:`~xsd_client.reconnect.Backoff`): see :mod:`xsd_client.reconnect`.
            Off by default.

    Raises:
        ConnectionClosedError: the socket cannot be connected.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = None,
        reconnect: bool | reconnect.Backoff = False,
    ):
        self.path = os.fspath(path) if path is not None else default_socket_path()
        self.timeout = timeout
        self._backoff = _policy(reconnect)
        self._epoch = 0  # connections made so far, less one
        self._down = False  # reconnecting: requests wait in _pending, unsent
        self._stop = allocate_lock()  # held until close(): stop waiting to reconnect
        self._stop.acquire()
        self._lock = allocate_lock()  # guards the tables below
        self._send_lock = allocate_lock()
        self._pending: dict[int, _Slot] = {}
        self._watches: WatchTable[Watch] = WatchTable()
        self._next_req_id = 0
        self._next_token = 0
        self._closed: ConnectionClosedError | None = None
        self._callbacks: SimpleQueue[_Callback | None] | None = None
        self._callback_thread: threading.Thread | None = None
        self._sock = connect(self.path)
        # The reader: a bare thread (as a daemon thread, never waited for at exit);
        # it releases _reader_done when it ends, which close() waits for.
        self._reader_done = allocate_lock()
        self._reader_done.acquire()
        self._reader_ident = start_new_thread(self._reader_main, ())

    def __repr__(self) -> str:
        return f"<Client {self.path!r}{' closed' if self._closed else ''}>"

    # -- connection life --------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection has ended."""
        return self._closed is not None

    def close(self) -> None:
        """Close the connection: waiting requests fail, watch iterators end."""
        self._shutdown(ConnectionClosedError("connection closed by the client"))
        if self._stop.locked():
            self._stop.release()
        if get_ident() != self._reader_ident:
            with self._reader_done:  # the reader has ended
                pass
        if self._callback_thread is not None:
            import threading

            self._callbacks.put(None)  # type: ignore[union-attr]
            if threading.current_thread() is not self._callback_thread:
                self._callback_thread.join()
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _shutdown(self, reason: ConnectionClosedError) -> None:
        with self._lock:
            if self._closed is None:
                self._closed = reason
            pending, self._pending = self._pending, {}
            watches = self._watches.take_all()
        try:
            self._sock.shutdown(SHUT_RDWR)  # wakes the reader
        except OSError:
            pass
        for slot in pending.values():
            slot.set(None, self._closed)
        for watch in watches:
            watch._end()

    def _reader_main(self) -> None:
        try:
            self._read_loop()
        finally:
            self._reader_done.release()

    def _read_loop(self) -> None:
        while not self._read_connection() and self._recover():
            pass

    def _read_connection(self) -> bool:
        """Read one connection until it ends; True if the client is done with it."""
        decoder = Decoder()
        reason = ConnectionClosedError("connection closed by the daemon")
        try:
            while True:
                data = self._sock.recv(_RECV_SIZE)
                decoder.receive_data(data)
                for packet in decoder:
                    self._dispatch(packet)
                if not data:
                    break
            if self._backoff is not None and self._closed is None:
                return False
        except ProtocolError as e:
            reason = ConnectionClosedError(f"daemon broke the protocol: {e}")
        except OSError as e:
            if self._backoff is not None and self._closed is None:
                return False
            reason = ConnectionClosedError(e.errno, f"connection lost: {e.strerror}")
        except Exception as e:
            # Anything else (a reply this client cannot read) must still end the
            # connection: a reader that just stopped would leave requests waiting.
            reason = ConnectionClosedError(f"cannot read the daemon's messages: {e!r}")
        self._shutdown(reason)
        return True

    def _stopped_within(self, delay: float) -> bool:
        """Wait up to ``delay`` seconds; True at once if the client is being closed."""
        if self._stop.acquire(timeout=delay):
            self._stop.release()  # stays released: every later wait returns at once
            return True
        return False

    def _recover(self) -> bool:
        """Connect again (the reader thread, after the daemon went): True once the new
        connection carries the watches and the requests that had no reply; False if
        the client was closed or the back-off gave up (then it is closed)."""
        assert self._backoff is not None
        with self._lock:
            self._down = True
            self._epoch += 1
        for delay in self._backoff.delays():
            if self._stopped_within(delay) or self._closed is not None:
                return False
            try:
                sock = connect(self.path)
            except ConnectionClosedError:
                continue
            with self._send_lock:
                old, self._sock = self._sock, sock
                old.close()
                try:
                    self._resume()
                except OSError:
                    continue  # gone again already: next attempt
            return True
        self._shutdown(ConnectionClosedError("the daemon did not come back; giving up"))
        return False

    def _resume(self) -> None:
        """On a new connection (send lock held): watches again, then the requests."""
        with self._lock:
            out, self._next_req_id, settled = reconnect.resume(
                self._watches.registrations(), self._pending, self._next_req_id
            )
            self._down = False
        for slot, packet, error in settled:
            slot.set(packet, error)
        self._sock.sendall(out)

    def _dispatch(self, packet: Packet) -> None:
        if packet.op == Op.WATCH_EVENT:
            with self._lock:
                event, watches = self._watches.route(packet.payload)
            for watch in watches:
                watch._deliver(event)
            return
        with self._lock:
            slot = self._pending.pop(packet.req_id, None)
        if slot is not None:
            slot.set(packet)

    # -- requests ---------------------------------------------------------------------

    def _request(self, op: Op, payload: bytes, tx_id: int = 0, path: str | None = None) -> bytes:
        if len(payload) > PAYLOAD_MAX:  # as libxenstore: refused before it is sent
            raise error_from_name("E2BIG", path)
        slot = _Slot(op, payload, tx_id)
        with self._lock:
            if self._closed is not None:
                raise self._closed
            self._next_req_id = self._next_req_id % 0xFFFFFFFF + 1
            req_id = self._next_req_id
            self._pending[req_id] = slot
            down = self._down  # reconnecting: _resume() sends it
        data = encode(op, req_id, tx_id, payload)
        if not down:
            with self._send_lock:
                try:
                    slot.sent = True
                    self._sock.sendall(data)
                except OSError as e:
                    slot.sent = False  # nothing of it reached a daemon that answers
                    if self._backoff is None:
                        self._shutdown(
                            ConnectionClosedError(e.errno, f"connection lost: {e.strerror}")
                        )
        if not slot.wait(self.timeout):
            with self._lock:
                self._pending.pop(req_id, None)
            raise TimeoutError(f"no reply to {op.name} within {self.timeout} s")
        if slot.error is not None:
            raise slot.error
        assert slot.packet is not None  # set() without an error always brings one
        return check_reply(op, slot.packet, path)

    def _send(self, call: Call[T], tx_id: int) -> T:
        return call.parse(self._request(call.op, call.payload, tx_id, call.path))

    def _run(self, call: Call[T]) -> T:
        return self._send(call, 0)

    def request(self, op: int, payload: bytes, tx_id: int = 0) -> bytes:
        """Send one raw request and return the payload of its reply.

        For message types this class has no method for (GET_QUOTA, ...).

        Raises:
            XenstoreError: the daemon answered ERROR (the class named by the reply).
        """
        return self._request(Op(op), payload, tx_id)

    def transaction(self) -> Transaction:
        """Start a transaction; use the result as a context manager."""
        epoch = self._epoch
        tx_id = self._run(calls.transaction_start())
        return Transaction(self, tx_id, epoch if epoch == self._epoch else -1)

    # -- watches ----------------------------------------------------------------------

    def watch(
        self,
        path: str,
        token: str | None = None,
        *,
        callback: Callable[[WatchEvent], object] | None = None,
        depth: int | None = None,
    ) -> Watch:
        """Watch ``path`` and everything below it.

        Args:
            path: absolute, relative or special (``@introduceDomain``) path.
            token: the watch token; by default one unique to this client.
            callback: called with each :class:`WatchEvent` on the client's callback
                thread; without it, iterate the returned :class:`Watch`.
            depth: how many levels below ``path`` to watch (Xen 4.22's WATCH depth;
                older daemons answer EINVAL).

        The daemon fires one event for ``path`` itself as soon as the watch is set.

        Raises:
            EEXIST: this client already watches ``path`` with ``token``.
        """
        if token is None:
            with self._lock:
                self._next_token += 1
                token = f"xsd_client:{self._next_token}"
        call = calls.watch(path, token, depth)  # bad arguments raise before anything is kept
        watch = Watch(self, path, token, callback)
        with self._lock:
            if self._closed is not None:
                raise self._closed
            self._watches.add(watch, depth)
        try:
            self._run(call)
        except BaseException:
            self._forget_watch(watch)
            raise
        return watch

    def unwatch(self, path: str, token: str) -> None:
        """Remove the watch on ``path`` with ``token`` (prefer :meth:`Watch.unwatch`).

        Raises:
            ENOENT: there is no such watch.
        """
        call = calls.unwatch(path, token)
        with self._lock:
            watch = self._watches.find(path, token)
        if watch is not None:
            self._forget_watch(watch)
        self._run(call)

    def _forget_watch(self, watch: Watch) -> None:
        with self._lock:
            self._watches.remove(watch)
        watch._end()

    def reset_watches(self) -> None:
        """Drop every watch and every open transaction of this connection."""
        self._run(calls.reset_watches())
        with self._lock:
            watches = self._watches.take_all()
        for watch in watches:
            watch._end()

    def _run_callback(self, fn: Callable[[WatchEvent], object], event: WatchEvent) -> None:
        import threading

        with self._lock:
            if self._callback_thread is None:
                from _queue import SimpleQueue

                self._callbacks = SimpleQueue()
                self._callback_thread = threading.Thread(
                    target=self._callback_loop, name="xsd_client-callbacks", daemon=True
                )
                self._callback_thread.start()
            assert self._callbacks is not None
            self._callbacks.put((fn, event))

    def _callback_loop(self) -> None:
        assert self._callbacks is not None
        while (item := self._callbacks.get()) is not None:
            fn, event = item
            try:
                fn(event)
            except Exception:
                # logging costs milliseconds to import and the CLI never gets here.
                import logging

                logging.getLogger(__name__).exception("watch callback %r failed", fn)
