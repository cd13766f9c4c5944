"""The replay list (security reference, section A), A25-A38: quotas and exhaustion.

Every scenario that the list gives an unprivileged actor runs as a domain introduced on
the daemon and connected through its own socket. After each test the ``env`` fixture
checks that domain 0 is still served, that the daemon's consistency check is clean and
that every live domain's node usage equals a count of the nodes it owns. Scenarios that
can grow the daemon also compare its VmRSS before and after, with generous bounds.

The rest of the list: test_daemon_replay_framing.py (A1-A16) and
test_daemon_replay_permissions.py (A17-A24).
"""

from __future__ import annotations

import threading
import time

from tests.support.domains import (
    MIB,
    OK,
    DomId,
    Env,
    err,
    home,
    pipeline,
    raw_socket,
    send_nowait,
    wait_until,
    write_req,
)
from tests.support.wire import is_closed
from xsd_client.protocol import (
    Op,
    encode,
    parse_directory,
    parse_perms,
    parse_watch_event,
)

# ----------------------------------------------------------------------------- quotas


def test_a25_node_quota_and_atomic_creates(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert env.usage(d) == 1  # the home
    # 979 leaves in 20 directories (one directory's record would pass node-size first)
    writes = [write_req(f"d{i // 50}/n{i}", b"v") for i in range(979)]
    assert all(r == OK for r in pipeline(guest, writes))
    assert env.usage(d) == 1000
    assert guest.call(Op.WRITE, "one-more", "v") == err("ENOSPC")
    assert guest.call(Op.MKDIR, "one-more") == err("ENOSPC")
    assert guest.call(Op.MKDIR, "d0/n5") == OK  # exists: charges nothing
    assert guest.call(Op.WRITE, "d0/n5", "changed") == OK
    assert env.usage(d) == 1000
    for i in range(2):
        assert guest.call(Op.RM, f"d0/n{i}") == OK
    assert guest.call(Op.WRITE, "a/b/c/d", "v") == err("ENOSPC")  # needs 4 nodes, 2 left
    assert guest.call(Op.READ, "a") == err("ENOENT")
    assert env.usage(d) == 998
    assert guest.call(Op.WRITE, "a/b", "v") == OK
    assert env.usage(d) == 1000
    assert env.dom0.call(Op.WRITE, f"{home(d)}/by-dom0", "v") == OK  # dom0 is exempt
    assert env.usage(d) == 1001


def test_a26_node_size_quota(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert guest.write("big", b"x" * 2100) == err("ENOSPC")
    assert guest.call(Op.READ, "big") == err("ENOENT")
    assert guest.write("ok", b"x" * 1900) == OK
    assert guest.write("ok", b"x" * 2100) == err("ENOSPC")
    assert guest.call(Op.READ, "ok") == ("OK", b"x" * 1900)
    assert guest.write("parent/child", b"c") == OK
    assert env.dom0.write(f"{home(d)}/parent", b"p" * 3000) == OK  # dom0: exempt
    assert guest.call(Op.RM, "parent/child") == OK  # shrinking an oversized parent
    assert guest.write("parent/again", b"c") == err("ENOSPC")


def test_a27_watch_quota_and_arguments(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    second = env.guest(d)
    watches = [(Op.WATCH, f"w{i}\0t\0".encode()) for i in range(100)]
    assert all(r == OK for r in pipeline(guest, watches))
    watches = [(Op.WATCH, f"v{i}\0t\0".encode()) for i in range(28)]
    assert all(r == OK for r in pipeline(second, watches))  # the quota is per domain
    assert guest.call(Op.WATCH, "w128", "t") == err("ENOSPC")
    assert second.call(Op.WATCH, "w128", "t") == err("ENOSPC")
    assert guest.call(Op.WATCH, "w1", "t") == err("EEXIST")
    assert guest.call(Op.UNWATCH, "w1", "other") == err("ENOENT")
    assert guest.call(Op.UNWATCH, "w1", "t") == OK
    assert guest.call(Op.WATCH, "w128", "t") == OK
    assert guest.call(Op.WATCH, "x", "t", "-1") == err("EINVAL")
    assert guest.call(Op.WATCH, "@releaseDomain", "t", "2") == err("EINVAL")
    second.close()
    # the closed connection's watches are freed once the daemon has seen it close
    assert wait_until(lambda: guest.call(Op.WATCH, "freed", "t") == OK)


def test_a28_transaction_quota_and_arguments(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    ids = []
    for _ in range(10):
        kind, payload = guest.call(Op.TRANSACTION_START)
        assert kind == "OK"
        ids.append(int(payload.rstrip(b"\0")))
    assert guest.call(Op.TRANSACTION_START) == err("ENOSPC")
    assert env.guest(d).call(Op.TRANSACTION_START) == err("ENOSPC")  # per domain
    assert guest.call(Op.TRANSACTION_START, tx_id=ids[0]) == err("EBUSY")
    assert guest.call(Op.TRANSACTION_END, "X", tx_id=ids[0]) == err("EINVAL")
    assert guest.call(Op.TRANSACTION_END, "", tx_id=ids[0]) == err("EINVAL")
    assert guest.call(Op.TRANSACTION_END, "F", tx_id=ids[0]) == OK
    assert guest.call(Op.TRANSACTION_END, "T", tx_id=ids[0]) == err("ENOENT")
    assert guest.call(Op.TRANSACTION_START, tx_id=ids[0]) == err("ENOENT")
    assert guest.call(Op.TRANSACTION_END, "T", tx_id=0x7777777) == err("ENOENT")
    assert guest.call(Op.TRANSACTION_START)[0] == "OK"


def test_a29_transaction_touching_too_many_nodes_is_doomed(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    top = f"/t{d}"
    assert env.dom0.call(Op.MKDIR, top) == OK
    assert env.dom0.call(Op.SET_PERMS, top, "n0", f"b{d}") == OK
    assert all(r == OK for r in pipeline(env.dom0, [write_req(f"{top}/n{i}") for i in range(1030)]))
    tx = int(guest.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    reads = [(Op.READ, f"{top}/n{i}\0".encode()) for i in range(1024)]
    assert all(r == ("OK", b"") for r in pipeline(guest, reads, tx_id=tx))
    assert guest.call(Op.READ, f"{top}/n1024", tx_id=tx) == err("ENOSPC")
    assert guest.call(Op.WRITE, f"{top}/n0", "x", tx_id=tx) == OK  # already touched
    assert guest.call(Op.TRANSACTION_END, "T", tx_id=tx) == err("ENOMEM")
    assert env.dom0.call(Op.READ, f"{top}/n0") == ("OK", b"")
    assert env.dom0.call(Op.RM, top) == OK


def test_a30_transaction_create_and_remove_and_failed_create(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    tx = int(guest.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    assert guest.call(Op.WRITE, "x/new", "v", tx_id=tx) == OK
    assert guest.call(Op.RM, "x/new", tx_id=tx) == OK
    assert guest.call(Op.TRANSACTION_END, "T", tx_id=tx) == OK
    assert env.usage(d) == 2  # home and x
    assert parse_directory(guest.call(Op.DIRECTORY, "x")[1]) == []
    # a create refused by the node quota inside a transaction dooms it: no orphans
    assert env.dom0.call(Op.SET_QUOTA, d, "nodes", 3) == OK
    tx = int(guest.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    assert guest.call(Op.WRITE, "kept", "v", tx_id=tx) == OK
    assert guest.call(Op.WRITE, "a/b/c", "v", tx_id=tx) == err("ENOSPC")
    assert guest.call(Op.TRANSACTION_END, "T", tx_id=tx) == err("ENOMEM")
    assert guest.call(Op.READ, "kept") == err("ENOENT")
    assert guest.call(Op.READ, "a") == err("ENOENT")
    assert parse_directory(guest.call(Op.DIRECTORY, home(d))[1]) == ["x"]
    assert env.usage(d) == 2


def test_a31_two_transactions_deleting_the_same_nodes(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert all(r == OK for r in pipeline(guest, [write_req(f"n/{i}") for i in range(50)]))
    other = env.guest(d)
    t1 = int(guest.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    t2 = int(other.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    rms = [(Op.RM, f"n/{i}\0".encode()) for i in range(50)]
    assert all(r == OK for r in pipeline(guest, rms, tx_id=t1))
    assert all(r == OK for r in pipeline(other, rms, tx_id=t2))
    assert guest.call(Op.TRANSACTION_END, "T", tx_id=t1) == OK
    assert other.call(Op.TRANSACTION_END, "T", tx_id=t2) == err("EAGAIN")
    assert env.usage(d) == 2  # home and n
    assert guest.call(Op.DIRECTORY, "n") == ("OK", b"")


def test_a32_reset_watches_with_a_live_transaction(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    tx = int(guest.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    assert guest.call(Op.WRITE, "in-tx", "v", tx_id=tx) == OK
    assert guest.call(Op.WATCH, "w", "t") == OK
    assert guest.call(Op.RESET_WATCHES, tx_id=tx) == OK
    assert guest.call(Op.TRANSACTION_END, "T", tx_id=tx) == err("ENOENT")
    assert guest.call(Op.UNWATCH, "w", "t") == err("ENOENT")
    assert guest.call(Op.READ, "in-tx") == err("ENOENT")
    # register 128 watches and reset, again and again: memory stays flat
    batch = [(Op.WATCH, f"w{i}\0t\0".encode()) for i in range(128)] + [(Op.RESET_WATCHES, b"")]
    pipeline(guest, batch)
    rss = env.rss()
    for _ in range(150):
        guest.drain_events(0)
        replies = pipeline(guest, batch)
        assert replies[127] == OK and replies[128] == OK
    assert env.rss() - rss < 8 * MIB
    assert guest.call(Op.WATCH, "after", "t") == OK


# ----------------------------------------------------------------------------- exhaustion


def test_a33_pipelined_reads_without_reading_replies(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert guest.write("v", b"x" * 1000) == OK
    count = 100_000
    data = encode(Op.READ, 0, 0, b"v\0") * count
    rss = env.rss()
    sent = send_nowait(guest, data)
    assert sent < len(data)  # the daemon stopped reading: the socket filled up
    time.sleep(0.3)
    worst = max(env.served() for _ in range(20))
    assert worst < 0.25, worst
    assert env.rss() - rss < 16 * MIB
    queued = [line for line in env.control("connections").splitlines() if f"dom{d} " in line]
    assert queued and all(int(line.rsplit("queued=", 1)[1]) < 2 << 20 for line in queued)
    # the guest reads after all: every request is answered, in order
    sender = threading.Thread(target=guest.send_raw, args=(data[sent:],))
    sender.start()
    for _ in range(count):
        assert guest.recv_reply().payload == b"x" * 1000
    sender.join()


def _queued(env: Env, conn_id_hint: str) -> list[int]:
    lines = env.control("connections").splitlines()
    return [int(line.rsplit("queued=", 1)[1]) for line in lines if conn_id_hint in line]


def test_a34_a_watcher_that_never_reads(env: Env, domid: DomId) -> None:
    d = domid()
    sleeper = env.introduce(d)
    assert sleeper.call(Op.WATCH, home(d), "z" * 2000) == OK  # its whole home, fat events
    reader = env.connect0()
    assert reader.call(Op.WATCH, f"{home(d)}/tree", "r") == OK
    reader.drain_events()
    rss = env.rss()
    writer = env.dom0
    for round_ in range(10):  # 20 000 writes to 2000 nodes; duplicates coalesce
        batch = [write_req(f"{home(d)}/w{i % 2000}", f"{round_}") for i in range(2000)]
        start = time.monotonic()
        assert all(r == OK for r in pipeline(writer, batch))
        assert time.monotonic() - start < 10  # the writer is never blocked by the sleeper
    assert env.rss() - rss < 64 * MIB
    # a subtree RM: at most one event per removed node per watch
    subtree = [write_req(f"{home(d)}/tree/n{i}") for i in range(999)]
    assert all(r == OK for r in pipeline(writer, subtree))
    assert reader.call(Op.WATCH, f"{home(d)}/tree/n5", "n5") == OK
    reader.drain_events(0.3)
    assert writer.call(Op.RM, f"{home(d)}/tree") == OK
    events = [parse_watch_event(e.payload) for e in reader.drain_events(0.5)]
    # as C: the removed descendants fire only watches on exactly their path
    assert sorted(events) == [(f"{home(d)}/tree", b"r"), (f"{home(d)}/tree/n5", b"n5")]
    # unread events of the unprivileged sleeper expire (--event-timeout 1)
    assert wait_until(lambda: max(_queued(env, f"dom{d} unpriv")) < 64 * 1024, timeout=6)
    sleeper.drain_events(0.3)
    assert sleeper.call(Op.READ, "w1") == ("OK", b"9")


def test_a35_dom0_transactions_commit_against_a_busy_guest(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    guest.write("x", b"0")
    stop = threading.Event()

    def hammer() -> None:
        n = 0
        while not stop.is_set():
            pipeline(guest, [write_req("x", f"{n + i}") for i in range(20)])
            n += 20

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for _ in range(5):
            tries = 0
            while True:
                tries += 1
                assert tries <= 150, "dom0 never committed against the guest's writes"
                tx = int(env.dom0.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
                value = env.dom0.call(Op.READ, f"{home(d)}/x", tx_id=tx)[1]
                env.dom0.write(f"{home(d)}/x", value + b"+", tx_id=tx)
                if env.dom0.call(Op.TRANSACTION_END, "T", tx_id=tx) == OK:
                    break
            # xsd has no write rate limit (C: 200 writes/s): a commit takes ~50 tries here
    finally:
        stop.set()
        thread.join()


def test_a36_big_replies_never_read(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert guest.write("big", b"b" * 2000) == OK
    for i in range(40):
        assert guest.write(f"dir/{i:02d}" + "d" * 40, b"") == OK
    rss = env.rss()
    conns = [env.guest(d) for _ in range(20)]
    for conn in conns:
        burst = (encode(Op.READ, 0, 0, b"big\0") + encode(Op.DIRECTORY, 0, 0, b"dir\0")) * 5000
        send_nowait(conn, burst)
    time.sleep(0.5)
    assert env.served() < 0.5
    assert env.rss() - rss < 80 * MIB
    for conn in conns:
        conn.close()
    time.sleep(0.3)
    assert env.served() < 0.5


def test_a37_lifetime_races(env: Env, domid: DomId) -> None:
    d, stub, target = domid(), domid(), domid()
    guest = env.introduce(d)
    watchers = [env.guest(d) for _ in range(5)]
    for w in watchers:
        assert w.call(Op.WATCH, home(d), "t") == OK
    assert all(r == OK for r in pipeline(guest, [write_req(f"sub/{i}") for i in range(300)]))
    # (a) watchers vanish while a subtree removal fans events out to them
    env.dom0.send(Op.RM, f"{home(d)}/sub\0".encode())
    for w in watchers:
        w.close()
    assert env.dom0.recv_reply().payload == b"OK\0"
    # (b) a connection vanishes in the middle of a transaction
    mid = env.guest(d)
    tx = int(mid.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    mid.send(Op.WRITE, b"half\0v", tx_id=tx)
    mid.close()
    # (c) a connection vanishes while another domain is introduced and released
    env.introduce(stub)
    env.introduce(target)
    assert env.dom0.call(Op.SET_TARGET, stub, target) == OK
    stub_conn = env.guest(stub)
    assert stub_conn.call(Op.WRITE, f"{home(target)}/by-stub", "v") == OK
    leaving = env.guest(d)
    leaving.send(Op.WATCH, b"@releaseDomain\0t\0")
    env.dom0.send(Op.RELEASE, f"{stub}\0".encode())
    leaving.close()
    env.dom0.send(Op.RELEASE, f"{target}\0".encode())
    assert env.dom0.recv_reply().payload == b"OK\0"
    assert env.dom0.recv_reply().payload == b"OK\0"
    env.domains.remove(stub)
    env.domains.remove(target)
    assert is_closed(stub_conn)
    assert env.dom0.call(Op.READ, home(target)) == err("ENOENT")
    assert guest.call(Op.READ, "half") == err("ENOENT")
    assert not [line for line in env.control("connections").splitlines() if f"dom{stub} " in line]


def test_a38_a_destroyed_helper_domain_takes_its_nodes_along(env: Env, domid: DomId) -> None:
    a, b = domid(), domid()
    guest_a = env.introduce(a)
    guest_b = env.introduce(b)
    assert guest_a.call(Op.MKDIR, "shared") == OK
    assert guest_a.call(Op.SET_PERMS, "shared", f"n{a}", f"b{b}") == OK
    fill = [write_req(f"{home(a)}/shared/{i}", b"v" * 100) for i in range(200)]
    assert all(r == OK for r in pipeline(guest_b, fill))
    assert env.usage(b) == 201 and env.usage(a) == 2
    env.release(b)
    assert env.dom0.call(Op.DIRECTORY, f"{home(a)}/shared") == ("OK", b"")
    assert env.usage(a) == 2
    assert parse_perms(guest_a.call(Op.GET_PERMS, "shared")[1]) == [f"n{a}", f"b{b}"]
    assert env.dom0.call(Op.INTRODUCE, b, 1, 1) == OK
    env.domains.append(b)
    assert env.usage(b) == 0


def test_idle_guest_connections_cost_little(env: Env, domid: DomId) -> None:
    d = domid()
    env.introduce(d)
    rss = env.rss()
    socks = [raw_socket(env.daemon.rundir / "domains" / str(d) / "socket") for _ in range(400)]
    # accepted in order: once a later connection is answered, all 400 are served
    assert env.guest(d).call(Op.READ, home(d)) == ("OK", b"")
    grown = env.rss() - rss
    assert grown < 400 * 16, grown  # under 16 KiB each
    for sock in socks:
        sock.close()
    assert env.served() < 0.5


def test_guest_replies_queued_stay_within_the_outstanding_quota(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert env.dom0.call(Op.SET_QUOTA, d, "outstanding", 5) == OK
    assert guest.write("v", b"x" * 2000) == OK
    count = 2000  # 4 MB of replies: far more than the socket buffers hold
    send_nowait(guest, encode(Op.READ, 0, 0, b"v\0") * count)
    time.sleep(0.3)
    # the socket is full; the daemon holds at most 5 replies for the guest, then stops
    queued = _queued(env, f"dom{d} unpriv")
    assert queued and max(queued) <= 5 * (16 + 2000), queued
    assert env.served() < 0.5
