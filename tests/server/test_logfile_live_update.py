"""Twenty live updates in the middle of the load: no line lost, none written twice."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from tests.support.logs import XSD_PROGRAM, Load, assert_complete, by_source, read_lines, start
from tests.support.wire import RawConn
from xsd_client.logformat import unescape
from xsd_client.protocol import Op

UPDATES = 20


def test_twenty_live_updates_under_load(tmp_path: Path) -> None:
    if not XSD_PROGRAM:
        pytest.fail("the xsd console script is not installed (pip install -e .)")
    log = tmp_path / "shared" / "xsd.log"
    log.parent.mkdir()
    daemon = start(tmp_path / "lu", log, "lu")
    pid = daemon.pid
    try:
        clients = [Load(daemon.socket, f"c{i}") for i in range(2)]
        for c in clients:
            c.start()
        with RawConn(str(daemon.socket), timeout=60) as ctl:
            for _ in range(UPDATES):
                assert ctl.call(Op.CONTROL, "live-update", "-f", XSD_PROGRAM) == ("OK", b"OK\0")
                assert ctl.call(Op.CONTROL, "live-update", "-s", "-t", "10") == ("OK", b"OK\0")
            status = ctl.call(Op.CONTROL, "log", "status")
        for c in clients:
            c.finish()
        assert daemon.pid == pid and daemon.proc.poll() is None
        assert status[0] == "OK" and b"(open)" in status[1] and b" 0 dropped" in status[1]
    finally:
        daemon.stop()
    lines, bad = read_lines([log])
    assert not bad
    groups = by_source(lines)
    assert list(groups) == [(lines[0].host, "lu", pid)]  # one writer: the pid stays
    group = groups[lines[0].host, "lu", pid]
    assert_complete(group)
    texts = [ln.text for ln in group]
    assert sum(t.startswith("live-update: exec ") for t in texts) == UPDATES
    assert sum(t.startswith("start: xsd") and "(live update)" in t for t in texts) == UPDATES
    assert sum(t.startswith("log: opened") for t in texts) == 1  # carried, never reopened
    ins = [ln for ln in group if ln.cls == "io" and ln.direction == "IN"]
    outs = [ln for ln in group if ln.cls == "io" and ln.direction == "OUT"]
    # Each request once, each answered once (the -s answered by the new process).
    keys_in = collections.Counter((ln.conn, ln.req_id) for ln in ins)
    keys_out = collections.Counter((ln.conn, ln.req_id) for ln in outs)
    assert max(keys_in.values()) == 1 and keys_in == keys_out
    for c in clients:
        written = [
            int(unescape(ln.payload or "").split(b"\0")[1])
            for ln in ins
            if ln.type == "WRITE" and (ln.payload or "").startswith(f"/load/{c.tag}/")
        ]
        assert written == c.written  # in order, none missing, none twice
    assert sum(1 for ln in ins if ln.type == "CONTROL") == 2 * UPDATES + 1
