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
  and every watch iterator ends.

Importing this module never imports trio (``xsd_client.aio`` is the trio client).
"""

from __future__ import annotations

import contextlib
import os
import threading

# The C halves of socket and queue: the Python wrappers add nothing used here and
# cost the one-shot CLI milliseconds of imports (selectors, enum conversions, heapq).
from _queue import Empty, SimpleQueue
from _socket import AF_UNIX, SHUT_RDWR, SOCK_STREAM
from _socket import socket as _unix_socket
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType

from .errors import (
    E2BIG,
    ENOENT,
    ENOSYS,
    ConnectionClosedError,
    RemoteProtocolError,
    XenstoreError,
    error_from_name,
)
from .protocol import (
    PAYLOAD_MAX,
    Decoder,
    Op,
    Packet,
    ProtocolError,
    encode,
    join_args,
    parse_directory,
    parse_directory_part,
    parse_error,
    parse_watch_event,
    split_args,
)

__all__ = [
    "DEFAULT_RUNDIR",
    "Client",
    "Perm",
    "Transaction",
    "Watch",
    "WatchEvent",
    "default_socket_path",
]

DEFAULT_RUNDIR = "/var/run/xenstored"

_RECV_SIZE = 65536
_ACCESS = frozenset("nrwb")


def default_socket_path() -> str:
    """The daemon socket libxenstore would use.

    ``$XENSTORED_PATH`` if set, else ``$XENSTORED_RUNDIR/socket``, else
    ``/var/run/xenstored/socket``. As in libxenstore, a variable set to the empty string
    counts as set.
    """
    path = os.environ.get("XENSTORED_PATH")
    if path is not None:
        return path
    rundir = os.environ.get("XENSTORED_RUNDIR")
    return (DEFAULT_RUNDIR if rundir is None else rundir) + "/socket"


def _enc(value: str | bytes, what: str) -> bytes:
    # Paths and tokens are text; surrogateescape keeps any bytes that came in through
    # sys.argv (or went out through a decode below) exactly as they were.
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes):
        return value
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def _dec(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _domid(domid: int, what: str = "domid") -> bytes:
    if not isinstance(domid, int) or isinstance(domid, bool):
        raise TypeError(f"{what} must be int, not {type(domid).__name__}")
    return str(domid).encode()


def _first_string(payload: bytes) -> str:
    return _dec(payload.split(b"\0", 1)[0])


class _DirectoryParts:
    """The state of a listing fetched with DIRECTORY_PART, sans I/O (libxenstore's way).

    Ask with :meth:`request`, hand each reply to :meth:`feed`; it returns the whole
    list once a reply completes it, and starts over if the node changed in between
    (its generation differs from the first chunk's).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.raw = _enc(path, "path")
        self.names: list[str] = []
        self.offset = 0
        self.gen: int | None = None

    def request(self) -> bytes:
        """The next DIRECTORY_PART payload."""
        return join_args(self.raw, self.offset)

    def feed(self, reply: bytes) -> list[str] | None:
        """Take one reply; the complete list, or None if more must be asked for."""
        gen, chunk, complete = parse_directory_part(reply)
        if self.gen is None:
            self.gen = gen
        elif gen != self.gen:  # the node changed under us: start over
            self.names, self.offset, self.gen = [], 0, None
            return None
        self.names += chunk
        self.offset += sum(len(_enc(n, "name")) + 1 for n in chunk)
        if complete:
            return self.names
        if not chunk:
            raise RemoteProtocolError(f"empty incomplete DIRECTORY_PART reply for {self.path!r}")
        return None


class Perm:
    """One permission entry: an access letter and a domain id.

    ``access`` is ``"n"`` (none), ``"r"`` (read), ``"w"`` (write) or ``"b"`` (both). The
    first entry of a node's list names its owner and the default for other domains.
    ``str(Perm("r", 5)) == "r5"`` is the wire form. Immutable and hashable.
    """

    # A hand-written value class, not a dataclass: importing dataclasses (and inspect)
    # would cost the one-shot CLI milliseconds.
    __slots__ = ("access", "domid")
    access: str
    domid: int

    def __init__(self, access: str, domid: int) -> None:
        if access not in _ACCESS or len(access) != 1:
            raise ValueError(f"access must be one of n, r, w, b; got {access!r}")
        object.__setattr__(self, "access", access)
        object.__setattr__(self, "domid", domid)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Perm):
            return NotImplemented
        return (self.access, self.domid) == (other.access, other.domid)

    def __hash__(self) -> int:
        return hash((self.access, self.domid))

    def __repr__(self) -> str:
        return f"Perm({self.access!r}, {self.domid!r})"

    def __str__(self) -> str:
        return f"{self.access}{self.domid}"

    @classmethod
    def parse(cls, text: str) -> Perm:
        """Parse the wire form ``"<letter><domid>"`` (``"b0"``).

        Raises:
            ValueError: not a letter among n, r, w, b followed by a decimal domid.
        """
        if len(text) < 2 or not text[1:].isdigit():
            raise ValueError(f"bad permission {text!r}")
        return cls(text[0], int(text[1:]))


class WatchEvent:
    """A watch fired: ``path`` is the node that changed (or the watched path itself for
    the event every watch gets when it is set); ``token`` is the watch's token."""

    __slots__ = ("path", "token")
    path: str
    token: str

    def __init__(self, path: str, token: str) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "token", token)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WatchEvent):
            return NotImplemented
        return (self.path, self.token) == (other.path, other.token)

    def __hash__(self) -> int:
        return hash((self.path, self.token))

    def __repr__(self) -> str:
        return f"WatchEvent(path={self.path!r}, token={self.token!r})"


