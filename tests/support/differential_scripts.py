"""The differential tests' hand-written scripts, part one: the requests on nodes.

READ, WRITE, MKDIR, RM, DIRECTORY, DIRECTORY_PART, the permissions and the watches; their
malformed forms too. ``SCRIPTS`` maps a script's name to its steps; the scripts of
transactions, domains and the rest are added to it by
``tests.support.differential_scripts_sessions``. ``tests/conformance/test_differential.py``
plays each against C xenstored and xsd.
"""

from __future__ import annotations

from tests.support.differential import (
    TX,
    Step,
    p,
    s,
    w,
)
from xsd_client.protocol import Op

O = Op  # noqa: E741 - short, the scripts below are tables
BAD_PATHS = [
    b"",
    b"//",
    b"/a/",
    b"/a//b",
    b"a/",
    b"/a b",
    b"/a.b",
    b"/a%b",
    b"/a\xff",
    b"/a\x01",
    b"/\xc3\xa9",
    b"/a\\b",
    b"/a:b",
    b"/a,b",
    b"/~",
]


def one_arg_abuse(op: Op, path: bytes = b"/tool") -> list[Step]:
    """The malformed forms of a one-argument request (onearg() in C)."""
    return [
        p(0, op, path, note="missing NUL"),
        p(0, op, b"", note="empty payload"),
        p(0, op, path + b"\0extra\0", note="two strings"),
        p(0, op, path + b"\0extra", note="trailing bytes"),
        p(0, op, path + b"\0\0", note="two NULs"),
        p(0, op, b"\0", note="empty string"),
    ]


def path_abuse(op: Op, suffix: bytes = b"") -> list[Step]:
    return [p(0, op, bp + b"\0" + suffix, note=f"bad path {bp!r}") for bp in BAD_PATHS]


def specials(op: Op, suffix: bytes = b"") -> list[Step]:
    return [
        p(0, op, sp + b"\0" + suffix, note="special path")
        for sp in (b"@introduceDomain", b"@releaseDomain", b"@foo", b"@", b"@a/b")
    ]


SCRIPTS: dict[str, list[Step]] = {}

# --- READ --------------------------------------------------------------------------
SCRIPTS["read"] = [
    s(0, O.READ, "/"),
    s(0, O.READ, "/tool"),
    s(0, O.READ, "/tool/xenstored"),
    s(0, O.READ, "/nope"),
    s(0, O.READ, "/nope/deeper/still"),
    s(0, O.READ, "rel"),
    w(0, "/r", b"plain"),
    w(0, "/r/empty", b""),
    w(0, "/r/nul", b"a\0b\0"),
    w(0, "/r/high", bytes(range(128, 256))),
    w(0, "/r/chars-_@AZaz09", b"x"),
    s(0, O.READ, "/r"),
    s(0, O.READ, "/r/empty"),
    s(0, O.READ, "/r/nul"),
    s(0, O.READ, "/r/high"),
    s(0, O.READ, "/r/chars-_@AZaz09"),
    s(0, O.READ, "/r/missing"),
    w(0, "rel/x", b"relative"),
    s(0, O.READ, "rel/x"),
    s(0, O.READ, "/local/domain/0/rel/x"),
    *one_arg_abuse(O.READ, b"/r"),
    *path_abuse(O.READ),
    *specials(O.READ),
]

# --- WRITE -------------------------------------------------------------------------
SCRIPTS["write"] = [
    w(0, "/a", b"1"),
    w(0, "/a", b"2"),
    w(0, "/a", b"2"),
    w(0, "/a", b""),
    w(0, "/a/b/c/d/e", b"deep"),
    w(0, "/v", b"trailing nul\0"),
    w(0, "/v2", b"\0"),
    w(0, "/big", b"x" * 4000),
    p(0, O.WRITE, b"/nonul", note="no NUL at all"),
    p(0, O.WRITE, b"", note="empty payload"),
    p(0, O.WRITE, b"\0value", note="empty path"),
    w(0, "/", b"root value"),
    w(0, "/tool", b"t"),
    w(0, "relw", b"r"),
    w(0, "relw/a/b", b"rr"),
    *path_abuse(O.WRITE, b"v"),
    *specials(O.WRITE, b"v"),
    s(0, O.READ, "/"),
    s(0, O.DIRECTORY, "/"),
    s(0, O.DIRECTORY, "/a/b/c"),
]

