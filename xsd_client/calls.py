"""The requests both clients send and what they make of the replies, sans I/O.

Each function here returns a :class:`Call`: the message type, its payload, the path
that errors name, and how to read the payload of the reply. The blocking
:class:`~xsd_client.client.Client` and the trio
:class:`~xsd_client.aio.AsyncClient` send it each their own way, so the two can differ
in how they wait and never in what they ask or how they read the answer.

Arguments are checked here: a path, token or value is ``str`` or ``bytes``, a domain
id is ``int``; anything else raises :class:`TypeError` before a byte is sent.
"""

from __future__ import annotations

from ._typing import Generic, TypeVar
from .errors import RemoteProtocolError, error_from_name
from .protocol import (
    Op,
    Packet,
    join_args,
    parse_directory,
    parse_directory_part,
    parse_error,
    split_args,
)
from .values import Perm

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # collections.abc imports collections, functools...: ~3 ms of xsc
    from collections.abc import Callable, Iterable

__all__ = [
    "Call",
    "DirectoryParts",
    "check_reply",
    "control",
    "dec",
    "enc",
    "first_string",
    "get_domain_path",
    "get_perms",
    "int_arg",
    "introduce",
    "is_domain_introduced",
    "mkdir",
    "read",
    "release",
    "reset_watches",
    "resume",
    "rm",
    "set_perms",
    "set_target",
    "transaction_end",
    "transaction_start",
    "unwatch",
    "watch",
    "write",
]

T = TypeVar("T")


def enc(value: str | bytes, what: str) -> bytes:
    """``value`` as wire bytes; ``what`` names it in the TypeError for other types."""
    # Paths and tokens are text; surrogateescape keeps any bytes that came in through
    # sys.argv (or went out through dec below) exactly as they were.
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes):
        return value
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def dec(value: bytes) -> str:
    """Wire bytes as text, every byte kept (the inverse of :func:`enc`)."""
    return value.decode("utf-8", "surrogateescape")


def int_arg(number: int, what: str = "domid") -> bytes:
    """A decimal argument (a domain id, a frame number); bools are refused."""
    if not isinstance(number, int) or isinstance(number, bool):
        raise TypeError(f"{what} must be int, not {type(number).__name__}")
    return str(number).encode()


def first_string(payload: bytes) -> str:
    """The text of a reply up to its first NUL."""
    return dec(payload.split(b"\0", 1)[0])


def _nothing(payload: bytes) -> None:
    return None


def _payload(payload: bytes) -> bytes:
    return payload


class Call(Generic[T]):
    """One request to send, and how to read the payload of its reply."""

    __slots__ = ("op", "parse", "path", "payload")

    def __init__(
        self, op: Op, payload: bytes, parse: Callable[[bytes], T], path: str | None = None
    ) -> None:
        self.op = op
        self.payload = payload
        self.parse = parse
        # The path the request is about: errors raised for it name it.
        self.path = path

    def __repr__(self) -> str:
        return f"<Call {self.op.name} {self.payload!r}>"


def check_reply(op: Op, packet: Packet, path: str | None) -> bytes:
    """The payload of ``packet``, the reply to an ``op`` request.

    Raises:
        XenstoreError: the daemon answered ERROR (the class it names).
        RemoteProtocolError: it answered with another message type.
    """
    if packet.op == Op.ERROR:
        raise error_from_name(parse_error(packet.payload), path)
    if packet.op != op:
        raise RemoteProtocolError(f"{op.name} request answered by message type {packet.op}")
    return packet.payload


def _path_call(op: Op, path: str, parse: Callable[[bytes], T]) -> Call[T]:
    return Call(op, enc(path, "path") + b"\0", parse, path)


def read(path: str) -> Call[bytes]:
    """READ: the value of ``path``."""
    return _path_call(Op.READ, path, _payload)


def write(path: str, value: bytes | str) -> Call[None]:
    """WRITE: set ``path`` to ``value`` (a str is stored as UTF-8)."""
    data = enc(value, "value")
    return Call(Op.WRITE, enc(path, "path") + b"\0" + data, _nothing, path)


def mkdir(path: str) -> Call[None]:
    """MKDIR: create ``path`` with an empty value if it is missing."""
    return _path_call(Op.MKDIR, path, _nothing)


def rm(path: str) -> Call[None]:
    """RM: remove ``path`` and everything below it."""
    return _path_call(Op.RM, path, _nothing)


def _parse_perms(payload: bytes) -> list[Perm]:
    return [Perm.parse(dec(p)) for p in split_args(payload)]


def get_perms(path: str) -> Call[list[Perm]]:
    """GET_PERMS: the permission list of ``path``, owner first."""
    return _path_call(Op.GET_PERMS, path, _parse_perms)


