"""Watchdogs hosted in the store: per-domain timers that guests drive with node writes.

Each introduced domain (not domain 0) gets ``per_domain`` watchdogs as nodes under
``/local/domain/<domid>/watchdog/`` (the schema is in the README, section "Watchdogs").
The guest arms, feeds and stops them by writing nodes from its own connection, with the
semantics of the Linux watchdog API; domain 0 chooses what happens on expiry; the daemon
owns the timers, so a guest bug cannot take its own watchdog out. Invariants:

* all watchdog state is plain data in ``State.watchdogs`` (slotted classes of ints, strs
  and bools, dicts, lists of int tuples): live update serializes it with the rest;
* every running timer is an absolute ``CLOCK_MONOTONIC`` deadline in ns; the core never
  reads a clock (``engine.now`` is the time) and never performs I/O (hard actions leave as
  a :class:`~xsd.core.effects.WatchdogAction` effect, the result comes back via
  :meth:`action_done`);
* the heap holds ``(when, domid, slot, token)`` entries; an entry is live only while its
  watchdog still has that token and that next event time, others are skipped when met
  (lazy deletion), so arming and kicking cost O(log n) and no node write;
* the value of a node a guest may write is always valid: a bad value is refused (EINVAL,
  EPERM) before the write happens, by :meth:`Watchdogs.check`; the nodes exist exactly
  while the domain is introduced and has a home, and come back if removed; the
  toolstack removing the home ends them (it is taking the domain down);
* an expiry always leaves the watchdog ``expired`` with its boot status recorded before any
  backend runs; a backend's result only fills in ``bootstatus/result``, matched by sequence
  number, so a late or failed backend never leaves the timer inconsistent;
* the daemon's own node writes are made as domain 0 and fire watches, but never re-enter
  :meth:`Watchdogs.on_change`.
"""

from __future__ import annotations

import heapq

from xsd.core import ops
from xsd.core import perms as P
from xsd.core.effects import TimerChanged, WatchdogAction
from xsd.core.errors import XsError
from xsd.core.fields import Fields
from xsd.core.views import DirectView

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)

if TYPE_CHECKING:
    from xsd.core.connections import Connection
    from xsd.core.engine import Engine

DISARMED = "disarmed"
ARMED = "armed"
PRETIMEOUT = "pretimeout"
EXPIRED = "expired"

SPECIAL = "@watchdog"
"""The special watch fired on every expiry and on every backend result."""

ACTIONS = ("reset", "shutdown", "poweroff", "pause", "debug", "none", "inject-nmi", "reboot")
"""QEMU's watchdog actions, plus ``reboot`` (the graceful twin of ``shutdown``)."""

ALIASES = {
    # The Xen toolstack's on_watchdog choices (xl.cfg), mapped onto QEMU's vocabulary.
    "destroy": "poweroff",
    "restart": "reset",
    "rename-restart": "reset",
    "preserve": "pause",
    "coredump-destroy": "poweroff",
    "coredump-restart": "reset",
    "soft-reset": "reset",
}

HARD = frozenset({"reset", "poweroff", "pause", "inject-nmi"})
"""Actions a backend performs (QMP to the domain's QEMU, else the hook command)."""

GRACEFUL = {"shutdown": "poweroff", "reboot": "reboot"}
"""Actions asked of the guest through its ``control/shutdown`` node, with the value."""

GUEST_LEAVES = frozenset({"timeout", "pretimeout", "keepalive", "control", "timeleft"})
"""Per-watchdog nodes the guest may write."""

DOM0_LEAVES = frozenset({"action", "nowayout"})
"""Per-watchdog nodes only domain 0 may write (the guest reads them)."""

DAEMON_LEAVES = frozenset({"state", "fired"})
"""Per-watchdog nodes only the daemon writes."""

BOOT_LEAVES = ("watchdog", "time", "action", "result")
"""Children of ``bootstatus``: which watchdog fired, when (monotonic ms), what was done."""

_MS = 1_000_000

_COMPACT_MIN = 1024  # below this many heap entries, stale ones are left to pop


