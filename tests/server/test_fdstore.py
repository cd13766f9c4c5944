"""systemd's fd store, without systemd: the test plays systemd's part.

It listens on a ``NOTIFY_SOCKET``, says the store is on (``FDSTORE``, as systemd does
for a unit with ``FileDescriptorStoreMax=``) and keeps the listening sockets the daemon
hands over (``FDSTORE=1``, ``FDNAME=``, ``SCM_RIGHTS``); once the daemon (durable mode)
is killed with SIGKILL, a client connects and sends its request while nobody serves, and
the daemon started again gets the kept sockets as systemd passes them (``LISTEN_FDS``
from descriptor 3, ``LISTEN_FDNAMES``, ``LISTEN_PID``): the waiting client gets its
answer, the domain's socket serves again, and a released domain's socket leaves the
store.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.wire import RawConn
from xsd_client.protocol import Op


class FakeManager:
    """The notification socket, and the sockets stored through it, by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(20)
        self.stored: dict[str, socket.socket] = {}
        self.messages: list[str] = []

    def wait_for(self, line: str) -> str:
        """Receive messages until one holds ``line``; keep the sockets they store."""
        while True:
            data, fds, _, _ = socket.recv_fds(self.sock, 4096, 8)
            message = data.decode()
            self.messages.append(message)
            fields = dict(item.split("=", 1) for item in message.splitlines() if "=" in item)
            if fields.get("FDSTORE") == "1":
                assert len(fds) == 1, message
                self.stored[fields["FDNAME"]] = socket.socket(fileno=fds[0])
            else:
                assert not fds, message
                if fields.get("FDSTOREREMOVE") == "1":
                    self.stored.pop(fields["FDNAME"]).close()
            if line in message.splitlines():
                return message

    def close(self) -> None:
        self.sock.close()
        for sock in self.stored.values():
            sock.close()


def start(
    rundir: Path, state: Path, manager: FakeManager, kept: list[str]
) -> subprocess.Popen[bytes]:
    """xsd under the manager, given the sockets ``kept`` as systemd passes them."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", NOTIFY_SOCKET=str(manager.path), FDSTORE="16")
    env.pop("XENSTORED_PATH", None)
    env.pop("XENSTORED_RUNDIR", None)
    high = [fcntl.fcntl(manager.stored[name].fileno(), fcntl.F_DUPFD_CLOEXEC, 20) for name in kept]
    if kept:  # what systemd does between fork and exec
        env.update(LISTEN_FDS=str(len(kept)), LISTEN_FDNAMES=":".join(kept))
    launcher = (
        "import os, sys\n"
        "for i, fd in enumerate(map(int, sys.argv[1].split(',') if sys.argv[1] else [])):\n"
        "    os.dup2(fd, 3 + i); os.close(fd)\n"
        "if os.environ.get('LISTEN_FDS'): os.environ['LISTEN_PID'] = str(os.getpid())\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'xsd', *sys.argv[2:]])\n"
    )
    args = ["--rundir", str(rundir), "--state-dir", str(state)]
    log = open(rundir.parent / f"xsd-{len(manager.messages)}.out", "wb")  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, "-c", launcher, ",".join(map(str, high)), *args],
            stdout=log, stderr=subprocess.STDOUT, env=env, pass_fds=high,
        )  # fmt: skip
    finally:
        log.close()
        for fd in high:
            os.close(fd)


def read(conn: RawConn, path: str) -> bytes | None:
    reply = conn.request(Op.READ, path.encode() + b"\0")
    return None if reply.op == Op.ERROR else reply.payload


def test_clients_wait_through_a_crash_on_the_kept_sockets(tmp_path: Path) -> None:
    rundir, state = tmp_path / "run", tmp_path / "state"
    rundir.mkdir()
    manager = FakeManager(tmp_path / "notify")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start(rundir, state, manager, []))
        manager.wait_for("READY=1")
        assert set(manager.stored) == {"xsd"}
        assert manager.stored["xsd"].getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with RawConn(str(rundir / "socket")) as dom0:
            assert dom0.write("/keep", "me") == ("OK", b"OK\0")
            assert dom0.call(Op.INTRODUCE, 3, 1, 1) == ("OK", b"OK\0")
            manager.wait_for("FDNAME=domain-3")
            assert dom0.call(Op.INTRODUCE, 4, 1, 1) == ("OK", b"OK\0")
            manager.wait_for("FDNAME=domain-4")
            assert dom0.call(Op.RELEASE, 4) == ("OK", b"OK\0")
            manager.wait_for("FDSTOREREMOVE=1")  # a released domain leaves the store
        assert set(manager.stored) == {"xsd", "domain-3"}
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait()
        # Nobody serves: the client connects all the same (the kept socket's backlog)
        # and its request waits there.
        waiting = RawConn(str(rundir / "socket"), timeout=30)
        waiting.send(Op.READ, b"/keep\0")
        guest = RawConn(str(rundir / "domains" / "3" / "socket"), timeout=30)
        guest.send(Op.GET_DOMAIN_PATH, b"3\0")
        time.sleep(0.2)  # the daemon is down a while (no assertion depends on it)
        procs.append(start(rundir, state, manager, ["xsd", "domain-3"]))
        reply = waiting.recv_reply()
        assert (reply.op, reply.payload) == (Op.READ, b"me")
        reply = guest.recv_reply()
        assert (reply.op, reply.payload) == (Op.GET_DOMAIN_PATH, b"/local/domain/3\0")
        waiting.close()
        guest.close()
        manager.wait_for("READY=1")
        # The kept sockets are not stored a second time; new ones are.
        assert not any("FDNAME=xsd" in m for m in manager.messages[-3:])
        with RawConn(str(rundir / "socket")) as dom0:
            assert read(dom0, "/keep") == b"me"
            assert dom0.call(Op.RELEASE, 3) == ("OK", b"OK\0")
            manager.wait_for("FDNAME=domain-3")
        assert set(manager.stored) == {"xsd"}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        manager.close()
