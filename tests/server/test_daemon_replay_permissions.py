"""The replay list (security reference, section A), A17-A24: permissions.

Every scenario that the list gives an unprivileged actor runs as a domain introduced on
the daemon and connected through its own socket. After each test the ``env`` fixture
checks that domain 0 is still served, that the daemon's consistency check is clean and
that every live domain's node usage equals a count of the nodes it owns. Scenarios that
can grow the daemon also compare its VmRSS before and after, with generous bounds.

The rest of the list: test_daemon_replay_framing.py (A1-A16) and
test_daemon_replay_quotas.py (A25-A38).
"""

from __future__ import annotations

from tests.support.domains import (
    OK,
    DomId,
    Env,
    err,
    home,
)
from tests.support.wire import is_closed
from xsd_client.protocol import (
    PAYLOAD_MAX,
    Op,
    parse_perms,
    parse_watch_event,
)

# ----------------------------------------------------------------------------- permissions


def test_a17_oversized_watch_event_is_dropped(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    token = b"T" * 3900
    assert guest.request(Op.WATCH, home(d).encode() + b"\0" + token + b"\0").op == Op.WATCH
    assert parse_watch_event(guest.recv_packet(2).payload) == (home(d), token)  # initial
    long = "x" * 300
    assert guest.call(Op.WRITE, f"{long}/child", "v") == OK
    assert guest.call(Op.WATCH, "short", "s") == OK
    assert guest.call(Op.WRITE, "short/y", "v") == OK
    events = [parse_watch_event(e.payload) for e in guest.drain_events()]
    assert (f"{home(d)}/{long}/child", token) not in events
    assert ("short/y", b"s") in events and ("short", b"s") in events
    assert all(len(e[0]) + len(e[1]) + 2 <= PAYLOAD_MAX for e in events)


def test_a18_information_hiding_and_inheritance(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert env.dom0.call(Op.WRITE, f"/t{d}/secret", "s") == OK
    assert guest.call(Op.READ, f"/t{d}/secret") == err("EACCES")
    assert guest.call(Op.READ, f"/t{d}/secret/missing") == err("EACCES")
    assert guest.call(Op.READ, f"/t{d}/missing") == err("EACCES")
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}", "n0", f"b{d}") == OK
    assert guest.call(Op.READ, f"/t{d}/missing") == err("ENOENT")
    assert guest.call(Op.READ, f"/t{d}/secret") == err("EACCES")
    # new nodes, implicit parents included, copy the parent's list; the guest owns them
    assert guest.call(Op.WRITE, f"/t{d}/g/h", "x") == OK
    for path in (f"/t{d}/g", f"/t{d}/g/h"):
        assert parse_perms(env.dom0.call(Op.GET_PERMS, path)[1]) == [f"n{d}", f"b{d}"]
    assert env.dom0.call(Op.WRITE, f"/t{d}/p/q", "x") == OK
    assert parse_perms(env.dom0.call(Op.GET_PERMS, f"/t{d}/p/q")[1]) == ["n0", f"b{d}"]
    assert env.dom0.call(Op.RM, f"/t{d}") == OK


def test_a19_guest_cannot_touch_the_root(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert guest.call(Op.SET_PERMS, "/", f"n{d}") == err("EACCES")
    assert guest.call(Op.RM, "/") == err("EACCES")
    assert guest.call(Op.WRITE, "/x", "v") == err("EACCES")
    assert guest.call(Op.MKDIR, "/x") == err("EACCES")
    assert guest.call(Op.DIRECTORY, "/") == err("EACCES")
    assert guest.call(Op.GET_PERMS, "/") == err("EACCES")
    assert env.dom0.call(Op.RM, "/") == err("EINVAL")
    assert env.dom0.call(Op.READ, "/x") == err("ENOENT")


def test_a20_guest_cannot_give_its_nodes_away(env: Env, domid: DomId) -> None:
    d, other = domid(), domid()
    guest = env.introduce(d)
    env.introduce(other)
    guest.call(Op.WRITE, "mine", "v")
    before = (env.usage(d), env.usage(other), env.usage(0))
    for owner in (f"n{other}", "n0", f"r{other}", "b0"):
        assert guest.call(Op.SET_PERMS, "mine", owner) == err("EPERM"), owner
    assert parse_perms(guest.call(Op.GET_PERMS, "mine")[1]) == [f"n{d}"]
    assert (env.usage(d), env.usage(other), env.usage(0)) == before


def test_a21_permission_list_limits_and_syntax(env: Env, domid: DomId) -> None:
    d, absent = domid(), domid()
    guest = env.introduce(d)
    guest.call(Op.WRITE, "node", "v")
    six = [f"n{d}", "r0", "r1", "r2", "r3", "r4"]
    assert guest.call(Op.SET_PERMS, "node", *six) == err("ENOSPC")
    assert guest.call(Op.SET_PERMS, "node", *six[:5]) == OK
    for bad in (["x5"], ["r"], [f"n{d}", "q1"], [f"n{d}", "r1x"], [f"n{d}", ""]):
        assert guest.call(Op.SET_PERMS, "node", *bad) == err("EINVAL"), bad
    assert guest.call(Op.SET_PERMS, "node") == err("EINVAL")
    # an entry a guest writes naming a domain no one made known is kept (shown), but
    # grants nothing, even once a domain with that id is introduced
    assert guest.call(Op.WRITE, "t", "s") == OK
    assert guest.call(Op.SET_PERMS, "t", f"n{d}", f"r{absent}") == OK
    assert parse_perms(guest.call(Op.GET_PERMS, "t")[1]) == [f"n{d}", f"r{absent}"]
    late = env.introduce(absent)
    assert late.call(Op.READ, f"{home(d)}/t") == err("EACCES")
    # domain 0 naming a reserved id makes nothing: the entry is ignored, an owner ENOENT
    assert env.dom0.call(Op.WRITE, f"/t{d}", "s") == OK
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}", "n0", "r32752", "r-1") == OK
    assert parse_perms(env.dom0.call(Op.GET_PERMS, f"/t{d}")[1]) == ["n0", "r32752", "r-1"]
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}", "n32752") == err("ENOENT")
    assert env.dom0.call(Op.IS_DOMAIN_INTRODUCED, 32751) == ("OK", b"F\0")
    assert env.dom0.call(Op.RM, f"/t{d}") == OK


