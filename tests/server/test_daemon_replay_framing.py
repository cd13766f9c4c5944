"""The replay list (security reference, section A), A1-A16: framing and paths.

Every scenario that the list gives an unprivileged actor runs as a domain introduced on
the daemon and connected through its own socket. After each test the ``env`` fixture
checks that domain 0 is still served, that the daemon's consistency check is clean and
that every live domain's node usage equals a count of the nodes it owns. Scenarios that
can grow the daemon also compare its VmRSS before and after, with generous bounds.

The permissions (A17-A24) are in test_daemon_replay_permissions.py, the quotas and
exhaustion (A25-A38) in test_daemon_replay_quotas.py. A39-A41 (live update) are covered by
tests/server/liveupdate/test_session*.py; A42 (a second daemon on the same socket) by
tests/server/test_daemon.py.
"""

from __future__ import annotations

import time

from tests.support.domains import (
    MIB,
    OK,
    DomId,
    Env,
    err,
    home,
    pipeline,
    write_req,
)
from tests.support.wire import HEADER, is_closed
from xsd_client.protocol import (
    PAYLOAD_MAX,
    Op,
    encode,
    parse_directory_part,
    parse_watch_event,
)

# ----------------------------------------------------------------------------- framing


def test_a1_a2_oversized_header_closes_the_guest_connection(env: Env, domid: DomId) -> None:
    d = domid()
    env.introduce(d)
    rss = env.rss()
    for length in (PAYLOAD_MAX + 1, 0xFFFFFFFF, 0x80000000):
        guest = env.guest(d)
        guest.send_raw(HEADER.pack(Op.READ, 1, 0, length))
        guest.sock.settimeout(2)
        assert guest.sock.recv(100) == b""  # no reply: closed
        env.served()
    assert env.rss() - rss < 4 * MIB  # the announced payload was never allocated
    assert env.guest(d).call(Op.READ, "") == err("EINVAL")  # the domain is still served


def test_a3_half_sent_header_is_closed_after_the_deadline(env: Env, domid: DomId) -> None:
    d = domid()
    env.introduce(d)
    guest = env.guest(d)
    guest.send_raw(encode(Op.READ, 1, 0, b"x\0")[:8])
    assert env.served() < 0.5  # others are unaffected
    start = time.monotonic()
    assert is_closed(guest, timeout=5)
    assert 0.5 < time.monotonic() - start < 4  # --request-timeout 1