def canonical_action(name: str) -> str | None:
    """The QEMU-vocabulary action for ``name`` (an action or a Xen alias), else None."""
    if name in ACTIONS:
        return name
    return ALIASES.get(name)


class Dog(Fields):
    """One watchdog."""

    __slots__ = (
        "action",
        "deadline",
        "expect_close",
        "fired",
        "nowayout",
        "owner",
        "pretimeout_ms",
        "state",
        "timeout_ms",
        "token",
    )
    timeout_ms: int
    pretimeout_ms: int
    state: str
    deadline: int
    """Monotonic ns of the expiry while running (armed or pretimeout), else 0."""
    owner: int
    """Id of the guest connection that armed it (0: none); its close is a "close"."""
    expect_close: bool
    """The owner's last keepalive held a 'V': its close disarms (magic close)."""
    nowayout: bool
    action: str
    """Override of the domain's action ("" inherits)."""
    fired: int
    token: int

    def __init__(
        self,
        timeout_ms: int,
        pretimeout_ms: int = 0,
        state: str = DISARMED,
        deadline: int = 0,
        owner: int = 0,
        expect_close: bool = False,
        nowayout: bool = False,
        action: str = "",
        fired: int = 0,
        token: int = 0,
    ) -> None:
        self.timeout_ms = timeout_ms
        self.pretimeout_ms = pretimeout_ms
        self.state = state
        self.deadline = deadline
        self.owner = owner
        self.expect_close = expect_close
        self.nowayout = nowayout
        self.action = action
        self.fired = fired
        self.token = token

    @property
    def running(self) -> bool:
        """Armed, or armed and past the pretimeout."""
        return self.state in (ARMED, PRETIMEOUT)

    def next_event(self) -> int | None:
        """When this watchdog next needs the timer: pretimeout, then expiry (ns)."""
        if self.state == ARMED and self.pretimeout_ms:
            return self.deadline - self.pretimeout_ms * _MS
        if self.running:
            return self.deadline
        return None


class DomainDogs(Fields):
    """The watchdogs of one domain, its default action and its last expiry."""

    __slots__ = (
        "action",
        "dogs",
        "last_action",
        "last_fired",
        "last_result",
        "last_time_ns",
        "qmp",
        "seq",
    )
    dogs: list[Dog]
    action: str
    """The domain's default action ("" inherits the daemon's)."""
    qmp: str
    """Path of the QMP socket of the domain's QEMU ("" none)."""
    last_fired: int
    last_time_ns: int
    last_action: str
    last_result: str
    seq: int
    """Counts expiries; a backend result names the expiry it belongs to."""

    def __init__(
        self,
        dogs: list[Dog],
        action: str = "",
        qmp: str = "",
        last_fired: int = -1,
        last_time_ns: int = 0,
        last_action: str = "",
        last_result: str = "",
        seq: int = 0,
    ) -> None:
        self.dogs = dogs
        self.action = action
        self.qmp = qmp
        self.last_fired = last_fired
        self.last_time_ns = last_time_ns
        self.last_action = last_action
        self.last_result = last_result
        self.seq = seq


class WatchdogState(Fields):
    """All watchdog state and settings (part of ``State``)."""

    __slots__ = (
        "default_action",
        "default_timeout_ms",
        "domains",
        "heap",
        "max_timeout_ms",
        "min_timeout_ms",
        "next_token",
        "per_domain",
    )
    per_domain: int
    min_timeout_ms: int
    max_timeout_ms: int
    default_timeout_ms: int
    default_action: str
    domains: dict[int, DomainDogs]
    heap: list[tuple[int, int, int, int]]
    """``(when ns, domid, slot, token)``, a min-heap; stale entries are skipped."""
    next_token: int

    def __init__(
        self,
        per_domain: int = 2,
        min_timeout_ms: int = 10,
        max_timeout_ms: int = 86_400_000,
        default_timeout_ms: int = 60_000,
        default_action: str = "reset",
        domains: dict[int, DomainDogs] | None = None,
        heap: list[tuple[int, int, int, int]] | None = None,
        next_token: int = 1,
    ) -> None:
        self.per_domain = per_domain
        self.min_timeout_ms = min_timeout_ms
        self.max_timeout_ms = max_timeout_ms
        self.default_timeout_ms = default_timeout_ms
        self.default_action = default_action
        self.domains = {} if domains is None else domains
        self.heap = [] if heap is None else heap
        self.next_token = next_token


