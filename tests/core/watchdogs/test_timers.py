"""The watchdog core without a daemon: deadlines, lazy heap, live-update round trip."""

from __future__ import annotations

import pytest

from handover.records import dump, load
from xsd.core.engine import Engine
from xsd.core.watchdogs import ARMED, EXPIRED, PRETIMEOUT, timers
from xsd.core.watchdogs.feature import of
from xsd_client.protocol import Op, encode

MS = 1_000_000


def _engine(domains: int = 1, per_domain: int = 2) -> Engine:
    engine = Engine()
    engine.state.watchdogs.per_domain = per_domain
    dom0 = engine.connect(0)
    for domid in range(1, domains + 1):
        payload = f"{domid}\0001\0001\0".encode()
        engine.receive(dom0, encode(Op.INTRODUCE, 1, 0, payload), 0)
    return engine


def test_deadlines_are_absolute_and_kicks_leave_stale_entries_behind() -> None:
    engine = _engine()
    wd = of(engine)
    dog = engine.state.watchdogs.domains[1].dogs[0]
    engine.now = 1000 * MS
    wd.set_timeout(1, 0, 500)
    wd.arm(1, 0)
    assert dog.deadline == 1500 * MS
    for t in range(1100, 1500, 100):
        engine.now = t * MS
        assert wd.kick(1, 0)
    assert engine.next_deadline() == 1900 * MS
    engine.tick(1899 * MS)
    assert dog.state == ARMED
    engine.tick(1900 * MS)
    assert dog.state == EXPIRED
    assert engine.next_deadline() is None  # every stale entry was skipped


def test_pretimeout_comes_first_then_expiry() -> None:
    engine = _engine()
    wd = of(engine)
    dog = engine.state.watchdogs.domains[1].dogs[1]
    wd.set_timeout(1, 1, 1000)
    dog.pretimeout_ms = 300
    wd.arm(1, 1)
    assert engine.next_deadline() == 700 * MS
    engine.tick(700 * MS)
    assert dog.state == PRETIMEOUT
    assert engine.next_deadline() == 1000 * MS
    engine.tick(1000 * MS)
    assert dog.state == EXPIRED


def test_the_heap_stays_bounded_under_many_kicks() -> None:
    engine = _engine(domains=10, per_domain=100)
    wd = of(engine)
    st = engine.state.watchdogs
    for domid in range(1, 11):
        for slot in range(100):
            wd.arm(domid, slot)
    for round_ in range(20):
        engine.now = round_ * MS
        for domid in range(1, 11):
            for slot in range(100):
                wd.kick(domid, slot)
    assert len(st.heap) <= 4 * 1000 + 1
    assert engine.next_deadline() == 19 * MS + st.default_timeout_ms * MS


def test_the_heap_bound_follows_the_live_count_down_and_compacts_rarely(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _engine(domains=10, per_domain=100)
    wd = of(engine)
    st = engine.state.watchdogs
    compactions = 0
    compact = timers._compact

    def counting(state: object) -> None:
        nonlocal compactions
        compactions += 1
        compact(state)  # type: ignore[arg-type]

    monkeypatch.setattr(timers, "_compact", counting)
    for domid in range(1, 11):
        for slot in range(100):
            wd.arm(domid, slot)
    for round_ in range(20):  # 20,000 kicks of 1,000 live watchdogs
        engine.now = round_ * MS
        for domid in range(1, 11):
            for slot in range(100):
                wd.kick(domid, slot)
    assert compactions <= 20_000 // 3_000 + 1  # about once per 3,000 stale entries
    for domid in range(2, 11):  # 10 domains -> 1 with live watchdogs
        for slot in range(100):
            wd.disarm(domid, slot, "test")
    for round_ in range(20, 200):  # 18,000 kicks of 100
        engine.now = round_ * MS
        for slot in range(100):
            wd.kick(1, slot)
        assert len(st.heap) <= 4 * 1000 + 1
    # Compacted down to the 100 live ones at least once since: bounded by their count.
    assert len(st.heap) <= 1024 + 100
    assert engine.next_deadline() == 199 * MS + st.default_timeout_ms * MS


def test_armed_watchdogs_survive_a_handover_round_trip() -> None:
    engine = _engine(domains=2)
    wd = of(engine)
    engine.now = 5 * MS
    wd.set_timeout(2, 1, 250)
    wd.arm(2, 1)
    state, _ = load(list(dump(engine.state)))
    again = Engine(state)
    assert again.state.watchdogs == engine.state.watchdogs
    assert again.next_deadline() == 255 * MS
    again.tick(255 * MS)
    assert again.state.watchdogs.domains[2].dogs[1].state == EXPIRED
    assert again.state.tree.nodes["/local/domain/2/watchdog/1/state"].value == b"expired"
