"""What the services see of the daemon: its configuration and a small interface.

The services (watchdog actions, kickers, live update, durable mode, the log file) plug
into the server through :class:`Shell` instead of importing the whole
:class:`~xsd.server.daemon.Server`, so that no module of ``xsd.server`` imports
``daemon`` but ``main``, and the package has no import cycle.

Every method runs on the host's thread (the trio guest's tasks run there too:
``xsd.server.host``), the only thread that touches the engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from xsd.server.kicker_specs import KickerSpec

if TYPE_CHECKING:
    from handover.shell_record import ShellRecord
    from xsd.core.engine import Engine


@dataclass
class ServerConfig:
    """Where and how the daemon listens."""

    socket_path: Path
    rundir: Path
    socket_mode: int = 0o600
    domain_socket_mode: int = 0o600
    # Watchdogs (xsd.server.watchdog_actions, xsd.server.kickers):
    watchdog_hook: str | None = None
    watchdog_kickers: list[KickerSpec] = field(default_factory=list)


class Shell(Protocol):
    """The server as a service sees it."""

    @property
    def engine(self) -> Engine:
        """The engine (touch it only from the host's thread: trio tasks run there)."""

    @property
    def config(self) -> ServerConfig:
        """Where and how the daemon listens; the watchdogs' hook and kickers."""

    def flush(self) -> None:
        """Apply the engine's effects and write what can be written now: after any
        change a service made to the engine."""

    def wake(self, conn_id: int) -> None:
        """Serve a connection whose deferred reply was given (and flush)."""

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the host's thread after the current pass."""

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``fn(*args)`` as a trio task of the services (kept until they start,
        dropped once they stop)."""


class HandingShell(Shell, Protocol):
    """The server as live update sees it (``xsd.server.liveupdate``): a service's
    :class:`Shell`, and the shell's side of a hand-over."""

    def handover(self) -> ShellRecord:
        """The shell's descriptors (listeners, clients, lock, log) for a new program."""

    def before_exec(self) -> None:
        """Last words before this process becomes the new program."""

    def exec_failed(self) -> None:
        """The exec did not happen (or this is the guardian taking over): carry on."""

    def forking(self) -> AbstractContextManager[object]:
        """Held across the guardian's fork: no thread of a service holds then a lock
        that the guardian, which has none of them, would inherit held."""
