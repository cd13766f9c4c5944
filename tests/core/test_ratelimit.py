"""How a guest's connections share its write credit (its memory: ``test_quota.py``).

Each test runs a daemon of its own and drives it over the guest's own socket:

* a write in a transaction costs write credit as a direct one does;
* the connections of a rate-limited guest take turns, so one that floods does not starve
  another (a watchdog keepalive, say).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tests.support.domains import OK, Env, pipeline, write_req
from xsd_client.protocol import Op, encode


def _home(domid: int) -> str:
    return f"/local/domain/{domid}"


def test_writes_in_a_transaction_cost_what_direct_writes_cost(fresh: Callable[..., Env]) -> None:
    env = fresh("--write-rate", "100", "--write-burst", "10")
    d = 24
    guest = env.introduce(d)

    def seconds(run: Callable[[], None]) -> float:
        time.sleep(0.3)  # the burst refills
        start = time.monotonic()
        run()
        return time.monotonic() - start

    def direct() -> None:
        assert all(r == OK for r in pipeline(guest, [write_req(f"w{i}") for i in range(100)]))

    def transactional(commit: str) -> Callable[[], None]:
        def run() -> None:
            tx = int(guest.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
            writes = [write_req(f"t{i}") for i in range(100)]
            assert all(r == OK for r in pipeline(guest, writes, tx_id=tx))
            assert guest.call(Op.TRANSACTION_END, commit, tx_id=tx) == OK

        return run

    # 100 writes at 100/s after a burst of 10: ~0.9 s, however they are made (a load on
    # the machine can only make it longer; without the charge a transaction takes ~0.05 s)
    plain = seconds(direct)
    committed = seconds(transactional("T"))
    aborted = seconds(transactional("F"))
    assert plain > 0.6, plain
    assert committed > 0.6, (plain, committed)
    assert aborted > 0.6, (plain, aborted)
    # a write is still answered at the rate, and domain 0 is not held with the guest
    assert guest.write("after", "v") == OK
    env.served()


def test_connections_of_a_rate_limited_guest_take_turns(fresh: Callable[..., Env]) -> None:
    env = fresh("--write-rate", "40", "--write-burst", "1")
    d = 25
    flooder = env.introduce(d)
    keepalive = env.guest(d)
    stop = threading.Event()
    flooded = [0]

    def flood() -> None:
        batch = b"".join(encode(Op.WRITE, i, 0, f"f{i}\0x".encode()) for i in range(20))
        while not stop.is_set():
            flooder.send_raw(batch)
            for _ in range(20):
                flooder.recv_reply(30)
            flooded[0] += 20

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        time.sleep(0.5)  # the flood is on: the domain is in debt
        kept = 0
        latencies = []
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            start = time.monotonic()
            assert keepalive.write("keepalive", f"{kept}") == OK
            latencies.append(time.monotonic() - start)
            kept += 1
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)
    # 3 s at 40 writes/s shared by two connections in turns: the keepalive, which asks
    # for at most one write per ~0.1 s, gets nearly every one of them through
    assert kept >= 15, (kept, flooded[0], latencies)
    assert max(latencies) < 1.0, latencies
    assert flooded[0] > 0
    env.served()


def test_a_guests_watchdog_keepalive_is_not_starved_by_its_own_flood(
    fresh: Callable[..., Env],
) -> None:
    env = fresh("--watchdogs-per-domain", "1", "--write-rate", "40", "--write-burst", "1")
    d = 27
    flooder = env.introduce(d)
    keeper = env.guest(d)
    wd = f"{_home(d)}/watchdog/0"
    assert env.dom0.write(f"{wd}/action", "none") == OK
    assert keeper.write(f"{wd}/timeout", "1000") == OK
    assert keeper.write(f"{wd}/control", "arm") == OK
    stop = threading.Event()

    def flood() -> None:
        batch = b"".join(encode(Op.WRITE, i, 0, f"f{i}\0x".encode()) for i in range(20))
        while not stop.is_set():
            flooder.send_raw(batch)
            for _ in range(20):
                flooder.recv_reply(30)

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        end = time.monotonic() + 3.0  # three timeouts' worth
        while time.monotonic() < end:
            assert keeper.write(f"{wd}/keepalive", "1") == OK
            time.sleep(0.25)
        assert keeper.call(Op.READ, f"{wd}/state") == ("OK", b"armed")
        assert keeper.call(Op.READ, f"{wd}/fired") == ("OK", b"0")
    finally:
        stop.set()
        thread.join(30)
    assert env.dom0.write(f"{wd}/control", "disarm") == OK
