"""The differential tests' hand-written scripts, part two: transactions, domains, the rest.

Transactions, the domain requests, CONTROL, unknown types and header echo; added to the
``SCRIPTS`` of ``tests.support.differential_scripts`` (import ``SCRIPTS`` from here to have
every script).
"""

from __future__ import annotations

from tests.support.differential import (
    TX,
    Step,
    p,
    s,
    w,
)
from tests.support.differential_scripts import (
    SCRIPTS,
    O,
    one_arg_abuse,
)

# --- Transactions ------------------------------------------------------------------
SCRIPTS["transactions"] = [
    w(0, "/t/a", b"a"),
    p(0, O.TRANSACTION_START, b"\0"),
    p(0, O.TRANSACTION_START, b"\0", tx=TX, note="nested: EBUSY"),
    p(0, O.TRANSACTION_START, b"\0", tx=77, note="unknown id: ENOENT"),
    p(0, O.TRANSACTION_START, b"", note="a second, with empty payload"),
    p(0, O.TRANSACTION_START, b"junk\0more\0", note="payload ignored"),
    s(0, O.READ, "/t/a", tx=TX),
    w(0, "/t/a", b"b", tx=TX),
    s(0, O.READ, "/t/a", tx=TX, note="own write"),
    s(0, O.READ, "/t/a", note="outside: unchanged"),
    s(1, O.READ, "/t/a"),
    w(0, "/t/new/deep", b"n", tx=TX),
    s(0, O.DIRECTORY, "/t", tx=TX),
    s(0, O.DIRECTORY_PART, "/t", 0, tx=TX),
    s(0, O.DIRECTORY, "/t"),
    s(0, O.MKDIR, "/t/m", tx=TX),
    s(0, O.SET_PERMS, "/t/a", "n0", "r4", tx=TX),
    s(0, O.GET_PERMS, "/t/a", tx=TX),
    s(0, O.GET_PERMS, "/t/a"),
    s(0, O.RM, "/t/new", tx=TX),
    s(0, O.READ, "/t/new/deep", tx=TX),
    s(0, O.GET_DOMAIN_PATH, 3, tx=TX, note="non-transactional op with a valid id"),
    s(0, O.WATCH, "/t", "in-tx", tx=TX),
    p(0, O.TRANSACTION_END, b"X\0", tx=TX, note="bad payload: EINVAL, tx kept"),
    p(0, O.TRANSACTION_END, b"T", tx=TX, note="no NUL"),
    p(0, O.TRANSACTION_END, b"T\0F\0", tx=TX, note="two strings"),
    p(0, O.TRANSACTION_END, b"", tx=TX, note="empty"),
    p(0, O.TRANSACTION_END, b"t\0", tx=TX, note="lower case"),
    p(0, O.TRANSACTION_END, b"TT\0", tx=TX),
    p(0, O.TRANSACTION_END, b"T\0", note="tx 0: ENOENT"),
    p(0, O.TRANSACTION_END, b"T\0", tx=77, note="unknown"),
    p(1, O.TRANSACTION_END, b"T\0", tx=1, note="another connection's id"),
    s(1, O.READ, "/t/a", tx=1, note="another connection's id"),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX),
    s(0, O.READ, "/t/a"),
    s(0, O.DIRECTORY, "/t"),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX, note="already ended"),
    p(0, O.TRANSACTION_END, b"F\0", tx=1, note="the first one, abort"),
    p(0, O.TRANSACTION_END, b"F\0", tx=2),
    p(0, O.TRANSACTION_END, b"F\0", tx=1, note="gone"),
    p(0, O.TRANSACTION_START, b"\0"),
    w(0, "/t/aborted", b"x", tx=TX),
    p(0, O.TRANSACTION_END, b"F\0", tx=TX),
    s(0, O.READ, "/t/aborted"),
]