_Callback = tuple[Callable[[WatchEvent], object], WatchEvent]


class _Slot:
    """A one-shot reply slot: the reader fills it, one requester waits on it."""

    __slots__ = ("_done", "error", "packet")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self.packet: Packet | None = None
        self.error: XenstoreError | None = None

    def set(self, packet: Packet | None, error: XenstoreError | None = None) -> None:
        self.packet = packet
        self.error = error
        self._done.release()

    def wait(self, timeout: float | None) -> bool:
        return self._done.acquire(timeout=-1 if timeout is None else timeout)


class Watch:
    """A registered watch. Iterate it (blocking) for :class:`WatchEvent` objects, or
    give :meth:`Client.watch` a callback instead.

    Iteration ends when the watch is removed (:meth:`unwatch`, ``RESET_WATCHES``) or the
    connection closes. Use it as a context manager to unwatch on exit.
    """

    def __init__(
        self,
        client: Client,
        path: str,
        token: str,
        callback: Callable[[WatchEvent], object] | None,
    ) -> None:
        self.client = client
        self.path = path
        self.token = token
        self.callback = callback
        self._queue: SimpleQueue[WatchEvent | None] = SimpleQueue()
        self._active = True

    def __repr__(self) -> str:
        return f"<Watch {self.path!r} token={self.token!r}{'' if self._active else ' (ended)'}>"

    @property
    def active(self) -> bool:
        """False once the watch was removed or its connection closed."""
        return self._active

    def _deliver(self, event: WatchEvent) -> None:
        if self.callback is None:
            self._queue.put(event)
        else:
            self.client._run_callback(self.callback, event)

    def _end(self) -> None:
        if self._active:
            self._active = False
            self._queue.put(None)

    def get(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event, waiting up to ``timeout`` seconds (None: forever).

        Returns:
            The event, or None once the watch has ended and every event was taken.

        Raises:
            TimeoutError: nothing arrived in time.
        """
        try:
            item = self._queue.get(timeout=timeout)
        except Empty:
            raise TimeoutError(f"no event on {self.path!r} within {timeout} s") from None
        if item is None:  # the end
            self._queue.put(None)  # every later get() sees the end too
        return item

    def __iter__(self) -> Iterator[WatchEvent]:
        while (event := self.get()) is not None:
            yield event

    def unwatch(self) -> None:
        """Remove the watch from the daemon (if still connected) and end iteration."""
        if not self._active:
            return
        self.client._forget_watch(self)
        with contextlib.suppress(ENOENT, ConnectionClosedError):
            self.client.unwatch(self.path, self.token)

    close = unwatch

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unwatch()


class _Operations:
    """The data operations shared by :class:`Client` (outside any transaction) and
    :class:`Transaction` (inside one)."""

    def _call(self, op: Op, payload: bytes, path: str | None = None) -> bytes:
        raise NotImplementedError

    def read(self, path: str) -> bytes:
        """The value of ``path``.

        Raises:
            ENOENT: no such node. EACCES: not readable.
        """
        return self._call(Op.READ, _enc(path, "path") + b"\0", path)

    def write(self, path: str, value: bytes | str) -> None:
        """Set the value of ``path``, creating it and any missing parents.

        ``value`` is stored as given (a str is encoded as UTF-8).
        """
        data = _enc(value, "value")
        self._call(Op.WRITE, _enc(path, "path") + b"\0" + data, path)

    def mkdir(self, path: str) -> None:
        """Create ``path`` with an empty value, if it does not exist yet."""
        self._call(Op.MKDIR, _enc(path, "path") + b"\0", path)

    def rm(self, path: str) -> None:
        """Remove ``path`` and everything below it."""
        self._call(Op.RM, _enc(path, "path") + b"\0", path)

    def directory(self, path: str) -> list[str]:
        """The names of the children of ``path``, in the daemon's order.

        A list too long for one reply (the daemon answers E2BIG) is fetched with
        DIRECTORY_PART chunks, starting over if the node changes in between, as
        libxenstore does.

        Raises:
            E2BIG: the list is too long and the daemon has no DIRECTORY_PART.
        """
        parts = _DirectoryParts(path)
        try:
            return parse_directory(self._call(Op.DIRECTORY, parts.raw + b"\0", path))
        except E2BIG:
            pass
        while True:
            try:
                reply = self._call(Op.DIRECTORY_PART, parts.request(), path)
            except ENOSYS:
                raise error_from_name("E2BIG", path) from None
            names = parts.feed(reply)
            if names is not None:
                return names

    def get_perms(self, path: str) -> list[Perm]:
        """The permission list of ``path``, owner first."""
        reply = self._call(Op.GET_PERMS, _enc(path, "path") + b"\0", path)
        return [Perm.parse(_dec(p)) for p in split_args(reply)]

    def set_perms(self, path: str, perms: Iterable[Perm | str]) -> None:
        """Replace the permission list of ``path``; the first entry names the owner.

        Entries are :class:`Perm` objects or wire strings such as ``"r5"``.
        """
        payload = _enc(path, "path") + b"\0"
        for perm in perms:
            if not isinstance(perm, Perm | str):
                raise TypeError(f"perms entries must be Perm or str, not {type(perm).__name__}")
            payload += str(perm).encode() + b"\0"
        self._call(Op.SET_PERMS, payload, path)

    def exists(self, path: str) -> bool:
        """True if ``path`` can be read, False if it does not exist (ENOENT).

        Raises:
            EACCES: the node is there but not readable (or hidden).
        """
        try:
            self.read(path)
        except ENOENT:
            return False
        return True


class Transaction(_Operations):
    """An open transaction: the data operations of :class:`Client`, seen and applied
    atomically.

    As a context manager it commits when the block ends normally and aborts when it
    raises. A commit that conflicts raises :class:`~xsd_client.errors.EAGAIN`: run the
    whole block again (:func:`xsd_client.recipes.transact` does that). Several
    transactions may be open on one client at once, from different threads.
    """

    def __init__(self, client: Client, tx_id: int) -> None:
        self.client = client
        self.tx_id = tx_id
        self._ended = False

    def __repr__(self) -> str:
        return f"<Transaction {self.tx_id}{' (ended)' if self._ended else ''}>"

    def _call(self, op: Op, payload: bytes, path: str | None = None) -> bytes:
        return self.client._request(op, payload, self.tx_id, path)

    def _end(self, commit: bool) -> None:
        if self._ended:
            raise ValueError(f"transaction {self.tx_id} already ended")
        self._ended = True
        self._call(Op.TRANSACTION_END, b"T\0" if commit else b"F\0")

    def commit(self) -> None:
        """Apply the transaction.

        Raises:
            EAGAIN: another change conflicted; nothing was applied.
        """
        self._end(True)

    def abort(self) -> None:
        """Discard the transaction."""
        self._end(False)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ended:
            return
        if exc_type is None:
            self.commit()
        else:
            # The block's own exception is the one that matters.
            with contextlib.suppress(XenstoreError):
                self.abort()


class Client(_Operations):
    """A connection to a xenstore daemon, safe to share between threads.

    Args:
        path: the daemon's Unix socket; default :func:`default_socket_path`.
        timeout: seconds to wait for each reply (None: wait forever). A request that
            times out raises :class:`TimeoutError`; the connection stays usable.

    Raises:
        ConnectionClosedError: the socket cannot be connected.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout: float | None = None):
        self.path = os.fspath(path) if path is not None else default_socket_path()
        self.timeout = timeout
        self._lock = threading.Lock()  # guards the tables below
        self._send_lock = threading.Lock()
        self._pending: dict[int, _Slot] = {}
        self._watches: dict[bytes, list[Watch]] = {}
        self._next_req_id = 0
        self._next_token = 0
        self._closed: ConnectionClosedError | None = None
        self._callbacks: SimpleQueue[_Callback | None] | None = None
        self._callback_thread: threading.Thread | None = None
        sock = _unix_socket(AF_UNIX, SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            raise ConnectionClosedError(
                e.errno, f"cannot connect to xenstored: {e.strerror}", self.path
            ) from e
        self._sock = sock
        self._reader = threading.Thread(
            target=self._read_loop, name="xsd_client-reader", daemon=True
        )
        self._reader.start()

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
        current = threading.current_thread()
        if current is not self._reader:
            self._reader.join()
        if self._callback_thread is not None:
            self._callbacks.put(None)  # type: ignore[union-attr]
            if current is not self._callback_thread:
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
            watches = [w for ws in self._watches.values() for w in ws]
            self._watches = {}
        with contextlib.suppress(OSError):
            self._sock.shutdown(SHUT_RDWR)  # wakes the reader
        for slot in pending.values():
            slot.set(None, self._closed)
        for watch in watches:
            watch._end()

    def _read_loop(self) -> None:
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
        except ProtocolError as e:
            reason = ConnectionClosedError(f"daemon broke the protocol: {e}")
        except OSError as e:
            reason = ConnectionClosedError(e.errno, f"connection lost: {e.strerror}")
        self._shutdown(reason)

    def _dispatch(self, packet: Packet) -> None:
        if packet.op == Op.WATCH_EVENT:
            epath, token = parse_watch_event(packet.payload)
            with self._lock:
                watches = list(self._watches.get(token, ()))
            if len(watches) > 1:
                # The same token on several paths: hand the event to the watches it
                # can belong to (spurious events are allowed, lost ones are not).
                matching = [w for w in watches if _covers(w.path, epath)]
                watches = matching or watches
            event = WatchEvent(epath, _dec(token))
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
        slot = _Slot()
        with self._lock:
            if self._closed is not None:
                raise self._closed
            self._next_req_id = self._next_req_id % 0xFFFFFFFF + 1
            req_id = self._next_req_id
            self._pending[req_id] = slot
        data = encode(op, req_id, tx_id, payload)
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as e:
            self._shutdown(ConnectionClosedError(e.errno, f"connection lost: {e.strerror}"))
        if not slot.wait(self.timeout):
            with self._lock:
                self._pending.pop(req_id, None)
            raise TimeoutError(f"no reply to {op.name} within {self.timeout} s")
        if slot.error is not None:
            raise slot.error
        packet = slot.packet
        assert packet is not None
        if packet.op == Op.ERROR:
            raise error_from_name(parse_error(packet.payload), path)
        if packet.op != op:
            raise RemoteProtocolError(f"{op.name} request answered by message type {packet.op}")
        return packet.payload

    def _call(self, op: Op, payload: bytes, path: str | None = None) -> bytes:
        return self._request(op, payload, 0, path)

    def request(self, op: int, payload: bytes, tx_id: int = 0) -> bytes:
        """Send one raw request and return the payload of its reply.

        For message types this class has no method for (GET_QUOTA, ...).

        Raises:
            XenstoreError: the daemon answered ERROR (the class named by the reply).
        """
        return self._request(Op(op), payload, tx_id)

    def transaction(self) -> Transaction:
        """Start a transaction; use the result as a context manager."""
        reply = self._call(Op.TRANSACTION_START, b"\0")
        return Transaction(self, int(_first_string(reply)))

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
        raw_path = _enc(path, "path")
        if token is None:
            with self._lock:
                self._next_token += 1
                token = f"xsd_client:{self._next_token}"
        raw_token = _enc(token, "token")
        watch = Watch(self, path, token, callback)
        with self._lock:
            if self._closed is not None:
                raise self._closed
            self._watches.setdefault(raw_token, []).append(watch)
        args: list[bytes | int] = [raw_path, raw_token]
        if depth is not None:
            args.append(_domid(depth, "depth"))
        try:
            self._call(Op.WATCH, join_args(*args), path)
        except BaseException:
            self._forget_watch(watch)
            raise
        return watch

    def unwatch(self, path: str, token: str) -> None:
        """Remove the watch on ``path`` with ``token`` (prefer :meth:`Watch.unwatch`).

        Raises:
            ENOENT: there is no such watch.
        """
        raw_token = _enc(token, "token")
        with self._lock:
            for watch in self._watches.get(raw_token, ()):
                if watch.path == path:
                    break
            else:
                watch = None
        if watch is not None:
            self._forget_watch(watch)
        self._call(Op.UNWATCH, join_args(_enc(path, "path"), raw_token), path)

    def _forget_watch(self, watch: Watch) -> None:
        raw_token = _enc(watch.token, "token")
        with self._lock:
            watches = self._watches.get(raw_token, [])
            if watch in watches:
                watches.remove(watch)
                if not watches:
                    del self._watches[raw_token]
        watch._end()

    def reset_watches(self) -> None:
        """Drop every watch and every open transaction of this connection."""
        self._call(Op.RESET_WATCHES, b"\0")
        with self._lock:
            watches = [w for ws in self._watches.values() for w in ws]
            self._watches = {}
        for watch in watches:
            watch._end()

    def _run_callback(self, fn: Callable[[WatchEvent], object], event: WatchEvent) -> None:
        with self._lock:
            if self._callback_thread is None:
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

    # -- domains and control ----------------------------------------------------------

    def get_domain_path(self, domid: int) -> str:
        """The home path of a domain (``/local/domain/<domid>``)."""
        return _first_string(self._call(Op.GET_DOMAIN_PATH, _domid(domid) + b"\0"))

    def is_domain_introduced(self, domid: int) -> bool:
        """True if the domain has been introduced and not released."""
        return self._call(Op.IS_DOMAIN_INTRODUCED, _domid(domid) + b"\0")[:1] == b"T"

    def introduce(self, domid: int, gfn: int, evtchn: int) -> None:
        """Introduce a domain with its store page frame and event channel."""
        payload = join_args(_domid(domid), _domid(gfn, "gfn"), _domid(evtchn, "evtchn"))
        self._call(Op.INTRODUCE, payload)

    def release(self, domid: int) -> None:
        """Release a domain: its connection and nodes go, ``@releaseDomain`` fires."""
        self._call(Op.RELEASE, _domid(domid) + b"\0")

    def resume(self, domid: int) -> None:
        """Clear a domain's shutdown flag (after suspend and resume)."""
        self._call(Op.RESUME, _domid(domid) + b"\0")

    def set_target(self, domid: int, target: int) -> None:
        """Let ``domid`` act with the privileges of its target domain ``target``."""
        self._call(Op.SET_TARGET, join_args(_domid(domid), _domid(target, "target")))

    def control(self, cmd: str, *args: str | bytes) -> str:
        """Run an XS_CONTROL command (``control("check")``, ``control("log", "on")``).

        Returns:
            The reply text up to its first NUL (``"OK"`` for simple commands).
        """
        payload = join_args(_enc(cmd, "cmd"), *(_enc(a, "argument") for a in args))
        return _first_string(self._call(Op.CONTROL, payload))


def _covers(wpath: str, epath: str) -> bool:
    """True if an event on ``epath`` can come from a watch on ``wpath``."""
    if epath == wpath:
        return True
    base = wpath.rstrip("/")
    return epath.startswith(base + "/")
