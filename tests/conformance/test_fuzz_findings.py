"""Sequences the fuzzing harness (``python -m tools.fuzz``) found to break xsd, each
run against xsd and C xenstored alike: xsd must answer as C does and log no traceback."""

from __future__ import annotations

import time

import pytest

from tests.support.daemons import ReferenceDaemon, XsdDaemon
from tests.support.wire import RawConn
from xsd_client.protocol import Op

OK = ("OK", b"OK\0")


@pytest.mark.reference
@pytest.mark.parametrize("kind", ["xsd", "c"])
def test_rm_in_a_transaction_of_a_node_created_after_it_copied_the_parent(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """The transaction's copy of /p does not list /p/y, created outside after the copy:
    RM of /p/y in it finds no entry in the parent. C answers EIO; xsd raised inside
    (a traceback in its log, EIO as its last line of defence)."""
    daemon = request.getfixturevalue("xsd" if kind == "xsd" else "cxenstored")
    with _connect(daemon) as a, _connect(daemon) as b:
        assert a.write("/p/x", "1") == OK
        _, tx = a.call(Op.TRANSACTION_START, "")
        tx_id = int(tx.rstrip(b"\0"))
        assert a.call(Op.DIRECTORY, "/p", tx_id=tx_id) == ("OK", b"x\0")  # copies /p
        assert b.write("/p/y", "2") == OK
        assert a.call(Op.RM, "/p/y", tx_id=tx_id) == ("ERROR", b"EIO\0")
        assert a.call(Op.DIRECTORY, "/p", tx_id=tx_id) == ("OK", b"x\0")  # unchanged
        assert a.call(Op.TRANSACTION_END, "T", tx_id=tx_id) == ("ERROR", b"EAGAIN\0")
        assert a.call(Op.DIRECTORY, "/p") == ("OK", b"x\0y\0")
        assert b.call(Op.READ, "/p/y") == ("OK", b"2")
    if isinstance(daemon, XsdDaemon):
        assert "Traceback" not in daemon.output()


def _connect(daemon: XsdDaemon | ReferenceDaemon) -> RawConn:
    for _ in range(100):
        try:
            return RawConn(str(daemon.socket))
        except BlockingIOError:  # a full listen backlog: the daemon is still starting
            time.sleep(0.05)
    raise AssertionError(f"cannot connect to {daemon.socket}")