# --- MKDIR -------------------------------------------------------------------------
SCRIPTS["mkdir"] = [
    s(0, O.MKDIR, "/m"),
    s(0, O.MKDIR, "/m"),
    w(0, "/m", b"keep"),
    s(0, O.MKDIR, "/m"),
    s(0, O.READ, "/m"),
    s(0, O.MKDIR, "/m/x/y/z"),
    s(0, O.MKDIR, "/"),
    s(0, O.MKDIR, "relm"),
    s(0, O.DIRECTORY, "/m/x"),
    *one_arg_abuse(O.MKDIR, b"/m2"),
    *path_abuse(O.MKDIR),
    *specials(O.MKDIR),
]

# --- RM ----------------------------------------------------------------------------
SCRIPTS["rm"] = [
    w(0, "/d/a/b", b"1"),
    w(0, "/d/a/c", b"2"),
    w(0, "/d/e", b"3"),
    s(0, O.RM, "/d/a/b"),
    s(0, O.RM, "/d/a/b", note="again: parent exists"),
    s(0, O.RM, "/d/nope/x", note="parent missing"),
    s(0, O.RM, "/d/a"),
    s(0, O.DIRECTORY, "/d"),
    w(0, "/d/a", b"back"),
    s(0, O.DIRECTORY, "/d", note="re-created child goes to the end"),
    s(0, O.RM, "/"),
    s(0, O.RM, "relr", note="relative, missing, parent /local/domain/0 missing"),
    w(0, "relr", b"x"),
    s(0, O.RM, "relr"),
    s(0, O.RM, "/d"),
    s(0, O.READ, "/d"),
    *one_arg_abuse(O.RM, b"/zz"),
    *path_abuse(O.RM),
    *specials(O.RM),
    # Last: C 4.17 aborts (assertion conn->in == NULL) on a malformed RM after this.
    s(0, O.RM, "/tool/xenstored"),
]

# --- DIRECTORY ---------------------------------------------------------------------
SCRIPTS["directory"] = [
    s(0, O.DIRECTORY, "/"),
    s(0, O.DIRECTORY, "/tool/xenstored"),
    s(0, O.DIRECTORY, "/nope"),
    *[w(0, f"/o/{n}", b"") for n in ("zeta", "alpha", "Mid", "1", "_", "-", "@at")],
    s(0, O.DIRECTORY, "/o", note="insertion order"),
    s(0, O.RM, "/o/alpha"),
    w(0, "/o/alpha", b""),
    s(0, O.DIRECTORY, "/o"),
    s(0, O.DIRECTORY, "rel"),
    *one_arg_abuse(O.DIRECTORY, b"/o"),
    *path_abuse(O.DIRECTORY),
    *specials(O.DIRECTORY),
]

BIG = [f"child-{i:03d}-" + "x" * 30 for i in range(110)]  # 110 * 41 bytes = 4510 > 4096
SCRIPTS["directory_big"] = [
    *[w(0, f"/big/{n}", b"") for n in BIG],
    s(0, O.DIRECTORY, "/big", note="over 4096 bytes: E2BIG"),
    s(0, O.DIRECTORY_PART, "/big", 0),
    s(0, O.DIRECTORY_PART, "/big", 4018),
    s(0, O.DIRECTORY_PART, "/big", 4059),
    s(0, O.DIRECTORY_PART, "/big", 4510),
    s(0, O.DIRECTORY_PART, "/big", 4509),
    s(0, O.RM, f"/big/{BIG[0]}"),
    s(0, O.RM, f"/big/{BIG[1]}"),
    s(0, O.RM, f"/big/{BIG[2]}"),
    s(0, O.DIRECTORY, "/big", note="still too big"),
    *[s(0, O.RM, f"/big/{n}") for n in BIG[3:14]],
    s(0, O.DIRECTORY, "/big", note="now fits"),
]