def test_a22_privileged_requests_are_refused(env: Env, domid: DomId) -> None:
    d, other = domid(), domid()
    guest = env.introduce(d)
    env.introduce(other)
    refused = [
        (Op.INTRODUCE, (d + 100, 1, 1)),
        (Op.RELEASE, (other,)),
        (Op.RESUME, (other,)),
        (Op.SET_TARGET, (d, other)),
        (Op.IS_DOMAIN_INTRODUCED, (other,)),
        (Op.CONTROL, ("check",)),
        (Op.CONTROL, ("live-update", "-s")),
        (Op.CONTROL, ("quota", "set", "nodes", "100000")),
        (Op.GET_QUOTA, ()),
        (Op.GET_QUOTA, (d, "nodes")),
        (Op.SET_QUOTA, (d, "nodes", "0")),
        (Op.SET_QUOTA, ("nodes", "0")),
    ]
    for op, args in refused:
        assert guest.call(op, *args) == err("EACCES"), (op, args)
    # C 4.17 has no feature requests: refused all the same
    assert guest.call(Op.SET_FEATURE, d, 0)[0] == "ERROR"
    assert env.dom0.call(Op.IS_DOMAIN_INTRODUCED, d + 100) == ("OK", b"F\0")
    assert env.dom0.call(Op.GET_QUOTA, d, "nodes") == ("OK", b"1000\0")
    assert env.dom0.call(Op.GET_QUOTA, "nodes") == ("OK", b"1000\0")


