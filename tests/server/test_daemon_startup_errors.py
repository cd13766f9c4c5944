"""A start that cannot work says so in one line, with what to do, and harms nothing.

Every case runs ``python -m xsd`` as a real process on real paths: a bad option, a run
directory that is a file or on a read-only mount, a pid file in a missing directory, a
socket in a read-only place, a socket another program (C xenstored) serves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemons import ReferenceDaemon, need_reference
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def start_fails(*args: str, status: int = 1, env: dict[str, str] | None = None) -> str:
    """Start xsd with ``args``; it must exit with ``status`` and one line: that line."""
    result = subprocess.run(
        [sys.executable, "-m", "xsd", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xsd: ")
    return lines[0]


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--socket-mode", "999", "'999' is not a file mode: use octal, e.g. 0600"),
        ("--domain-socket-mode", "rw", "'rw' is not a file mode: use octal, e.g. 0600"),
        ("--event-timeout", "-1", "'-1' is not a number >= 0"),
        ("--request-timeout", "nan", "'nan' is not a number >= 0"),
        ("--watchdogs-per-domain", "-1", "'-1' is not a whole number >= 0"),
        ("--watchdog-min-timeout", "0", "'0' is not a whole number > 0"),
        ("--write-burst", "0", "'0' is not a number > 0"),
        ("--path-max", "x", "'x' is not a whole number > 0"),
    ],
)
def test_a_bad_option_value_is_one_line_naming_the_option(
    tmp_path: Path, option: str, value: str, says: str
) -> None:
    line = start_fails("--rundir", str(tmp_path / "rd"), option, value, status=2)
    assert line == f"xsd: argument {option}: {says} (xsd --help lists the options)"
    assert not (tmp_path / "rd").exists()  # refused before anything was made


def test_an_unknown_option_is_one_line(tmp_path: Path) -> None:
    line = start_fails("--rundir", str(tmp_path), "--colour", status=2)
    assert "unrecognized arguments: --colour" in line


def test_the_config_file_goes_through_the_same_checks(tmp_path: Path) -> None:
    config = tmp_path / "xsd.toml"
    config.write_text('socket-mode = "999"\n')
    line = start_fails("--rundir", str(tmp_path / "rd"), "--config", str(config), status=2)
    assert "socket-mode = '999'" in line and "not a file mode" in line


def test_watchdog_min_above_max_is_refused(tmp_path: Path) -> None:
    line = start_fails(
        "--rundir", str(tmp_path), "--watchdog-min-timeout", "500",
        "--watchdog-max-timeout", "100", status=2,
    )  # fmt: skip
    assert "--watchdog-min-timeout is above --watchdog-max-timeout" in line


def test_a_run_directory_that_is_a_file(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    rundir.write_text("mine")
    line = start_fails("--rundir", str(rundir))
    assert line == (
        f"xsd: cannot use {rundir} as the run directory: it exists and is not a directory; "
        "choose another with --rundir"
    )
    assert rundir.read_text() == "mine"


def _read_only_mount(tmp_path: Path) -> list[str]:
    """A command prefix that runs what follows with ``tmp_path/ro`` a read-only tmpfs
    (in a mount namespace of its own); skips the test where that cannot be done."""
    ro = tmp_path / "ro"
    ro.mkdir()
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              f'mount -t tmpfs -o ro xsd-test-ro "{ro}" && exec "$@"', "sh"]  # fmt: skip
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a read-only mount needs root and unshare")
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount here: {probe.stderr.decode().strip()}")
    return prefix


def test_a_run_directory_on_a_read_only_mount(tmp_path: Path) -> None:
    prefix = _read_only_mount(tmp_path)
    rundir = tmp_path / "ro" / "run"
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "xsd", "--rundir", str(rundir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"xsd: cannot use {rundir} as the run directory: Read-only file system; "
        "choose another with --rundir"
    )


def test_a_socket_in_a_read_only_place_is_not_another_daemon(tmp_path: Path) -> None:
    prefix = _read_only_mount(tmp_path)
    sock = tmp_path / "ro" / "socket"
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "xsd", "--rundir", str(tmp_path / "rd"),
         "--socket", str(sock)],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    err = result.stderr.strip()
    assert "another daemon" not in err
    assert err.startswith(f"xsd: cannot use {sock}: Read-only file system")
    assert err.endswith("choose another place with --socket or --rundir")


def test_a_pid_file_in_a_missing_directory(tmp_path: Path) -> None:
    pid_file = tmp_path / "missing" / "xsd.pid"
    line = start_fails("--rundir", str(tmp_path / "rd"), "--pid-file", str(pid_file))
    assert line == (
        f"xsd: cannot write the pid file {pid_file}: No such file or directory; "
        "choose another with --pid-file"
    )
    assert not (tmp_path / "rd" / "socket").exists()


def test_a_socket_c_xenstored_serves_is_never_taken_over(tmp_path: Path) -> None:
    """C xenstored does not hold xsd's lock: the probe (a connect) is what keeps xsd
    from replacing its live socket, and from removing it when xsd stops."""
    need_reference()
    c = ReferenceDaemon(tmp_path / "c", "c")
    try:
        with RawConn(str(c.socket)) as conn:
            conn.write("/kept", "yes")
        line = start_fails("--rundir", str(tmp_path / "rd"), "--socket", str(c.socket))
        assert line == (
            f"xsd: cannot listen on {c.socket}: another program serves this socket "
            "(stop it, or choose another path); not starting"
        )
        assert c.socket.is_socket()
        with RawConn(str(c.socket)) as conn:  # still C's, still answering
            assert conn.call(Op.READ, "/kept") == ("OK", b"yes")
    finally:
        c.stop()
