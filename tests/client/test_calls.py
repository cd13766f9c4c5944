"""The sans-IO halves both clients share: the requests they build, how they read
replies, and how watch events find their watches. No daemon: the wire forms are the
ones the daemon tests send to xsd and C xenstored."""

from __future__ import annotations

import pytest

from xsd_client import calls
from xsd_client.errors import EACCES, ENOENT, RemoteProtocolError
from xsd_client.protocol import Op, Packet
from xsd_client.values import Perm, WatchEvent
from xsd_client.watch_table import WatchTable, covers


class _W:
    def __init__(self, path: str, token: str) -> None:
        self.path = path
        self.token = token


def test_requests_have_the_wire_form() -> None:
    assert calls.read("/a").payload == b"/a\0"
    assert calls.write("/a", "v\0w").payload == b"/a\0v\0w"  # the value is not terminated
    assert calls.set_perms("/a", [Perm("b", 0), "r5"]).payload == b"/a\0b0\0r5\0"
    assert calls.watch("/a", "t").payload == b"/a\0t\0"
    assert calls.watch("/a", "t", 2).payload == b"/a\0t\x002\0"
    assert calls.unwatch("/a", "t").payload == b"/a\0t\0"
    assert calls.introduce(3, 4, 5).payload == b"3\x004\x005\0"
    assert calls.transaction_end(True).payload == b"T\0"
    assert calls.transaction_end(False).payload == b"F\0"
    assert calls.control("log", "on").payload == b"log\0on\0"
    assert calls.rm("/a").op == Op.RM
    assert calls.rm("/a").path == "/a"  # errors name it


def test_bytes_that_are_not_utf8_travel_unchanged() -> None:
    raw = b"/\xff"
    text = calls.dec(raw)
    assert calls.read(text).payload == raw + b"\0"
    assert calls.enc(text, "path") == raw


@pytest.mark.parametrize(
    "build",
    [
        lambda: calls.read(5),  # type: ignore[arg-type]
        lambda: calls.write("/a", 5),  # type: ignore[arg-type]
        lambda: calls.watch("/a", "t", "1"),  # type: ignore[arg-type]
        lambda: calls.release(True),
        lambda: calls.set_perms("/a", [5]),  # type: ignore[list-item]
        lambda: calls.control("x", 1),  # type: ignore[arg-type]
    ],
)
def test_bad_argument_types_raise_before_anything_is_built(build: object) -> None:
    with pytest.raises(TypeError):
        build()  # type: ignore[operator]


def test_replies_parse_to_values() -> None:
    assert calls.transaction_start().parse(b"17\0") == 17
    assert calls.is_domain_introduced(1).parse(b"T\0") is True
    assert calls.is_domain_introduced(1).parse(b"F\0") is False
    assert calls.get_perms("/a").parse(b"n0\0r5\0") == [Perm("n", 0), Perm("r", 5)]
    assert calls.get_domain_path(3).parse(b"/local/domain/3\0") == "/local/domain/3"
    assert calls.read("/a").parse(b"v\0") == b"v\0"
    assert calls.mkdir("/a").parse(b"OK\0") is None


def test_check_reply() -> None:
    ok = Packet(Op.READ, 1, 0, b"v")
    assert calls.check_reply(Op.READ, ok, "/a") == b"v"
    with pytest.raises(ENOENT) as info:
        calls.check_reply(Op.READ, Packet(Op.ERROR, 1, 0, b"ENOENT\0"), "/a")
    assert "/a" in str(info.value)
    with pytest.raises(EACCES):
        calls.check_reply(Op.WRITE, Packet(Op.ERROR, 1, 0, b"EACCES\0"), None)
    with pytest.raises(RemoteProtocolError, match="READ request answered"):
        calls.check_reply(Op.READ, Packet(Op.WRITE, 1, 0, b"OK\0"), "/a")


def test_directory_parts_collect_chunks() -> None:
    parts = calls.DirectoryParts("/d")
    assert parts.whole().payload == b"/d\0"
    assert parts.next_part().payload == b"/d\x000\0"
    assert parts.feed(b"7\0a\0bb\0") is None
    assert parts.next_part().payload == b"/d\x005\0"  # the bytes of "a\0bb\0"
    assert parts.feed(b"7\0c\0\0") == ["a", "bb", "c"]


def test_directory_parts_start_over_when_the_node_changes() -> None:
    parts = calls.DirectoryParts("/d")
    assert parts.feed(b"7\0a\0") is None
    assert parts.feed(b"8\0b\0\0") is None  # another generation: drop what we had
    assert parts.next_part().payload == b"/d\x000\0"
    assert parts.feed(b"8\0a\0b\0\0") == ["a", "b"]


def test_directory_parts_refuse_an_empty_incomplete_chunk() -> None:
    parts = calls.DirectoryParts("/d")
    assert parts.feed(b"7\0a\0") is None
    with pytest.raises(RemoteProtocolError, match="empty incomplete"):
        parts.feed(b"7\0junk")  # no whole name, not the end: it would ask forever


def test_covers() -> None:
    assert covers("/a", "/a")
    assert covers("/a", "/a/b")
    assert covers("/a/", "/a/b")
    assert not covers("/a", "/ab")
    assert not covers("/a/b", "/a")


def test_watch_table_routes_events_by_token_then_path() -> None:
    table: WatchTable[_W] = WatchTable()
    a, b, other = _W("/a", "t"), _W("/b", "t"), _W("/a", "u")
    for w in (a, b, other):
        table.add(w)
    assert table.route(b"/a/x\0t\0") == (WatchEvent("/a/x", "t"), [a])
    assert table.route(b"/b\0t\0")[1] == [b]
    # Fits neither path (a spurious event): both get it rather than none.
    assert table.route(b"/c\0t\0")[1] == [a, b]
    assert table.route(b"/a\0gone\0") == (WatchEvent("/a", "gone"), [])
    # Bytes that are not UTF-8 (no daemon sends them) are kept, not an error.
    event, _ = table.route(b"/a/\xff\0t\0")
    assert calls.enc(event.path, "path") == b"/a/\xff"
    assert table.find("/b", "t") is b
    assert table.find("/c", "t") is None
    table.remove(a)
    table.remove(a)  # twice is harmless
    assert table.route(b"/c\0t\0")[1] == [b]
    assert sorted(w.path + w.token for w in table.take_all()) == ["/au", "/bt"]
    assert table.take_all() == []


def test_values_are_immutable_and_equal_by_value() -> None:
    perm = Perm("r", 5)
    assert perm == Perm("r", 5) and hash(perm) == hash(Perm("r", 5))
    assert perm != Perm("r", 6)
    assert WatchEvent("/a", "t") == WatchEvent("/a", "t") != WatchEvent("/a", "u")
    assert Packet(Op.READ, 1, 0, b"x") != Packet(Op.READ, 1, 0, b"y")
    assert len({Packet(Op.READ, 1, 0, b"x"), Packet(Op.READ, 1, 0, b"x")}) == 1
    assert WatchEvent("r", "5") != Perm("r", 5)  # other classes are never equal
    for value, name in ((perm, "domid"), (WatchEvent("/a", "t"), "path")):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(value, name, 1)
        with pytest.raises(AttributeError, match="immutable"):
            delattr(value, name)
