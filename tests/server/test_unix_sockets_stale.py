"""A killed daemon's per-domain sockets do not outlive it: the next start removes those
nobody answers on, and only those (issue 15, item 8).
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from tests.support.daemons import XsdDaemon
from tests.support.domains import FAST
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(path))
    return sock


def test_a_killed_daemons_domain_sockets_are_removed_at_start(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    first = XsdDaemon(rundir, *FAST)
    with RawConn(str(first.socket)) as dom0:
        for domid in (3, 4):
            assert dom0.call(Op.INTRODUCE, domid, 1, 1) == ("OK", b"OK\0")
    domains = rundir / "domains"
    _connect(domains / "3" / "socket").close()
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    first.stop()
    # Left behind, and refusing: a guest could not tell that the daemon is gone.
    with pytest.raises(ConnectionRefusedError):
        _connect(domains / "3" / "socket")
    # Someone else's socket beside them (it accepts): not ours to remove.
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    (domains / "9").mkdir()
    other.bind(str(domains / "9" / "socket"))
    other.listen()
    (domains / "5").mkdir()
    (domains / "5" / "socket").write_text("not a socket")
    second = XsdDaemon(rundir, *FAST)
    try:
        assert not (domains / "3").exists() and not (domains / "4").exists()
        assert (domains / "9" / "socket").exists() and (domains / "5" / "socket").exists()
        assert "removed the stale sockets of domains 3 4" in second.output()
        with pytest.raises(FileNotFoundError):
            _connect(domains / "3" / "socket")
        # Introduced again, the domain is served on its socket as ever.
        with RawConn(str(second.socket)) as dom0:
            assert dom0.call(Op.INTRODUCE, 3, 1, 1) == ("OK", b"OK\0")
        with RawConn(str(domains / "3" / "socket")) as guest:
            assert guest.call(Op.GET_DOMAIN_PATH, 3) == ("OK", b"/local/domain/3\0")
    finally:
        other.close()
        assert second.stop() == 0
