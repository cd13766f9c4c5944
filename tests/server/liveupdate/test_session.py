"""Live update of a running xsd: Xen's xenstore-control and raw control requests."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.daemons import XEN_BIN, XsdDaemon, need_reference
from tests.support.liveupdate import XSD_PROGRAM, live_update
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def control(sock: Path, *args: str, timeout: float = 60) -> tuple[str, bytes]:
    with RawConn(str(sock), timeout=timeout) as conn:
        return conn.call(Op.CONTROL, *args)


@pytest.fixture
def program() -> str:
    if not XSD_PROGRAM:
        pytest.fail("the xsd console script is not installed (pip install -e .)")
    return XSD_PROGRAM


class Writer(threading.Thread):
    """Writes /load/<n> = n as fast as it can; remembers every acknowledged write."""

    def __init__(self, sock: Path) -> None:
        super().__init__(daemon=True)
        self.conn = RawConn(str(sock), timeout=30)
        self.acked: list[int] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            n = 0
            while not self.stop.is_set():
                assert self.conn.write(f"/load/{n}", str(n)) == ("OK", b"OK\0")
                self.acked.append(n)
                n += 1
        except BaseException as exc:
            self.error = exc


def test_xenstore_control_live_update_keeps_everything(xsd: XsdDaemon, program: str) -> None:
    need_reference()
    sock = xsd.socket
    pid = xsd.pid
    watcher = RawConn(str(sock), timeout=30)
    assert watcher.call(Op.WATCH, "/load", "w") == ("OK", b"OK\0")
    assert watcher.recv_packet().payload == b"/load\0w\0"
    # A transaction open across the update, and one that will conflict.
    holder = RawConn(str(sock), timeout=30)
    holder.write("/tx/base", "0")
    holder.write("/tx/own", "1")
    tx = int(holder.call(Op.TRANSACTION_START, "")[1][:-1])
    assert holder.call(Op.READ, "/tx/own", tx_id=tx) == ("OK", b"1")
    assert holder.write("/tx/mine", "from-tx", tx_id=tx) == ("OK", b"OK\0")
    loser = RawConn(str(sock), timeout=30)
    tx2 = int(loser.call(Op.TRANSACTION_START, "")[1][:-1])
    assert loser.call(Op.READ, "/tx/base", tx_id=tx2) == ("OK", b"0")
    # A half-sent request that completes after the update.
    half = RawConn(str(sock), timeout=30)
    request = b"\x02\0\0\0\x07\0\0\0\0\0\0\0\x09\0\0\0/tx/base\0"
    half.send_raw(request[:20])

    writer = Writer(sock)
    writer.start()
    time.sleep(0.2)
    env = dict(os.environ, XENSTORED_PATH=str(sock))
    for _ in range(3):
        result = subprocess.run(
            [str(XEN_BIN / "xenstore-control"), "live-update", program],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    loser.write("/tx/base", "changed-outside", tx_id=0)
    time.sleep(0.2)
    writer.stop.set()
    writer.join(30)
    assert writer.error is None

    assert xsd.pid == pid and xsd.proc.poll() is None
    with RawConn(str(sock)) as check:
        for n in writer.acked:
            assert check.call(Op.READ, f"/load/{n}") == ("OK", str(n).encode())
    # Every acknowledged write fired exactly one event on /load, none twice, none lost.
    half.send_raw(request[20:])
    assert half.recv_reply().payload == b"changed-outside"
    events = [p.payload for p in watcher.drain_events(settle=1.0)]
    written = [f"/load/{n}\0w\0".encode() for n in writer.acked]
    assert events[: len(written)] == written[: len(events)]
    assert set(written) <= set(events)
    assert len(events) == len(set(events))
    # The transaction carried across commits; the other now conflicts.
    assert holder.call(Op.TRANSACTION_END, "T", tx_id=tx) == ("OK", b"OK\0")
    assert holder.call(Op.READ, "/tx/mine") == ("OK", b"from-tx")
    assert loser.write("/tx/late", "x", tx_id=tx2) == ("OK", b"OK\0")
    assert loser.call(Op.TRANSACTION_END, "T", tx_id=tx2) == ("ERROR", b"EAGAIN\0")
    assert xsd.output().count("live update: state restored") == 3


def test_twenty_updates_in_a_row(xsd: XsdDaemon, program: str) -> None:
    pid = xsd.pid
    with RawConn(str(xsd.socket)) as conn:
        for i in range(20):
            conn.write(f"/round/{i}", "x")
            assert live_update(xsd.socket, program) == ("OK", b"OK\0")
        assert conn.call(Op.DIRECTORY, "/round")[1].count(b"\0") == 20
    assert xsd.pid == pid


def test_updates_leave_no_descriptor_behind(xsd: XsdDaemon, program: str, tmp_path: Path) -> None:
    """The dry run's memfd is kept for -s to write over: whatever way the session
    ends (an update over a memfd or LMDB, an abort, a failed dry run), it is closed,
    and the new process has exactly the descriptors the old one had."""

    def open_fds() -> list[str]:
        """What the daemon has open but its sockets (clients come and go), as kinds
        (``pipe:[123]`` is ``pipe``: a new process makes new ones)."""
        fd_dir = f"/proc/{xsd.pid}/fd"
        kinds = []
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except FileNotFoundError:
                continue  # closed between the listing and the look: settles_to asks again
            if not target.startswith("socket:"):
                kinds.append(re.sub(r"\[\d+\]", "", target))
        return sorted(kinds)

    def settles_to(expected: list[str]) -> bool:
        """The new process opens its event loop's epoll after its OK: wait for it."""
        deadline = time.monotonic() + 10
        while open_fds() != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return open_fds() == expected

    with RawConn(str(xsd.socket)) as conn:
        conn.write("/fd", "x")
        before = open_fds()  # a fresh daemon's
        assert live_update(xsd.socket, program) == ("OK", b"OK\0")
        assert settles_to(before)
        state = f"lmdb:{tmp_path / 'state.lmdb'}"
        assert live_update(xsd.socket, program, "--state", state) == ("OK", b"OK\0")
        assert settles_to(before)
        assert conn.call(Op.CONTROL, "live-update", "-f", program) == ("OK", b"OK\0")
        assert any("xsd-state" in fd for fd in open_fds())  # the memfd, kept for -s
        assert conn.call(Op.CONTROL, "live-update", "-a") == ("OK", b"OK\0")
        assert settles_to(before)
        failing = tmp_path / "fails"
        failing.write_text("#!/bin/sh\nexit 3\n")
        failing.chmod(0o755)
        assert live_update(xsd.socket, str(failing))[1].startswith(b"New program failed")
        assert settles_to(before)
        assert conn.call(Op.READ, "/fd") == ("OK", b"x")


