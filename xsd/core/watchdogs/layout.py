"""Where the watchdogs live in the store: their nodes, paths and the values shown.

Pure functions of the watchdogs' data (``xsd.core.watchdog_state``): the nodes of a
domain's watchdogs with their values and permissions (the schema is in the README,
"Watchdogs"), and the parsing of a path in a watchdog subtree.
"""

from __future__ import annotations

from xsd.core import perms as P
from xsd.core.errors import XsError
from xsd.core.watchdog_state import BOOT_LEAVES, GUEST_LEAVES, MS, Dog, DomainDogs


def base_of(domid: int) -> str:
    """The watchdog directory of domain ``domid``."""
    return f"/local/domain/{domid}/watchdog"


def parse(path: str) -> tuple[int, list[str]] | None:
    """``(domid, components below watchdog/)`` for a path in a watchdog subtree."""
    if not path.startswith("/local/domain/"):
        return None
    slash = path.find("/", 14)  # after the domid: most paths are not the watchdogs'
    if slash < 0 or not path.startswith("watchdog", slash + 1):
        return None
    parts = path.split("/")
    if len(parts) < 5 or parts[4] != "watchdog" or not parts[3].isdigit():
        return None
    return int(parts[3]), parts[5:]


def parse_ms(value: bytes) -> int:
    """A node value in ms (EINVAL unless digits, at most 12)."""
    if not value.isdigit() or len(value) > 12:
        raise XsError("EINVAL")
    return int(value)


def nodes(domid: int, dd: DomainDogs) -> list[tuple[str, bytes, P.Perms]]:
    """Every node of a domain's watchdogs: path, value from the state, permissions."""
    guest_r = P.intern(((P.NONE, 0), (P.READ, domid)))
    guest_rw = P.intern(((P.NONE, 0), (P.BOTH, domid)))
    dom0 = P.intern(((P.NONE, 0),))
    base = base_of(domid)
    out = [
        (base, b"", guest_r),
        (f"{base}/action", dd.action.encode(), guest_r),
        (f"{base}/qmp", dd.qmp.encode(), dom0),
        (f"{base}/bootstatus", b"1" if dd.last_fired >= 0 else b"0", guest_r),
    ]
    boot = boot_values(dd)
    out.extend((f"{base}/bootstatus/{k}", boot[k], guest_r) for k in BOOT_LEAVES)
    for slot, dog in enumerate(dd.dogs):
        top = f"{base}/{slot}"
        out.append((top, b"", guest_r))
        for leaf, value in dog_values(dog, 0).items():
            perms = guest_rw if leaf in GUEST_LEAVES else guest_r
            out.append((f"{top}/{leaf}", value, perms))
    return out


def boot_values(dd: DomainDogs) -> dict[str, bytes]:
    """The values of the ``bootstatus/`` leaves."""
    if dd.last_fired < 0:
        return dict.fromkeys(BOOT_LEAVES, b"")
    return {
        "watchdog": f"{dd.last_fired}".encode(),
        "time": f"{dd.last_time_ns // MS}".encode(),
        "action": dd.last_action.encode(),
        "result": dd.last_result.encode(),
    }


def dog_values(dog: Dog, now: int) -> dict[str, bytes]:
    """The values of one watchdog's leaves at time ``now``."""
    return {
        "timeout": f"{dog.timeout_ms}".encode(),
        "pretimeout": f"{dog.pretimeout_ms}".encode(),
        "keepalive": b"",
        "control": b"",
        "timeleft": timeleft(dog, now),
        "state": dog.state.encode(),
        "action": dog.action.encode(),
        "nowayout": b"1" if dog.nowayout else b"0",
        "fired": f"{dog.fired}".encode(),
    }


def timeleft(dog: Dog, now: int) -> bytes:
    """The ``timeleft`` value: ms to expiry while running, else 0."""
    if not dog.running:
        return b"0"
    return f"{max(0, dog.deadline - now) // MS}".encode()
