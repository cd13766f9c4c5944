"""Watchdogs hosted in the store: per-domain timers that guests drive with node writes.

Each introduced domain (not domain 0) gets ``per_domain`` watchdogs as nodes under
``/local/domain/<domid>/watchdog/`` (the schema is in the README, section "Watchdogs").
The guest arms, feeds and stops them by writing nodes from its own connection, with the
semantics of the Linux watchdog API; domain 0 chooses what happens on expiry; the daemon
owns the timers, so a guest bug cannot take its own watchdog out. Invariants:

* all watchdog state is plain data in ``State.watchdogs`` (slotted classes of ints, strs
  and bools, dicts, lists of int tuples): live update serializes it with the rest;
* every running timer is an absolute ``CLOCK_MONOTONIC`` deadline in ns; the core never
  reads a clock (the context's ``now`` is the time) and never performs I/O (hard actions leave as
  a :class:`~xsd.core.effects.WatchdogAction` effect, the result comes back via
  ``action_done``);
* the heap holds ``(when, domid, slot, token)`` entries; an entry is live only while its
  watchdog still has that token and that next event time, others are skipped when met
  (lazy deletion), so arming and kicking cost O(log n) and no node write;
* the value of a node a guest may write is always valid: a bad value is refused (EINVAL,
  EPERM) before the write happens, by ``guest.check``; the nodes exist exactly
  while the domain is introduced and has a home, and come back if removed; the
  toolstack removing the home ends them (it is taking the domain down);
* an expiry always leaves the watchdog ``expired`` with its boot status recorded before any
  backend runs; a backend's result only fills in ``bootstatus/result``, matched by sequence
  number, so a late or failed backend never leaves the timer inconsistent;
* the daemon's own node writes are made as domain 0 and fire watches, but never re-enter
  ``guest.apply_changes``.

The data is ``xsd.core.watchdog_state`` (the state holds it; this module re-exports it).
The package: ``layout`` (the nodes), ``timers`` (the heap), ``machine`` (the state
machine), ``guest`` (checks and effects of writes to the nodes), ``feature``
(``install`` and ``of``: the watchdogs registered with an engine).
"""

from xsd.core.watchdog_state import (
    ACTIONS,
    ALIASES,
    ARMED,
    BOOT_LEAVES,
    DAEMON_LEAVES,
    DISARMED,
    DOM0_LEAVES,
    EXPIRED,
    GRACEFUL,
    GUEST_LEAVES,
    HARD,
    PRETIMEOUT,
    SPECIAL,
    Dog,
    DomainDogs,
    WatchdogState,
    canonical_action,
)

__all__ = [
    "ACTIONS",
    "ALIASES",
    "ARMED",
    "BOOT_LEAVES",
    "DAEMON_LEAVES",
    "DISARMED",
    "DOM0_LEAVES",
    "EXPIRED",
    "GRACEFUL",
    "GUEST_LEAVES",
    "HARD",
    "PRETIMEOUT",
    "SPECIAL",
    "Dog",
    "DomainDogs",
    "WatchdogState",
    "canonical_action",
]
