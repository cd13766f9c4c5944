"""What the engine asks of its shell: one immutable class per kind of request.

The engine appends effects to its list while it answers requests or handles time;
the shell takes them with :meth:`~xsd.core.engine.Engine.take_effects` and applies
each with the handler registered for its class, so that the type checker sees every
kind and its fields. :data:`Effect` is their union.

This is half of the boundary between the core and the shell (the other half is the
engine's public methods; ``docs/design.md`` lists both). Its own module, importing
nothing of the core's behaviour, so that every feature can make effects without
importing the engine.

Each class has ``kind``, a short name (a class attribute, not a field) used in logs
and tests; instances are slotted,
compared by value and not meant to be changed after they are made.
"""

from __future__ import annotations

from xsd.core.fields import Fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import TypeAlias


class DomainIntroduced(Fields):
    """Domain ``domid`` was introduced: open its socket."""

    kind = "introduced"
    __slots__ = ("domid",)
    domid: int

    def __init__(self, domid: int) -> None:
        self.domid = domid


class DomainReleased(Fields):
    """Domain ``domid`` was released: close its socket."""

    kind = "released"
    __slots__ = ("domid",)
    domid: int

    def __init__(self, domid: int) -> None:
        self.domid = domid


class CloseConnection(Fields):
    """Close connection ``conn_id`` (the engine has forgotten it or is about to)."""

    kind = "close"
    __slots__ = ("conn_id",)
    conn_id: int

    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id


class ResumeConnection(Fields):
    """Connection ``conn_id`` may be served again (it paid its writes back)."""

    kind = "resume"
    __slots__ = ("conn_id",)
    conn_id: int

    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id


class TraceChanged(Fields):
    """The trace settings changed: apply them to the log file."""

    kind = "trace"
    __slots__ = ()

    def __init__(self) -> None:
        pass


class LogLine(Fields):
    """Write ``text`` to the daemon's log."""

    kind = "log"
    __slots__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        self.text = text


class MemReport(Fields):
    """Write a memory report to file ``target`` (the trace file if None)."""

    kind = "memreport"
    __slots__ = ("target",)
    target: str | None

    def __init__(self, target: str | None) -> None:
        self.target = target


class TimerChanged(Fields):
    """A new deadline appeared: recompute when to call the engine's ``tick``."""

    kind = "timer"
    __slots__ = ()

    def __init__(self) -> None:
        pass


class DeferredRequest(Fields):
    """A CONTROL ``command`` from connection ``conn_id`` that the shell answers (live
    update, the log file), later, through the engine's ``complete_deferred``."""

    kind = "deferred"
    __slots__ = ("args", "command", "conn_id")
    conn_id: int
    command: str
    args: list[bytes]

    def __init__(self, conn_id: int, command: str, args: list[bytes]) -> None:
        self.conn_id = conn_id
        self.command = command
        self.args = args


class RequestBug(Fields):
    """Answering ``request`` raised ``error``, a bug: the client got EIO, the shell logs
    the traceback."""

    kind = "bug"
    __slots__ = ("error", "request")
    request: str
    error: BaseException

    def __init__(self, request: str, error: BaseException) -> None:
        self.request = request
        self.error = error


class WatchdogAction(Fields):
    """Watchdog ``slot`` of domain ``domid`` expired: the shell's backend performs
    ``action`` (QMP at ``qmp`` if set, else the hook) and gives the result back through
    the watchdogs' ``action_done`` with ``seq``."""

    kind = "watchdog"
    __slots__ = ("action", "domid", "qmp", "seq", "slot")
    domid: int
    slot: int
    action: str
    seq: int
    qmp: str

    def __init__(self, domid: int, slot: int, action: str, seq: int, qmp: str) -> None:
        self.domid = domid
        self.slot = slot
        self.action = action
        self.seq = seq
        self.qmp = qmp


__all__ = [
    "CloseConnection",
    "DeferredRequest",
    "DomainIntroduced",
    "DomainReleased",
    "LogLine",
    "MemReport",
    "RequestBug",
    "ResumeConnection",
    "TimerChanged",
    "TraceChanged",
    "WatchdogAction",
]
"""The effect classes (``Effect``, their union, is for the type checker)."""

Effect: TypeAlias = (
    "DomainIntroduced | DomainReleased | CloseConnection | ResumeConnection | TraceChanged"
    " | LogLine | MemReport | TimerChanged | DeferredRequest | RequestBug | WatchdogAction"
)
"""Anything the engine asks of the shell."""
