"""The line format of xsd's shared log: writing and reading one line.

A log file may be shared by several daemons (and other infrastructure programs), so
every line names its source and stands alone::

    TIME HOST INSTANCE[PID] SEQ CLASS: TEXT

* ``TIME``: UTC wall-clock time the event happened, ``2025-06-01T12:00:00.123456Z``;
* ``HOST``: the writer's host name; ``INSTANCE``: its instance name (``--instance-name``,
  default ``xsd``); ``PID``: its process id (unchanged by a live update);
* ``SEQ``: the writer's line number, 1, 2, 3, ... for each (host, instance, pid); it goes
  on across a live update and across reopening or switching files, so a gap means a lost
  line and a repeat a duplicate;
* ``CLASS``: one of :data:`CLASSES`;
* ``TEXT``: printable ASCII only (see :func:`escape`); for class ``io`` it is::

      DIR cCONN dDOMID TYPE rREQ_ID tTX_ID (PAYLOAD)

  ``DIR`` is ``IN`` (a request read) or ``OUT`` (a reply or watch event queued),
  ``CONN`` the connection id, ``DOMID`` the connection's domain, ``TYPE`` the message
  type name (``READ``, ``WATCH_EVENT``, ``ERROR``; unknown ones ``UNKNOWN_<n>``) and
  ``PAYLOAD`` the escaped payload (``\\0`` for NUL bytes, as C xenstored shows them as
  spaces).

Invariants kept here: a formatted line never contains a newline or a byte outside
printable ASCII, so it is one line whatever the payload; :func:`parse_line` accepts
exactly what :func:`format_line` produces and :func:`unescape` inverts :func:`escape`.
This module imports nothing but the standard library and ``xsd_client.protocol``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from xsd_client.protocol import Op

CLASSES = ("io", "conn", "dom", "wd", "lu", "ctl", "daemon")
"""Log classes: ``io`` requests and replies; ``conn`` connections dropped; ``dom`` domains
introduced and released; ``wd`` watchdog events; ``lu`` live-update steps; ``ctl``
``control print`` and ``check``; ``daemon`` start, stop, the log file itself, the rest."""

_PREFIXES = (
    ("live-update", "lu"),
    ("live update", "lu"),
    ("domain ", "dom"),
    ("watchdog", "wd"),
    ("connection ", "conn"),
    ("conn ", "conn"),
    ("control:", "ctl"),
    ("check:", "ctl"),
)


def classify(message: str) -> str:
    """The class of one of the daemon's own messages, from how it starts."""
    for prefix, cls in _PREFIXES:
        if message.startswith(prefix):
            return cls
    return "daemon"


# ---------------------------------------------------------------------------- escaping

