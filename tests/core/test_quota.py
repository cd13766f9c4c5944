"""What one guest may make the daemon hold (its write credit: ``test_ratelimit.py``).

Each test runs a daemon of its own and drives it over the guest's own socket: memory
bounded per domain: the ``output`` quota (replies and watch events queued for all of a
domain's connections), ``transaction-memory`` and ``watch-memory``, visible and settable
as the other quotas are.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable

from tests.support.daemons import XEN_BIN, need_reference
from tests.support.domains import OK, Env, err, pipeline, wait_until, write_req
from tests.support.wire import RawConn
from xsd_client.protocol import Op, encode

MIB = 1024
"""KiB in a MiB (RSS is read in KiB)."""

OWN_MESSAGE = 4096 + 16


def _home(domid: int) -> str:
    return f"/local/domain/{domid}"


def _never_readers(env: Env, domid: int, count: int, token_len: int) -> list[socket.socket]:
    """``count`` connections of ``domid``, each with a watch on the home, never read."""
    path = str(env.daemon.rundir / "domains" / str(domid) / "socket")
    socks = []
    for i in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        token = f"{i:04d}".ljust(token_len, "t")
        sock.sendall(encode(Op.WATCH, 1, 0, f"{_home(domid)}\0{token}\0".encode()))
        socks.append(sock)
    return socks


def _usage(env: Env, domid: int) -> dict[str, int]:
    """``quota <domid>`` as a dict."""
    rows = env.control("quota", domid).splitlines()[1:]
    return {row.split(":")[0].strip(): int(row.split(":")[1]) for row in rows}


def _commit_many(guest: RawConn, domid: int, nodes: int, tag: str) -> tuple[str, bytes]:
    """One transaction writing ``nodes`` nodes (200 to a directory), committed."""
    tx = int(guest.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    writes = [write_req(f"{_home(domid)}/d{j // 200}/{tag}{j % 200}", "v") for j in range(nodes)]
    assert all(r == OK for r in pipeline(guest, writes, tx_id=tx))
    return guest.call(Op.TRANSACTION_END, "T", tx_id=tx)


def test_never_reading_connections_of_one_guest_stay_within_its_output_quota(
    fresh: Callable[..., Env],
) -> None:
    # Events do not time out during the test: only the quota bounds them.
    env = fresh("--event-timeout", "60", "--write-rate", "0")
    d = 20
    guest = env.introduce(d)
    rss_before = env.rss()
    socks = _never_readers(env, d, 128, 1900)
    assert wait_until(lambda: _usage(env, d)["watches"] == 128)
    # 900 nodes x 128 watches x ~2 KB: 230 MB of events if nothing bounded them.
    assert _commit_many(guest, d, 900, "a") == OK
    peak = env.rss()
    assert peak - rss_before < 64 * MIB, (rss_before, peak)
    assert peak < 256 * MIB
    usage = _usage(env, d)
    quota = int(env.dom0.call(Op.GET_QUOTA, "output")[1].rstrip(b"\0"))
    assert quota == 4 << 20
    assert usage["output"] <= quota + 128 * OWN_MESSAGE, usage
    # domain 0 is served, and so is the guest's own connection that reads
    env.served()
    assert guest.call(Op.READ, f"{_home(d)}/d0/a0") == ("OK", b"v")
    # when the guest leaves, what it held is given back
    for sock in socks:
        sock.close()
    guest.close()
    env.release(d)
    assert env.dom0.call(Op.CONTROL, "quota", d) == err("ENOENT")
    assert wait_until(lambda: env.rss() - rss_before < 32 * MIB)


def test_memory_a_guest_made_the_daemon_hold_is_given_back_when_it_leaves(
    fresh: Callable[..., Env],
) -> None:
    # No output quota: the queued events do make the daemon grow (~115 MB) ...
    env = fresh("--event-timeout", "60", "--quota", "output=0", "--write-rate", "0")
    d = 26
    guest = env.introduce(d)
    rss_before = env.rss()
    socks = _never_readers(env, d, 64, 1900)
    assert wait_until(lambda: _usage(env, d)["watches"] == 64)
    assert _commit_many(guest, d, 900, "a") == OK
    assert wait_until(lambda: _usage(env, d)["output"] > 64 << 20)
    assert env.rss() - rss_before > 64 * MIB
    # ... and shrinks back once the guest has gone, although the heap was fragmented
    for sock in socks:
        sock.close()
    guest.close()
    env.release(d)
    assert wait_until(lambda: env.rss() - rss_before < 32 * MIB), (rss_before, env.rss())
    env.served()


def test_a_guest_at_its_output_quota_loses_its_events_not_others(
    fresh: Callable[..., Env],
) -> None:
    env = fresh("--event-timeout", "60", "--quota", "output=100000")
    hog, other = 21, 22
    env.introduce(hog)
    other_guest = env.introduce(other)
    hog_socks = _never_readers(env, hog, 8, 1000)
    watcher = env.guest(other)
    assert watcher.call(Op.WATCH, _home(other), "w") == ("OK", b"OK\0")
    assert wait_until(lambda: _usage(env, hog)["watches"] == 8)
    # dom0 writes into both homes: 8 watches x 200 events x ~1 KB = 1.6 MB for the hog
    writes = [write_req(f"{_home(dom)}/n{j}", "x") for j in range(200) for dom in (hog, other)]
    assert all(r == OK for r in pipeline(env.dom0, writes))
    assert _usage(env, hog)["output"] <= 100000 + 8 * OWN_MESSAGE
    # the other guest's watcher got every event (its first, and one per write)
    events = []
    while len(events) < 201:
        packet = watcher.recv_packet(5.0)
        events.append(packet)
    assert all(p.op == Op.WATCH_EVENT for p in events)
    assert other_guest.call(Op.WRITE, "still", "here") == OK
    for sock in hog_socks:
        sock.close()


def test_transaction_and_watch_memory_quotas(fresh: Callable[..., Env]) -> None:
    env = fresh("--quota", "watch-memory=1100")
    d = 23
    guest = env.introduce(d)
    listing = env.control("quota")
    for name, value in [("output", 4194304), ("transaction-memory", 2621440)]:
        row = next(line for line in listing.splitlines() if line.split(":")[0].strip() == name)
        assert int(row.split(":")[1].split()[0]) == value, row
    assert env.dom0.call(Op.GET_QUOTA, "watch-memory") == ("OK", b"1100\0")
    # watch-memory: paths and tokens of the domain's watches together
    assert guest.call(Op.WATCH, "a", "t" * 400) == OK
    second = env.guest(d)
    assert second.call(Op.WATCH, "b", "t" * 400) == OK
    assert second.call(Op.WATCH, "c", "t" * 400) == err("ENOSPC")
    assert second.call(Op.WATCH, "c", "short") == OK
    assert _usage(env, d)["watch-memory"] <= 1100
    # transaction-memory, per domain: the copies of all its open transactions
    assert env.dom0.call(Op.SET_QUOTA, d, "transaction-memory", "3000") == OK
    assert env.dom0.call(Op.GET_QUOTA, d, "transaction-memory") == ("OK", b"3000\0")
    t1 = int(guest.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    t2 = int(second.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    assert guest.write("x", "v" * 1000, tx_id=t1) == OK
    assert second.write("y", "v" * 1000, tx_id=t2) == OK
    assert 2000 < _usage(env, d)["transaction-memory"] <= 3000
    assert guest.write("z", "v" * 1000, tx_id=t1) == err("ENOSPC")
    assert guest.call(Op.TRANSACTION_END, "T", tx_id=t1) == err("ENOMEM")  # doomed
    assert second.call(Op.TRANSACTION_END, "T", tx_id=t2) == OK
    assert _usage(env, d)["transaction-memory"] == 0
    assert guest.call(Op.READ, "y") == ("OK", b"v" * 1000)
    # domain 0 is exempt
    tx = int(env.dom0.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    for i in range(5):
        assert env.dom0.write(f"{_home(d)}/big{i}", b"b" * 1000, tx_id=tx) == OK
    assert env.dom0.call(Op.TRANSACTION_END, "T", tx_id=tx) == OK


def test_output_and_memory_quotas_from_the_command_line(fresh: Callable[..., Env]) -> None:
    env = fresh("--quota", "output=123456", "--quota", "transaction-memory=7777")
    assert env.dom0.call(Op.GET_QUOTA, "output") == ("OK", b"123456\0")
    assert env.dom0.call(Op.GET_QUOTA, "transaction-memory") == ("OK", b"7777\0")
    assert env.control("quota", "set", "watch-memory", "5000") == "OK"
    assert env.dom0.call(Op.GET_QUOTA, "watch-memory") == ("OK", b"5000\0")
    assert env.dom0.call(Op.SET_QUOTA, "output", "654321") == OK
    assert "output           :   654321" in env.control("quota")


def test_xenstore_control_shows_and_sets_the_memory_quotas(fresh: Callable[..., Env]) -> None:
    need_reference()
    env = fresh("--quota", "output=2000000")
    d = 28
    env.introduce(d)
    environ = dict(os.environ, XENSTORED_PATH=str(env.daemon.socket))

    def control(*args: str) -> str:
        done = subprocess.run(
            [str(XEN_BIN / "xenstore-control"), *args],
            env=environ,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    listing = control("quota")
    assert "output           :  2000000 Max. bytes of replies and events queued" in listing
    assert "watch-memory" in listing and "transaction-memory" in listing
    assert control("quota", "set", "watch-memory", "9999").strip() == "OK"
    assert "watch-memory     :     9999" in control("quota")
    usage = control("quota", str(d))
    assert "output" in usage and "watch-memory" in usage
