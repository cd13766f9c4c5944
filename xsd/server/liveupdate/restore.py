"""The new process of a live update: the state back, the ``-s`` answered, serving early.

``xsd ... --live-update STATE`` (:data:`~xsd.server.liveupdate.LIVE_UPDATE_OPTION`, which
the old process adds to the new program's command line) loads the state and the shell's
record (``handover.shell_record``), adopts the client sockets and tells the guardian to go
before it reads or writes any of them, answers the ``-s`` that started it, and serves
the restored clients (``early``) while a thread imports the rest of the daemon and
parses the options; then the server takes the engine, the multiplexer and the record
over (``xsd.server.main``).

This is the pause of the update: what runs here imports nothing it can do without
(no ``typing``, ``logging``, ``argparse``, ``socket``, ``hashlib``: a test keeps it so).
"""

from __future__ import annotations

import gc
import sys
import threading

import xsd

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from handover.shell_record import ShellRecord
    from xsd.core.engine import Engine
    from xsd.server.mux import Multiplexer

    T = TypeVar("T")


def handed_over_state(argv: list[str]) -> str | None:
    """The STATE of ``--live-update STATE`` (as a live update passes it, spelled in
    full), or None."""
    from xsd.server.liveupdate import LIVE_UPDATE_OPTION

    for i, arg in enumerate(argv[:-1]):
        if arg == "--":
            break
        if arg == LIVE_UPDATE_OPTION:
            return argv[i + 1]
    return None


def restore(
    spec: str, started_ns: int, prepare: Callable[[], T]
) -> tuple[Engine, ShellRecord, Multiplexer, T | None] | None:
    """Load a handed-over state and serve it at once (``early``), answering the ``-s``
    that started us, while a thread runs ``prepare()`` (``xsd.server.main``'s: it imports
    the rest of the daemon and parses the options); returns when the server can take
    over, with what ``prepare`` returned (None if it raised: the thread printed why), or
    None (the reason printed) if the state cannot load. ``started_ns``: when the new
    program reached our code.

    The record's client sockets are the multiplexer's now (its ``conns`` left empty).
    """
    # The modules and the state about to be built live as long as the daemon: the
    # cyclic collector waits until handover.load has frozen them (gc.freeze).
    collecting = gc.isenabled()
    gc.disable()
    try:
        import handover
        from xsd.core.engine import Engine
        from xsd.server.liveupdate import guardian, reexec
        from xsd.server.liveupdate.early import EarlyService

        reexec.restore_environment()  # before anything we run could inherit ours
        guard = guardian.take()  # the old daemon's copy, until we say we serve
        guardian.test_point("exec")
        timeline = handover.timeline
        timeline.take_exec_mark()
        if guard is not None:
            timeline.mark("forked", guard[2])  # the guardian's fork, after the exec mark
        timeline.mark("python", xsd.STARTED_NS)
        timeline.mark("main", started_ns)
        timeline.mark("imports")
        try:
            state, record = handover.load(spec)
        except handover.StateError as exc:
            print(f"xsd: live update: cannot load the state: {exc}", file=sys.stderr)
            return None
    finally:
        if collecting:
            gc.enable()
    guardian.test_point("loaded")
    engine = Engine(state)
    timeline.restore(record.timeline)
    timeline.mark("loaded")
    early = EarlyService(engine)
    conns, record.conns = record.conns, {}  # now the service's
    prepared: list[T] = []

    def prepare_off_the_pause() -> None:
        guardian.reap(guard)
        prepared.append(prepare())

    importer = threading.Thread(target=prepare_off_the_pause, name="xsd-import", daemon=True)
    reply = record.live_update_reply
    # Its OK first: the others can wait the few ms of their adoption.
    first = {reply: conns.pop(reply)} if reply is not None and reply in conns else {}
    early.adopt(first)
    guardian.test_point("adopted")
    guardian.release(guard)  # no socket read or written yet: from here on, ours alone
    for conn_id in first:
        if early.answer(conn_id):
            timeline.mark("OK")
    early.adopt(conns)
    early.start()
    importer.start()
    early.serve_while(importer.is_alive)
    importer.join()
    timeline.mark("server imported")
    return engine, record, early.mux, prepared[0] if prepared else None