def test_a23_watches_see_only_what_the_guest_may_read(env: Env, domid: DomId) -> None:
    d, other = domid(), domid()
    guest = env.introduce(d)
    assert guest.call(Op.WATCH, "/", "root") == OK
    assert guest.call(Op.WATCH, "@releaseDomain", "rel") == OK
    initial = [parse_watch_event(e.payload) for e in guest.drain_events()]
    assert sorted(initial) == [("/", b"root"), ("@releaseDomain", b"rel")]
    assert env.dom0.call(Op.WRITE, f"/t{d}/hidden", "x") == OK
    env.introduce(other)
    env.release(other)
    assert guest.drain_events(0.2) == []
    assert env.dom0.call(Op.WRITE, f"{home(d)}/mine", "x") == OK  # readable: seen
    assert [parse_watch_event(e.payload) for e in guest.drain_events()] == [
        (f"{home(d)}/mine", b"root")
    ]
    # granted read on @releaseDomain, the guest hears of releases
    assert env.dom0.call(Op.SET_PERMS, "@releaseDomain", "n0", f"r{d}") == OK
    env.introduce(other + 1000)
    env.release(other + 1000)
    assert [parse_watch_event(e.payload) for e in guest.drain_events()] == [
        ("@releaseDomain", b"rel")
    ]
    assert env.dom0.call(Op.SET_PERMS, "@releaseDomain", "n0") == OK
    # revocation: one final event (old permissions), then silence
    assert env.dom0.call(Op.WRITE, f"/t{d}/pub", "1") == OK
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}/pub", "n0", f"r{d}") == OK
    guest.drain_events()
    assert env.dom0.call(Op.WRITE, f"/t{d}/pub", "2") == OK
    assert len(guest.drain_events()) == 1
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}/pub", "n0") == OK
    assert [parse_watch_event(e.payload) for e in guest.drain_events()] == [(f"/t{d}/pub", b"root")]
    assert env.dom0.call(Op.WRITE, f"/t{d}/pub", "3") == OK
    assert env.dom0.call(Op.RM, f"/t{d}/pub") == OK
    assert guest.drain_events(0.2) == []
    assert env.dom0.call(Op.RM, f"/t{d}") == OK


def test_a24_a_reused_domid_inherits_nothing(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert env.dom0.call(Op.WRITE, f"/t{d}/secret", "s") == OK
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}/secret", "n0", f"r{d}") == OK
    assert env.dom0.call(Op.WRITE, f"/t{d}/pub", "") == OK
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}/pub", "n0", f"b{d}") == OK
    assert guest.call(Op.READ, f"/t{d}/secret") == ("OK", b"s\0")
    assert guest.call(Op.WRITE, f"/t{d}/pub/mine/deep", "x") == OK
    assert env.usage(d) == 3
    watcher = env.connect0()
    assert watcher.call(Op.WATCH, "@releaseDomain", "rel") == OK
    watcher.drain_events()
    env.release(d)
    assert is_closed(guest)
    assert [parse_watch_event(e.payload) for e in watcher.drain_events()] == [
        ("@releaseDomain", b"rel")
    ]
    assert env.dom0.call(Op.READ, f"/t{d}/pub/mine") == err("ENOENT")
    assert env.dom0.call(Op.READ, home(d)) == err("ENOENT")
    # the entries stay, flagged ignored, as C keeps them (GET_PERMS shows them)
    assert parse_perms(env.dom0.call(Op.GET_PERMS, f"/t{d}/secret")[1]) == ["n0", f"r{d}"]
    assert parse_perms(env.dom0.call(Op.GET_PERMS, f"/t{d}/pub")[1]) == ["n0", f"b{d}"]
    again = env.introduce(d, home=False)
    assert env.usage(d) == 0
    assert again.call(Op.READ, f"/t{d}/secret") == err("EACCES")
    assert again.call(Op.WRITE, f"/t{d}/pub/x", "x") == err("EACCES")
    assert env.dom0.call(Op.RM, f"/t{d}") == OK


