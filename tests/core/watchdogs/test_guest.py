"""Watchdog semantics driven by real store writes from an unprivileged domain's connection.

Every test runs a real daemon; the guest is a connection on the domain's own socket and
domain 0 is a connection on the main socket. Timeouts are short (100-600 ms) and every
wait has a generous upper bound, so the tests assert order and outcome, never durations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.support.daemons import XsdDaemon
from tests.support.watchdogs import introduce, ok, read, refused, state, wait_until, write
from tests.support.wire import RawConn
from xsd_client.protocol import Op

Start = Callable[..., XsdDaemon]
W = "/local/domain/7/watchdog"


def _setup(start_xsd: Start, *args: str) -> tuple[XsdDaemon, RawConn, RawConn]:
    daemon = start_xsd(*args)
    dom0 = RawConn(str(daemon.socket))
    return daemon, dom0, introduce(dom0, daemon, 7)


def _events(conn: RawConn, settle: float = 0.05) -> list[str]:
    return [p.payload.split(b"\0")[0].decode() for p in conn.drain_events(settle)]


def test_schema_is_made_at_introduce_with_its_permissions(start_xsd: Start) -> None:
    _, dom0, g = _setup(start_xsd)
    assert g.call(Op.DIRECTORY, "watchdog") == ("OK", b"action\0qmp\0bootstatus\0000\0001\0")
    leaves = b"timeout\0pretimeout\0keepalive\0control\0timeleft\0state\0action\0nowayout\0fired\0"
    assert g.call(Op.DIRECTORY, "watchdog/1") == ("OK", leaves)
    assert read(g, "watchdog/0/state") == "disarmed"
    assert read(g, "watchdog/0/timeout") == "60000"
    assert read(g, "watchdog/bootstatus") == "0"
    for leaf in ("timeout", "pretimeout", "keepalive", "control", "timeleft"):
        assert g.call(Op.GET_PERMS, f"watchdog/0/{leaf}") == ("OK", b"n0\0b7\0")
    for leaf in ("state", "action", "nowayout", "fired"):
        assert g.call(Op.GET_PERMS, f"watchdog/0/{leaf}") == ("OK", b"n0\0r7\0")
    assert dom0.call(Op.GET_PERMS, f"{W}/qmp") == ("OK", b"n0\0")


def test_guest_cannot_touch_action_nowayout_daemon_nodes_or_other_domains(
    start_xsd: Start,
) -> None:
    daemon, dom0, g = _setup(start_xsd)
    other = introduce(dom0, daemon, 8)
    assert refused(g, "watchdog/0/action", "none") == "EACCES"
    assert refused(g, "watchdog/action", "none") == "EACCES"
    assert refused(g, "watchdog/0/nowayout", "0") == "EACCES"
    assert refused(g, "watchdog/0/state", "armed") == "EACCES"
    assert refused(g, "watchdog/0/fired", "0") == "EACCES"
    assert refused(g, "watchdog/bootstatus/result", "ok") == "EACCES"
    assert refused(g, "watchdog/qmp", "/tmp/x") == "EACCES"
    assert read(g, "watchdog/qmp") == "!EACCES"
    assert refused(g, "watchdog/2/timeout", "500") == "EACCES"  # only 2 slots
    assert refused(g, "watchdog/0/extra", "1") == "EACCES"
    assert g.call(Op.RM, "watchdog/0/timeout") == ("ERROR", b"EACCES\0")
    assert g.call(Op.RM, "watchdog") == ("ERROR", b"EACCES\0")
    assert g.call(Op.SET_PERMS, "watchdog/0/timeout", "n7") == ("ERROR", b"EACCES\0")
    # Another domain sees nothing of domain 7's watchdogs, and cannot drive them.
    assert read(other, f"{W}/0/state") == "!EACCES"
    assert refused(other, f"{W}/0/control", "arm") == "EACCES"
    assert refused(other, f"{W}/0/timeout", "junk") == "EACCES"  # not EINVAL: no hint
    # Domain 0 may set the action and nowayout; the guest then reads them.
    ok(dom0, f"{W}/0/action", "none")
    assert read(g, "watchdog/0/action") == "none"
    assert read(g, "watchdog/0/state") == "disarmed"


def test_values_are_validated_before_they_are_written(start_xsd: Start) -> None:
    _, dom0, g = _setup(start_xsd)
    for bad in ("5", "0", "abc", "", "-100", "86400001", "100.5", "1e3"):
        assert refused(g, "watchdog/0/timeout", bad) == "EINVAL", bad
    assert read(g, "watchdog/0/timeout") == "60000"
    ok(g, "watchdog/0/timeout", "500")
    assert refused(g, "watchdog/0/pretimeout", "500") == "EINVAL"  # not below the timeout
    assert refused(g, "watchdog/0/pretimeout", "x") == "EINVAL"
    ok(g, "watchdog/0/pretimeout", "100")
    assert refused(g, "watchdog/0/timeout", "100") == "EINVAL"  # not above the pretimeout
    assert refused(g, "watchdog/0/control", "start") == "EINVAL"
    assert refused(g, "watchdog/0/keepalive", "1") == "EINVAL"  # not running
    assert refused(dom0, f"{W}/0/action", "explode") == "EINVAL"
    assert refused(dom0, f"{W}/action", "explode") == "EINVAL"
    assert refused(dom0, f"{W}/0/nowayout", "yes") == "EINVAL"
    assert refused(dom0, f"{W}/0/state", "armed") == "EACCES"  # the daemon's node
    assert read(g, "watchdog/0/pretimeout") == "100"


def test_arm_keepalive_then_expiry_records_boot_status(start_xsd: Start) -> None:
    daemon, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/0/action", "none")
    assert dom0.call(Op.WATCH, "@watchdog", "wd") == ("OK", b"OK\0")
    ok(g, "watchdog/0/timeout", "300")
    ok(g, "watchdog/0/control", "arm")
    assert read(g, "watchdog/0/state") == "armed"
    for _ in range(12):  # 1.2 s of keepalives, four timeouts' worth
        time.sleep(0.1)
        ok(g, "watchdog/0/keepalive", "1")
    assert read(g, "watchdog/0/state") == "armed"
    assert read(g, "watchdog/0/fired") == "0"
    assert wait_until(lambda: state(g, 7, 0) == "expired")
    assert read(g, "watchdog/0/fired") == "1"
    assert read(g, "watchdog/bootstatus") == "1"
    assert read(g, "watchdog/bootstatus/watchdog") == "0"
    assert int(read(g, "watchdog/bootstatus/time")) > 0
    assert read(g, "watchdog/bootstatus/action") == "none"
    assert read(g, "watchdog/bootstatus/result") == "ok: none"
    assert "@watchdog" in _events(dom0)
    assert refused(g, "watchdog/0/keepalive", "1") == "EINVAL"  # expired: not running
    assert wait_until(lambda: "watchdog 0 expired" in daemon.output())
    # The guest re-arms after its "reboot".
    ok(g, "watchdog/0/control", "arm")
    assert read(g, "watchdog/0/state") == "armed"


def test_timeleft_and_timeout_change_restart_the_countdown(start_xsd: Start) -> None:
    _, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/1/action", "none")
    assert read(g, "watchdog/1/timeleft") == "0"
    ok(g, "watchdog/1/timeout", "400")
    ok(g, "watchdog/1/control", "arm")
    ok(g, "watchdog/1/timeleft", "")
    assert 0 < int(read(g, "watchdog/1/timeleft")) <= 400
    # A longer timeout written while running restarts it: no expiry at the old deadline.
    ok(g, "watchdog/1/timeout", "5000")
    time.sleep(0.8)
    assert read(g, "watchdog/1/state") == "armed"
    ok(g, "watchdog/1/timeleft", "")
    assert 3000 < int(read(g, "watchdog/1/timeleft")) <= 5000
    # A short one takes over at once.
    ok(g, "watchdog/1/timeout", "150")
    assert wait_until(lambda: state(g, 7, 1) == "expired")
    assert read(g, "watchdog/1/timeleft") == "0"


def test_pretimeout_changes_state_and_tells_watchers_before_expiry(start_xsd: Start) -> None:
    _, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/0/action", "none")
    ok(g, "watchdog/0/timeout", "600")
    ok(g, "watchdog/0/pretimeout", "400")
    assert g.call(Op.WATCH, "watchdog/0/state", "st") == ("OK", b"OK\0")
    seen: list[str] = []

    def record() -> bool:
        for _ in _events(g, 0.02):
            seen.append(read(g, "watchdog/0/state"))
        return "expired" in seen

    ok(g, "watchdog/0/control", "arm")
    assert wait_until(record)
    states = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    assert states[-3:] == ["armed", "pretimeout", "expired"] or states[-2:] == [
        "pretimeout",
        "expired",
    ], seen


def test_keepalive_in_pretimeout_goes_back_to_armed(start_xsd: Start) -> None:
    _, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/0/action", "none")
    ok(g, "watchdog/0/timeout", "3000")
    ok(g, "watchdog/0/pretimeout", "2900")
    ok(g, "watchdog/0/control", "arm")
    assert wait_until(lambda: state(g, 7, 0) == "pretimeout")
    ok(g, "watchdog/0/keepalive", "1")
    assert read(g, "watchdog/0/state") == "armed"
    ok(g, "watchdog/0/pretimeout", "0")
    ok(g, "watchdog/0/control", "disarm")


def test_magic_close_disarms(start_xsd: Start) -> None:
    daemon, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/0/action", "none")
    arming = introduce_conn(daemon)
    ok(arming, "watchdog/0/timeout", "300")
    ok(arming, "watchdog/0/control", "arm")
    ok(arming, "watchdog/0/keepalive", "V")
    arming.close()
    assert wait_until(lambda: state(g, 7, 0) == "disarmed")
    time.sleep(0.6)
    assert read(g, "watchdog/0/fired") == "0"
    assert "magic close" in daemon.output()


def test_close_without_magic_keeps_running_and_fires(start_xsd: Start) -> None:
    daemon, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/0/action", "none")
    arming = introduce_conn(daemon)
    ok(arming, "watchdog/0/timeout", "300")
    ok(arming, "watchdog/0/control", "arm")
    ok(arming, "watchdog/0/keepalive", "V")
    ok(arming, "watchdog/0/keepalive", "1")  # a later write without 'V' cancels it
    arming.close()
    time.sleep(0.1)
    assert read(g, "watchdog/0/state") == "armed"
    assert wait_until(lambda: state(g, 7, 0) == "expired")


def test_magic_close_counts_only_for_the_arming_connection(start_xsd: Start) -> None:
    daemon, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/0/action", "none")
    arming = introduce_conn(daemon)
    ok(arming, "watchdog/0/timeout", "400")
    ok(arming, "watchdog/0/control", "arm")
    other = introduce_conn(daemon)
    ok(other, "watchdog/0/keepalive", "V")  # a kick, but not the owner's 'V'
    other.close()
    arming.close()
    assert wait_until(lambda: state(g, 7, 0) == "expired")


def test_explicit_disarm(start_xsd: Start) -> None:
    _, _, g = _setup(start_xsd)
    ok(g, "watchdog/0/timeout", "200")
    ok(g, "watchdog/0/control", "arm")
    ok(g, "watchdog/0/control", "disarm")
    assert read(g, "watchdog/0/state") == "disarmed"
    time.sleep(0.5)
    assert read(g, "watchdog/0/fired") == "0"


def test_nowayout_nothing_disarms_it(start_xsd: Start) -> None:
    daemon, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/0/action", "none")
    ok(dom0, f"{W}/0/nowayout", "1")
    arming = introduce_conn(daemon)
    ok(arming, "watchdog/0/timeout", "400")
    ok(arming, "watchdog/0/control", "arm")
    assert refused(arming, "watchdog/0/control", "disarm") == "EPERM"
    assert refused(dom0, f"{W}/0/control", "disarm") == "EPERM"
    assert refused(dom0, f"{W}/0/nowayout", "0") == "EPERM"
    ok(arming, "watchdog/0/keepalive", "V")
    arming.close()  # magic close is ignored under nowayout
    assert wait_until(lambda: state(g, 7, 0) == "expired")
    assert "nowayout" in daemon.output()
    ok(dom0, f"{W}/0/nowayout", "0")  # once it fired, domain 0 may clear it


def test_graceful_actions_write_control_shutdown(start_xsd: Start) -> None:
    _, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/action", "shutdown")  # the domain's default
    ok(dom0, f"{W}/1/action", "reboot")  # an override for watchdog 1
    assert g.call(Op.WATCH, "control/shutdown", "sd") == ("OK", b"OK\0")
    ok(g, "watchdog/0/timeout", "100")
    ok(g, "watchdog/0/control", "arm")
    assert wait_until(lambda: read(g, "control/shutdown") == "poweroff")
    assert wait_until(lambda: read(g, "watchdog/bootstatus/result") != "")
    assert read(g, "watchdog/bootstatus/action") == "shutdown"
    assert read(g, "watchdog/bootstatus/result") == "ok: control/shutdown=poweroff"
    assert "control/shutdown" in _events(g)
    ok(g, "watchdog/1/timeout", "100")
    ok(g, "watchdog/1/control", "arm")
    assert wait_until(lambda: read(g, "control/shutdown") == "reboot")
    assert read(g, "watchdog/bootstatus/watchdog") == "1"
    assert read(g, "watchdog/bootstatus/action") == "reboot"


def test_xen_names_map_and_a_missing_backend_is_shown(start_xsd: Start) -> None:
    daemon, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/action", "preserve")  # xl's on_watchdog=preserve: pause
    ok(g, "watchdog/0/timeout", "100")
    ok(g, "watchdog/0/control", "arm")
    assert wait_until(lambda: read(g, "watchdog/bootstatus/result").startswith("failed"))
    assert read(g, "watchdog/bootstatus/action") == "pause"
    assert "no backend" in read(g, "watchdog/bootstatus/result")
    assert read(g, "watchdog/0/state") == "expired"
    assert wait_until(lambda: "action pause failed" in daemon.output())
    # The timer is consistent: it re-arms and fires again.
    ok(dom0, f"{W}/0/action", "none")
    ok(g, "watchdog/0/control", "arm")
    assert wait_until(lambda: read(g, "watchdog/0/fired") == "2")
    assert read(g, "watchdog/bootstatus/result") == "ok: none"


def test_unreachable_qmp_backend_fails_visibly(start_xsd: Start, tmp_path: Path) -> None:
    _, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/qmp", str(tmp_path / "no-such-qmp.sock"))
    ok(dom0, f"{W}/0/action", "restart")  # xl: reset
    assert dom0.call(Op.WATCH, "@watchdog", "wd") == ("OK", b"OK\0")
    ok(g, "watchdog/0/timeout", "100")
    ok(g, "watchdog/0/control", "arm")
    assert wait_until(lambda: read(g, "watchdog/bootstatus/result").startswith("failed: QMP"))
    assert read(g, "watchdog/bootstatus/action") == "reset"
    assert _events(dom0).count("@watchdog") >= 1


def test_hook_command_gets_domain_watchdog_and_action(start_xsd: Start, tmp_path: Path) -> None:
    out = tmp_path / "hook.out"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$XSD_DOMID $XSD_WATCHDOG $XSD_ACTION" >> {out}\n')
    script.chmod(0o755)
    _, _, g = _setup(start_xsd, "--watchdog-hook", str(script), "--watchdog-action", "pause")
    ok(g, "watchdog/1/timeout", "100")
    ok(g, "watchdog/1/control", "arm")
    assert wait_until(lambda: read(g, "watchdog/bootstatus/result").startswith("ok"))
    assert out.read_text() == "7 1 pause\n"
    # A hook that fails is reported as such.
    script.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    ok(g, "watchdog/1/control", "arm")
    assert wait_until(lambda: read(g, "watchdog/bootstatus/result").startswith("failed"))
    assert "status 3" in read(g, "watchdog/bootstatus/result")


def test_arm_in_a_transaction_takes_effect_at_commit(start_xsd: Start) -> None:
    _, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/0/action", "none")
    assert g.call(Op.TRANSACTION_START, "")[0] == "OK"
    payload = g.call(Op.TRANSACTION_START, "")[1]
    tx = int(payload.rstrip(b"\0"))
    reply = g.request(Op.WRITE, b"watchdog/0/timeout\0" + b"5000", tx)
    assert reply.op == Op.WRITE
    reply = g.request(Op.WRITE, b"watchdog/0/control\0arm", tx)
    assert reply.op == Op.WRITE
    assert read(g, "watchdog/0/state") == "disarmed"
    assert g.call(Op.TRANSACTION_END, "T", tx_id=tx) == ("OK", b"OK\0")
    assert read(g, "watchdog/0/state") == "armed"
    assert read(g, "watchdog/0/timeout") == "5000"


def test_removed_nodes_come_back_and_release_removes_them(start_xsd: Start) -> None:
    _, dom0, g = _setup(start_xsd)
    ok(dom0, f"{W}/0/action", "none")
    ok(g, "watchdog/0/timeout", "5000")
    ok(g, "watchdog/0/control", "arm")
    assert dom0.call(Op.RM, W) == ("OK", b"OK\0")
    assert read(g, "watchdog/0/state") == "armed"
    assert read(g, "watchdog/0/timeout") == "5000"
    assert read(dom0, f"{W}/0/action") == "none"
    assert g.call(Op.GET_PERMS, "watchdog/0/control") == ("OK", b"n0\0b7\0")
    assert dom0.call(Op.RELEASE, 7) == ("OK", b"OK\0")
    assert read(dom0, W) == "!ENOENT"
    assert read(dom0, "/local/domain/7") == "!ENOENT"


def test_slots_per_domain_are_configurable(start_xsd: Start) -> None:
    _, _, g = _setup(start_xsd, "--watchdogs-per-domain", "4", "--watchdog-min-timeout", "50")
    assert g.call(Op.DIRECTORY, "watchdog")[1].split(b"\0")[3:7] == [b"0", b"1", b"2", b"3"]
    ok(g, "watchdog/3/timeout", "50")
    assert refused(g, "watchdog/3/timeout", "49") == "EINVAL"
    assert refused(g, "watchdog/4/timeout", "100") == "EACCES"


def introduce_conn(daemon: XsdDaemon) -> RawConn:
    """Another connection of domain 7."""
    from tests.support.watchdogs import guest

    return guest(daemon, 7)


def test_write_helper_rejects_nul_terminated_values(start_xsd: Start) -> None:
    # A value with a trailing NUL (as join_args sends) is not a number: EINVAL.
    _, _, g = _setup(start_xsd)
    assert write(g, "watchdog/0/timeout", b"500\0") == ("ERROR", b"EINVAL\0")
