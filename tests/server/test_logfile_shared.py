"""Three daemons, one shared trace file, under load: every line whole, none lost."""

from __future__ import annotations

import collections
from pathlib import Path

from tests.support.logs import Load, assert_complete, by_source, control, read_lines, start
from xsd_client.logformat import unescape


def test_three_daemons_share_one_file(tmp_path: Path) -> None:
    log = tmp_path / "shared" / "xsd.log"
    log.parent.mkdir()
    names = ["alpha", "beta", "gamma"]
    daemons = [start(tmp_path / n, log, n) for n in names]
    try:
        per_daemon = {
            n: [Load(d.socket, f"{n}{i}", count=400) for i in range(2)]
            for n, d in zip(names, daemons, strict=True)
        }
        clients = [c for group in per_daemon.values() for c in group]
        for c in clients:
            c.start()
        for c in clients:
            c.finish()
        # A line with odd bytes in it: still one line, and it round-trips.
        assert control(daemons[0].socket, "print", "tab\there\nnewline \\ done") == ("OK", b"OK\0")
    finally:
        for d in daemons:
            d.stop()
    lines, bad = read_lines([log])
    assert not bad, f"{len(bad)} lines do not parse (interleaved?), e.g. {bad[:3]}"
    groups = by_source(lines)
    assert sorted(src[1] for src in groups) == names
    for (_host, name, _pid), group in groups.items():
        assert_complete(group)
        served = sum(c.requests for c in per_daemon[name])
        ins = [ln for ln in group if ln.cls == "io" and ln.direction == "IN"]
        outs = [ln for ln in group if ln.cls == "io" and ln.direction == "OUT"]
        control_requests = 1 if name == "alpha" else 0
        assert len(ins) == served + control_requests, name
        assert len(outs) == len(ins)
        assert collections.Counter(ln.type for ln in ins if ln.type != "CONTROL") == {
            "WRITE": served // 2,
            "READ": served // 2,
        }
        # Every request has exactly one reply, on its connection, with its req_id.
        assert sorted((ln.conn, ln.req_id) for ln in ins) == sorted(
            (ln.conn, ln.req_id) for ln in outs
        )
        texts = [ln.text for ln in group]
        assert any(t.startswith("start: xsd") for t in texts)
        assert texts[-1] == f"log: closing {log} (stopped)"
    alpha = next(g for s, g in groups.items() if s[1] == "alpha")
    printed = [ln for ln in alpha if ln.cls == "ctl"]
    assert len(printed) == 1
    assert unescape(printed[0].text).decode() == "control: tab\there\nnewline \\ done"
    first_write = next(ln for ln in alpha if ln.type == "WRITE")
    assert unescape(first_write.payload or "") == b"/load/alpha0/0\x000"