def set_perms(path: str, perms: Iterable[Perm | str]) -> Call[None]:
    """SET_PERMS: ``perms`` are :class:`Perm` objects or wire strings such as ``"r5"``."""
    payload = enc(path, "path") + b"\0"
    for perm in perms:
        if not isinstance(perm, Perm | str):
            raise TypeError(f"perms entries must be Perm or str, not {type(perm).__name__}")
        payload += str(perm).encode() + b"\0"
    return Call(Op.SET_PERMS, payload, _nothing, path)


def transaction_start() -> Call[int]:
    """TRANSACTION_START: the new transaction's id."""
    return Call(Op.TRANSACTION_START, b"\0", lambda payload: int(first_string(payload)))


def transaction_end(commit: bool) -> Call[None]:
    """TRANSACTION_END: commit (``T``) or abort (``F``); send it with the id."""
    return Call(Op.TRANSACTION_END, b"T\0" if commit else b"F\0", _nothing)


def watch(path: str, token: str | bytes, depth: int | None = None) -> Call[None]:
    """WATCH: ``depth`` levels below ``path`` (Xen 4.22), or all of them (None)."""
    args: list[bytes | int] = [enc(path, "path"), enc(token, "token")]
    if depth is not None:
        args.append(int_arg(depth, "depth"))
    return Call(Op.WATCH, join_args(*args), _nothing, path)


def unwatch(path: str, token: str | bytes) -> Call[None]:
    """UNWATCH: the watch on ``path`` with ``token``."""
    return Call(Op.UNWATCH, join_args(enc(path, "path"), enc(token, "token")), _nothing, path)


def reset_watches() -> Call[None]:
    """RESET_WATCHES: drop the connection's watches and transactions."""
    return Call(Op.RESET_WATCHES, b"\0", _nothing)


def get_domain_path(domid: int) -> Call[str]:
    """GET_DOMAIN_PATH: ``/local/domain/<domid>``."""
    return Call(Op.GET_DOMAIN_PATH, int_arg(domid) + b"\0", first_string)


def is_domain_introduced(domid: int) -> Call[bool]:
    """IS_DOMAIN_INTRODUCED: True for ``T``."""
    return Call(
        Op.IS_DOMAIN_INTRODUCED, int_arg(domid) + b"\0", lambda payload: payload[:1] == b"T"
    )


def introduce(domid: int, gfn: int, evtchn: int) -> Call[None]:
    """INTRODUCE: a domain with its store page frame and event channel."""
    payload = join_args(int_arg(domid), int_arg(gfn, "gfn"), int_arg(evtchn, "evtchn"))
    return Call(Op.INTRODUCE, payload, _nothing)


def release(domid: int) -> Call[None]:
    """RELEASE: the domain's connection and nodes go."""
    return Call(Op.RELEASE, int_arg(domid) + b"\0", _nothing)


def resume(domid: int) -> Call[None]:
    """RESUME: clear the domain's shutdown flag."""
    return Call(Op.RESUME, int_arg(domid) + b"\0", _nothing)


def set_target(domid: int, target: int) -> Call[None]:
    """SET_TARGET: ``domid`` acts with the privileges of ``target``."""
    return Call(Op.SET_TARGET, join_args(int_arg(domid), int_arg(target, "target")), _nothing)


def control(cmd: str, *args: str | bytes) -> Call[str]:
    """CONTROL: the reply text up to its first NUL."""
    payload = join_args(enc(cmd, "cmd"), *(enc(a, "argument") for a in args))
    return Call(Op.CONTROL, payload, first_string)


class DirectoryParts:
    """A listing fetched whole or, when too long, in DIRECTORY_PART chunks, sans I/O
    (libxenstore's way).

    Send :meth:`whole`; if the daemon answers E2BIG, send :meth:`next_part` until its
    reply parses to the list rather than None. The chunks start over if the node
    changed in between (its generation differs from the first chunk's).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.raw = enc(path, "path")
        self.names: list[str] = []
        self.offset = 0
        self.gen: int | None = None

    def whole(self) -> Call[list[str]]:
        """The DIRECTORY request."""
        return Call(Op.DIRECTORY, self.raw + b"\0", parse_directory, self.path)

    def next_part(self) -> Call[list[str] | None]:
        """The next DIRECTORY_PART request; its reply feeds :meth:`feed`."""
        return Call(Op.DIRECTORY_PART, join_args(self.raw, self.offset), self.feed, self.path)

    def feed(self, reply: bytes) -> list[str] | None:
        """Take one reply; the complete list, or None if more must be asked for."""
        gen, chunk, complete = parse_directory_part(reply)
        if self.gen is None:
            self.gen = gen
        elif gen != self.gen:  # the node changed under us: start over
            self.names, self.offset, self.gen = [], 0, None
            return None
        self.names += chunk
        self.offset += sum(len(enc(n, "name")) + 1 for n in chunk)
        if complete:
            return self.names
        if not chunk:
            raise RemoteProtocolError(f"empty incomplete DIRECTORY_PART reply for {self.path!r}")
        return None