def base_of(domid: int) -> str:
    """The watchdog directory of domain ``domid``."""
    return f"/local/domain/{domid}/watchdog"


def _parse(path: str) -> tuple[int, list[str]] | None:
    """``(domid, components below watchdog/)`` for a path in a watchdog subtree."""
    if not path.startswith("/local/domain/"):
        return None
    parts = path.split("/")
    if len(parts) < 5 or parts[4] != "watchdog" or not parts[3].isdigit():
        return None
    return int(parts[3]), parts[5:]


def _parse_ms(value: bytes) -> int:
    if not value.isdigit() or len(value) > 12:
        raise XsError("EINVAL")
    return int(value)


class Watchdogs:
    """The watchdog feature: an engine observer plus a write check (see the module doc)."""

    def __init__(self) -> None:
        # The heap size above which a schedule first drops stale entries (not state: a
        # new process starts from the minimum and finds its own level).
        self._compact_above = _COMPACT_MIN

    # ------------------------------------------------------------------ schema

    def _nodes(self, domid: int, dd: DomainDogs) -> list[tuple[str, bytes, P.Perms]]:
        """Every node of a domain's watchdogs: path, value from the state, permissions."""
        guest_r = P.intern(((P.NONE, 0), (P.READ, domid)))
        guest_rw = P.intern(((P.NONE, 0), (P.BOTH, domid)))
        dom0 = P.intern(((P.NONE, 0),))
        base = base_of(domid)
        nodes = [
            (base, b"", guest_r),
            (f"{base}/action", dd.action.encode(), guest_r),
            (f"{base}/qmp", dd.qmp.encode(), dom0),
            (f"{base}/bootstatus", b"1" if dd.last_fired >= 0 else b"0", guest_r),
        ]
        boot = self._boot_values(dd)
        nodes.extend((f"{base}/bootstatus/{k}", boot[k], guest_r) for k in BOOT_LEAVES)
        for slot, dog in enumerate(dd.dogs):
            top = f"{base}/{slot}"
            nodes.append((top, b"", guest_r))
            for leaf, value in self._dog_values(dog, 0).items():
                perms = guest_rw if leaf in GUEST_LEAVES else guest_r
                nodes.append((f"{top}/{leaf}", value, perms))
        return nodes

    @staticmethod
    def _boot_values(dd: DomainDogs) -> dict[str, bytes]:
        if dd.last_fired < 0:
            return dict.fromkeys(BOOT_LEAVES, b"")
        return {
            "watchdog": f"{dd.last_fired}".encode(),
            "time": f"{dd.last_time_ns // _MS}".encode(),
            "action": dd.last_action.encode(),
            "result": dd.last_result.encode(),
        }

    @staticmethod
    def _dog_values(dog: Dog, now: int) -> dict[str, bytes]:
        return {
            "timeout": f"{dog.timeout_ms}".encode(),
            "pretimeout": f"{dog.pretimeout_ms}".encode(),
            "keepalive": b"",
            "control": b"",
            "timeleft": _timeleft(dog, now),
            "state": dog.state.encode(),
            "action": dog.action.encode(),
            "nowayout": b"1" if dog.nowayout else b"0",
            "fired": f"{dog.fired}".encode(),
        }

    def provision(self, engine: Engine, domid: int) -> None:
        """Create the watchdogs of a newly introduced domain, and their nodes."""
        st = engine.state.watchdogs
        if domid == 0 or st.per_domain == 0:
            return  # no watchdogs: the store stays exactly as a plain xenstored's
        engine.state.special_perms.setdefault(SPECIAL, P.DEFAULT)
        if domid not in st.domains:
            st.domains[domid] = DomainDogs(
                [Dog(st.default_timeout_ms) for _ in range(st.per_domain)]
            )
        self._restore_nodes(engine, domid)

    def _restore_nodes(self, engine: Engine, domid: int) -> None:
        """(Re)create the domain's watchdog nodes that are missing or have wrong perms."""
        dd = engine.state.watchdogs.domains[domid]
        tree = engine.state.tree
        view = DirectView(tree)
        for path, value, perms in self._nodes(domid, dd):
            node = tree.nodes.get(path)
            if node is None:
                self._fire(engine, ops.write(view, ops.DOM0, path, value))
                node = tree.nodes[path]
            if node.perms != perms:
                self._fire(engine, ops.set_perms(view, ops.DOM0, path, perms))

    @staticmethod
    def _fire(engine: Engine, events: list[ops.Event]) -> None:
        for path, exact, old in events:
            engine.fire(path, exact, old)

    def _set(self, engine: Engine, path: str, value: bytes) -> None:
        """Write a node as the daemon (only if the value changes) and fire its watches."""
        tree = engine.state.tree
        node = tree.nodes.get(path)
        if node is not None and node.value == value:
            return
        self._fire(engine, ops.write(DirectView(tree), ops.DOM0, path, value))

    def _set_dog(self, engine: Engine, domid: int, slot: int, *leaves: str) -> None:
        dog = engine.state.watchdogs.domains[domid].dogs[slot]
        values = self._dog_values(dog, engine.now)
        top = f"{base_of(domid)}/{slot}"
        for leaf in leaves:
            self._set(engine, f"{top}/{leaf}", values[leaf])

    # ------------------------------------------------------------------ timers

    def _schedule(self, engine: Engine, domid: int, slot: int, dog: Dog) -> None:
        st = engine.state.watchdogs
        dog.token = st.next_token
        st.next_token += 1
        when = dog.next_event()
        if when is None:
            return
        heap = st.heap
        if len(heap) > self._compact_above:
            # Every kick leaves its old entry behind; drop them all once they are most of
            # the heap. The bar follows the live count as of the last compaction, so a
            # kick never counts the watchdogs itself (that is O(domains)).
            self._compact(st)
            heap = st.heap
            self._compact_above = max(_COMPACT_MIN, 4 * len(heap))
        heapq.heappush(heap, (when, domid, slot, dog.token))
        if heap[0][0] == when:
            engine.effects.append(TimerChanged())

    @staticmethod
    def _compact(st: WatchdogState) -> None:
        live = []
        for domid, dd in st.domains.items():
            for slot, dog in enumerate(dd.dogs):
                when = dog.next_event()
                if when is not None:
                    live.append((when, domid, slot, dog.token))
        heapq.heapify(live)
        st.heap = live

    @staticmethod
    def _live(st: WatchdogState, entry: tuple[int, int, int, int]) -> Dog | None:
        when, domid, slot, token = entry
        dd = st.domains.get(domid)
        if dd is None or slot >= len(dd.dogs):
            return None
        dog = dd.dogs[slot]
        if dog.token != token or dog.next_event() != when:
            return None
        return dog

    def next_deadline(self, engine: Engine) -> int | None:
        """The earliest pretimeout or expiry (monotonic ns), if any watchdog runs."""
        st = engine.state.watchdogs
        heap = st.heap
        while heap and self._live(st, heap[0]) is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def tick(self, engine: Engine) -> None:
        """Act on every pretimeout and expiry at or before ``engine.now``."""
        st = engine.state.watchdogs
        heap = st.heap
        now = engine.now
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            dog = self._live(st, entry)
            if dog is None:
                continue
            _, domid, slot, _ = entry
            if dog.state == ARMED and dog.pretimeout_ms and entry[0] < dog.deadline:
                dog.state = PRETIMEOUT
                self._schedule(engine, domid, slot, dog)
                engine.log(
                    f"watchdog: domain {domid} watchdog {slot}: pretimeout "
                    f"({dog.pretimeout_ms} ms before expiry)"
                )
                self._set_dog(engine, domid, slot, "state", "timeleft")
            else:
                self.expire(engine, domid, slot)

    # ------------------------------------------------------------------ transitions

    def arm(self, engine: Engine, domid: int, slot: int, owner: int = 0) -> None:
        """Start (or restart) the countdown with the watchdog's timeout."""
        dog = engine.state.watchdogs.domains[domid].dogs[slot]
        was = dog.state
        dog.state = ARMED
        dog.deadline = engine.now + dog.timeout_ms * _MS
        if owner:
            dog.owner = owner
            dog.expect_close = False
        self._schedule(engine, domid, slot, dog)
        if was != ARMED:
            if was != PRETIMEOUT:
                engine.log(f"watchdog: domain {domid} watchdog {slot}: armed, {dog.timeout_ms} ms")
            self._set_dog(engine, domid, slot, "state", "timeleft")

    def kick(self, engine: Engine, domid: int, slot: int) -> bool:
        """Keepalive: push the expiry a full timeout away. False if not running."""
        dog = engine.state.watchdogs.domains[domid].dogs[slot]
        if not dog.running:
            return False
        self.arm(engine, domid, slot)
        return True

    def disarm(self, engine: Engine, domid: int, slot: int, why: str) -> bool:
        """Stop the countdown; refused (False) under nowayout."""
        dog = engine.state.watchdogs.domains[domid].dogs[slot]
        if not dog.running:
            return True
        if dog.nowayout:
            engine.log(f"watchdog: domain {domid} watchdog {slot}: nowayout, {why} refused")
            return False
        dog.state = DISARMED
        dog.deadline = 0
        dog.owner = 0
        dog.expect_close = False
        self._schedule(engine, domid, slot, dog)
        engine.log(f"watchdog: domain {domid} watchdog {slot}: disarmed ({why})")
        self._set_dog(engine, domid, slot, "state", "timeleft")
        return True

    def set_timeout(self, engine: Engine, domid: int, slot: int, timeout_ms: int) -> None:
        """Change the timeout (clamped to the bounds); a running watchdog restarts with it."""
        st = engine.state.watchdogs
        dog = st.domains[domid].dogs[slot]
        dog.timeout_ms = min(max(timeout_ms, st.min_timeout_ms), st.max_timeout_ms)
        if dog.pretimeout_ms >= dog.timeout_ms:
            dog.pretimeout_ms = 0
            self._set_dog(engine, domid, slot, "pretimeout")
        self._set_dog(engine, domid, slot, "timeout")
        if dog.running:
            self.arm(engine, domid, slot)

    def external_kick(self, engine: Engine, domid: int, slot: int, source: str) -> bool:
        """A kick from outside the store (sd_notify, heartbeat): arms a stopped watchdog,
        as the Advanced Watch Dog is armed by its first message. False if no such one."""
        dd = engine.state.watchdogs.domains.get(domid)
        if dd is None or not 0 <= slot < len(dd.dogs):
            return False
        if not dd.dogs[slot].running:
            engine.log(f"watchdog: domain {domid} watchdog {slot}: first kick from {source}")
        self.arm(engine, domid, slot)
        return True

    def exists(self, engine: Engine, domid: int, slot: int) -> bool:
        """True if domain ``domid`` has watchdog ``slot``."""
        dd = engine.state.watchdogs.domains.get(domid)
        return dd is not None and 0 <= slot < len(dd.dogs)

    def expire(self, engine: Engine, domid: int, slot: int, why: str = "expired") -> None:
        """The watchdog fires now: record it, perform its action, tell the watchers."""
        st = engine.state.watchdogs
        dd = st.domains[domid]
        dog = dd.dogs[slot]
        late_us = (engine.now - dog.deadline) // 1000 if dog.running else 0
        dog.state = EXPIRED
        dog.deadline = 0
        dog.owner = 0
        dog.expect_close = False
        dog.fired += 1
        self._schedule(engine, domid, slot, dog)
        action = (
            canonical_action(dog.action)
            or canonical_action(dd.action)
            or canonical_action(st.default_action)
            or "reset"
        )
        dd.seq += 1
        dd.last_fired = slot
        dd.last_time_ns = engine.now
        dd.last_action = action
        base = base_of(domid)
        if action in GRACEFUL:
            value = GRACEFUL[action]
            self._fire(
                engine,
                ops.write(
                    DirectView(engine.state.tree),
                    ops.DOM0,
                    f"/local/domain/{domid}/control/shutdown",
                    value.encode(),
                ),
            )
            dd.last_result = f"ok: control/shutdown={value}"
        elif action in HARD:
            dd.last_result = "pending"
            engine.effects.append(WatchdogAction(domid, slot, action, dd.seq, dd.qmp))
        else:
            dd.last_result = "ok: logged" if action == "debug" else "ok: none"
        engine.log(
            f"watchdog: domain {domid} watchdog {slot} {why} "
            f"(timeout {dog.timeout_ms} ms, {late_us} us late): action {action}"
        )
        self._set_dog(engine, domid, slot, "state", "timeleft", "fired")
        self._set(engine, f"{base}/bootstatus", b"1")
        for leaf, raw in self._boot_values(dd).items():
            self._set(engine, f"{base}/bootstatus/{leaf}", raw)
        engine.fire(SPECIAL)

    def action_done(self, engine: Engine, domid: int, seq: int, ok: bool, detail: str) -> None:
        """A backend finished the action of expiry ``seq`` of ``domid``: record the result."""
        dd = engine.state.watchdogs.domains.get(domid)
        result = f"{'ok' if ok else 'failed'}: {detail}"
        engine.log(f"watchdog: domain {domid} action {result}")
        if dd is None or dd.seq != seq:
            return  # the domain went, or a newer expiry owns the status
        dd.last_result = result
        self._set(engine, f"{base_of(domid)}/bootstatus/result", result.encode())
        engine.fire(SPECIAL)

    # ------------------------------------------------------------------ requests

    def check(self, engine: Engine, conn: Connection, path: str, value: bytes | None) -> None:
        """Refuse a write (or, ``value`` None, a removal) of a watchdog node that would
        break the watchdog's rules. Runs before the change; callers the node's permissions
        refuse anyway are left to them, so they learn nothing more.

        Raises:
            XsError: EINVAL for a bad value, EPERM where nowayout forbids it, EACCES for a
                node only the daemon writes or a removal by a guest.
        """
        parsed = _parse(path)
        if parsed is None:
            return
        domid, rest = parsed
        dd = engine.state.watchdogs.domains.get(domid)
        node = engine.state.tree.nodes.get(path)
        if dd is None or node is None:
            return
        if not conn.privileged:
            domain = engine.state.domains.get(conn.domid)
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
        st = engine.state.watchdogs
        if leaf == "timeout":
            ms = _parse_ms(value)
            if not st.min_timeout_ms <= ms <= st.max_timeout_ms or dog.pretimeout_ms >= ms:
                raise XsError("EINVAL")
        elif leaf == "pretimeout":
            ms = _parse_ms(value)
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

    def on_change(self, engine: Engine, conn: Connection | None, events: list[ops.Event]) -> None:
        """Apply committed writes to watchdog nodes; put back removed nodes."""
        st = engine.state.watchdogs
        if not st.domains:
            return  # no domain has watchdogs: nothing a change can mean to them
        restore: set[int] = set()
        homes: set[int] = set()  # domains whose home, or an ancestor of it, changed
        tree = engine.state.tree
        for path, _, _ in events:
            parsed = _parse(path)
            if parsed is None:
                if path.startswith("/local/domain/"):
                    parts = path.split("/")
                    if len(parts) == 4 and parts[3].isdigit():
                        homes.add(int(parts[3]))
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
            self._apply(engine, conn, domid, dd, rest, node.value)
        for domid in sorted(homes):
            if self._home_changed(engine, conn, domid):
                restore.discard(domid)
        for domid in sorted(restore):
            if domid in st.domains:
                self._restore_nodes(engine, domid)

    def _home_changed(self, engine: Engine, conn: Connection | None, domid: int) -> bool:
        """The home of ``domid`` was written or removed; True if its watchdogs ended.

        The toolstack (a privileged connection) removing an introduced domain's home is
        taking the domain down, as libxl does before the domain dies: its watchdogs end
        there, rather than making the home again for RELEASE to leave behind. A home made
        (again) while the domain is introduced gets them (back). A guest removing a home
        it owns cannot take its watchdogs out: they come back.
        """
        st = engine.state.watchdogs
        if f"/local/domain/{domid}" in engine.state.tree.nodes:
            domain = engine.state.domains.get(domid)
            if domid not in st.domains and domain is not None and domain.introduced:
                self.provision(engine, domid)
            return False
        if domid not in st.domains or not (conn is None or conn.privileged):
            return False
        del st.domains[domid]  # its timers' heap entries are dropped when met
        engine.log(f"watchdog: domain {domid}: home removed, its watchdogs end")
        return True

    def _apply(
        self,
        engine: Engine,
        conn: Connection | None,
        domid: int,
        dd: DomainDogs,
        rest: list[str],
        value: bytes,
    ) -> None:
        text = value.decode("latin-1")
        base = base_of(domid)
        if rest == ["action"]:
            if not value or canonical_action(text):
                dd.action = text
            else:
                self._set(engine, f"{base}/action", dd.action.encode())
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
                self.set_timeout(engine, domid, slot, int(value))
            else:
                self._set_dog(engine, domid, slot, "timeout")
        elif leaf == "pretimeout":
            ms = int(value) if value.isdigit() and len(value) <= 12 else -1
            if not 0 <= ms < dog.timeout_ms:
                self._set_dog(engine, domid, slot, "pretimeout")
                return
            dog.pretimeout_ms = ms
            if dog.running:
                left = dog.deadline - engine.now
                dog.state = PRETIMEOUT if ms and left <= ms * _MS else ARMED
                self._schedule(engine, domid, slot, dog)
                self._set_dog(engine, domid, slot, "state")
        elif leaf == "control":
            if value == b"arm":
                self.arm(engine, domid, slot, conn.id if conn is not None and guest else 0)
            elif value == b"disarm":
                self.disarm(engine, domid, slot, "explicit disarm")
        elif leaf == "keepalive":
            kicked = self.kick(engine, domid, slot)
            if kicked and guest and conn is not None and conn.id == dog.owner:
                dog.expect_close = b"V" in value
        elif leaf == "timeleft":
            self._set_dog(engine, domid, slot, "timeleft")
        elif leaf == "action":
            if not value or canonical_action(text):
                dog.action = text
            else:
                self._set_dog(engine, domid, slot, "action")
        elif leaf == "nowayout":
            if value == b"1":
                dog.nowayout = True
            elif value == b"0" and not dog.running:
                dog.nowayout = False
            self._set_dog(engine, domid, slot, "nowayout")
        elif leaf in DAEMON_LEAVES:
            self._set_dog(engine, domid, slot, leaf)

    def on_disconnect(self, engine: Engine, conn: Connection) -> None:
        """Magic close: the arming connection went; with a 'V' last written, disarm."""
        if conn.privileged:
            return
        dd = engine.state.watchdogs.domains.get(conn.domid)
        if dd is None:
            return
        for slot, dog in enumerate(dd.dogs):
            if dog.owner != conn.id:
                continue
            dog.owner = 0
            if not dog.running:
                continue
            if dog.expect_close:
                self.disarm(engine, conn.domid, slot, "magic close")
            else:
                engine.log(
                    f"watchdog: domain {conn.domid} watchdog {slot}: closed without "
                    "magic close, still running"
                )
            dog.expect_close = False

    def on_introduce(self, engine: Engine, domid: int) -> None:
        """A domain was introduced: give it its watchdogs."""
        self.provision(engine, domid)

    def on_release(self, engine: Engine, domid: int) -> None:
        """A domain was released: its watchdogs stop and their nodes go."""
        st = engine.state.watchdogs
        if st.domains.pop(domid, None) is None:
            return
        base = base_of(domid)
        if base in engine.state.tree.nodes:
            self._fire(engine, ops.rm(DirectView(engine.state.tree), ops.DOM0, base))


def _timeleft(dog: Dog, now: int) -> bytes:
    if not dog.running:
        return b"0"
    return f"{max(0, dog.deadline - now) // _MS}".encode()


def of(engine: Engine) -> Watchdogs:
    """The engine's watchdog feature."""
    for observer in engine.observers:
        if isinstance(observer, Watchdogs):
            return observer
    raise LookupError("the engine has no watchdogs")
