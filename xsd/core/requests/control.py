"""XS_CONTROL commands, as C xenstored 4.17 answers them.

Each command gets the argument strings after its name and returns the reply text
(NUL-terminated); a malformed command raises EINVAL. Commands that need I/O (the trace
file) change :class:`~xsd.core.state.Settings` and leave an effect for the shell.
"""

from __future__ import annotations

from collections.abc import Callable

from xsd.core import quota
from xsd.core.domain_ids import parse_domid
from xsd.core.effects import MemReport, TraceChanged
from xsd.core.errors import Deferred, XsError
from xsd.core.quota import watch_cost
from xsd_client.protocol import PAYLOAD_MAX, split_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)

if TYPE_CHECKING:
    from xsd.core.connections import Connection
    from xsd.core.context import Context
    from xsd.core.state import State
    from xsd.core.views import Transaction

Command = Callable[["Context", list[bytes]], str]

# The synopses of ``help``, in C 4.17's order and format ("name\tsynopsis").
_HELP = [
    ("check", ""),
    ("log", "on|off"),
    (
        "live-update",
        "[-c <cmdline>] [-F] [-t <timeout>] <file>\n    Default timeout is 60 seconds.",
    ),
    ("logfile", "<file>"),
    ("memreport", "[<file>]"),
    ("print", "<string>"),
    ("quota", "[set <name> <val>|<domid>]"),
    ("quota-soft", "[set <name> <val>]"),
    ("connections", "[dom <domid>] [from <conn-id>]"),
    ("help", ""),
]