SCRIPTS["transaction_conflicts"] = [
    w(0, "/c/a", b"a"),
    w(0, "/c/b", b"b"),
    s(0, O.WATCH, "/c", "w0"),
    s(1, O.WATCH, "/c", "w1"),
    # read-modify-write against an outside write: EAGAIN
    p(0, O.TRANSACTION_START, b"\0"),
    s(0, O.READ, "/c/a", tx=TX),
    w(1, "/c/a", b"outside"),
    s(0, O.READ, "/c/a", tx=TX, note="snapshot"),
    w(0, "/c/a", b"mine", tx=TX),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX, note="EAGAIN"),
    s(0, O.READ, "/c/a"),
    # two transactions touching different nodes both commit
    p(0, O.TRANSACTION_START, b"\0"),
    p(1, O.TRANSACTION_START, b"\0"),
    w(0, "/c/a", b"t0", tx=TX),
    w(1, "/c/b", b"t1", tx=TX),
    p(1, O.TRANSACTION_END, b"T\0", tx=TX),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX),
    # creating children of the same parent in two transactions
    p(0, O.TRANSACTION_START, b"\0"),
    p(1, O.TRANSACTION_START, b"\0"),
    w(0, "/c/n0", b"x", tx=TX),
    w(1, "/c/n1", b"y", tx=TX),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX),
    p(1, O.TRANSACTION_END, b"T\0", tx=TX, note="parent child-list changed"),
    # DIRECTORY inside tx, child added outside
    p(0, O.TRANSACTION_START, b"\0"),
    s(0, O.DIRECTORY, "/c", tx=TX),
    w(1, "/c/n2", b"z"),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX, note="read-only tx after a conflicting write"),
    # blind write (no read) of a node changed outside
    p(0, O.TRANSACTION_START, b"\0"),
    w(1, "/c/b", b"outside2"),
    w(0, "/c/b", b"blind", tx=TX),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX),
    # rm in tx vs write outside
    p(0, O.TRANSACTION_START, b"\0"),
    s(0, O.RM, "/c/n0", tx=TX),
    w(1, "/c/n0", b"changed"),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX),
    # a tx that deletes and re-creates
    p(1, O.TRANSACTION_START, b"\0"),
    s(1, O.RM, "/c/b", tx=TX),
    w(1, "/c/b", b"re", tx=TX),
    w(1, "/c/b/k", b"kid", tx=TX),
    p(1, O.TRANSACTION_END, b"T\0", tx=TX),
    # events of a committed tx: first-access order
    p(0, O.TRANSACTION_START, b"\0"),
    w(0, "/c/z", b"1", tx=TX),
    w(0, "/c/a", b"2", tx=TX),
    s(0, O.SET_PERMS, "/c/b", "n0", "r9", tx=TX),
    s(0, O.RM, "/c/b/k", tx=TX),
    w(0, "/c/z", b"3", tx=TX),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX),
    # RESET_WATCHES drops the connection's transactions too
    p(1, O.TRANSACTION_START, b"\0"),
    p(1, O.RESET_WATCHES, b""),
    p(1, O.TRANSACTION_END, b"T\0", tx=1, note="gone after RESET_WATCHES"),
    w(0, "/c/a", b"no-watch-on-c1"),
    p(1, O.TRANSACTION_START, b"\0", note="ids after reset"),
    p(1, O.TRANSACTION_END, b"F\0", tx=TX),
]

# --- Domains ----------------------------------------------------------------------
SCRIPTS["domain_path"] = [
    *[
        p(0, O.GET_DOMAIN_PATH, d + b"\0", note=f"domid {d!r}")
        for d in (
            b"0",
            b"1",
            b"7",
            b"65535",
            b"65536",
            b"32752",
            b"-1",
            b"abc",
            b"1x",
            b" 1",
            b"+1",
            b"0x10",
            b"010",
            b"00",
            b"4294967296",
            b"",
        )
    ],
    *one_arg_abuse(O.GET_DOMAIN_PATH, b"1"),
    s(0, O.GET_DOMAIN_PATH, 3, tx=77, note="unknown tx id"),
]

