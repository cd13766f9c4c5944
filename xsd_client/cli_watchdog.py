"""``xsc watchdog``: list, arm, kick, disarm and configure the watchdogs hosted in the store.

Everything goes through ordinary store writes as domain 0, on the nodes documented in
the README ("Watchdogs"), so the CLI has no powers a toolstack does not have. Invariants:

* a command that the daemon refuses prints the error name (EINVAL, EPERM, EACCES...) and
  what it means to stderr and exits 1; a usage error exits 2; success exits 0;
* a command for a watchdog that does not exist (a domain never introduced, a number
  beyond the domain's count) is refused before anything is written, exit 1: domain 0
  may write anywhere, and the write would only create plain nodes no watchdog reads;
* numbers are checked before they are sent, and a bad one is named (exit 2);
* ``list`` refreshes each ``timeleft`` (a write the daemon answers by rewriting it) before
  reading, so the time left is current to within a round trip;
* importing this module never imports trio, nor the threaded client: the commands are
  one-shot (:class:`~xsd_client.oneshot.OneShotClient`).
"""

from __future__ import annotations

import sys

from .errors import XenstoreError
from .oneshot import OneShotClient

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .operations import Operations  # either client, one-shot or threaded

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
A domain has watchdogs once introduced (the daemon's --watchdogs-per-domain, numbered
from 0). Exit status: 0 done, 1 refused (the reason on stderr), 2 usage.
"""

_HELP_FLAGS = ("-h", "--help", "help")

_MEANING = {
    "EINVAL": "the daemon refused the value",
    "EPERM": "not allowed now (nowayout is set)",
    "EACCES": "not allowed to write that node",
}
"""What each refusal means, after its error name."""

_VALUE_RULES = {
    "timeout": "a timeout must lie within the daemon's --watchdog-min-timeout.."
    "--watchdog-max-timeout (default 10..86400000 ms) and above the pretimeout",
    "pretimeout": "a pretimeout must be below the timeout",
    "action": "an action is one of reset shutdown reboot poweroff pause debug none "
    "inject-nmi, or an xl on_watchdog name",
}


class _Refused(Exception):
    """A command for something that does not exist; nothing was written."""


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


def _ms(what: str, text: str) -> str:
    if not text.isdigit():
        raise _Usage(f"{what} {text!r} is not a number of milliseconds")
    return str(int(text))


def _existing_base(client: Operations, domid: str) -> str:
    base = _base(domid)
    if not client.exists(base):
        raise _Refused(
            f"domain {int(domid)} has no watchdogs: it was never introduced "
            "(or the daemon gives none: --watchdogs-per-domain)"
        )
    return base


def _existing_slot(client: Operations, domid: str, slot: str) -> str:
    top = _slot(domid, slot)
    base = _existing_base(client, domid)
    if not client.exists(top):
        numbers = sorted(int(n) for n in client.directory(base) if n.isdigit())
        have = f"watchdogs 0-{numbers[-1]}" if numbers else "no watchdogs"
        raise _Refused(f"domain {int(domid)} has {have}: there is no watchdog {int(slot)}")
    return top


def _text(client: Operations, path: str) -> str:
    try:
        return client.read(path).decode("utf-8", "replace")
    except XenstoreError:
        return "?"


def _domains(client: Operations, wanted: Sequence[str]) -> list[int]:
    if wanted:
        for d in wanted:
            _base(d)
        return [int(d) for d in wanted]
    out = []
    for name in client.directory("/local/domain"):
        if name.isdigit() and client.exists(f"/local/domain/{name}/watchdog"):
            out.append(int(name))
    return sorted(out)


def list_watchdogs(client: Operations, wanted: Sequence[str]) -> list[dict[str, str]]:
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


def run(client: Operations, args: Sequence[str]) -> int:
    """Run one watchdog command with a connected client; returns the exit status."""
    if not args:
        raise _Usage("missing command")
    cmd, rest = args[0], list(args[1:])
    if cmd == "list":
        _print_table(list_watchdogs(client, rest))
    elif cmd == "arm" and len(rest) in (2, 3):
        timeout = _ms("timeout", rest[2]) if len(rest) == 3 else None
        top = _existing_slot(client, rest[0], rest[1])
        if timeout is not None:
            _write(client, "timeout", f"{top}/timeout", timeout)
        _write(client, "arm", f"{top}/control", "arm")
    elif cmd == "kick" and len(rest) == 2:
        _write(client, cmd, f"{_existing_slot(client, rest[0], rest[1])}/keepalive", "1")
    elif cmd == "disarm" and len(rest) == 2:
        _write(client, cmd, f"{_existing_slot(client, rest[0], rest[1])}/control", "disarm")
    elif cmd in ("timeout", "pretimeout") and len(rest) == 3:
        value = _ms(cmd, rest[2])
        _write(client, cmd, f"{_existing_slot(client, rest[0], rest[1])}/{cmd}", value)
    elif cmd == "nowayout" and len(rest) == 3:
        if rest[2] not in ("0", "1"):
            raise _Usage(f"nowayout {rest[2]!r} is not 0 or 1")
        _write(client, cmd, f"{_existing_slot(client, rest[0], rest[1])}/nowayout", rest[2])
    elif cmd == "action" and len(rest) == 2:
        _write(client, cmd, f"{_existing_base(client, rest[0])}/action", rest[1])
    elif cmd == "action" and len(rest) == 3:
        _write(client, cmd, f"{_existing_slot(client, rest[0], rest[1])}/action", rest[2])
    elif cmd == "qmp" and len(rest) == 2:
        _write(client, cmd, f"{_existing_base(client, rest[0])}/qmp", rest[1])
    elif cmd == "status" and len(rest) == 1:
        base = _existing_base(client, rest[0])
        for leaf in ("watchdog", "time", "action", "result"):
            sys.stdout.write(f"{leaf}: {_text(client, f'{base}/bootstatus/{leaf}')}\n")
    else:
        raise _Usage(f"bad command or arguments: {' '.join(args)}")
    return 0


class _Failed(Exception):
    """The daemon refused a write: ``str()`` is the error name and what it means."""


def _write(client: Operations, cmd: str, path: str, value: str) -> None:
    try:
        client.write(path, value)
    except XenstoreError as e:
        name = e.errno_name or str(e)
        text = f"{name}: {_MEANING[name]}" if name in _MEANING else name
        rule = _VALUE_RULES.get(cmd)
        if name == "EINVAL" and rule:
            text += f" ({rule})"
        raise _Failed(f"{cmd} {path}: {text}") from None


def main(args: Sequence[str]) -> int:
    """``xsc watchdog ARGS``; returns the exit status."""
    if not args or any(arg in _HELP_FLAGS[:2] for arg in args) or args[0] == "help":
        sys.stdout.write(USAGE)
        return 0 if args else 2
    try:
        client = OneShotClient()
    except XenstoreError as e:
        sys.stderr.write(f"xsc watchdog: cannot connect: {e}\n")
        return 1
    try:
        return run(client, args)
    except _Usage as e:
        sys.stderr.write(f"xsc watchdog: {e} (xsc watchdog --help lists the commands)\n")
        return 2
    except (_Refused, _Failed) as e:
        sys.stderr.write(f"xsc watchdog: {e}\n")
        return 1
    except XenstoreError as e:
        sys.stderr.write(f"xsc watchdog: {e.errno_name or e}\n")
        return 1
    finally:
        client.close()
