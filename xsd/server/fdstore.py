"""systemd's file descriptor store: the listening sockets outlive a crash of the daemon.

Under systemd (``docs/xsd.service``, ``FileDescriptorStoreMax=``), the daemon hands each
listening socket to systemd once it listens (``FDSTORE=1`` with ``FDNAME=``, the socket
sent along with ``SCM_RIGHTS``): ``xsd`` for the store's socket, ``domain-<domid>`` for
a domain's. When the daemon dies and ``Restart=`` starts it again, systemd passes them
back (``LISTEN_FDS``, ``LISTEN_FDNAMES``, ``LISTEN_PID``, the descriptors from 3 on), and
the daemon serves on them instead of binding new ones: a client that connects while the
daemon is down waits in the socket's backlog instead of finding nobody. A domain's
socket leaves the store when the domain is released (``FDSTOREREMOVE=1``).

Only when the store is on: systemd 254 and later set ``$FDSTORE`` (the store's size)
for a unit with ``FileDescriptorStoreMax=``, and the unit file sets it for older ones;
and only with ``$NOTIFY_SOCKET``. Without ``LISTEN_PID`` equal to this process, nothing
is taken. Failures to send are ignored, as libsystemd does.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from xsd.server import sdnotify
from xsd.server.unix_sockets import bind_unix

LISTEN_FDS_START = 3
MAIN = "xsd"
"""The name of the store's socket in the fd store."""


def domain_name(domid: int) -> str:
    """The name of domain ``domid``'s socket in the fd store."""
    return f"domain-{domid}"


def inherited() -> dict[str, socket.socket]:
    """The listening sockets systemd passed to this process, by name (once: the
    variables are removed, and each descriptor is closed on exec from now on)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return {}
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        count = 0
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    found: dict[str, socket.socket] = {}
    for i in range(max(0, count)):
        fd = LISTEN_FDS_START + i
        name = names[i] if i < len(names) and names[i] else "unknown"
        try:
            os.set_inheritable(fd, False)
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM or name in found:
            sock.close()
            remove(name)
            continue
        found[name] = sock
    return found


def bind_or_inherit(
    inherited: dict[str, socket.socket], name: str, path: Path, mode: int
) -> socket.socket:
    """The listening socket ``name`` systemd kept (taken out of ``inherited``), or a new
    one bound at ``path`` (``unix_sockets.bind_unix``) and handed to the fd store.

    Raises:
        BindError: as ``bind_unix``.
    """
    sock = inherited.pop(name, None)
    if sock is not None:
        sock.setblocking(False)
        return sock
    sock = bind_unix(path, mode)
    store(name, sock)
    return sock


def drop_others(inherited: dict[str, socket.socket]) -> None:
    """Close and drop from the store every kept socket but the store's own (the domains
    the restored state does not have: it took its own already)."""
    for name in [n for n in inherited if n != MAIN]:
        inherited.pop(name).close()
        remove(name)


def store(name: str, sock: socket.socket) -> bool:
    """Hand ``sock`` to systemd's fd store under ``name``; True if it was sent."""
    return _send(f"FDSTORE=1\nFDNAME={name}", [sock.fileno()])


def remove(name: str) -> bool:
    """Drop the socket stored under ``name`` from systemd's fd store."""
    return _send(f"FDSTOREREMOVE=1\nFDNAME={name}", [])


def enabled() -> bool:
    """True if systemd keeps descriptors for this service (``$FDSTORE`` > 0)."""
    try:
        return int(os.environ.get("FDSTORE", "0")) > 0
    except ValueError:
        return False


def _send(message: str, fds: list[int]) -> bool:
    return enabled() and sdnotify.send(message, fds)
