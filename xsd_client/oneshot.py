"""A blocking client without threads, for a command that asks, waits, and is done.

:class:`OneShotClient` has the requests of :class:`~xsd_client.client.Client` (the data
operations, transactions, the domain and control requests: the same
:mod:`~xsd_client.calls`, so the same bytes asked and the same errors raised) but no
watches: it sends one request, reads the socket until that request's reply comes, and
returns. No reader thread, no callback thread, no reconnection.

It exists for start-up time: ``xsc read`` and the other one-shot ``xsc`` commands run
it, and importing it costs a fraction of what the threaded client does (no
``threading``, ``collections``, reconnection or watch machinery are imported).
``tests/client/test_cli_oneshot_imports.py`` pins what a one-shot command imports.

Invariants (each as the threaded client, so a command behaves the same on either):

* the connection fails with :class:`~xsd_client.errors.ConnectionClosedError` carrying
  the socket's errno; a payload over ``PAYLOAD_MAX`` raises ``E2BIG`` before anything
  is sent; an ERROR reply raises the class it names, with the request's path;
* a reply to another request id, or a watch event, is skipped;
* once the connection has ended (closed by us, by the daemon, a broken frame, a failed
  send or receive), this and every later request raise the same
  :class:`~xsd_client.errors.ConnectionClosedError`.

Not safe to share between threads; use :class:`~xsd_client.client.Client` for that.
"""

from __future__ import annotations

import sys

# The C half of socket: the Python wrapper imports selectors, enum and more (see client).
from _socket import AF_UNIX, SOCK_STREAM
from _socket import socket as _unix_socket

from . import calls
from ._typing import TypeVar
from .calls import Call, check_reply
from .errors import ConnectionClosedError, error_from_name
from .operations import DomainOperations, Operations, Transaction
from .protocol import PAYLOAD_MAX, Decoder, Op, Packet, ProtocolError, encode

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:
    import os

__all__ = ["DEFAULT_RUNDIR", "OneShotClient", "default_socket_path", "getenv"]

DEFAULT_RUNDIR = "/var/run/xenstored"

T = TypeVar("T")

_RECV_SIZE = 65536


def getenv(name: str) -> str | None:
    """``os.environ.get(name)``, without importing ``os`` when nothing has yet.

    ``site`` imports ``os`` at every normal start, but under ``python -S`` it would be a
    fifth of what a one-shot ``xsc`` imports. Until ``os`` is imported nothing can have
    changed ``os.environ``, so the process's environment (``posix.environ``) decoded
    as ``os.environ`` decodes it is the same answer.
    """
    loaded = sys.modules.get("os")
    if loaded is not None:
        value: str | None = loaded.environ.get(name)
        return value
    from posix import environ

    encoding = sys.getfilesystemencoding()
    raw = environ.get(name.encode(encoding, "surrogateescape"))
    return None if raw is None else raw.decode(encoding, "surrogateescape")


def default_socket_path() -> str:
    """The daemon socket libxenstore would use.

    ``$XENSTORED_PATH`` if set, else ``$XENSTORED_RUNDIR/socket``, else
    ``/var/run/xenstored/socket``. As in libxenstore, a variable set to the empty string
    counts as set.
    """
    path = getenv("XENSTORED_PATH")
    if path is not None:
        return path
    rundir = getenv("XENSTORED_RUNDIR")
    return (DEFAULT_RUNDIR if rundir is None else rundir) + "/socket"


def connect(path: str) -> _unix_socket:
    """A stream socket connected to the daemon listening at ``path`` (both clients').

    Raises:
        ConnectionClosedError: it cannot be connected (its errno, and why).
    """
    sock = _unix_socket(AF_UNIX, SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise ConnectionClosedError(
            e.errno, f"cannot connect to xenstored: {e.strerror}", path
        ) from e
    return sock


class OneShotClient(Operations, DomainOperations):
    """A connection to a xenstore daemon for one thread, one request at a time.

    Args:
        path: the daemon's Unix socket; default :func:`default_socket_path`.

    Raises:
        ConnectionClosedError: the socket cannot be connected.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            self.path = default_socket_path()
        else:
            from os import fspath  # only here: see getenv

            self.path = fspath(path)
        self._epoch = 0  # what a Transaction checks: this client never reconnects
        self._next_req_id = 0
        self._closed: ConnectionClosedError | None = None
        self._decoder = Decoder()
        self._sock = connect(self.path)

    def __repr__(self) -> str:
        return f"<OneShotClient {self.path!r}{' closed' if self._closed else ''}>"

    @property
    def closed(self) -> bool:
        """True once the connection has ended."""
        return self._closed is not None

    def close(self) -> None:
        """Close the connection; later requests fail."""
        self._end(ConnectionClosedError("connection closed by the client"))

    def __enter__(self) -> OneShotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _end(self, reason: ConnectionClosedError) -> ConnectionClosedError:
        if self._closed is None:
            self._closed = reason
            self._sock.close()
        return self._closed

    def _reply(self, req_id: int) -> Packet:
        """Read until the reply to ``req_id`` (anything else is dropped, as the threaded
        client's reader drops what nobody waits for)."""
        decoder = self._decoder
        while True:
            for packet in decoder:
                if packet.req_id == req_id and packet.op != Op.WATCH_EVENT:
                    return packet
            data = self._sock.recv(_RECV_SIZE)
            decoder.receive_data(data)
            if not data:
                decoder.next_packet()  # a stream that ended inside a packet raises
                raise self._end(ConnectionClosedError("connection closed by the daemon"))

    def _request(self, op: Op, payload: bytes, tx_id: int = 0, path: str | None = None) -> bytes:
        if len(payload) > PAYLOAD_MAX:  # as libxenstore: refused before it is sent
            raise error_from_name("E2BIG", path)
        if self._closed is not None:
            raise self._closed
        self._next_req_id = self._next_req_id % 0xFFFFFFFF + 1
        req_id = self._next_req_id
        try:
            self._sock.sendall(encode(op, req_id, tx_id, payload))
            packet = self._reply(req_id)
        except ProtocolError as e:
            raise self._end(ConnectionClosedError(f"daemon broke the protocol: {e}")) from None
        except ConnectionClosedError:
            raise
        except OSError as e:
            reason = ConnectionClosedError(e.errno, f"connection lost: {e.strerror}")
            raise self._end(reason) from None
        return check_reply(op, packet, path)

    def _send(self, call: Call[T], tx_id: int) -> T:
        return call.parse(self._request(call.op, call.payload, tx_id, call.path))

    def _run(self, call: Call[T]) -> T:
        return self._send(call, 0)

    def request(self, op: int, payload: bytes, tx_id: int = 0) -> bytes:
        """Send one raw request and return the payload of its reply.

        Raises:
            XenstoreError: the daemon answered ERROR (the class named by the reply).
        """
        return self._request(Op(op), payload, tx_id)

    def transaction(self) -> Transaction:
        """Start a transaction; use the result as a context manager."""
        return Transaction(self, self._run(calls.transaction_start()))