# --- DIRECTORY_PART ----------------------------------------------------------------
SCRIPTS["directory_part"] = [
    s(0, O.DIRECTORY_PART, "/", 0),
    s(0, O.DIRECTORY_PART, "/tool/xenstored", 0),
    *[w(0, f"/p/{n}", b"") for n in ("aa", "bbb", "c")],
    s(0, O.DIRECTORY_PART, "/p", 0),
    s(0, O.DIRECTORY_PART, "/p", 3),
    s(0, O.DIRECTORY_PART, "/p", 1, note="middle of a name"),
    s(0, O.DIRECTORY_PART, "/p", 9),
    s(0, O.DIRECTORY_PART, "/p", 10, note="past the end"),
    s(0, O.DIRECTORY_PART, "/p", 100000),
    s(0, O.DIRECTORY_PART, "/p", -1),
    s(0, O.DIRECTORY_PART, "/p", "abc", note="non-numeric"),
    s(0, O.DIRECTORY_PART, "/p", "3abc"),
    s(0, O.DIRECTORY_PART, "/p", ""),
    s(0, O.DIRECTORY_PART, "/p", " 3"),
    s(0, O.DIRECTORY_PART, "/p", "+3"),
    s(0, O.DIRECTORY_PART, "/p", "0x3"),
    s(0, O.DIRECTORY_PART, "/p", "4294967296"),
    p(0, O.DIRECTORY_PART, b"/p\0", note="one argument"),
    p(0, O.DIRECTORY_PART, b"/p\x000\x00junk", note="trailing bytes"),
    p(0, O.DIRECTORY_PART, b"/p\x000\x000\x00", note="three arguments"),
    p(0, O.DIRECTORY_PART, b"/p\x000", note="second without NUL"),
    p(0, O.DIRECTORY_PART, b"", note="empty"),
    s(0, O.DIRECTORY_PART, "/nope", 0),
    s(0, O.DIRECTORY_PART, "rel", 0),
    s(0, O.DIRECTORY_PART, "@introduceDomain", 0),
    *path_abuse(O.DIRECTORY_PART, b"0\0"),
    s(0, O.SET_PERMS, "/p", "n0", "r3"),
    s(0, O.DIRECTORY_PART, "/p", 0, note="gen after SET_PERMS"),
    w(0, "/p", b"val"),
    s(0, O.DIRECTORY_PART, "/p", 0, note="gen after WRITE"),
    s(0, O.MKDIR, "/p"),
    s(0, O.DIRECTORY_PART, "/p", 0, note="MKDIR of existing: no gen change"),
]

# --- GET_PERMS / SET_PERMS --------------------------------------------------------
PERM_STRINGS = [
    [b"n0"],
    [b"r0"],
    [b"w0"],
    [b"b0"],
    [b"n1"],
    [b"n0", b"r1", b"w2", b"b3", b"n4"],
    [b"n0", b"r0"],
    [b"n0", b"r1", b"r1"],
    [b"x5"],
    [b"r"],
    [b"n"],
    [b""],
    [b"r-1"],
    [b"r65536"],
    [b"r65535"],
    [b"r0x10"],
    [b"r010"],
    [b"r 5"],
    [b"r5 "],
    [b"r+5"],
    [b"R5"],
    [b"n0", b"q1"],
    [b"n0", b""],
    [b"r32752"],
    [b"r32757"],
    [b"r99999999999"],
    [b"n0"] * 20,
]
SCRIPTS["perms"] = [
    s(0, O.GET_PERMS, "/"),
    s(0, O.GET_PERMS, "/tool"),
    w(0, "/q", b"v"),
    *[
        Step(0, O.SET_PERMS, b"/q\0" + b"".join(x + b"\0" for x in ps), note="perm strings")
        for ps in PERM_STRINGS
    ],
    s(0, O.GET_PERMS, "/q"),
    s(0, O.SET_PERMS, "/q", "b7", "r8"),
    s(0, O.GET_PERMS, "/q"),
    w(0, "/q/child/grand", b"inherits"),
    s(0, O.GET_PERMS, "/q/child"),
    s(0, O.GET_PERMS, "/q/child/grand"),
    s(0, O.SET_PERMS, "/q", "n0"),
    s(0, O.GET_PERMS, "/q/child", note="no retroactive change"),
    p(0, O.SET_PERMS, b"/q\0", note="path only"),
    p(0, O.SET_PERMS, b"/q", note="no NUL"),
    p(0, O.SET_PERMS, b"", note="empty"),
    p(0, O.SET_PERMS, b"/q\0n0", note="perm without NUL"),
    s(0, O.SET_PERMS, "/missing", "n0"),
    s(0, O.SET_PERMS, "/missing/deeper", "n0"),
    s(0, O.SET_PERMS, "/", "n0"),
    s(0, O.SET_PERMS, "/", "r0"),
    s(0, O.GET_PERMS, "/"),
    s(0, O.SET_PERMS, "/", "n0"),
    s(0, O.SET_PERMS, "relp", "n0"),
    w(0, "relp", b""),
    s(0, O.SET_PERMS, "relp", "n0", "r2"),
    s(0, O.GET_PERMS, "relp"),
    s(0, O.SET_PERMS, "@introduceDomain", "n0", "r1"),
    s(0, O.SET_PERMS, "@releaseDomain", "n0"),
    s(0, O.SET_PERMS, "@releaseDomain", "x"),
    s(0, O.SET_PERMS, "@foo", "n0"),
    s(0, O.SET_PERMS, "@", "n0"),
    s(0, O.GET_PERMS, "@introduceDomain"),
    s(0, O.GET_PERMS, "@releaseDomain"),
    s(0, O.GET_PERMS, "/missing"),
    *one_arg_abuse(O.GET_PERMS, b"/q"),
    *path_abuse(O.GET_PERMS),
    *path_abuse(O.SET_PERMS, b"n0\0"),
]