def test_a3_trickled_payload_is_closed_after_the_deadline(env: Env, domid: DomId) -> None:
    d = domid()
    env.introduce(d)
    guest = env.guest(d)
    frame = encode(Op.WRITE, 1, 0, b"trickle\0" + b"v" * 40)
    guest.send_raw(frame[:16])
    start = time.monotonic()
    closed = False
    for byte in frame[16:]:
        try:
            guest.send_raw(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if is_closed(guest, timeout=0.2):
            closed = True
            break
        assert env.served() < 0.5
    assert closed, "a request trickled byte by byte must still meet the deadline"
    assert time.monotonic() - start < 4
    assert env.dom0.call(Op.READ, f"{home(d)}/trickle") == err("ENOENT")


def test_a4_a5_unknown_and_reply_only_types_are_enosys(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    for op in (27, 0xFFFF, 20, Op.WATCH_EVENT, Op.ERROR, 0x7FFFFFFF):
        reply = guest.request(op, b"x\0")
        assert (reply.op, reply.payload) == (Op.ERROR, b"ENOSYS\0"), op
    assert guest.call(Op.WRITE, "still", "here") == OK  # the connection stays


def test_a6_malformed_read_payloads_are_einval(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    guest.write("x", b"1")
    for payload in (b"", b"x", b"x\0y\0", b"x\0\0"):
        reply = guest.request(Op.READ, payload)
        assert (reply.op, reply.payload) == (Op.ERROR, b"EINVAL\0"), payload
    assert guest.call(Op.READ, "x") == ("OK", b"1")


def test_a7_ids_are_echoed_and_unknown_transactions_refused(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    guest.write("x", b"1")
    guest.send(Op.READ, b"x\0", req_id=0xDEADBEEF)
    reply = guest.recv_reply()
    assert (reply.req_id, reply.tx_id, reply.payload) == (0xDEADBEEF, 0, b"1")
    guest.send(Op.READ, b"x\0", tx_id=0xFFFFFFFF, req_id=0xFFFFFFFF)
    reply = guest.recv_reply()
    assert (reply.op, reply.req_id, reply.tx_id) == (Op.ERROR, 0xFFFFFFFF, 0xFFFFFFFF)
    assert reply.payload == b"ENOENT\0"
    # WATCH and UNWATCH ignore the tx_id (XSA-115)
    assert guest.call(Op.WATCH, "x", "t", tx_id=12345) == OK
    assert guest.call(Op.UNWATCH, "x", "t", tx_id=777) == OK


# ----------------------------------------------------------------------------- paths


def test_a8_a9_bad_paths_are_einval(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    bad = [b"a b", b"a.b", b"a%b", b"a\xffb", b"a\x01b", "é".encode(), b"a//b", b"a/", b"//"]
    bad += [b"/local/domain//x", b"/x/", b""]
    for path in bad:
        for op in (Op.READ, Op.MKDIR, Op.RM, Op.GET_PERMS, Op.DIRECTORY):
            reply = guest.request(op, path + b"\0")
            assert (reply.op, reply.payload) == (Op.ERROR, b"EINVAL\0"), (op, path)
        reply = guest.request(Op.WRITE, path + b"\0v")
        assert reply.payload == b"EINVAL\0", path
    assert guest.call(Op.WATCH, "//", "t") == err("EINVAL")
    assert guest.call(Op.WATCH, "/a/", "t") == err("EINVAL")


def test_a10_relative_paths_live_in_the_home_and_watch_relative(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    assert guest.call(Op.WATCH, "dev", "rel") == OK
    assert guest.call(Op.WATCH, f"{home(d)}/dev", "abs") == OK
    guest.drain_events()
    assert guest.call(Op.WRITE, "dev/vif/0", "up") == OK
    assert env.dom0.call(Op.READ, f"{home(d)}/dev/vif/0") == ("OK", b"up\0")
    events = sorted(parse_watch_event(e.payload) for e in guest.drain_events())
    assert events == [(f"{home(d)}/dev/vif/0", b"abs"), ("dev/vif/0", b"rel")]


def test_a11_values_are_byte_exact(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    value = bytes(range(256)) + b"\0\0end\0"
    assert guest.write("bin", value) == OK
    assert guest.call(Op.READ, "bin") == ("OK", value)
    assert env.dom0.call(Op.READ, f"{home(d)}/bin") == ("OK", value)


def test_a12_directory_part_arguments(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    for i in range(5):
        guest.write(f"dir/c{i}", b"")
    assert guest.call(Op.DIRECTORY_PART, "dir") == err("EINVAL")
    kind, payload = guest.call(Op.DIRECTORY_PART, "dir", 10_000)
    gen, names, complete = parse_directory_part(payload)
    assert (kind, names, complete) == ("OK", [], True)
    kind, junk = guest.call(Op.DIRECTORY_PART, "dir", "zz")  # atoi: 0, as C
    assert kind == "OK" and parse_directory_part(junk)[1] == [f"c{i}" for i in range(5)]
    first = parse_directory_part(guest.call(Op.DIRECTORY_PART, "dir", 0)[1])
    second = parse_directory_part(guest.call(Op.DIRECTORY_PART, "dir", 3)[1])
    assert first[0] == second[0] == gen
    assert second[1] == ["c1", "c2", "c3", "c4"]


def test_a13_domain_directory_paths_do_not_crash(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    for path in ("/local/domain/", "/local/domain/99999/", f"/local/domain/{d}/"):
        for op in (Op.READ, Op.WRITE, Op.MKDIR, Op.RM, Op.DIRECTORY, Op.GET_PERMS):
            assert guest.call(op, path) == err("EINVAL"), (op, path)
            assert env.dom0.call(op, path) == err("EINVAL"), (op, path)
        assert guest.call(Op.WATCH, path, "t") == err("EINVAL")
    # /local/domain/1x is a valid name; the guest may not learn whether it exists
    assert guest.call(Op.READ, "/local/domain/1x") == err("EACCES")
    assert env.dom0.call(Op.READ, "/local/domain/1x") == err("ENOENT")
    assert env.served() < 0.5


def test_a14_path_length_limits(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    parts = ["p" * 199] * 10
    relative = "/".join([*parts, "q" * (2048 - 10 * 200)])
    assert len(relative) == 2048
    assert guest.call(Op.WRITE, relative, "deep") == OK
    assert env.dom0.call(Op.READ, f"{home(d)}/{relative}") == ("OK", b"deep\0")
    assert guest.call(Op.WRITE, relative + "r", "x") == err("EINVAL")
    assert guest.call(Op.READ, "/" + "a" * 3072) == err("EINVAL")
    assert guest.call(Op.READ, "/" + "a/" * 1536) == err("EINVAL")
    assert env.dom0.call(Op.RM, f"{home(d)}/{parts[0]}") == OK


def test_a15_deepest_legal_tree(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    top = f"/t{d}"
    levels = (2048 - len(top)) // 2
    paths = [top + "/a" * i for i in range(1, levels + 1)]
    assert len(paths[-1]) <= 2048
    assert all(r == OK for r in pipeline(env.dom0, [write_req(p) for p in paths]))
    assert env.dom0.call(Op.WRITE, paths[-1] + "/b", "x") == err("EINVAL")  # too long
    listings = pipeline(env.dom0, [(Op.DIRECTORY, p.encode() + b"\0") for p in paths])
    assert all(r == ("OK", b"a\0") for r in listings[:-1]) and listings[-1] == ("OK", b"")
    assert guest.call(Op.WATCH, "/", "root") == OK
    assert guest.call(Op.GET_PERMS, paths[-1]) == err("EACCES")
    assert guest.call(Op.READ, paths[-1] + "/missing"[:0]) == err("EACCES")
    guest.drain_events()
    assert env.dom0.call(Op.RM, top) == OK
    assert env.dom0.call(Op.READ, top) == err("ENOENT")
    assert guest.drain_events(0.2) == []  # nothing the guest can read was removed


def test_a16_big_directory_is_e2big_and_pages(env: Env, domid: DomId) -> None:
    d = domid()
    guest = env.introduce(d)
    top = f"/t{d}/big"
    names = [f"{i:03d}" + "n" * 87 for i in range(50)]
    assert sum(len(n) + 1 for n in names) > PAYLOAD_MAX
    assert env.dom0.call(Op.MKDIR, top) == OK
    assert env.dom0.call(Op.SET_PERMS, top, "n0", f"r{d}") == OK
    assert all(r == OK for r in pipeline(env.dom0, [write_req(f"{top}/{n}") for n in names]))
    assert guest.call(Op.DIRECTORY, top) == err("E2BIG")
    seen: list[str] = []
    gens = set()
    offset = 0
    while True:
        kind, payload = guest.call(Op.DIRECTORY_PART, top, offset)
        assert kind == "OK"
        gen, chunk, complete = parse_directory_part(payload)
        gens.add(gen)
        seen += chunk
        offset += sum(len(n) + 1 for n in chunk)
        if complete:
            break
    assert seen == names and len(gens) == 1
    assert env.dom0.call(Op.RM, f"/t{d}") == OK
