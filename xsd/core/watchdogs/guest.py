"""What the watchdogs make of guests' (and domain 0's) writes to their nodes.

:func:`check` runs before a WRITE or RM (a check the engine's context calls): a value
that would break a watchdog's rules is refused there, so the nodes a guest may write
always hold valid values. :func:`apply_changes` runs after the change (the feature's
observer hook): it applies committed writes to the state machine, puts back removed
nodes, and ends the watchdogs of a domain whose home the toolstack removed.
"""

from __future__ import annotations

from xsd.core import perms as P
from xsd.core.errors import XsError
from xsd.core.watchdog_state import (
    ARMED,
    DAEMON_LEAVES,
    MS,
    PRETIMEOUT,
    DomainDogs,
    canonical_action,
)
from xsd.core.watchdogs import layout
from xsd.core.watchdogs.machine import Machine

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from xsd.core.connections import Connection
    from xsd.core.ops import Event


def check(wd: Machine, conn: Connection, path: str, value: bytes | None) -> None:
    """Refuse a write (or, ``value`` None, a removal) of a watchdog node that would
    break the watchdog's rules. Runs before the change; callers the node's permissions
    refuse anyway are left to them, so they learn nothing more.

    Raises:
        XsError: EINVAL for a bad value, EPERM where nowayout forbids it, EACCES for a
            node only the daemon writes or a removal by a guest.
    """
    parsed = layout.parse(path)
    if parsed is None:
        return
    domid, rest = parsed
    dd = wd.ctx.state.watchdogs.domains.get(domid)
    node = wd.ctx.state.tree.nodes.get(path)
    if dd is None or node is None:
        return
    if not conn.privileged:
        domain = wd.ctx.state.domains.get(conn.domid)
        target = domain.target if domain else None
        if not P.access_for(node.perms, conn.domid, target) & P.WRITE:
            return
    if value is None:
        if not conn.privileged:
            raise XsError("EACCES")
        return
    if len(rest) == 1 and rest[0] == "action":
        if value and canonical_action(value.decode("latin-1")) is None:
            raise XsError("EINVAL")
        return
    if rest[:1] == ["bootstatus"]:
        raise XsError("EACCES")
    if len(rest) != 2 or not rest[0].isdigit() or int(rest[0]) >= len(dd.dogs):
        return
    dog = dd.dogs[int(rest[0])]
    leaf = rest[1]
    st = wd.ctx.state.watchdogs
    if leaf == "timeout":
        ms = layout.parse_ms(value)
        if not st.min_timeout_ms <= ms <= st.max_timeout_ms or dog.pretimeout_ms >= ms:
            raise XsError("EINVAL")
    elif leaf == "pretimeout":
        ms = layout.parse_ms(value)
        if ms and ms >= dog.timeout_ms:
            raise XsError("EINVAL")
    elif leaf == "control":
        if value not in (b"arm", b"disarm"):
            raise XsError("EINVAL")
        if value == b"disarm" and dog.nowayout and dog.running:
            raise XsError("EPERM")
    elif leaf == "keepalive":
        if not dog.running:
            raise XsError("EINVAL")
    elif leaf == "action":
        if value and canonical_action(value.decode("latin-1")) is None:
            raise XsError("EINVAL")
    elif leaf == "nowayout":
        if value not in (b"0", b"1"):
            raise XsError("EINVAL")
        if value == b"0" and dog.nowayout and dog.running:
            raise XsError("EPERM")
    elif leaf in DAEMON_LEAVES:
        raise XsError("EACCES")