SCRIPTS["domains"] = [
    s(0, O.WATCH, "@introduceDomain", "i"),
    s(0, O.WATCH, "@releaseDomain", "r"),
    s(0, O.IS_DOMAIN_INTRODUCED, 0),
    s(0, O.IS_DOMAIN_INTRODUCED, 5),
    s(0, O.IS_DOMAIN_INTRODUCED, 32752),
    s(0, O.IS_DOMAIN_INTRODUCED, "x"),
    s(0, O.IS_DOMAIN_INTRODUCED, 70000),
    *one_arg_abuse(O.IS_DOMAIN_INTRODUCED, b"0"),
    s(0, O.INTRODUCE, 5, 1, 2),
    s(0, O.IS_DOMAIN_INTRODUCED, 5),
    s(0, O.GET_DOMAIN_PATH, 5),
    w(0, "/local/domain/5/data", b"guest"),
    s(0, O.INTRODUCE, 5, 1, 2, note="again"),
    s(0, O.INTRODUCE, 6, 1, 0, note="evtchn 0"),
    s(0, O.INTRODUCE, "x", 1, 2),
    s(0, O.INTRODUCE, 70000, 1, 2),
    s(0, O.INTRODUCE, 6, 1),
    p(0, O.INTRODUCE, b"", note="empty"),
    s(0, O.RESUME, 5),
    s(0, O.RESUME, 9),
    s(0, O.RESUME, 0),
    s(0, O.RESUME, "x"),
    s(0, O.SET_TARGET, 5, 0),
    s(0, O.SET_TARGET, 9, 5),
    s(0, O.SET_TARGET, 5),
    s(0, O.SET_TARGET, "x", 5),
    s(0, O.RELEASE, 9),
    s(0, O.RELEASE, 0),
    s(0, O.RELEASE, "x"),
    *one_arg_abuse(O.RELEASE, b"9"),
    # Domain 5 is a SET_TARGET party above: C then keeps it alive through its first
    # RELEASE (docs/differences.md, "SET_TARGET ... then RELEASE"). Release a domain
    # nothing targets instead.
    s(0, O.INTRODUCE, 7, 1, 2),
    w(0, "/local/domain/7/data", b"guest7"),
    s(0, O.SET_PERMS, "/local/domain/7/data", "b7"),
    s(0, O.RELEASE, 7),
    s(0, O.IS_DOMAIN_INTRODUCED, 7),
    s(0, O.READ, "/local/domain/7/data"),
    s(0, O.RELEASE, 7, note="again"),
]

# A toolstack names a domain before introducing it (docs/differences.md, "Which domains
# exist"); C runs with every domain id known to its shim, as under Xen.
SCRIPTS["domains named before introduce"] = [
    s(0, O.WATCH, "@introduceDomain", "i"),
    s(0, O.WATCH, "@releaseDomain", "r"),
    p(0, O.CONTROL, b"quota\x0011\x00", note="not known yet"),
    s(0, O.TRANSACTION_START, ""),
    w(0, "/local/domain/11", b"", tx=TX),
    s(0, O.SET_PERMS, "/local/domain/11", "n0", "r11", tx=TX),
    w(0, "/local/domain/11/device/vif/0/state", b"1", tx=TX),
    s(0, O.SET_PERMS, "/local/domain/11/device/vif/0/state", "n11", "r0", tx=TX),
    s(0, O.TRANSACTION_END, "T", tx=TX),
    s(0, O.SET_PERMS, "/nowhere", "n12", note="names 12 although the node is missing"),
    s(0, O.IS_DOMAIN_INTRODUCED, 11),
    s(0, O.RELEASE, 11, note="named, not introduced"),
    s(0, O.RESUME, 11),
    s(0, O.SET_TARGET, 11, 12),
    p(0, O.CONTROL, b"quota\x0011\x00", note="known: its nodes counted"),
    p(0, O.CONTROL, b"quota\x0012\x00"),
    s(0, O.SET_PERMS, "/local", "n0", "r32752", "r-1", "r70000", note="never domains"),
    s(0, O.SET_PERMS, "/local", "n32752"),
    s(0, O.SET_PERMS, "/local", "n0"),
    s(0, O.INTRODUCE, 11, 1, 2),
    s(0, O.IS_DOMAIN_INTRODUCED, 11),
    w(0, "/secret", b"s"),
    s(0, O.SET_PERMS, "/secret", "n0", "r11"),
    s(1, O.TRANSACTION_START, ""),
    s(1, O.SET_PERMS, "/secret", "n0", "b11", tx=TX),
    s(0, O.RELEASE, 11),
    s(0, O.IS_DOMAIN_INTRODUCED, 11),
    p(0, O.CONTROL, b"quota\x0011\x00", note="gone"),
    s(0, O.GET_PERMS, "/secret", note="the entry is shown, ignored"),
    s(0, O.SET_PERMS, "/local/domain/11", "n0", "r11", note="the id's next life"),
    s(1, O.TRANSACTION_END, "T", tx=TX),
    s(0, O.GET_PERMS, "/secret"),
    s(0, O.INTRODUCE, 11, 1, 2),
    s(0, O.RELEASE, 11),
    s(0, O.RM, "/local/domain/11"),
    s(0, O.RM, "/secret"),
]