def control(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    """XS_CONTROL: run the command named first with the rest as its arguments."""
    args = split_args(payload)
    if not args:
        raise XsError("EINVAL")
    command = _COMMANDS.get(args[0])
    if command is None:
        raise XsError("EINVAL")
    return command(ctx, args[1:]).encode() + b"\0"


def _help(ctx: Context, args: list[bytes]) -> str:
    if args:
        raise XsError("EINVAL")
    return "".join(f"{name}\t{text}\n" for name, text in _HELP)


def _check(ctx: Context, args: list[bytes]) -> str:
    if args:
        raise XsError("EINVAL")
    problems = ctx.state.tree.check()
    for problem in problems:
        ctx.log(f"check: {problem}")
    return "OK"


def _log(ctx: Context, args: list[bytes]) -> str:
    """``log on|off`` as C 4.17; xsd's own (docs/differences.md): ``log +CLASS|-CLASS``
    and ``log status``. Opening the file is I/O: ``on`` and ``status`` are answered by
    the shell (``OK``, or the error that kept the file closed)."""
    if len(args) != 1:
        raise XsError("EINVAL")  # bare `log` too, as 4.17
    settings = ctx.state.settings
    arg = args[0]
    if arg in (b"on", b"status"):
        settings.trace_on = settings.trace_on or arg == b"on"
        raise Deferred("log", args)
    if arg == b"off":
        settings.trace_on = False
    elif arg[:1] in (b"+", b"-") and arg[1:].decode(errors="replace") in _log_classes():
        name = arg[1:].decode()
        classes = [c for c in settings.log_classes if c != name]
        settings.log_classes = [*classes, name] if arg[:1] == b"+" else classes
    else:
        raise XsError("EINVAL")
    ctx.effects.append(TraceChanged())  # the shell reopens or closes the file
    return "OK"


def _logfile(ctx: Context, args: list[bytes]) -> str:
    if len(args) != 1:
        raise XsError("EINVAL")
    ctx.state.settings.trace_file = args[0].decode(errors="surrogateescape")
    raise Deferred("logfile", args)  # the shell opens it and answers


def _memreport(ctx: Context, args: list[bytes]) -> str:
    if len(args) > 1:
        raise XsError("EINVAL")
    target = args[0].decode(errors="surrogateescape") if args else None
    if target is None and ctx.state.settings.trace_file is None:
        raise XsError("EINVAL")  # C: EBADF without a trace file, sent as EINVAL
    ctx.effects.append(MemReport(target))
    return "OK"


def _print(ctx: Context, args: list[bytes]) -> str:
    if len(args) != 1:
        raise XsError("EINVAL")
    ctx.log("control: " + args[0].decode(errors="replace"))
    return "OK"


def _quota(ctx: Context, args: list[bytes]) -> str:
    if not args:
        return quota.describe(ctx.state.quotas.hard, "Quota settings:\n")
    if args[0] == b"set":
        if len(args) != 3:
            raise XsError("EINVAL")
        quota.set_value(ctx.state.quotas.hard, args[1], args[2])
        return "OK"
    if len(args) != 1:
        raise XsError("EINVAL")
    domid = parse_domid(args[0])
    if domid not in ctx.state.domains:
        raise XsError("ENOENT")
    return usage_report(ctx.state, domid)


def _quota_soft(ctx: Context, args: list[bytes]) -> str:
    if not args:
        return quota.describe(ctx.state.quotas.soft, "Quota settings:\n")
    if args[0] == b"set" and len(args) == 3:
        quota.set_value(ctx.state.quotas.soft, args[1], args[2])
        return "OK"
    raise XsError("EINVAL")


def _connections(ctx: Context, args: list[bytes]) -> str:
    """xsd's own: the connections, who is at the other end (SO_PEERCRED) and their load.

    ``connections [dom <domid>] [from <conn-id>]``: the connections of one domain only,
    from one connection id on, in id order, as many as fit in one reply; the last line
    sums up: ``summary matching=M shown=S next=ID`` (``next=-``: nothing more; else ask
    again with ``from ID``). Paging as DIRECTORY_PART does, so a domain 0 tool can list
    any number of connections (a reply holds at most 4096 bytes).
    """
    domid: int | None = None
    first = 0
    rest = list(args)
    while rest:
        if len(rest) < 2 or not rest[1].isdigit():
            raise XsError("EINVAL")
        key, value = rest.pop(0), int(rest.pop(0))
        if key == b"dom" and domid is None:
            domid = value
        elif key == b"from" and not first:
            first = value
        else:
            raise XsError("EINVAL")
    connections = ctx.state.connections
    ids = sorted(
        cid
        for cid, conn in connections.items()
        if cid >= first and (domid is None or conn.domid == domid)
    )
    budget = PAYLOAD_MAX - 1 - _SUMMARY_ROOM  # the NUL, the summary line
    lines = []
    for cid in ids:
        line = _connection_line(connections[cid])
        budget -= len(line)
        if budget < 0:
            break
        lines.append(line)
    after = ids[len(lines)] if len(lines) < len(ids) else "-"
    lines.append(f"summary matching={len(ids)} shown={len(lines)} next={after}\n")
    return "".join(lines)


_SUMMARY_ROOM = 64  # "summary matching=... shown=... next=...\n", ids of 10 digits


def _connection_line(conn: Connection) -> str:
    creds = conn.creds
    peer = (
        "pid=? uid=? gid=?"
        if creds is None
        else (f"pid={creds.pid} uid={creds.uid} gid={creds.gid}")
    )
    return (
        f"conn {conn.id} dom{conn.domid} {'priv' if conn.privileged else 'unpriv'} {peer} "
        f"watches={len(conn.watches)} transactions={len(conn.transactions)} "
        f"queued={conn.out_bytes}\n"
    )


def _live_update(ctx: Context, args: list[bytes]) -> str:
    # The session, the dry run and the exec are the shell's: it answers later.
    raise Deferred("live-update", args)


_COMMANDS: dict[bytes, Command] = {
    b"check": _check,
    b"log": _log,
    b"live-update": _live_update,
    b"logfile": _logfile,
    b"memreport": _memreport,
    b"print": _print,
    b"quota": _quota,
    b"quota-soft": _quota_soft,
    b"connections": _connections,
    b"help": _help,
}


def _log_classes() -> tuple[str, ...]:
    # Imported when asked: a live update's restore imports this module, and need not
    # pay for the log format before it answers.
    from xsd_client.logformat import CLASSES

    return CLASSES


def usage_report(state: State, domid: int) -> str:
    """``quota <domid>``: what a domain uses now."""
    nodes, memory = state.tree.usage.get(domid, (0, 0))
    conns = [c for c in state.connections.values() if c.domid == domid]
    watches = sum(len(c.watches) for c in conns)
    transactions = sum(len(c.transactions) for c in conns)
    rows = [
        ("nodes", nodes),
        ("watches", watches),
        ("transactions", transactions),
        ("outstanding", 0),
        ("memory", memory),
        ("output", sum(c.out_bytes for c in conns)),
        (
            "transaction-memory",
            sum(_tx_bytes(state, t) for c in conns for t in c.transactions.values()),
        ),
        ("watch-memory", sum(watch_cost(w) for c in conns for w in c.watches)),
    ]
    return f"Domain {domid}:\n" + "".join(f"{n:<16s}: {v:8d}\n" for n, v in rows)


def _tx_bytes(state: State, tx: Transaction) -> int:
    tx.settle(state.tree)  # a privileged connection's is counted when asked
    return tx.size
