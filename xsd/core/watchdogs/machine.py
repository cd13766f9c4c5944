"""The watchdogs' state machine: arming, kicking, disarming, expiry, and their nodes.

A :class:`Machine` changes the watchdogs' data (``xsd.core.watchdog_state``) and keeps
their nodes (``layout``) in step, writing them as the daemon (domain 0) through the
:class:`~xsd.core.context.Context` it was given, which fires their watches. It reads
the time from the context (the core reads no clock) and never performs I/O: a hard
action leaves as an effect, its result comes back through :meth:`Machine.action_done`.
"""

from __future__ import annotations

from xsd.core import ops
from xsd.core import perms as P
from xsd.core.context import Context, Observer
from xsd.core.effects import TimerChanged, WatchdogAction
from xsd.core.views import DirectView
from xsd.core.watchdog_state import (
    ARMED,
    DISARMED,
    EXPIRED,
    GRACEFUL,
    HARD,
    MS,
    PRETIMEOUT,
    SPECIAL,
    Dog,
    DomainDogs,
    canonical_action,
)
from xsd.core.watchdogs import layout, timers


class Machine(Observer):
    """The watchdogs of one store (see the module doc)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._timers = timers.Timers()

    # ------------------------------------------------------------------ nodes

    def provision(self, domid: int) -> None:
        """Create the watchdogs of a newly introduced domain, and their nodes."""
        st = self.ctx.state.watchdogs
        if domid == 0 or st.per_domain == 0:
            return  # no watchdogs: the store stays exactly as a plain xenstored's
        self.ctx.state.special_perms.setdefault(SPECIAL, P.DEFAULT)
        if domid not in st.domains:
            st.domains[domid] = DomainDogs(
                [Dog(st.default_timeout_ms) for _ in range(st.per_domain)]
            )
        self.restore_nodes(domid)

    def restore_nodes(self, domid: int) -> None:
        """(Re)create the domain's watchdog nodes that are missing or have wrong perms."""
        dd = self.ctx.state.watchdogs.domains[domid]
        tree = self.ctx.state.tree
        view = DirectView(tree)
        for path, value, perms in layout.nodes(domid, dd):
            node = tree.nodes.get(path)
            if node is None:
                self.fire(ops.write(view, ops.DOM0, path, value))
                node = tree.nodes[path]
            if node.perms != perms:
                self.fire(ops.set_perms(view, ops.DOM0, path, perms))

    def fire(self, events: list[ops.Event]) -> None:
        """Fire the watches of the daemon's own node changes (no observer is told)."""
        for path, exact, old in events:
            self.ctx.fire(path, exact, old)

    def set(self, path: str, value: bytes) -> None:
        """Write a node as the daemon (only if the value changes) and fire its watches."""
        tree = self.ctx.state.tree
        node = tree.nodes.get(path)
        if node is not None and node.value == value:
            return
        self.fire(ops.write(DirectView(tree), ops.DOM0, path, value))

    def set_dog(self, domid: int, slot: int, *leaves: str) -> None:
        """Rewrite the given leaves of a watchdog from its state (where they changed)."""
        dog = self.ctx.state.watchdogs.domains[domid].dogs[slot]
        values = layout.dog_values(dog, self.ctx.now)
        top = f"{layout.base_of(domid)}/{slot}"
        for leaf in leaves:
            self.set(f"{top}/{leaf}", values[leaf])

    # ------------------------------------------------------------------ timers

    def schedule(self, domid: int, slot: int, dog: Dog) -> None:
        """Put the watchdog's next event (pretimeout or expiry) in the timers."""
        if self._timers.schedule(self.ctx.state.watchdogs, domid, slot, dog):
            self.ctx.effects.append(TimerChanged())

    def next_deadline(self) -> int | None:
        """The earliest pretimeout or expiry (monotonic ns), if any watchdog runs."""
        return timers.next_deadline(self.ctx.state.watchdogs)

    def tick(self) -> None:
        """Act on every pretimeout and expiry at or before ``now``."""
        for when, domid, slot, dog in timers.due(self.ctx.state.watchdogs, self.ctx.now):
            if dog.state == ARMED and dog.pretimeout_ms and when < dog.deadline:
                dog.state = PRETIMEOUT
                self.schedule(domid, slot, dog)
                self.ctx.log(
                    f"watchdog: domain {domid} watchdog {slot}: pretimeout "
                    f"({dog.pretimeout_ms} ms before expiry)"
                )
                self.set_dog(domid, slot, "state", "timeleft")
            else:
                self.expire(domid, slot)

    # ------------------------------------------------------------------ transitions

    def arm(self, domid: int, slot: int, owner: int = 0) -> None:
        """Start (or restart) the countdown with the watchdog's timeout."""
        dog = self.ctx.state.watchdogs.domains[domid].dogs[slot]
        was = dog.state
        dog.state = ARMED
        dog.deadline = self.ctx.now + dog.timeout_ms * MS
        if owner:
            dog.owner = owner
            dog.expect_close = False
        self.schedule(domid, slot, dog)
        if was != ARMED:
            if was != PRETIMEOUT:
                self.ctx.log(
                    f"watchdog: domain {domid} watchdog {slot}: armed, {dog.timeout_ms} ms"
                )
            self.set_dog(domid, slot, "state", "timeleft")

    def kick(self, domid: int, slot: int) -> bool:
        """Keepalive: push the expiry a full timeout away. False if not running."""
        dog = self.ctx.state.watchdogs.domains[domid].dogs[slot]
        if not dog.running:
            return False
        self.arm(domid, slot)
        return True

    def disarm(self, domid: int, slot: int, why: str) -> bool:
        """Stop the countdown; refused (False) under nowayout."""
        dog = self.ctx.state.watchdogs.domains[domid].dogs[slot]
        if not dog.running:
            return True
        if dog.nowayout:
            self.ctx.log(f"watchdog: domain {domid} watchdog {slot}: nowayout, {why} refused")
            return False
        dog.state = DISARMED
        dog.deadline = 0
        dog.owner = 0
        dog.expect_close = False
        self.schedule(domid, slot, dog)
        self.ctx.log(f"watchdog: domain {domid} watchdog {slot}: disarmed ({why})")
        self.set_dog(domid, slot, "state", "timeleft")
        return True

    def set_timeout(self, domid: int, slot: int, timeout_ms: int) -> None:
        """Change the timeout (clamped to the bounds); a running watchdog restarts with it."""
        st = self.ctx.state.watchdogs
        dog = st.domains[domid].dogs[slot]
        dog.timeout_ms = min(max(timeout_ms, st.min_timeout_ms), st.max_timeout_ms)
        if dog.pretimeout_ms >= dog.timeout_ms:
            dog.pretimeout_ms = 0
            self.set_dog(domid, slot, "pretimeout")
        self.set_dog(domid, slot, "timeout")
        if dog.running:
            self.arm(domid, slot)

    def external_kick(self, domid: int, slot: int, source: str) -> bool:
        """A kick from outside the store (sd_notify, heartbeat): arms a stopped watchdog,
        as the Advanced Watch Dog is armed by its first message. False if no such one."""
        dd = self.ctx.state.watchdogs.domains.get(domid)
        if dd is None or not 0 <= slot < len(dd.dogs):
            return False
        if not dd.dogs[slot].running:
            self.ctx.log(f"watchdog: domain {domid} watchdog {slot}: first kick from {source}")
        self.arm(domid, slot)
        return True

    def exists(self, domid: int, slot: int) -> bool:
        """True if domain ``domid`` has watchdog ``slot``."""
        dd = self.ctx.state.watchdogs.domains.get(domid)
        return dd is not None and 0 <= slot < len(dd.dogs)

    def expire(self, domid: int, slot: int, why: str = "expired") -> None:
        """The watchdog fires now: record it, perform its action, tell the watchers."""
        st = self.ctx.state.watchdogs
        dd = st.domains[domid]
        dog = dd.dogs[slot]
        late_us = (self.ctx.now - dog.deadline) // 1000 if dog.running else 0
        dog.state = EXPIRED
        dog.deadline = 0
        dog.owner = 0
        dog.expect_close = False
        dog.fired += 1
        self.schedule(domid, slot, dog)
        action = (
            canonical_action(dog.action)
            or canonical_action(dd.action)
            or canonical_action(st.default_action)
            or "reset"
        )
        dd.seq += 1
        dd.last_fired = slot
        dd.last_time_ns = self.ctx.now
        dd.last_action = action
        base = layout.base_of(domid)
        if action in GRACEFUL:
            value = GRACEFUL[action]
            self.fire(
                ops.write(
                    DirectView(self.ctx.state.tree),
                    ops.DOM0,
                    f"/local/domain/{domid}/control/shutdown",
                    value.encode(),
                ),
            )
            dd.last_result = f"ok: control/shutdown={value}"
        elif action in HARD:
            dd.last_result = "pending"
            self.ctx.effects.append(WatchdogAction(domid, slot, action, dd.seq, dd.qmp))
        else:
            dd.last_result = "ok: logged" if action == "debug" else "ok: none"
        self.ctx.log(
            f"watchdog: domain {domid} watchdog {slot} {why} "
            f"(timeout {dog.timeout_ms} ms, {late_us} us late): action {action}"
        )
        self.set_dog(domid, slot, "state", "timeleft", "fired")
        self.set(f"{base}/bootstatus", b"1")
        for leaf, raw in layout.boot_values(dd).items():
            self.set(f"{base}/bootstatus/{leaf}", raw)
        self.ctx.fire(SPECIAL)

    def action_done(self, domid: int, seq: int, ok: bool, detail: str) -> None:
        """A backend finished the action of expiry ``seq`` of ``domid``: record the result."""
        dd = self.ctx.state.watchdogs.domains.get(domid)
        result = f"{'ok' if ok else 'failed'}: {detail}"
        self.ctx.log(f"watchdog: domain {domid} action {result}")
        if dd is None or dd.seq != seq:
            return  # the domain went, or a newer expiry owns the status
        dd.last_result = result
        self.set(f"{layout.base_of(domid)}/bootstatus/result", result.encode())
        self.ctx.fire(SPECIAL)
