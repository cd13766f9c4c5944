"""The shell's part of a live update's hand-over: one typed record beside the state.

The old process's shell hands the new one its descriptors (the listening sockets, the
client sockets, the lock, the log file) and, in the dump of ``-s``, what the new process
does first: answer the connection that asked (``live_update_reply``), put the old
process's steps before its own (``timeline``) and log the exec (``exec``).

The record travels in the ``meta`` record's ``extra`` map (``handover.dump``), a key per
field, exactly as the untyped map it replaces did: a state written before this class
(format 3) loads the same, a field it lacks takes its default, and a key this version
does not know is left alone (durable mode's checkpoints keep their ``durable`` key in
the same map, ``handover.checkpoint``). The dry run loads the record too, so a record
the new program cannot read fails before the exec.

On the restore path: no ``typing``, no ``dataclasses`` (see ``xsd.core.fields``).
"""

from __future__ import annotations

from handover.errors import StateError
from xsd.core.fields import Fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any

_AT_START = ("live_update_reply", "timeline", "exec")
"""The fields only the dump of ``-s`` sets (not the dry run's): sent only if set."""


class ShellRecord(Fields):
    """What the shell hands over beside the state."""

    __slots__ = ("conns", "exec", "listeners", "live_update_reply", "lock", "log", "timeline")

    listeners: dict[int, int]
    """Listening sockets: domain id -> descriptor (domain 0's is the store's socket)."""
    conns: dict[int, int]
    """Client sockets: connection id -> descriptor."""
    lock: int | None
    """The lock beside the store's socket (None: not held)."""
    log: dict[str, Any] | None
    """The log file's position, as its backend hands it over (``xsd.server.logfile``)."""
    live_update_reply: int | None
    """The connection whose ``-s`` the new process answers."""
    timeline: list[list[str | int]] | None
    """The old process's steps of the update, ``[name, monotonic ns]`` each."""
    exec: str | None
    """The exec's command line and state transport, logged by the new process."""

    def __init__(
        self,
        listeners: dict[int, int] | None = None,
        conns: dict[int, int] | None = None,
        lock: int | None = None,
        log: dict[str, Any] | None = None,
        live_update_reply: int | None = None,
        timeline: list[list[str | int]] | None = None,
        exec: str | None = None,
    ) -> None:
        self.listeners = {} if listeners is None else listeners
        self.conns = {} if conns is None else conns
        self.lock = lock
        self.log = log
        self.live_update_reply = live_update_reply
        self.timeline = timeline
        self.exec = exec

    def descriptors(self) -> list[int]:
        """The sockets the new program inherits: listeners, then clients (the lock and
        the log file are the shell's to pass on)."""
        return [*self.listeners.values(), *self.conns.values()]

    def to_extra(self) -> dict[str, Any]:
        """The record as the ``meta`` record's ``extra`` map (the timeline's list is
        shared, not copied: a step noted after the dump, before it is packed, goes too)."""
        extra: dict[str, Any] = {
            "listeners": dict(self.listeners),
            "conns": dict(self.conns),
            "lock": self.lock,
        }
        if self.log is not None:
            extra["log"] = self.log
        for name in _AT_START:
            value = getattr(self, name)
            if value is not None:
                extra[name] = value
        return extra

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> ShellRecord:
        """The record in a loaded ``extra`` map.

        Raises:
            StateError: a field is not of its type.
        """
        log = extra.get("log")
        timeline = extra.get("timeline")
        if log is not None and not isinstance(log, dict):
            raise StateError("the hand-over's log is not a map")
        if timeline is not None and not isinstance(timeline, list):
            raise StateError("the hand-over's timeline is not a list")
        return cls(
            _descriptors(extra, "listeners"),
            _descriptors(extra, "conns"),
            _optional(extra, "lock", int),
            log,
            _optional(extra, "live_update_reply", int),
            timeline,
            _optional(extra, "exec", str),
        )


def _descriptors(extra: dict[str, Any], name: str) -> dict[int, int]:
    found = extra.get(name) or {}
    try:
        out = {int(key): fd for key, fd in found.items()}
    except (AttributeError, TypeError, ValueError):
        raise StateError(f"the hand-over's {name} is not a map of numbers") from None
    if not all(type(fd) is int for fd in out.values()):
        raise StateError(f"the hand-over's {name} are not descriptors")
    return out


def _optional(extra: dict[str, Any], name: str, kind: type) -> Any:
    value = extra.get(name)
    if value is not None and type(value) is not kind:
        raise StateError(f"the hand-over's {name} is not {'a number' if kind is int else 'text'}")
    return value
