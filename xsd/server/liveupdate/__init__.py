"""Live update, the daemon side of ``xenstore-control live-update``: one service.

A session is owned by the connection that named the new program (``-f``); ``-c``
replaces its command line; ``-s`` starts the update; ``-a`` aborts. The sequence of
``-s``, each step reversible until the exec:

1. at ``-f`` (and again at ``-s`` if ``-c`` changed the command line, or the program
   file changed, since), dump the state and let the new program load it in a child
   (:data:`CHECK_OPTION`): the dry run, within a time limit (``--dry-run-timeout``);
   other clients are served meanwhile, and ``-f`` answers only once it passed, so that
   ``-s`` has nothing left to wait for. If the program may be exec'd without ``site``
   (``reexec``), that exact command line and environment is dry-run too, else the
   program will be exec'd as it is;
2. at ``-s``, stop everything (we are in one synchronous step from here), dump the
   state with the ``-s`` request's reply still owed, put it in a memfd (or an LMDB
   file), make exactly the sockets, the lock and the memfd inheritable, tell systemd
   RELOADING, fork a guardian and exec the new program in this process
   (:data:`LIVE_UPDATE_OPTION`);
3. the new process loads the state, adopts the descriptors, tells the guardian to go,
   answers ``OK`` to the waiting ``-s`` and serves on. If it dies before telling, the
   guardian answers the ``-s`` with an error and serves on, a new PID, the store whole.

If anything fails before the exec, the session ends with an error text as the reply
and the daemon carries on untouched. Unlike Xen's daemons, open transactions do not
block the update: they travel with the state.

The pieces, the old process's first:

* ``session``: the service: the commands, the session, the dry runs it orders;
* ``dryrun``: the dry run's child, bounded in time, never outliving the daemon;
* ``reexec``: the exec of a Python new program without ``site``, and its check;
* ``handoff``: ``-s``'s synchronous step: the last dump, the descriptors, the exec;
* ``guardian``: a copy of the old daemon standing by until the new one serves;
* ``check``: the new program's side of a dry run (``xsd --check-state``);
* ``restore``: the new process: the state loaded, the ``-s`` answered, serving early
  while the rest of the daemon is imported;
* ``early``: that early serving, through the multiplexer's pass, without trio.

The service plugs into the server through ``xsd.server.shell`` (``Shell``, and
``HandingShell`` for what only live update needs: the shell's descriptors as one record,
``handover.shell_record``). This module is imported on the restore path and by the
option parser: it imports nothing.
"""

from __future__ import annotations

LIVE_UPDATE_OPTION = "--live-update"
"""``xsd --live-update STATE``: start from the state a live update handed over."""

CHECK_OPTION = "--check-state"
"""``xsd --check-state STATE``: load a handed-over state, serve nothing (the dry run)."""

STATE_OPTIONS = (LIVE_UPDATE_OPTION, CHECK_OPTION)
"""The options a live update adds to the new program's command line (each with a
value); never carried over from the old one's."""


def option_key(option: str) -> str:
    """The attribute (and config-file key) of a long option: ``--check-state`` ->
    ``check_state``."""
    return option.lstrip("-").replace("-", "_")


__all__ = ["CHECK_OPTION", "LIVE_UPDATE_OPTION", "STATE_OPTIONS", "option_key"]