# --- WATCH / UNWATCH / RESET_WATCHES -------------------------------------------------
SCRIPTS["watch"] = [
    s(0, O.WATCH, "/wa", "tok"),
    s(0, O.WATCH, "/wa", "tok", note="duplicate"),
    s(0, O.WATCH, "/wa", "tok2"),
    s(0, O.WATCH, "/wa/b", "tok"),
    s(0, O.WATCH, "/", "root"),
    s(0, O.WATCH, "relw", "rel"),
    s(0, O.WATCH, "/local/domain/0/relw", "rel", note="same as the relative one"),
    s(0, O.WATCH, "@introduceDomain", "intro"),
    s(0, O.WATCH, "@releaseDomain", "rel"),
    s(0, O.WATCH, "@foo", "foo"),
    s(0, O.WATCH, "/wt", "tx-ignored", tx=77),
    s(0, O.WATCH, "/wa", ""),
    s(0, O.WATCH, "/wa", "tok with spaces and \x01\xff"),
    p(0, O.WATCH, b"/wa\0", note="one string"),
    p(0, O.WATCH, b"/wa\0t\0extra\0", note="three strings"),
    p(0, O.WATCH, b"/wa\0t\x001\0", note="depth (4.22 only)"),
    p(0, O.WATCH, b"/wa\0t", note="token without NUL"),
    p(0, O.WATCH, b"", note="empty"),
    *path_abuse(O.WATCH, b"t\0"),
    w(0, "/wa", b"1"),
    w(0, "/wa/b/c", b"2"),
    w(0, "relw/x", b"3"),
    s(0, O.MKDIR, "/wa", note="exists: no event"),
    s(0, O.MKDIR, "/wa/new"),
    s(0, O.SET_PERMS, "/wa", "n0", "r1"),
    s(0, O.RM, "/wa/nope", note="missing: no event"),
    s(0, O.RM, "/wa"),
    s(0, O.UNWATCH, "/wa", "tok"),
    s(0, O.UNWATCH, "/wa", "tok", note="again: ENOENT"),
    s(0, O.UNWATCH, "relw", "rel"),
    s(0, O.UNWATCH, "/local/domain/0/relw", "rel"),
    s(0, O.UNWATCH, "/local/domain/0/relw", "rel"),
    s(0, O.UNWATCH, "@foo", "foo"),
    s(0, O.UNWATCH, "/never", "x"),
    p(0, O.UNWATCH, b"/wa\0", note="one string"),
    p(0, O.UNWATCH, b"/wa\0tok2\0x\0", note="three strings"),
    p(0, O.UNWATCH, b"", note="empty"),
    *path_abuse(O.UNWATCH, b"t\0"),
    w(0, "/wa/again", b"x"),
    p(0, O.RESET_WATCHES, b""),
    w(0, "/wa/after-reset", b"x"),
    s(0, O.WATCH, "/wa", "tok"),
    p(0, O.RESET_WATCHES, b"\0"),
    p(0, O.RESET_WATCHES, b"junk\0more\0"),
]

