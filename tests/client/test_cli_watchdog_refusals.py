"""``xsc watchdog`` refuses what the daemon would not do, says why, and writes nothing.

Domain 0 may write any path, so a command for a watchdog that does not exist would
otherwise create plain nodes that no watchdog reads, and report success."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from tests.support.daemons import XsdDaemon
from tests.support.watchdogs import introduce, read
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def _xsc(daemon: XsdDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XENSTORED_")}
    env["XENSTORED_PATH"] = str(daemon.socket)
    return subprocess.run(
        [sys.executable, "-m", "xsd_client.cli", "watchdog", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _one_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_domain_never_introduced_is_refused_and_nothing_is_written(
    start_xsd: Callable[..., XsdDaemon],
) -> None:
    daemon = start_xsd()
    dom0 = RawConn(str(daemon.socket))
    for command in (["arm", "9", "0", "5000"], ["kick", "9", "0"], ["action", "9", "reboot"],
                    ["qmp", "9", "/run/q.qmp"], ["timeout", "9", "1", "500"]):  # fmt: skip
        line = _one_line(_xsc(daemon, *command), 1)
        assert line == (
            "xsc watchdog: domain 9 has no watchdogs: it was never introduced "
            "(or the daemon gives none: --watchdogs-per-domain)"
        )
    assert dom0.call(Op.READ, "/local/domain/9")[0] == "ERROR"  # no plain nodes


def test_a_watchdog_beyond_the_domains_count_is_refused(
    start_xsd: Callable[..., XsdDaemon],
) -> None:
    daemon = start_xsd()
    dom0 = RawConn(str(daemon.socket))
    introduce(dom0, daemon, 7)
    line = _one_line(_xsc(daemon, "arm", "7", "5", "5000"), 1)
    assert line == "xsc watchdog: domain 7 has watchdogs 0-1: there is no watchdog 5"
    assert dom0.call(Op.READ, "/local/domain/7/watchdog/5")[0] == "ERROR"
    assert b"5" not in dom0.call(Op.DIRECTORY, "/local/domain/7/watchdog")[1].split(b"\0")


def test_bad_numbers_are_named_before_anything_is_sent(
    start_xsd: Callable[..., XsdDaemon],
) -> None:
    daemon = start_xsd()
    dom0 = RawConn(str(daemon.socket))
    guest = introduce(dom0, daemon, 7)
    line = _one_line(_xsc(daemon, "arm", "7", "0", "abc"), 2)
    assert line == (
        "xsc watchdog: timeout 'abc' is not a number of milliseconds "
        "(xsc watchdog --help lists the commands)"
    )
    assert read(guest, "watchdog/0/state") == "disarmed"
    line = _one_line(_xsc(daemon, "nowayout", "7", "0", "yes"), 2)
    assert "nowayout 'yes' is not 0 or 1" in line


def test_a_value_the_daemon_refuses_says_what_is_allowed(
    start_xsd: Callable[..., XsdDaemon],
) -> None:
    daemon = start_xsd()
    dom0 = RawConn(str(daemon.socket))
    guest = introduce(dom0, daemon, 7)
    line = _one_line(_xsc(daemon, "arm", "7", "0", "5"), 1)  # below the 10 ms minimum
    assert line.startswith("xsc watchdog: timeout /local/domain/7/watchdog/0/timeout: EINVAL: ")
    assert "--watchdog-min-timeout" in line
    assert read(guest, "watchdog/0/state") == "disarmed"