def test_a24_a_reused_domid_prepared_before_introduce_inherits_nothing(
    env: Env, domid: DomId
) -> None:
    """XSA-322 with a toolstack that lays a domain out before introducing it (libxl)."""
    d = domid()
    old = env.introduce(d)
    assert env.dom0.call(Op.WRITE, f"/t{d}/secret", "s") == OK
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}/secret", "n0", f"r{d}") == OK
    assert env.dom0.call(Op.WRITE, f"/t{d}/pub", "") == OK
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}/pub", "n0", f"b{d}") == OK
    assert old.call(Op.WRITE, f"/t{d}/pub/mine", "x") == OK
    # a transaction of domain 0 names the old domain, and commits only after the release
    # and after the new domain is named: its entry must not reach the new domain either
    late = env.connect0()
    late_tx = int(late.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    assert late.call(Op.WRITE, f"/t{d}/late", "l", tx_id=late_tx) == OK
    assert late.call(Op.SET_PERMS, f"/t{d}/late", "n0", f"r{d}", tx_id=late_tx) == OK
    env.release(d)
    assert is_closed(old)
    # the toolstack prepares the next domain with the same id, in one transaction as
    # libxl does: a home owned by domain 0 that it may read, a device directory it owns
    tx = int(env.dom0.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    for step in (
        (Op.MKDIR, home(d)),
        (Op.SET_PERMS, home(d), "n0", f"r{d}"),
        (Op.WRITE, f"{home(d)}/device/vif/0/state", "1"),
        (Op.SET_PERMS, f"{home(d)}/device", f"n{d}", "r0"),
        (Op.SET_PERMS, f"{home(d)}/device/vif", f"n{d}", "r0"),
        (Op.SET_PERMS, f"{home(d)}/device/vif/0", f"n{d}", "r0"),
        (Op.SET_PERMS, f"{home(d)}/device/vif/0/state", f"n{d}", "r0"),
    ):
        assert env.dom0.call(*step, tx_id=tx) == OK, step
    assert env.dom0.call(Op.TRANSACTION_END, "T", tx_id=tx) == OK
    assert late.call(Op.TRANSACTION_END, "T", tx_id=late_tx) == OK
    # named, not introduced: no connection, but its nodes count already
    assert env.dom0.call(Op.IS_DOMAIN_INTRODUCED, d) == ("OK", b"F\0")
    assert env.dom0.call(Op.RELEASE, d) == err("ENOENT")
    assert env.usage(d) == 4
    new = env.introduce(d, home=False)
    assert new.call(Op.READ, "device/vif/0/state") == ("OK", b"1\0")
    assert new.call(Op.WRITE, "device/vif/0/state", "4") == OK
    assert new.call(Op.DIRECTORY, home(d)) == ("OK", b"device\0")
    assert new.call(Op.WRITE, "x", "v") == err("EACCES")  # the home is domain 0's
    # nothing of the old domain's reaches it, though the entries are still shown
    assert new.call(Op.READ, f"/t{d}/secret") == err("EACCES")
    assert new.call(Op.READ, f"/t{d}/late") == err("EACCES")
    assert new.call(Op.WRITE, f"/t{d}/pub/x", "x") == err("EACCES")
    assert env.dom0.call(Op.READ, f"/t{d}/pub/mine") == err("ENOENT")
    for path, entry in (("secret", f"r{d}"), ("late", f"r{d}"), ("pub", f"b{d}")):
        assert parse_perms(env.dom0.call(Op.GET_PERMS, f"/t{d}/{path}")[1]) == ["n0", entry]
    assert env.dom0.call(Op.RM, f"/t{d}") == OK
    env.release(d)
    assert env.dom0.call(Op.READ, f"{home(d)}/device") == err("ENOENT")
    assert env.dom0.call(Op.RM, home(d)) == OK
