"""What ``--watchdog-notify`` and ``--watchdog-heartbeat`` say: the kickers to serve.

Parsing the options needs none of the serving (``xsd.server.kickers``), so the daemon's
option parser stays light: a live update parses the command line before it restores.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NotifySpec:
    """An sd_notify socket feeding watchdog ``slot`` of ``domid``."""

    domid: int
    slot: int
    path: str


@dataclass(frozen=True, slots=True)
class HeartbeatSpec:
    """A heartbeat listener feeding watchdog ``slot`` of ``domid``, and an optional peer."""

    domid: int
    slot: int
    listen: str
    peer: str | None = None
    pulse_ms: int = 1000


KickerSpec = NotifySpec | HeartbeatSpec


def _target(text: str) -> tuple[int, int, str]:
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or not parts[2]:
        raise argparse.ArgumentTypeError(f"expected DOMID:N:..., got {text!r}")
    return int(parts[0]), int(parts[1]), parts[2]


def parse_notify(text: str) -> NotifySpec:
    """``DOMID:N:PATH`` to a :class:`NotifySpec`."""
    domid, slot, path = _target(text)
    return NotifySpec(domid, slot, path)


def parse_heartbeat(text: str) -> HeartbeatSpec:
    """``DOMID:N:LISTEN[,peer=ADDR][,pulse=MS]`` to a :class:`HeartbeatSpec`."""
    domid, slot, rest = _target(text)
    listen, *options = rest.split(",")
    peer = None
    pulse = 1000
    for option in options:
        key, _, value = option.partition("=")
        if key == "peer" and value:
            peer = value
        elif key == "pulse" and value.isdigit() and int(value) > 0:
            pulse = int(value)
        else:
            raise argparse.ArgumentTypeError(f"bad heartbeat option {option!r}")
    address(listen)
    if peer is not None:
        address(peer)
    return HeartbeatSpec(domid, slot, listen, peer, pulse)


def address(text: str) -> tuple[str, int] | str:
    """``unix:PATH`` to PATH, ``HOST:PORT`` to ``(HOST, PORT)``."""
    if text.startswith("unix:"):
        return text[5:]
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or unix:PATH, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
