"""``xsc watchdog``: list with state and time left, arm, kick, disarm, set actions."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from tests.support.daemons import XsdDaemon
from tests.support.watchdogs import introduce, read, state, wait_until
from tests.support.wire import RawConn


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


def test_cli_arm_kick_list_disarm_and_actions(start_xsd: Callable[..., XsdDaemon]) -> None:
    daemon = start_xsd()
    dom0 = RawConn(str(daemon.socket))
    guest = introduce(dom0, daemon, 7)
    introduce(dom0, daemon, 9)
    assert _xsc(daemon, "action", "7", "none").returncode == 0
    assert read(guest, "watchdog/action") == "none"
    assert _xsc(daemon, "action", "7", "1", "pause").returncode == 0
    assert read(guest, "watchdog/1/action") == "pause"
    bad = _xsc(daemon, "action", "7", "0", "explode")
    assert bad.returncode == 1 and "EINVAL" in bad.stderr
    assert _xsc(daemon, "arm", "7", "0", "5000").returncode == 0
    assert read(guest, "watchdog/0/state") == "armed"
    assert _xsc(daemon, "kick", "7", "0").returncode == 0
    listing = _xsc(daemon, "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == [
        "DOMID", "WD", "STATE", "TIMEOUT", "PRETIMEOUT", "TIMELEFT", "ACTION", "NOWAYOUT", "FIRED"
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:]]
    assert [r[:2] for r in rows] == [["7", "0"], ["7", "1"], ["9", "0"], ["9", "1"]]
    assert rows[0][2:4] == ["armed", "5000"]
    assert 0 < int(rows[0][5]) <= 5000
    assert rows[0][6:8] == ["none", "(domain)"]
    assert rows[1][6] == "pause"
    assert rows[2][6] == "(default)"
    only9 = _xsc(daemon, "list", "9").stdout.splitlines()
    assert len(only9) == 3
    assert _xsc(daemon, "nowayout", "7", "0", "1").returncode == 0
    refused = _xsc(daemon, "disarm", "7", "0")
    assert refused.returncode == 1 and "EPERM" in refused.stderr
    assert _xsc(daemon, "timeout", "7", "0", "100").returncode == 0
    assert wait_until(lambda: state(guest, 7, 0) == "expired")
    status = _xsc(daemon, "status", "7").stdout
    assert "watchdog: 0" in status and "action: none" in status and "result: ok: none" in status
    assert _xsc(daemon, "nowayout", "7", "0", "0").returncode == 0
    assert _xsc(daemon, "arm", "7", "1", "5000").returncode == 0
    assert _xsc(daemon, "disarm", "7", "1").returncode == 0
    assert read(guest, "watchdog/1/state") == "disarmed"
    assert _xsc(daemon, "bogus").returncode == 2
    assert _xsc(daemon, "--help").returncode == 0