SCRIPTS["watch_two_conns"] = [
    s(0, O.WATCH, "/x", "A"),
    s(1, O.WATCH, "/x/y", "B"),
    s(1, O.WATCH, "/", "R"),
    w(1, "/x/y/z", b"1"),
    w(0, "/x", b"2"),
    w(0, "/x/y", b"3"),
    w(0, "/other", b"4"),
    s(1, O.RM, "/x", note="rm fires descendants first"),
    w(0, "/x/y", b"again"),
    s(0, O.WATCH, "/x/y/z/w", "deep-missing"),
    s(1, O.RM, "/x/y"),
    s(0, O.SET_PERMS, "/other", "n0", "b5"),
    s(1, O.UNWATCH, "/", "R"),
    w(0, "/other", b"5"),
]

SCRIPTS["watch_rm_subtree"] = [
    w(0, "/s/a/b/c", b"1"),
    w(0, "/s/a/d", b"2"),
    w(0, "/s/e", b"3"),
    s(0, O.WATCH, "/s/a/b/c", "exact-c"),
    s(0, O.WATCH, "/s/a/b/c/missing", "below-c"),
    s(0, O.WATCH, "/s/a", "a"),
    s(1, O.WATCH, "/s/a/d", "exact-d"),
    s(1, O.WATCH, "/", "root"),
    s(1, O.WATCH, "/s/a/b", "b"),
    s(0, O.RM, "/s/a", note="post-order: c, b, d, a; exact watches for descendants"),
    w(0, "/s/a/b/c", b"again"),
    s(1, O.RM, "/s"),
    s(0, O.RM, "/s", note="gone"),
]

SCRIPTS["relative_watches"] = [
    s(0, O.WATCH, "rw", "rel"),
    s(0, O.WATCH, "rw/sub", "relsub"),
    s(1, O.WATCH, "/local/domain/0/rw", "abs"),
    w(1, "/local/domain/0/rw/sub/x", b"1"),
    w(0, "rw", b"2"),
    s(0, O.SET_PERMS, "rw/sub", "n0", "r1"),
    p(0, O.TRANSACTION_START, b"\0"),
    w(0, "rw/t", b"in tx", tx=TX),
    s(0, O.RM, "rw/sub", tx=TX),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX),
    s(1, O.RM, "/local/domain/0/rw"),
    s(0, O.UNWATCH, "/local/domain/0/rw", "rel", note="same canonical path"),
    w(1, "/local/domain/0/rw", b"3"),
]

SCRIPTS["watch_and_tx_across_conns"] = [
    s(1, O.WATCH, "/x", "w1"),
    p(0, O.TRANSACTION_START, b"\0"),
    w(0, "/x/a", b"1", tx=TX),
    w(0, "/x/b", b"2", tx=TX),
    s(0, O.MKDIR, "/x/c", tx=TX),
    s(0, O.RM, "/x/b", tx=TX),
    p(0, O.TRANSACTION_END, b"F\0", tx=TX, note="abort: no events"),
    p(0, O.TRANSACTION_START, b"\0"),
    w(0, "/x/a", b"1", tx=TX),
    w(0, "/x/b", b"2", tx=TX),
    s(0, O.MKDIR, "/x/c", tx=TX),
    s(0, O.DIRECTORY_PART, "/x", 0, tx=TX),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX, note="commit: events in first-access order"),
    s(0, O.DIRECTORY_PART, "/x", 0),
    p(1, O.TRANSACTION_START, b"\0"),
    s(1, O.DIRECTORY, "/x", tx=TX),
    s(0, O.RM, "/x/c"),
    w(1, "/x/d", b"4", tx=TX),
    p(1, O.TRANSACTION_END, b"T\0", tx=TX, note="EAGAIN: nothing fires"),
    s(1, O.DIRECTORY, "/x"),
]

SCRIPTS["directory_part_in_tx"] = [
    *[w(0, f"/dp/{n}", b"") for n in BIG[:100]],
    p(0, O.TRANSACTION_START, b"\0"),
    s(0, O.DIRECTORY_PART, "/dp", 0, tx=TX),
    w(0, "/dp/zz-new", b"", tx=TX),
    s(0, O.DIRECTORY_PART, "/dp", 0, tx=TX),
    s(0, O.DIRECTORY_PART, "/dp", 4018, tx=TX),
    s(0, O.DIRECTORY, "/dp", tx=TX),
    s(0, O.DIRECTORY_PART, "/dp", 4018),
    p(0, O.TRANSACTION_END, b"T\0", tx=TX),
    s(0, O.DIRECTORY_PART, "/dp", 4018),
]