def apply_changes(wd: Machine, conn: Connection | None, events: list[Event]) -> None:
    """Apply committed writes to watchdog nodes; put back removed nodes."""
    st = wd.ctx.state.watchdogs
    if not st.domains:
        return  # no domain has watchdogs: nothing a change can mean to them
    restore: set[int] = set()
    homes: set[int] = set()  # domains whose home, or an ancestor of it, changed
    tree = wd.ctx.state.tree
    for path, _, _ in events:
        parsed = layout.parse(path)
        if parsed is None:
            if path.startswith("/local/domain/"):
                home = path[14:]  # a domain's home if no slash follows
                if "/" not in home and home.isdigit():
                    homes.add(int(home))
            elif path in ("/local", "/local/domain"):
                homes.update(st.domains)
            continue
        domid, rest = parsed
        dd = st.domains.get(domid)
        if dd is None:
            continue
        node = tree.nodes.get(path)
        if node is None:
            restore.add(domid)
            continue
        _apply(wd, conn, domid, dd, rest, node.value)
    for domid in sorted(homes):
        if _home_changed(wd, conn, domid):
            restore.discard(domid)
    for domid in sorted(restore):
        if domid in st.domains:
            wd.restore_nodes(domid)


def _home_changed(wd: Machine, conn: Connection | None, domid: int) -> bool:
    """The home of ``domid`` was written or removed; True if its watchdogs ended.

    The toolstack (a privileged connection) removing an introduced domain's home is
    taking the domain down, as libxl does before the domain dies: its watchdogs end
    there, rather than making the home again for RELEASE to leave behind. A home made
    (again) while the domain is introduced gets them (back). A guest removing a home
    it owns cannot take its watchdogs out: they come back.
    """
    st = wd.ctx.state.watchdogs
    if f"/local/domain/{domid}" in wd.ctx.state.tree.nodes:
        domain = wd.ctx.state.domains.get(domid)
        if domid not in st.domains and domain is not None and domain.introduced:
            wd.provision(domid)
        return False
    if domid not in st.domains or not (conn is None or conn.privileged):
        return False
    del st.domains[domid]  # its timers' heap entries are dropped when met
    wd.ctx.log(f"watchdog: domain {domid}: home removed, its watchdogs end")
    return True


def _apply(
    wd: Machine,
    conn: Connection | None,
    domid: int,
    dd: DomainDogs,
    rest: list[str],
    value: bytes,
) -> None:
    text = value.decode("latin-1")
    base = layout.base_of(domid)
    if rest == ["action"]:
        if not value or canonical_action(text):
            dd.action = text
        else:
            wd.set(f"{base}/action", dd.action.encode())
        return
    if rest == ["qmp"]:
        dd.qmp = text
        return
    if len(rest) != 2 or not rest[0].isdigit() or int(rest[0]) >= len(dd.dogs):
        return
    slot = int(rest[0])
    dog = dd.dogs[slot]
    leaf = rest[1]
    guest = conn is not None and not conn.privileged and conn.domid == domid
    if leaf == "timeout":
        if value.isdigit() and len(value) <= 12 and int(value) > dog.pretimeout_ms:
            wd.set_timeout(domid, slot, int(value))
        else:
            wd.set_dog(domid, slot, "timeout")
    elif leaf == "pretimeout":
        ms = int(value) if value.isdigit() and len(value) <= 12 else -1
        if not 0 <= ms < dog.timeout_ms:
            wd.set_dog(domid, slot, "pretimeout")
            return
        dog.pretimeout_ms = ms
        if dog.running:
            left = dog.deadline - wd.ctx.now
            dog.state = PRETIMEOUT if ms and left <= ms * MS else ARMED
            wd.schedule(domid, slot, dog)
            wd.set_dog(domid, slot, "state")
    elif leaf == "control":
        if value == b"arm":
            wd.arm(domid, slot, conn.id if conn is not None and guest else 0)
        elif value == b"disarm":
            wd.disarm(domid, slot, "explicit disarm")
    elif leaf == "keepalive":
        kicked = wd.kick(domid, slot)
        if kicked and guest and conn is not None and conn.id == dog.owner:
            dog.expect_close = b"V" in value
    elif leaf == "timeleft":
        wd.set_dog(domid, slot, "timeleft")
    elif leaf == "action":
        if not value or canonical_action(text):
            dog.action = text
        else:
            wd.set_dog(domid, slot, "action")
    elif leaf == "nowayout":
        if value == b"1":
            dog.nowayout = True
        elif value == b"0" and not dog.running:
            dog.nowayout = False
        wd.set_dog(domid, slot, "nowayout")
    elif leaf in DAEMON_LEAVES:
        wd.set_dog(domid, slot, leaf)
