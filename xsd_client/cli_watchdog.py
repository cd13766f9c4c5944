"""``xsc watchdog``: list, arm, kick, disarm and configure the watchdogs hosted in the store.

Everything goes through ordinary store writes as domain 0, on the nodes documented in
the README ("Watchdogs"), so the CLI has no powers a toolstack does not have. Invariants:

* a command that the daemon refuses prints the error name (EINVAL, EPERM, EACCES...) to
  stderr and exits 1; a usage error exits 2; success exits 0;
* ``list`` refreshes each ``timeleft`` (a write the daemon answers by rewriting it) before
  reading, so the time left is current to within a round trip;
* importing this module never imports trio.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .client import Client
from .errors import XenstoreError

USAGE = """\
Usage: xsc watchdog <command> [args]
  list [DOMID...]                  every watchdog with state, timeout and time left (ms)
  arm DOMID N [TIMEOUT_MS]         (re)start watchdog N of DOMID, with a new timeout
  kick DOMID N                     keepalive
  disarm DOMID N                   stop it (refused under nowayout)
  timeout DOMID N MS               change the timeout (restarts a running watchdog)
  pretimeout DOMID N MS            warning stage MS before expiry (0: none)
  action DOMID [N] ACTION          action of watchdog N, or the domain's default;
                                   "" inherits; reset shutdown reboot poweroff pause
                                   debug none inject-nmi, or an xl on_watchdog name
  nowayout DOMID N 0|1             1: nothing disarms it until it fires
  qmp DOMID PATH                   the QMP socket of the domain's QEMU ("" none)
  status DOMID                     the last expiry: watchdog, time, action, result
"""


class _Usage(Exception):
    pass


def _base(domid: str) -> str:
    if not domid.isdigit():
        raise _Usage(f"bad domain id {domid!r}")
    return f"/local/domain/{int(domid)}/watchdog"


def _slot(domid: str, slot: str) -> str:
    if not slot.isdigit():
        raise _Usage(f"bad watchdog number {slot!r}")
    return f"{_base(domid)}/{int(slot)}"


def _text(client: Client, path: str) -> str:
    try:
        return client.read(path).decode("utf-8", "replace")
    except XenstoreError:
        return "?"


def _domains(client: Client, wanted: Sequence[str]) -> list[int]:
    if wanted:
        for d in wanted:
            _base(d)
        return [int(d) for d in wanted]
    out = []
    for name in client.directory("/local/domain"):
        if name.isdigit() and client.exists(f"/local/domain/{name}/watchdog"):
            out.append(int(name))
    return sorted(out)


def list_watchdogs(client: Client, wanted: Sequence[str]) -> list[dict[str, str]]:
    """One row per watchdog of the wanted (default: all) domains."""
    rows = []
    for domid in _domains(client, wanted):
        base = f"/local/domain/{domid}/watchdog"
        default = _text(client, f"{base}/action")
        slots = sorted(int(n) for n in client.directory(base) if n.isdigit())
        for n in slots:
            top = f"{base}/{n}"
            client.write(f"{top}/timeleft", b"")
            action = _text(client, f"{top}/action")
            rows.append(
                {
                    "DOMID": str(domid),
                    "WD": str(n),
                    "STATE": _text(client, f"{top}/state"),
                    "TIMEOUT": _text(client, f"{top}/timeout"),
                    "PRETIMEOUT": _text(client, f"{top}/pretimeout"),
                    "TIMELEFT": _text(client, f"{top}/timeleft"),
                    "ACTION": action or (f"{default} (domain)" if default else "(default)"),
                    "NOWAYOUT": _text(client, f"{top}/nowayout"),
                    "FIRED": _text(client, f"{top}/fired"),
                }
            )
    return rows


def _print_table(rows: list[dict[str, str]]) -> None:
    columns = ["DOMID", "WD", "STATE", "TIMEOUT", "PRETIMEOUT", "TIMELEFT", "ACTION"]
    columns += ["NOWAYOUT", "FIRED"]
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in rows]
    sys.stdout.write("\n".join(lines) + "\n")


def run(client: Client, args: Sequence[str]) -> int:
    """Run one watchdog command with a connected client; returns the exit status."""
    if not args:
        raise _Usage("missing command")
    cmd, rest = args[0], list(args[1:])
    if cmd == "list":
        _print_table(list_watchdogs(client, rest))
    elif cmd == "arm" and len(rest) in (2, 3):
        top = _slot(rest[0], rest[1])
        if len(rest) == 3:
            client.write(f"{top}/timeout", rest[2])
        client.write(f"{top}/control", "arm")
    elif cmd == "kick" and len(rest) == 2:
        client.write(f"{_slot(rest[0], rest[1])}/keepalive", "1")
    elif cmd == "disarm" and len(rest) == 2:
        client.write(f"{_slot(rest[0], rest[1])}/control", "disarm")
    elif cmd in ("timeout", "pretimeout", "nowayout") and len(rest) == 3:
        client.write(f"{_slot(rest[0], rest[1])}/{cmd}", rest[2])
    elif cmd == "action" and len(rest) == 2:
        client.write(f"{_base(rest[0])}/action", rest[1])
    elif cmd == "action" and len(rest) == 3:
        client.write(f"{_slot(rest[0], rest[1])}/action", rest[2])
    elif cmd == "qmp" and len(rest) == 2:
        client.write(f"{_base(rest[0])}/qmp", rest[1])
    elif cmd == "status" and len(rest) == 1:
        base = _base(rest[0])
        for leaf in ("watchdog", "time", "action", "result"):
            sys.stdout.write(f"{leaf}: {_text(client, f'{base}/bootstatus/{leaf}')}\n")
    else:
        raise _Usage(f"bad command or arguments: {' '.join(args)}")
    return 0


def main(args: Sequence[str]) -> int:
    """``xsc watchdog ARGS``; returns the exit status."""
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    try:
        client = Client()
    except XenstoreError as e:
        sys.stderr.write(f"xsc watchdog: cannot connect: {e}\n")
        return 1
    try:
        return run(client, args)
    except _Usage as e:
        sys.stderr.write(f"xsc watchdog: {e}\n{USAGE}")
        return 2
    except XenstoreError as e:
        sys.stderr.write(f"xsc watchdog: {e.errno_name or e}\n")
        return 1
    finally:
        client.close()
