from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xsd_client.protocol import (
    HEADER,
    PAYLOAD_MAX,
    Decoder,
    Op,
    Packet,
    ProtocolError,
    encode,
    join_args,
    parse_directory,
    parse_directory_part,
    parse_error,
    parse_perms,
    parse_watch_event,
    split_args,
)

CASES = [
    (Packet(Op.READ, 7, 0, b"/a\0"), b"\x02\0\0\0\x07\0\0\0\0\0\0\0\x03\0\0\0/a\0"),
    (Packet(Op.WRITE, 1, 3, b"/a\0v"), b"\x0b\0\0\0\x01\0\0\0\x03\0\0\0\x04\0\0\0/a\0v"),
    (Packet(Op.WATCH_EVENT, 0, 0, b""), b"\x0f\0\0\0" + b"\0" * 12),
    (
        Packet(Op.INVALID, 2**32 - 1, 2**32 - 1, b"x"),
        b"\xff\xff\0\0" + b"\xff" * 8 + b"\x01\0\0\0x",
    ),
]


@pytest.mark.parametrize(("packet", "wire"), CASES)
def test_encode_and_decode_table(packet: Packet, wire: bytes) -> None:
    assert encode(packet.op, packet.req_id, packet.tx_id, packet.payload) == wire
    decoder = Decoder()
    decoder.receive_data(wire)
    assert decoder.next_packet() == packet
    assert decoder.next_packet() is None


packets = st.builds(
    Packet,
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=PAYLOAD_MAX),
)


@given(st.lists(packets, max_size=6), st.data())
def test_any_chunking_gives_the_same_packets(items: list[Packet], data: st.DataObject) -> None:
    wire = b"".join(encode(p.op, p.req_id, p.tx_id, p.payload) for p in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    decoder = Decoder()
    out = []
    last = 0
    for cut in [*cuts, len(wire)]:
        if cut > last:  # an empty chunk would mean end of stream
            decoder.receive_data(wire[last:cut])
        last = cut
        out.extend(decoder)
    assert out == items
    assert decoder.pending == b""


def test_oversized_length_is_a_protocol_error() -> None:
    decoder = Decoder()
    decoder.receive_data(HEADER.pack(Op.WRITE, 0, 0, PAYLOAD_MAX + 1))
    with pytest.raises(ProtocolError):
        decoder.next_packet()
    with pytest.raises(ProtocolError):
        encode(Op.WRITE, 0, 0, b"x" * (PAYLOAD_MAX + 1))


def test_eof_inside_a_packet_is_a_protocol_error_and_pending_is_kept() -> None:
    decoder = Decoder()
    decoder.receive_data(HEADER.pack(Op.READ, 0, 0, 3) + b"/a")
    assert decoder.next_packet() is None
    assert decoder.pending.endswith(b"/a")
    decoder.receive_data(b"")
    with pytest.raises(ProtocolError):
        decoder.next_packet()


def test_payload_helpers() -> None:
    assert join_args("a", b"b", 5) == b"a\0b\x005\0"
    assert split_args(b"a\0b\0junk") == [b"a", b"b"]
    assert split_args(b"") == []
    assert parse_error(b"ENOENT\0") == "ENOENT"
    assert parse_error(b"EQUOTA\0") == "EINVAL"
    assert parse_directory(b"") == []
    assert parse_directory(b"a\0b\0") == ["a", "b"]
    assert parse_directory_part(b"12\0a\0b\0\0") == (12, ["a", "b"], True)
    assert parse_directory_part(b"12\0a\0") == (12, ["a"], False)
    assert parse_directory_part(b"3\0\0") == (3, [], True)
    assert parse_perms(b"n0\0r5\0") == ["n0", "r5"]
    assert parse_watch_event(b"/a\0tok\0") == ("/a", b"tok")
