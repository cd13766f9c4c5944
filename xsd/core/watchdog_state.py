"""The watchdogs' data: plain slotted classes, part of the state live update carries.

Nothing here acts: the package ``xsd.core.watchdogs`` (its state machine, timers, node
layout and checks of guest writes) works on these classes.
"""

from __future__ import annotations

from xsd.core.fields import Fields

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

MS = 1_000_000
"""Nanoseconds per millisecond (timeouts are set in ms, deadlines kept in ns)."""


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
            return self.deadline - self.pretimeout_ms * MS
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
