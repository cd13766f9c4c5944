"""Every permission rule, seen from guests on their own sockets (protocol reference §3, §7, §8).

Letters (r, w, b, n), the owner, first-matching ACL entry, inheritance on creation,
EACCES vs ENOENT, watch filtering, SET_TARGET, release and re-introduction, and the
quotas at their defaults and after run-time changes. Each test ends with the checks of
the ``env`` fixture (domain 0 served, tree consistent, node accounting true).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.domains import OK, Env, err, pipeline, write_req
from tests.support.wire import RawConn, is_closed
from xsd_client.protocol import Op, parse_perms, parse_watch_event

DomId = Callable[[], int]


def home(d: int) -> str:
    return f"/local/domain/{d}"


def can(conn: RawConn, path: str) -> str:
    """``"rw"``, ``"r"``, ``"w"`` or ``""``: what ``conn`` may do on an existing node."""
    read = conn.call(Op.READ, path)[0] == "OK"
    write = conn.write(path, b"probe") == OK
    return ("r" if read else "") + ("w" if write else "")


def perms(env: Env, path: str) -> list[str]:
    kind, payload = env.dom0.call(Op.GET_PERMS, path)
    assert kind == "OK", payload
    return parse_perms(payload)


@pytest.mark.parametrize(("letter", "expected"), [("r", "r"), ("w", "w"), ("b", "rw"), ("n", "")])
def test_acl_letters(env: Env, domid: DomId, letter: str, expected: str) -> None:
    d = domid()
    guest = env.introduce(d)
    node = f"/t{d}/node"
    assert env.dom0.call(Op.WRITE, node, "v") == OK
    assert env.dom0.call(Op.SET_PERMS, node, "n0", f"{letter}{d}") == OK
    assert can(guest, node) == expected
    # the owner entry's letter is the default for everyone without an entry
    other = env.introduce(domid())
    assert can(other, node) == ""
    assert env.dom0.call(Op.SET_PERMS, node, f"{letter}0") == OK
    assert can(other, node) == expected
    assert can(env.dom0, node) == "rw"  # dom0 is never refused
    assert env.dom0.call(Op.RM, f"/t{d}") == OK


def test_the_owner_has_full_access_whatever_the_letters(env: Env, domid: DomId) -> None:
    d, other = domid(), domid()
    guest = env.introduce(d)
    env.introduce(other)
    assert guest.call(Op.WRITE, "mine", "v") == OK
    assert guest.call(Op.SET_PERMS, "mine", f"n{d}", f"n{d}", f"r{other}") == OK
    assert can(guest, "mine") == "rw"  # an ACL entry naming the owner changes nothing
    assert guest.call(Op.GET_PERMS, "mine")[0] == "OK"
    assert guest.call(Op.SET_PERMS, "mine", f"r{d}") == OK
    # SET_PERMS needs ownership, not only write
    assert env.dom0.call(Op.WRITE, f"/t{d}", "v") == OK
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}", "n0", f"b{d}") == OK
    assert guest.call(Op.SET_PERMS, f"/t{d}", "n0", f"b{d}", f"r{other}") == err("EACCES")
    assert guest.call(Op.SET_PERMS, f"/t{d}", f"n{d}") == err("EACCES")
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}", f"n{d}") == OK  # dom0 moves ownership
    assert guest.call(Op.SET_PERMS, f"/t{d}", f"n{d}", f"r{other}") == OK
    assert env.dom0.call(Op.RM, f"/t{d}") == OK


def test_first_matching_acl_entry_wins(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    node = f"/t{d}"
    assert env.dom0.call(Op.WRITE, node, "v") == OK
    cases = [
        (["b0", f"r{d}", f"w{d}"], "r"),
        (["b0", f"w{d}", f"r{d}"], "w"),
        (["b0", f"n{d}", f"b{d}"], ""),
        (["n0", "r1", f"b{d}", f"n{d}"], "rw"),
    ]
    for acl, expected in cases:
        assert env.dom0.call(Op.SET_PERMS, node, *acl) == OK
        assert can(guest, node) == expected, acl
    assert env.dom0.call(Op.RM, node) == OK


def test_new_nodes_inherit_and_unprivileged_creators_own(env: Env, domid: DomId) -> None:
    d, other = domid(), domid()
    guest = env.introduce(d)
    env.introduce(other)
    top = f"/t{d}"
    assert env.dom0.call(Op.MKDIR, top) == OK
    assert env.dom0.call(Op.SET_PERMS, top, "r0", f"b{d}", f"n{other}") == OK
    assert guest.call(Op.WRITE, f"{top}/a/b/c", "v") == OK  # implicit parents too
    for path in (f"{top}/a", f"{top}/a/b", f"{top}/a/b/c"):
        assert perms(env, path) == [f"r{d}", f"b{d}", f"n{other}"]
    assert env.dom0.call(Op.WRITE, f"{top}/x/y", "v") == OK  # privileged: the parent's owner
    assert perms(env, f"{top}/x") == perms(env, f"{top}/x/y") == ["r0", f"b{d}", f"n{other}"]
    assert env.dom0.call(Op.WRITE, f"{home(d)}/by-dom0", "v") == OK
    assert perms(env, f"{home(d)}/by-dom0") == [f"n{d}"]  # charged to the guest
    assert env.usage(d) == 5
    assert env.dom0.call(Op.RM, top) == OK
    assert env.usage(d) == 2


def test_eacces_or_enoent(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    top = f"/t{d}"
    assert env.dom0.call(Op.WRITE, f"{top}/ro/leaf", "v") == OK
    assert env.dom0.call(Op.SET_PERMS, f"{top}/ro", "n0", f"r{d}") == OK
    assert env.dom0.call(Op.WRITE, f"{top}/hidden/leaf", "v") == OK
    # reads: ENOENT only below a node the guest may read
    assert guest.call(Op.READ, f"{top}/ro/missing") == err("ENOENT")
    assert guest.call(Op.READ, f"{top}/ro/missing/deeper") == err("ENOENT")
    assert guest.call(Op.READ, f"{top}/hidden/missing") == err("EACCES")
    assert guest.call(Op.READ, f"{top}/hidden/leaf") == err("EACCES")
    assert guest.call(Op.DIRECTORY, f"{top}/ro/missing") == err("ENOENT")
    assert guest.call(Op.GET_PERMS, f"{top}/hidden/missing") == err("EACCES")
    # writes: the same with write access
    assert guest.call(Op.RM, f"{top}/ro/missing") == err("EACCES")
    assert guest.call(Op.WRITE, f"{top}/ro/new", "v") == err("EACCES")
    assert guest.call(Op.RM, f"{home(d)}/missing") == OK  # parent writable: nothing to do
    assert guest.call(Op.RM, f"{home(d)}/missing/deeper") == err("ENOENT")
    assert guest.call(Op.SET_PERMS, f"{home(d)}/missing", f"n{d}") == err("ENOENT")
    # dom0 always learns the truth
    assert env.dom0.call(Op.READ, f"{top}/hidden/missing") == err("ENOENT")
    assert env.dom0.call(Op.RM, top) == OK


def test_watch_events_follow_read_permission(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    top = f"/t{d}"
    assert env.dom0.call(Op.MKDIR, top) == OK
    assert guest.call(Op.WATCH, top, "w") == OK  # registration needs no permission
    assert [parse_watch_event(e.payload) for e in guest.drain_events()] == [(top, b"w")]
    assert env.dom0.call(Op.WRITE, f"{top}/hidden", "v") == OK
    assert guest.drain_events(0.15) == []
    # the node readable: seen; its parent readable: a new unreadable child is seen too
    assert env.dom0.call(Op.SET_PERMS, f"{top}/hidden", "n0", f"r{d}") == OK
    assert len(guest.drain_events()) == 1
    assert env.dom0.call(Op.WRITE, f"{top}/hidden", "2") == OK
    assert len(guest.drain_events()) == 1
    assert env.dom0.call(Op.SET_PERMS, top, "n0", f"r{d}") == OK
    guest.drain_events()
    assert env.dom0.call(Op.WRITE, f"{top}/other", "v") == OK
    assert env.dom0.call(Op.SET_PERMS, f"{top}/other", "n0") == OK
    assert env.dom0.call(Op.WRITE, f"{top}/other", "2") == OK
    assert [parse_watch_event(e.payload)[0] for e in guest.drain_events()] == [f"{top}/other"] * 3
    assert env.dom0.call(Op.SET_PERMS, top, "n0") == OK
    # SET_PERMS taking read away: one last event (old permissions), then silence
    assert [parse_watch_event(e.payload)[0] for e in guest.drain_events()] == [top]
    assert env.dom0.call(Op.WRITE, f"{top}/other", "3") == OK
    assert guest.drain_events(0.15) == []
    # RM of a readable node below an unreadable parent is still seen (checked before)
    assert env.dom0.call(Op.RM, f"{top}/hidden") == OK
    assert [parse_watch_event(e.payload)[0] for e in guest.drain_events()] == [f"{top}/hidden"]
    assert env.dom0.call(Op.RM, f"{top}/other") == OK
    assert guest.drain_events(0.15) == []
    # in a transaction: the permissions before the commit count as well
    assert env.dom0.call(Op.WRITE, f"{top}/tx", "v") == OK
    assert env.dom0.call(Op.SET_PERMS, f"{top}/tx", "n0", f"r{d}") == OK
    guest.drain_events()
    tx = int(env.dom0.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    assert env.dom0.call(Op.SET_PERMS, f"{top}/tx", "n0", tx_id=tx) == OK
    assert env.dom0.call(Op.TRANSACTION_END, "T", tx_id=tx) == OK
    assert [parse_watch_event(e.payload)[0] for e in guest.drain_events()] == [f"{top}/tx"]
    assert env.dom0.call(Op.RM, top) == OK


def test_special_watches_follow_the_special_nodes_permissions(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert guest.call(Op.WATCH, "@introduceDomain", "i") == OK
    assert len(guest.drain_events()) == 1  # the initial event, regardless
    env.introduce(domid(), home=False)
    assert guest.drain_events(0.15) == []
    assert guest.call(Op.SET_PERMS, "@introduceDomain", "n0", f"r{d}") == err("EACCES")
    assert env.dom0.call(Op.SET_PERMS, "@introduceDomain", "n0", f"r{d}") == OK
    env.introduce(domid(), home=False)
    assert [parse_watch_event(e.payload) for e in guest.drain_events()] == [
        ("@introduceDomain", b"i")
    ]
    assert env.dom0.call(Op.SET_PERMS, "@introduceDomain", "n0") == OK


def test_set_target_gives_the_device_model_its_targets_rights(env: Env, domid: DomId) -> None:
    target, dm, third = domid(), domid(), domid()
    guest = env.introduce(target)
    stub = env.introduce(dm)
    env.introduce(third)
    assert guest.call(Op.WRITE, "disk", "v") == OK
    assert env.dom0.call(Op.WRITE, f"/t{dm}", "acl") == OK
    assert env.dom0.call(Op.SET_PERMS, f"/t{dm}", "n0", f"r{target}") == OK
    assert stub.call(Op.READ, f"{home(target)}/disk") == err("EACCES")
    assert stub.call(Op.READ, f"/t{dm}") == err("EACCES")
    assert env.dom0.call(Op.SET_TARGET, dm, target) == OK
    assert env.dom0.call(Op.SET_TARGET, dm, 30000) == err("ENOENT")
    # the target's nodes: as if the stub owned them; ACL entries for the target apply
    assert stub.call(Op.READ, f"{home(target)}/disk") == ("OK", b"v\0")
    assert stub.call(Op.WRITE, f"{home(target)}/by-dm", "x") == OK
    assert stub.call(Op.SET_PERMS, f"{home(target)}/disk", f"n{target}", f"r{third}") == OK
    assert stub.call(Op.READ, f"/t{dm}") == ("OK", b"acl\0")
    assert stub.call(Op.WRITE, f"/t{dm}", "x") == err("EACCES")
    # the stub owns what it creates itself, and stays unprivileged
    assert perms(env, f"{home(target)}/by-dm") == [f"n{dm}"]
    assert stub.call(Op.INTRODUCE, 999, 1, 1) == err("EACCES")
    assert stub.call(Op.READ, "/tool/xenstored") == err("EACCES")
    # the target itself gains nothing of the stub's
    assert guest.call(Op.READ, home(dm)) == err("EACCES")
    assert env.dom0.call(Op.RM, f"/t{dm}") == OK


def test_release_and_reintroduction_start_clean(env: Env, domid: DomId) -> None:
    d, helper = domid(), domid()
    guest = env.introduce(d)
    env.introduce(helper)
    assert guest.call(Op.WRITE, "data/x", "v") == OK
    assert guest.call(Op.WATCH, "data", "w") == OK
    tx = int(guest.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
    assert guest.call(Op.WRITE, "data/in-tx", "v", tx_id=tx) == OK
    assert env.dom0.call(Op.WRITE, f"/t{d}/acl", "v") == OK
    assert env.dom0.call(Op.SET_PERMS, f"/t{d}/acl", f"n{helper}", f"b{d}") == OK
    assert guest.call(Op.WRITE, f"/t{d}/acl/mine", "v") == OK  # owned by d, outside home
    assert env.dom0.call(Op.SET_PERMS, "@releaseDomain", "n0", f"r{d}", f"r{helper}") == OK
    assert env.dom0.call(Op.SET_QUOTA, d, "nodes", 7) == OK
    other_conn = env.guest(d)
    env.release(d)
    assert is_closed(guest) and is_closed(other_conn)
    assert not (env.daemon.rundir / "domains" / str(d) / "socket").exists()
    assert env.dom0.call(Op.IS_DOMAIN_INTRODUCED, d) == ("OK", b"F\0")
    assert env.dom0.call(Op.RELEASE, d) == err("ENOENT")
    assert env.dom0.call(Op.GET_QUOTA, d, "nodes") == err("ENOENT")
    assert env.dom0.call(Op.READ, f"/t{d}/acl/mine") == err("ENOENT")
    assert env.dom0.call(Op.READ, home(d)) == err("ENOENT")
    # the entry naming d stays, flagged ignored (C's GET_PERMS shows it too)
    assert perms(env, f"/t{d}/acl") == [f"n{helper}", f"b{d}"]
    # the same domid again: no nodes, no ACL entries, zero usage, default quotas
    again = env.introduce(d, home=False)
    # its entry on @releaseDomain went with the old domain; the helper's stayed
    helper_conn = env.guest(helper)
    for conn in (again, helper_conn):
        assert conn.call(Op.WATCH, "@releaseDomain", "r") == OK
        conn.drain_events()
    env.introduce(domid(), home=False)
    env.release(env.domains[-1])
    assert again.drain_events(0.15) == []
    assert len(helper_conn.drain_events()) == 1
    assert env.usage(d) == 0
    assert env.dom0.call(Op.GET_QUOTA, d, "nodes") == ("OK", b"1000\0")
    assert again.call(Op.READ, f"/t{d}/acl") == err("EACCES")
    assert again.call(Op.UNWATCH, "data", "w") == err("ENOENT")
    assert again.call(Op.TRANSACTION_END, "T", tx_id=tx) == err("ENOENT")
    assert env.dom0.call(Op.SET_PERMS, "@releaseDomain", "n0") == OK
    assert env.dom0.call(Op.RM, f"/t{d}") == OK


def test_introduce_and_release_at_once_many_times(env: Env, domid: DomId) -> None:
    d = domid()
    for _ in range(20):
        assert env.dom0.call(Op.INTRODUCE, d, 1, 1) == OK
        assert env.dom0.call(Op.RELEASE, d) == OK
    guest = env.introduce(d)
    assert guest.call(Op.WRITE, "alive", "v") == OK


def test_default_quotas(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    listing = env.control("quota")
    for name, value in [
        ("nodes", 1000),
        ("watches", 128),
        ("transactions", 10),
        ("outstanding", 20),
        ("transaction-nodes", 1024),
        ("memory", 2621440),
        ("node-size", 2048),
        ("path-max", 2048),
        ("permissions", 5),
    ]:
        row = next(line for line in listing.splitlines() if line.split(":")[0].strip() == name)
        assert int(row.split(":")[1].split()[0]) == value, row
    names = env.dom0.call(Op.GET_QUOTA)[1].rstrip(b"\0").decode().split()
    assert names[:3] == ["nodes", "watches", "outstanding"] and "node-permissions" in names
    assert env.dom0.call(Op.GET_QUOTA, d, "node-permissions") == ("OK", b"5\0")
    # path-max: 2048 bytes below the home
    assert guest.call(Op.WRITE, "p" * 200 + "/" + "q" * 1847, "v") == OK
    assert guest.call(Op.WRITE, "p" * 200 + "/" + "q" * 1848, "v") == err("EINVAL")
    assert guest.call(Op.RM, "p" * 200) == OK
    # dom0 is exempt from every quota
    assert env.dom0.write(f"{home(d)}/huge", b"h" * 4000) == OK
    assert (
        env.dom0.call(Op.SET_PERMS, f"{home(d)}/huge", f"n{d}", *[f"r{i}" for i in range(8)]) == OK
    )
    assert all(r == OK for r in pipeline(env.dom0, [write_req(f"/t{d}/n{i}") for i in range(1100)]))
    assert env.dom0.call(Op.RM, f"/t{d}") == OK


def test_quota_set_changes_the_global_default(fresh: Callable[..., Env], domid: DomId) -> None:
    env = fresh()
    d = domid()
    guest = env.introduce(d)
    assert env.control("quota", "set", "nodes", "4") == "OK"
    assert env.control("quota", "set", "watches", "2") == "OK"
    assert env.dom0.call(Op.CONTROL, "quota", "set", "nodes", "0") == err("EINVAL")
    assert env.dom0.call(Op.CONTROL, "quota", "set", "bogus", "3") == err("EINVAL")
    assert env.dom0.call(Op.GET_QUOTA, "nodes") == ("OK", b"4\0")
    assert env.dom0.call(Op.GET_QUOTA, d, "nodes") == ("OK", b"4\0")
    assert guest.call(Op.WRITE, "a/b/c", "v") == OK  # home + 3 = 4
    assert guest.call(Op.WRITE, "d", "v") == err("ENOSPC")
    assert guest.call(Op.WATCH, "a", "1") == OK
    assert guest.call(Op.WATCH, "a", "2") == OK
    assert guest.call(Op.WATCH, "a", "3") == err("ENOSPC")
    # SET_QUOTA of a global value; 0 disables the check
    assert env.dom0.call(Op.SET_QUOTA, "nodes", "0") == OK
    assert guest.call(Op.WRITE, "d/e/f/g", "v") == OK
    assert env.dom0.call(Op.SET_QUOTA, "bogus", "1") == err("EINVAL")
    assert env.dom0.call(Op.SET_QUOTA, "nodes", "x") == err("EINVAL")
    assert env.dom0.call(Op.SET_QUOTA, "soft-memory", "1000") == OK
    assert env.dom0.call(Op.GET_QUOTA, "soft-memory") == ("OK", b"1000\0")
    env.domains.append(d)


def test_set_quota_per_domain(env: Env, domid: DomId) -> None:
    d, other = domid(), domid()
    guest = env.introduce(d)
    neighbour = env.introduce(other)
    for name, value in [
        ("nodes", 3),
        ("watches", 1),
        ("transactions", 1),
        ("node-size", 100),
        ("node-permissions", 2),
        ("path-max", 30),
    ]:
        assert env.dom0.call(Op.SET_QUOTA, d, name, value) == OK
        assert env.dom0.call(Op.GET_QUOTA, d, name) == ("OK", f"{value}\0".encode())
        assert env.dom0.call(Op.GET_QUOTA, other, name) != ("OK", f"{value}\0".encode())
    assert env.dom0.call(Op.SET_QUOTA, d, "nodes", "-1") == err("EINVAL")
    assert env.dom0.call(Op.SET_QUOTA, 30001, "nodes", "1") == err("ENOENT")
    assert env.dom0.call(Op.GET_QUOTA, d, "bogus") == err("EINVAL")
    # each limit bites the domain it was set for, not its neighbour
    assert guest.write("a", b"x" * 50) == OK
    assert guest.write("a", b"x" * 100) == err("ENOSPC")
    assert neighbour.write("a", b"x" * 1000) == OK
    assert guest.call(Op.WRITE, "b/c", "v") == err("ENOSPC")  # 2 more would make 4
    assert guest.call(Op.WRITE, "b", "v") == OK
    assert neighbour.call(Op.WRITE, "b/c/d", "v") == OK
    assert guest.call(Op.WATCH, "a", "1") == OK
    assert guest.call(Op.WATCH, "a", "2") == err("ENOSPC")
    assert neighbour.call(Op.WATCH, "a", "1") == OK
    assert neighbour.call(Op.WATCH, "a", "2") == OK
    assert guest.call(Op.TRANSACTION_START)[0] == "OK"
    assert guest.call(Op.TRANSACTION_START) == err("ENOSPC")
    assert guest.call(Op.SET_PERMS, "a", f"n{d}", "r0", "r1") == err("ENOSPC")
    assert guest.call(Op.SET_PERMS, "a", f"n{d}", "r0") == OK
    assert guest.call(Op.READ, "x" * 16) == err("ENOENT")
    assert guest.call(Op.READ, "x" * 31) == err("EINVAL")
    assert neighbour.call(Op.READ, "x" * 31) == err("ENOENT")
    # raised again, the domain may grow again
    assert env.dom0.call(Op.SET_QUOTA, d, "nodes", 10) == OK
    assert guest.call(Op.WRITE, "b/c", "v") == OK


def test_quota_privileged_option_applies_quotas_to_dom0(
    fresh: Callable[..., Env], domid: DomId
) -> None:
    env = fresh("--quota-privileged", "--quota", "node-size=100")
    assert env.dom0.write("/small", b"x" * 50) == OK
    assert env.dom0.write("/big", b"x" * 200) == err("ENOSPC")


def test_nodes_made_for_a_domain_before_introduce_count_towards_its_quota(
    env: Env, domid: DomId
) -> None:
    d = domid()
    assert env.dom0.call(Op.GET_QUOTA, d, "nodes") == err("ENOENT")  # not known yet
    assert env.dom0.call(Op.MKDIR, home(d)) == OK
    assert env.dom0.call(Op.SET_PERMS, home(d), f"n{d}") == OK  # named: known from now on
    assert env.dom0.call(Op.WRITE, f"{home(d)}/a", "") == OK  # owned by d, as the parent
    assert env.dom0.call(Op.WRITE, f"{home(d)}/b", "") == OK
    assert env.usage(d) == 3
    assert env.dom0.call(Op.SET_QUOTA, d, "nodes", 5) == OK
    assert env.dom0.call(Op.IS_DOMAIN_INTRODUCED, d) == ("OK", b"F\0")
    guest = env.introduce(d, home=False)
    assert guest.call(Op.WRITE, "c", "") == OK
    assert guest.call(Op.WRITE, "e", "") == OK
    assert guest.call(Op.WRITE, "f", "") == err("ENOSPC")
    assert env.usage(d) == 5
