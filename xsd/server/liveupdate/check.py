"""The new program's side of a live update's dry run: ``xsd --check-state STATE``.

The old daemon runs the new program with the options it will be exec'd with and
:data:`~xsd.server.liveupdate.CHECK_OPTION` (``dryrun``); the new program loads the
state completely and serves nothing. The other options are checked too, so that a
command line the new program would refuse fails here rather than after the exec; and the
daemon's own modules are imported, so that a new program that could load the state but
not run fails before the exec, not after it. On stdout it reports how it may be exec'd
(``reexec.report``) and whether the state's usage needs a recount
(:data:`~xsd.server.liveupdate.reexec.RECOUNT_VERDICT`).
"""

from __future__ import annotations

import sys

from xsd.server.liveupdate import CHECK_OPTION, option_key
from xsd.server.liveupdate.reexec import RECOUNT_VERDICT

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from collections.abc import Callable


def split(argv: list[str]) -> tuple[str, list[str]]:
    """``xsd ... --check-state STATE ...``: STATE, and the other options (those the new
    program will run with, for the caller to check)."""
    import argparse

    quick = argparse.ArgumentParser(prog="xsd", add_help=False)
    quick.add_argument(CHECK_OPTION, metavar="STATE", required=True)
    known, rest = quick.parse_known_args(argv)
    spec: str = getattr(known, option_key(CHECK_OPTION))
    return spec, rest


def check_state(spec: str, import_server: Callable[[], None]) -> int:
    """Load a handed-over state completely, serve nothing; 0 if it loads, 1 if not (said
    on stderr). ``import_server``: imports the rest of the daemon (``xsd.server.main``'s:
    only it imports the server). The usage the state carries is checked against a
    recount of its nodes (:data:`RECOUNT_VERDICT`).
    """
    import handover
    from xsd.server.liveupdate import reexec

    try:
        state, _ = handover.load(spec)
    except handover.StateError as exc:
        print(f"xsd: cannot load state: {exc}", file=sys.stderr)
        return 1
    try:
        import_server()
    except Exception as exc:
        print(f"xsd: cannot import the daemon: {exc!r}", file=sys.stderr)
        return 1
    print(reexec.report(), flush=True)  # how the update may exec us (stdout)
    tree = state.tree
    if _owning(tree.count_usage()) != _owning(tree.usage):
        print(
            "xsd: the state's usage differs from a recount of its nodes: "
            "the new process will recount it",
            file=sys.stderr,
        )
        print(RECOUNT_VERDICT, flush=True)
    print(
        f"xsd: state loads: {len(state.tree.nodes)} nodes, {len(state.connections)} connections",
        file=sys.stderr,
    )
    return 0


def _owning(usage: dict[int, list[int]]) -> dict[int, list[int]]:
    """Usage without the owners of nothing (a tree may keep them at ``[0, 0]``)."""
    return {owner: entry for owner, entry in usage.items() if entry != [0, 0]}
