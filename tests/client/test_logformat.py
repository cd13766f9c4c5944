"""The line format: escaping round-trips, every formatted line parses (the classes the
daemon's option names: ``tests/server/test_logfile.py``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xsd.core.trace import io_text
from xsd_client.logformat import (
    Clock,
    escape,
    format_line,
    parse_line,
    source_tag,
    unescape,
)
from xsd_client.protocol import Packet, encode


@given(st.binary(max_size=300))
def test_escape_round_trips_and_stays_one_printable_line(data: bytes) -> None:
    text = escape(data)
    assert text.isascii() and text.isprintable() and "\n" not in text
    assert unescape(text) == data


@given(st.binary(max_size=200), st.integers(0, 2**32 - 1), st.sampled_from([2, 11, 16, 99]))
def test_io_lines_parse(payload: bytes, req_id: int, op: int) -> None:
    source = source_tag("host x", "inst[1]", 42)
    for record in (
        (3, 7, 1, Packet(op, req_id, 9, payload)),
        (3, 7, 1, encode(op, req_id, 9, payload)),
    ):
        line = format_line(
            Clock().format(1_700_000_000_123_456_789), source, 5, "io", io_text(record)
        )
        parsed = parse_line(line)
        assert parsed is not None and parsed.conn == 3 and parsed.domid == 7
        assert parsed.req_id == req_id and parsed.tx_id == 9 and parsed.seq == 5
        assert unescape(parsed.payload or "") == payload
        assert parsed.time == "2023-11-14T22:13:20.123456Z"