def test_lmdb_transport_keeps_the_file(xsd: XsdDaemon, program: str, tmp_path: Path) -> None:
    state = tmp_path / "state.lmdb"
    with RawConn(str(xsd.socket)) as conn:
        conn.write("/kept", "in lmdb")
        assert live_update(xsd.socket, program, "--state", f"lmdb:{state}") == ("OK", b"OK\0")
        assert conn.call(Op.READ, "/kept") == ("OK", b"in lmdb")
    assert state.exists()
    check = subprocess.run(
        [sys.executable, "-m", "xsd", "--check-state", f"lmdb:{state}"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_a_dry_run_that_finds_the_usage_wrong_makes_the_new_process_recount(
    xsd: XsdDaemon, program: str, tmp_path: Path
) -> None:
    """The daemon's usage cannot drift from outside (that would be a bug), so the new
    program here is a wrapper around the real one whose dry run also prints the
    verdict a drifted usage gets; the old process must then send no usage, and the new
    process recount it, exactly."""
    from xsd.server.liveupdate.reexec import RECOUNT_VERDICT

    wrapper = _script(
        tmp_path,
        "xsd-verdict",
        "#!/bin/sh\n"
        'for a in "$@"; do\n'
        f'  if [ "$a" = --check-state ]; then {program} "$@" || exit $?; '
        f'echo "{RECOUNT_VERDICT}"; exit 0; fi\n'
        "done\n"
        f'exec {program} "$@"\n',
    )
    with RawConn(str(xsd.socket)) as conn:
        assert conn.call(Op.INTRODUCE, 4, 1, 1) == ("OK", b"OK\0")
        for i in range(30):
            conn.write(f"/local/domain/4/n{i}", "v" * i)
        assert conn.call(Op.SET_PERMS, "/local/domain/4/n7", "n4") == ("OK", b"OK\0")
        before = conn.call(Op.CONTROL, "quota", "4")
        assert b"nodes           :        1" in before[1]
        assert live_update(xsd.socket, wrapper) == ("OK", b"OK\0")
        assert conn.call(Op.CONTROL, "quota", "4") == before
    assert "usage differs from its nodes; recounting it" in xsd.output()


def _script(tmp_path: Path, name: str, body: str, mode: int = 0o755) -> str:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(mode)
    return str(path)


def test_failures_leave_the_daemon_serving(xsd: XsdDaemon, program: str, tmp_path: Path) -> None:
    sock = xsd.socket
    with RawConn(str(sock)) as conn:
        conn.write("/survivor", "yes")
    missing = str(tmp_path / "nope")
    assert live_update(sock, missing) == ("OK", b"File not accessible.\0")
    plain = _script(tmp_path, "plain", "#!/bin/sh\nexit 0\n", mode=0o644)
    assert live_update(sock, plain) == ("OK", b"File not executable.\0")
    failing = _script(tmp_path, "failing", "#!/bin/sh\necho 'broken build' >&2\nexit 1\n")
    kind, text = live_update(sock, failing)
    assert kind == "OK" and text.startswith(b"New program failed to load the state: broken build")
    # A command line (-c) the new program would refuse fails the dry run, not the exec.
    with RawConn(str(sock), timeout=60) as conn:
        assert conn.call(Op.CONTROL, "live-update", "-f", program) == ("OK", b"OK\0")
        assert conn.call(Op.CONTROL, "live-update", "-c", "--no-such-option") == ("OK", b"OK\0")
        kind, text = conn.call(Op.CONTROL, "live-update", "-s", "-t", "10")
        assert kind == "OK" and text.startswith(b"New program failed to load the state: ")
        assert b"unrecognized arguments: --no-such-option" in text
        assert conn.call(Op.CONTROL, "live-update", "-f", program) == ("OK", b"OK\0")
        assert conn.call(Op.CONTROL, "live-update", "-c", "--quota nodes=lots") == ("OK", b"OK\0")
        kind, text = conn.call(Op.CONTROL, "live-update", "-s", "-t", "10")
        assert kind == "OK" and b"bad quota 'nodes=lots'" in text
    # Passes the dry run, then vanishes before -s: -s sees the file changed, runs the
    # dry run again, which fails.
    vanishing = _script(tmp_path, "vanishing", '#!/bin/sh\nrm -f "$0"\nexit 0\n')
    kind, text = live_update(sock, vanishing)
    assert kind == "OK" and text.startswith(b"New program cannot be run: "), text
    # Passes the dry run, then is no longer executable (same file): the exec fails.
    losing_x = _script(tmp_path, "losing-x", '#!/bin/sh\nchmod a-x "$0"\nexit 0\n')
    assert live_update(sock, losing_x) == ("OK", b"Error activating new binary.\0")
    assert "live-update: exec failed: [Errno 13]" in xsd.output()
    assert "live-update: exec " not in xsd.output().replace("exec failed", "")
    # Session rules.
    with RawConn(str(sock)) as a, RawConn(str(sock)) as b:
        assert a.call(Op.CONTROL, "live-update", "-s") == ("OK", b"Not in live-update session.\0")
        assert a.call(Op.CONTROL, "live-update", "-a") == (
            "OK",
            b"No live-update session active.\0",
        )
        assert a.call(Op.CONTROL, "live-update", "-f", program) == ("OK", b"OK\0")
        assert b.call(Op.CONTROL, "live-update", "-f", program) == (
            "OK",
            b"live-update session already active.\0",
        )
        assert b.call(Op.CONTROL, "live-update", "-c", "x") == (
            "OK",
            b"Not in live-update session.\0",
        )
        assert b.call(Op.CONTROL, "live-update", "-a") == ("OK", b"OK\0")
        assert a.call(Op.CONTROL, "live-update", "-x") == ("ERROR", b"EINVAL\0")
    with RawConn(str(sock)) as conn:
        assert conn.call(Op.READ, "/survivor") == ("OK", b"yes")
    assert xsd.proc.poll() is None


def test_broken_state_is_refused_whole(tmp_path: Path) -> None:
    from handover import records, stream, transports
    from xsd.core.engine import Engine

    engine = Engine()
    conn = engine.connect()
    engine.receive(conn, b"\x0b\0\0\0\x01\0\0\0\0\0\0\0\x05\0\0\0/a\0va")
    good = stream.encode_state(records.dump(engine.state))
    newer = bytearray(good)
    newer[8] = 99
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    cases = {
        "truncated": (good[:-1], "truncated"),
        "trailing": (good + b"x", "trailing data"),
        "flipped": (bytes(flipped), "checksum mismatch"),
        "newer": (bytes(newer), "newer than this xsd"),
        "foreign": (b"NOTXSD!!" + good[8:], "not an xsd state"),
    }
    for name, (blob, message) in cases.items():
        fd = transports.write_memfd(blob)
        try:
            result = subprocess.run(
                [sys.executable, "-m", "xsd", "--check-state", f"fd:{fd}"],
                pass_fds=(fd,),
                capture_output=True,
                text=True,
            )
        finally:
            os.close(fd)
        assert result.returncode == 1, name
        assert message in result.stderr, (name, result.stderr)
    fd = transports.write_memfd(good)
    try:
        ok = subprocess.run(
            [sys.executable, "-m", "xsd", "--check-state", f"fd:{fd}"], pass_fds=(fd,)
        )
    finally:
        os.close(fd)
    assert ok.returncode == 0


def test_state_file_mode_is_private(tmp_path: Path) -> None:
    from handover import records, transports
    from xsd.core.engine import Engine

    path = tmp_path / "s.lmdb"
    transports.write_lmdb(path, list(records.dump(Engine().state)))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_systemd_hears_ready_reloading_ready(tmp_path: Path, program: str) -> None:
    # systemd's side of sd_notify is a datagram socket; this test plays it (systemd
    # itself cannot run here as PID 1), and reads what xsd really sends.
    import socket as pysocket

    notify_path = tmp_path / "notify"
    listener = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(20)
    os.environ["NOTIFY_SOCKET"] = str(notify_path)
    try:
        daemon = XsdDaemon(tmp_path / "rd")
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        assert listener.recv(4096) == b"STATUS=Starting"
        assert listener.recv(4096).startswith(b"READY=1\nSTATUS=")
        assert live_update(daemon.socket, program) == ("OK", b"OK\0")
        reloading = listener.recv(4096).decode()
        assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert listener.recv(4096).startswith(b"READY=1\nSTATUS=")
    finally:
        daemon.stop()
        listener.close()


def _read_text(conn: RawConn, path: str) -> str:
    kind, value = conn.call(Op.READ, path)
    assert kind == "OK", (path, value)
    return value.decode()


def test_watchdog_deadlines_survive_and_one_due_during_the_update_fires_once(
    xsd: XsdDaemon, program: str
) -> None:
    base = "/local/domain/3/watchdog"
    with RawConn(str(xsd.socket), timeout=30) as dom0, RawConn(str(xsd.socket), timeout=30) as lu:
        assert dom0.call(Op.INTRODUCE, 3, 1, 1) == ("OK", b"OK\0")
        dom0.write(f"{base}/action", "none")
        dom0.write(f"{base}/0/timeout", "50")
        dom0.write(f"{base}/1/timeout", "4000")
        # The dry run first, so that the deadline of watchdog 0 falls inside the exec.
        assert lu.call(Op.CONTROL, "live-update", "-f", program) == ("OK", b"OK\0")
        dom0.write(f"{base}/1/control", "arm")
        dom0.write(f"{base}/0/control", "arm")
        armed_at = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1_000_000
        assert lu.call(Op.CONTROL, "live-update", "-s", "-t", "10") == ("OK", b"OK\0")
        deadline = time.monotonic() + 5
        while _read_text(dom0, f"{base}/0/fired") != "1" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _read_text(dom0, f"{base}/0/fired") == "1"
        assert _read_text(dom0, f"{base}/0/state") == "expired"
        fired_at = int(_read_text(dom0, f"{base}/bootstatus/time"))
        # It fired at its deadline, or right after the update if that was later: never early.
        assert armed_at + 50 <= fired_at < armed_at + 5000
        # The other one kept its deadline across the update: still running, not fired.
        assert _read_text(dom0, f"{base}/1/state") == "armed"
        assert _read_text(dom0, f"{base}/1/fired") == "0"
        time.sleep(0.5)
        assert _read_text(dom0, f"{base}/0/fired") == "1"  # once, not again
    out = xsd.output()
    restored = out.index("live update: state restored")
    assert "watchdog" in out[restored:], out  # the expiry was handled by the new process


def test_many_changes_between_f_and_s_drop_the_kept_dump(xsd: XsdDaemon, program: str) -> None:
    """The journal of changes since the dry run does not grow without end while -s has
    not come: past the size a delta is worth, the daemon drops it (and says so), and -s
    dumps the tree whole; nothing is lost either way."""
    with RawConn(str(xsd.socket), timeout=60) as ctl, RawConn(str(xsd.socket)) as writer:
        assert ctl.call(Op.CONTROL, "live-update", "-f", program) == ("OK", b"OK\0")
        for i in range(40):
            assert writer.write(f"/many/n{i}", str(i)) == ("OK", b"OK\0")
        deadline = time.monotonic() + 10
        while "dumps the tree whole" not in xsd.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "-s dumps the tree whole" in xsd.output()
        assert ctl.call(Op.CONTROL, "live-update", "-s", "-t", "10") == ("OK", b"OK\0")
        assert writer.call(Op.READ, "/many/n39") == ("OK", b"39")
        assert writer.call(Op.DIRECTORY, "/many")[1].count(b"\0") == 40