_ESCAPES = {0: "\\0", 9: "\\t", 10: "\\n", 13: "\\r", 92: "\\\\"}
_TABLE = {i: _ESCAPES.get(i, f"\\x{i:02x}") for i in [*range(0x20), 0x5C, *range(0x7F, 0x100)]}
_SPECIAL = re.compile(rb"[^\x20-\x5b\x5d-\x7e]")
_UNESCAPE = re.compile(r"\\(x[0-9a-f]{2}|[0tnr\\])")
_UNESCAPES = {"0": "\0", "t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


def escape(data: bytes) -> str:
    """``data`` as printable ASCII: ``\\\\``, ``\\0``, ``\\t``, ``\\n``, ``\\r``, else ``\\xHH``."""
    if _SPECIAL.search(data) is None:
        return data.decode("ascii")
    if data.endswith(b"\0") and _SPECIAL.search(data, 0, len(data) - 1) is None:
        return data[:-1].decode("ascii") + "\\0"  # the common case: one trailing NUL
    return data.decode("latin-1").translate(_TABLE)


def unescape(text: str) -> bytes:
    """The bytes :func:`escape` turned into ``text``."""

    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        return chr(int(code[1:], 16)) if code[0] == "x" else _UNESCAPES[code]

    return _UNESCAPE.sub(one, text).encode("latin-1")


# ---------------------------------------------------------------------------- lines

_OP_NAMES = {int(op): op.name for op in Op}


def op_name(op: int) -> str:
    """The type name of message type ``op`` as the trace shows it."""
    name = _OP_NAMES.get(op)
    return name if name is not None else f"UNKNOWN_{op}"


_OP_NUMBERS = {name: number for number, name in _OP_NAMES.items()}


class Clock:
    """Formats wall-clock nanoseconds as the line's TIME, re-rendering the date part only
    when the second changes (the hot path formats thousands of lines a second)."""

    __slots__ = ("_last", "_last_text", "_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""
        self._last = -1
        self._last_text = ""

    def format(self, time_ns: int) -> str:
        """``YYYY-MM-DDTHH:MM:SS.uuuuuuZ`` in UTC."""
        if time_ns == self._last:
            return self._last_text
        second, rest = divmod(time_ns, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._last = time_ns
        self._last_text = text = f"{self._text}.{rest // 1000:06d}Z"
        return text


def source_tag(host: str, instance: str, pid: int) -> str:
    """``HOST INSTANCE[PID]``; host and instance lose blanks and brackets so it parses."""
    return f"{_token(host)} {_token(instance)}[{pid}]"


def _token(text: str) -> str:
    cleaned = re.sub(r"[\s\[\]]", "_", escape(text.encode("utf-8", "replace")))
    return cleaned or "-"


def format_line(time_text: str, source: str, seq: int, cls: str, text: str) -> str:
    """One whole line, newline included (``text`` must already be escaped)."""
    return f"{time_text} {source} {seq} {cls}: {text}\n"


def format_io(
    direction: str, conn_id: int, domid: int, op: int, req_id: int, tx_id: int, payload: bytes
) -> str:
    """The TEXT of an ``io`` line."""
    name = _OP_NAMES.get(op) or f"UNKNOWN_{op}"
    shown = payload.decode("ascii") if _SPECIAL.search(payload) is None else escape(payload)
    return f"{direction} c{conn_id} d{domid} {name} r{req_id} t{tx_id} ({shown})"


_LINE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<host>\S+) "
    r"(?P<instance>[^\s\[\]]+)\[(?P<pid>\d+)\] (?P<seq>\d+) (?P<cls>[a-z]+): "
    r"(?P<text>[\x20-\x7e]*)"
)
_IO = re.compile(
    r"(?P<dir>IN|OUT) c(?P<conn>\d+) d(?P<domid>\d+) (?P<type>[A-Z0-9_]+) "
    r"r(?P<req>\d+) t(?P<tx>\d+) \((?P<payload>[\x20-\x7e]*)\)"
)


@dataclass(frozen=True, slots=True)
class Line:
    """One parsed log line; the ``io`` fields are None for other classes."""

    time: str
    host: str
    instance: str
    pid: int
    seq: int
    cls: str
    text: str
    direction: str | None = None
    conn: int | None = None
    domid: int | None = None
    type: str | None = None
    req_id: int | None = None
    tx_id: int | None = None
    payload: str | None = None
    """Still escaped: :func:`unescape` gives the bytes."""

    @property
    def source(self) -> tuple[str, str, int]:
        """Who wrote it: (host, instance, pid)."""
        return (self.host, self.instance, self.pid)

    def to_json(self) -> dict[str, object]:
        """The fields as a JSON-ready dict (the None ones left out)."""
        out: dict[str, object] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def parse_line(line: str) -> Line | None:
    """The fields of one line (with or without its newline); None if it is not one."""
    m = _LINE.fullmatch(line.rstrip("\n"))
    if m is None:
        return None
    text = m["text"]
    cls = m["cls"]
    fields = (m["time"], m["host"], m["instance"], int(m["pid"]), int(m["seq"]), cls, text)
    if cls == "io":
        io = _IO.fullmatch(text)
        if io is None:
            return None
        return Line(
            *fields,
            direction=io["dir"],
            conn=int(io["conn"]),
            domid=int(io["domid"]),
            type=io["type"],
            req_id=int(io["req"]),
            tx_id=int(io["tx"]),
            payload=io["payload"],
        )
    return Line(*fields)


def op_number(name: str) -> int | None:
    """The message type number of a type name (``READ`` -> 2), if it is one."""
    return _OP_NUMBERS.get(name.upper())
