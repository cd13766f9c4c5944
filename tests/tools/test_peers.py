"""The reference peers themselves: Xen's C xenstored and oxenstored, started by
``tools/peers/reference-xenstored`` with our hypervisor stand-in, serve Xen's clients, and
the stand-in's list of existing domains is the one the daemons see."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.daemons import ReferenceDaemon, need_reference
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def xs(sock: Path, *command: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XENSTORED_")}
    env["XENSTORED_PATH"] = str(sock)
    return subprocess.run(
        list(command), capture_output=True, text=True, check=True, timeout=30, env=env
    ).stdout


@pytest.mark.parametrize("kind", ["c", "ocaml"])
def test_each_reference_daemon_serves_xens_clients(tmp_path: Path, kind: str) -> None:
    need_reference()
    if kind == "ocaml" and os.geteuid() != 0:
        pytest.skip("oxenstored runs in a mount namespace of its own: root only")
    daemon = ReferenceDaemon(tmp_path / kind, kind)
    try:
        xs(daemon.socket, "xenstore-write", "/local/domain/0/name", "dom0")
        assert xs(daemon.socket, "xenstore-read", "/local/domain/0/name") == "dom0\n"
        assert 'name = "dom0"' in xs(daemon.socket, "xenstore-ls", "/local/domain/0")
        assert daemon.pid > 0 and Path(f"/proc/{daemon.pid}").exists()
    finally:
        daemon.stop()


@pytest.mark.parametrize(("domains", "owner_of_7"), [("0", "ENOENT"), ("all", "OK")])
def test_the_stand_in_says_which_domains_exist(
    tmp_path: Path, domains: str, owner_of_7: str
) -> None:
    """C refuses a permission naming a domain that does not exist (xc_domain_getinfo)."""
    need_reference()
    daemon = ReferenceDaemon(tmp_path / "c", "c", domains=domains)
    try:
        with RawConn(str(daemon.socket)) as conn:
            conn.write("/a", "x")
            kind, reply = conn.call(Op.SET_PERMS, "/a", "n7")
            assert reply.rstrip(b"\0").decode() == owner_of_7, (kind, reply)
            assert conn.call(Op.SET_PERMS, "/a", "n0") == ("OK", b"OK\0")
    finally:
        daemon.stop()
