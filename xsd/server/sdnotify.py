"""sd_notify: tell systemd what the daemon is doing: starting, ready, reloading (a live
update), stopping, each with a ``STATUS=`` line for ``systemctl status``.

Only when ``$NOTIFY_SOCKET`` is set; failures are ignored, as libsystemd does.
"""

from __future__ import annotations

import os
import socket
import time

DEFAULT_STATUS = {
    "READY=1": "Serving",
    "STOPPING=1": "Stopping",
    "RELOADING=1": "Live update: executing the new program",
}
"""The ``STATUS=`` a state change carries when its sender gives none."""


def notify(message: str, status: str | None = None) -> bool:
    """Send one notification datagram; True if it was sent.

    ``status`` becomes its ``STATUS=`` line; without one, a ``READY=1``, ``STOPPING=1``
    or ``RELOADING=1`` gets its :data:`DEFAULT_STATUS`.
    """
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if status is None and "STATUS=" not in message:
        status = next((text for key, text in DEFAULT_STATUS.items() if key in message), None)
    if status is not None:
        message = f"{message}\nSTATUS={status}" if message else f"STATUS={status}"
    return send(message)


def send(message: str, fds: list[int] | None = None) -> bool:
    """Send ``message`` as it is, with descriptors ``fds`` (``SCM_RIGHTS``) if any;
    True if it was sent (False without ``$NOTIFY_SOCKET``)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            if fds:
                socket.send_fds(sock, [message.encode()], fds)
            else:
                sock.sendall(message.encode())
    except OSError:
        return False
    return True


def status(text: str) -> bool:
    """A ``STATUS=`` line alone: what the daemon is doing now."""
    return notify("", text)


def notify_reloading() -> bool:
    """RELOADING=1 with the monotonic timestamp systemd 253+ expects."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")