# --- CONTROL ---------------------------------------------------------------------
CONTROL_PAYLOADS = [
    b"help\0",
    b"help\0extra\0",
    b"check\0",
    b"check\0x\0",
    b"log\0",
    b"log\0on\0",
    b"log\0off\0",
    b"log\0+io\0",
    b"log\0bogus\0",
    b"logfile\0",
    b"memreport\0",
    b"print\0hello\0",
    b"print\0",
    b"print\0a\0b\0",
    b"quota\0",
    b"quota\0set\0nodes\05\0",
    b"quota\0",
    b"quota\0set\0nodes\01000\0",
    b"quota\0set\0bogus\05\0",
    b"quota\0set\0nodes\00\0",
    b"quota\0set\0nodes\0",
    b"quota\05\0",
    b"quota\0abc\0",
    b"quota\0max\0",
    b"quota-soft\0",
    b"quota-soft\0set\0memory\0100\0",
    b"quota-soft\0x\0",
    b"bogus\0",
    b"",
    b"help",
    b"\0",
    b"live-update\0",
    b"live-update\0-a\0",
    b"live-update\0-s\0",
    b"live-update\0-c\0x\0",
    b"live-update\0-x\0",
]
SCRIPTS["control"] = [
    *[p(0, O.CONTROL, c, note="control") for c in CONTROL_PAYLOADS],
    s(0, O.CONTROL, "check", tx=77),
]
SCRIPTS["control_quota_domain"] = [
    s(0, O.CONTROL, "quota", 0),
    w(0, "/local/domain/0/x", b"1"),
    s(0, O.CONTROL, "quota", 0),
]

# --- ENOSYS, header echo ------------------------------------------------------------
SCRIPTS["enosys"] = [
    *[
        p(0, t, b"\0", note="unsupported type")
        for t in (15, 16, 20, 23, 24, 25, 26, 27, 28, 100, 65534, 65535, 0xFFFFFFFF)
    ],
    p(0, 15, b"/a\0tok\0"),
    p(0, 23, b""),
    p(0, 20, b"", tx=77, note="ENOSYS before the tx lookup"),
    s(0, O.READ, "/tool", note="still served"),
]

SCRIPTS["header_echo"] = [
    Step(0, O.READ, b"/tool\0", req_id=0),
    Step(0, O.READ, b"/tool\0", req_id=0xFFFFFFFF),
    Step(0, O.READ, b"/nope\0", req_id=0x12345678),
    Step(0, O.WRITE, b"/e\0v", req_id=7),
    Step(0, O.WRITE, b"/e\0v", req_id=7, note="same req_id again"),
    Step(0, O.TRANSACTION_START, b"\0", req_id=0xFFFFFFFF),
    Step(0, O.READ, b"/tool\0", req_id=5, tx=TX),
    Step(0, O.WATCH, b"/e\0t\0", req_id=6, tx=0xFFFFFFFF, note="WATCH ignores tx_id"),
    Step(0, O.UNWATCH, b"/e\0t\0", req_id=9, tx=12345, note="UNWATCH ignores tx_id"),
    Step(0, O.READ, b"/tool\0", req_id=5, tx=0xFFFFFFFF),
    Step(0, O.TRANSACTION_END, b"F\0", req_id=3, tx=TX),
]
