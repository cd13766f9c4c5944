"""sd_notify: tell systemd we are ready, reloading (live update) or stopping.

Only when ``$NOTIFY_SOCKET`` is set; failures are ignored, as libsystemd does.
"""

from __future__ import annotations

import os
import socket
import time


def notify(message: str) -> bool:
    """Send one notification datagram; True if it was sent."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def notify_reloading() -> bool:
    """RELOADING=1 with the monotonic timestamp systemd 253+ expects."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")
