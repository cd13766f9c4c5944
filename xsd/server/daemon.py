"""The server: the host's loop serving the engine, and the services around it.

:class:`Server` puts the pieces together: the engine; the host
(``xsd.server.host``), whose plain epoll loop owns the client sockets
(``xsd.server.mux``), the listening sockets and the timers; and the services, which
run as trio's guest on that loop (watchdog actions, kickers, durable checkpoints, live
update, signals). It applies the engine's effects, one handler each, and is the
:class:`~xsd.server.shell.Shell` the services talk to.

Invariants:

* a byte leaves a connection's output queue only after the kernel accepted it, so the
  queue in the core is always exactly what the client has yet to receive;
* effects are applied before any output is written (and, in durable mode, the journal
  committed before either), so a client told of a change finds it done;
* a connection that stops reading its replies stops being read (the engine holds its
  requests back), so it cannot make the daemon grow without bound;
* a client that breaks the framing rules is disconnected; the others carry on;
* a listener that cannot accept (out of descriptors) waits 0.1 s and accepts again;
  nothing a client does at connect ends the daemon.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, assert_never

import trio

from handover import timeline
from handover.shell_record import ShellRecord
from xsd import __version__ as VERSION
from xsd import compiled
from xsd.core.effects import (
    CloseConnection,
    DeferredRequest,
    DomainIntroduced,
    DomainReleased,
    Effect,
    LogLine,
    MemReport,
    RequestBug,
    ResumeConnection,
    TimerChanged,
    TraceChanged,
    WatchdogAction,
)
from xsd.core.engine import Engine
from xsd.server import fdstore, kickers, logfile, memreport, sdnotify, watchdog_actions
from xsd.server.host import Host
from xsd.server.liveupdate import LIVE_UPDATE_OPTION
from xsd.server.liveupdate.session import LiveUpdate
from xsd.server.mux import Multiplexer
from xsd.server.shell import ServerConfig
from xsd.server.unix_sockets import (
    lock_socket,
    peer_credentials,
    raise_fd_limit,
    remove_stale_domain_sockets,
)

if TYPE_CHECKING:
    from xsd.server.durable import Durable

__all__ = ["Server", "ServerConfig"]

_ACCEPTS_PER_PASS = 64  # connections a listener takes per pass: the others go on meanwhile

log = logging.getLogger("xsd")


class Server:
    """Listens on the store socket (and per-domain sockets) and serves the engine."""

    def __init__(
        self,
        config: ServerConfig,
        engine: Engine | None = None,
        argv: list[str] | None = None,
        mux: Multiplexer | None = None,
    ) -> None:
        """``mux``: the connections a restored process already serves
        (``xsd.server.liveupdate.early``)."""
        self.config = config
        self.engine = engine if engine is not None else Engine()
        self.argv = list(sys.argv[1:] if argv is None else argv)
        if mux is None:
            mux = Multiplexer(self.engine, self._flush_dirty, self._drop)
        else:
            mux.attach(self._flush_dirty, self._drop)
        self.mux = mux
        self.host = Host(self.engine, mux)
        self.listeners: dict[int, socket.socket] = {}  # domid -> listening socket
        self.nursery: trio.Nursery | None = None  # the services' (None: not running)
        # Tasks asked for before the services' first step (the host serves from its
        # first pass: a restored client may ask for a live update at once).
        self._early_tasks: list[tuple[Callable[..., Awaitable[object]], tuple[object, ...]]] = []
        self._services_over = False
        self._listening = False  # the store's socket is bound (the stop is logged)
        self.live_update = LiveUpdate(self, self.argv)
        self.restored = False  # started by a live update
        self.durable: Durable | None = None  # --state-dir (xsd.server.durable)
        self.lock_fd: int | None = None
        self.kept_sockets: dict[str, socket.socket] = {}  # systemd kept them (fdstore)
        # logging: the trace/log file, fed by the engine's trace and the xsd logger
        self.logfile = logfile.LogFile()
        self._log_handler = logfile.LogHandler(self.logfile)
        logging.getLogger("xsd").addHandler(self._log_handler)

    def lock(self) -> None:
        """Hold the lock beside the socket, so that a second daemon cannot take it over.

        Raises:
            OSError: another daemon holds it (EWOULDBLOCK).
        """
        self.lock_fd = lock_socket(self.config.socket_path)

    # ------------------------------------------------------------------ live update

    def handover(self) -> ShellRecord:
        """What the shell must find again after a live update: its descriptors."""
        return ShellRecord(
            listeners={domid: sock.fileno() for domid, sock in self.listeners.items()},
            conns={cid: sock.fileno() for cid, sock in self.mux.sockets().items()},
            lock=self.lock_fd,
            log=self.logfile.handover(),  # logging
        )

    def adopt_handover(self, record: ShellRecord) -> None:
        """Take over the descriptors a previous process left us (before :meth:`serve`):
        listeners, the lock and the log. The client connections came with the
        multiplexer (``xsd.server.liveupdate.early`` adopted them)."""
        self.restored = True
        for domid, fd in record.listeners.items():
            sock = socket.socket(fileno=fd)
            sock.set_inheritable(False)
            sock.setblocking(False)
            self.listeners[domid] = sock
        self.lock_fd = record.lock
        if self.lock_fd is not None:
            os.set_inheritable(self.lock_fd, False)
        if record.log is not None:  # logging: go on writing where the old process stopped
            self.logfile.adopt(record.log)

    def before_exec(self) -> None:
        """Last words before this process becomes the new program."""
        self._log_trace()  # logging: the last trace records; the file survives the exec
        self.logfile.before_exec()
        logging.shutdown()

    def exec_failed(self) -> None:
        """The live-update exec failed: this process carries on."""
        self.logfile.exec_failed()

    def forking(self) -> contextlib.AbstractContextManager[object]:
        """Held across a live update's fork of its guardian: durable mode's journal
        lock, which a checkpoint's thread takes to move the journal to its next file."""
        return contextlib.nullcontext() if self.durable is None else self.durable.store.writing

    def wake(self, conn_id: int) -> None:
        """A connection's held-back requests may go on (its deferred reply was given)."""
        self.mux.resume(conn_id)
        self._flush_dirty()

    def flush(self) -> None:
        """Send what can be sent now and apply pending effects."""
        self._flush_dirty()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the host's thread after the current pass."""
        self.host.call_soon(fn)

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``fn(*args)`` as a trio task of the services: kept until they start,
        dropped once they stop."""
        if self.nursery is not None:
            self.nursery.start_soon(fn, *args)
        elif not self._services_over:
            self._early_tasks.append((fn, args))

    # ------------------------------------------------------------------ listening

    def domain_socket_path(self, domid: int) -> Path:
        """Where domain ``domid``'s connections come in."""
        return self.config.rundir / "domains" / str(domid) / "socket"

    def run(self) -> None:
        """Listen and serve until SIGTERM or SIGINT.

        Raises:
            BindError: a socket of the daemon's (or of a kicker's) cannot be set up.
        """
        self._log_apply("start")  # logging
        try:
            self.host.run(self._services)
        finally:
            if self._listening:
                self._log_stop()  # logging
            for domid, sock in list(self.listeners.items()):
                self._close_listener(domid, sock)
            self.host.close()
            self.mux.close()

    def _open_listeners(self) -> None:
        """Listen on the store's socket and accept on every listener from the host."""
        raise_fd_limit()
        fdstore.drop_others(self.kept_sockets)  # domains the state does not have
        # Before listening: a client that can connect finds no stale socket left.
        stale = remove_stale_domain_sockets(self.config.rundir / "domains", set(self.listeners))
        if stale:
            log.info("removed the stale sockets of domains %s", " ".join(map(str, stale)))
        if 0 not in self.listeners:
            self.listeners[0] = fdstore.bind_or_inherit(
                self.kept_sockets, fdstore.MAIN, self.config.socket_path, self.config.socket_mode
            )
        for domid, sock in self.listeners.items():
            self._listen(domid, sock)
        self._listening = True

    async def _services(self) -> None:
        """The services, trio's guest on the host's loop, until a signal stops them."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            # Signals are ours before anyone can connect: a client that saw the socket
            # may stop the daemon at once, and it stops cleanly.
            self._open_listeners()
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                try:
                    for fn, args in self._early_tasks:
                        nursery.start_soon(fn, *args)
                    self._early_tasks.clear()
                    if self.durable is not None:
                        nursery.start_soon(self.durable.run)  # background checkpoints
                    await nursery.start(kickers.serve_all, self)  # watchdog kick sockets
                    for conn_id in list(self.engine.state.connections):
                        self.mux.resume(conn_id)  # requests a live update left buffered
                    self._flush_dirty()
                    if self.restored:
                        timeline.mark("serving")
                        log.info("live update: %s", timeline.summary())
                    self._log_started()  # logging
                    where = self.config.socket_path
                    print(f"xsd: listening on {where}", file=sys.stderr, flush=True)
                    if compiled.stale():
                        print(f"xsd: {compiled.status()}", file=sys.stderr, flush=True)
                    served = f"Serving on {where}" + (" (live updated)" if self.restored else "")
                    sdnotify.notify("READY=1", served)
                    async for signum in signals:
                        if signum == signal.SIGHUP:
                            self.reopen_log("SIGHUP")  # logging: after a rotation
                            continue
                        log.info("%s received, stopping", signal.Signals(signum).name)
                        sdnotify.notify("STOPPING=1", f"Stopping: {signal.Signals(signum).name}")
                        self.live_update.abort()
                        nursery.cancel_scope.cancel()
                        break
                finally:
                    self.nursery = None
                    self._services_over = True

    def _close_listener(self, domid: int, sock: socket.socket) -> None:
        path = self.config.socket_path if domid == 0 else self.domain_socket_path(domid)
        if sock.fileno() >= 0:
            self.host.remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.listeners.pop(domid, None)

    def _listen(self, domid: int, listener: socket.socket) -> None:
        """Accept ``domid``'s connections on ``listener`` from the host's loop."""
        listener.setblocking(False)
        self.host.add_reader(listener.fileno(), lambda: self._accept(listener, domid))

    def _accept(self, listener: socket.socket, domid: int) -> None:
        # This pass's effects first: a domain released by a request read just before
        # must not gain a connection from the listener about to close.
        self._apply_effects(self.engine.take_effects())
        if self.listeners.get(domid) is not listener:
            return
        for _ in range(_ACCEPTS_PER_PASS):
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.EINVAL):
                    return  # the listener was closed (domain released)
                # Out of descriptors or memory, or a peer gone before we took it: no
                # reason to stop accepting (nor to end the daemon); retry soon.
                log.error("accept failed: %s; retrying in 0.1 s", exc)
                self.host.remove_reader(listener.fileno())
                self.host.call_later(0.1, lambda: self._listen_again(domid, listener))
                return
            try:
                self.adopt(sock, domid)
            except Exception:
                log.exception("domain %d: cannot serve a new connection; closed", domid)
                sock.close()

    def _listen_again(self, domid: int, listener: socket.socket) -> None:
        if self.listeners.get(domid) is listener and listener.fileno() >= 0:
            self._listen(domid, listener)

    def adopt(self, sock: socket.socket, domid: int) -> int:
        """Serve an accepted socket as a connection of ``domid``; returns its id."""
        creds = peer_credentials(sock)
        conn_id = self.engine.connect(domid, creds)
        try:
            self.mux.add(conn_id, sock)
        except BaseException:
            self.engine.disconnect(conn_id)
            raise
        return conn_id

    # ------------------------------------------------------------------ connections

    def _flush_dirty(self) -> None:
        """Apply pending effects, then write what each connection with new output can
        take now (the rest waits for the socket to be writable)."""
        engine = self.engine
        durable = self.durable
        if durable is not None:
            durable.commit()  # before any effect or reply tells of a change
        if engine.trace:
            self._log_trace()  # logging
        effects = engine.take_effects()
        if effects:
            # Before any reply goes out: a client told "released" finds the socket gone.
            self._apply_effects(effects)
            if durable is not None:
                durable.commit()  # whatever a handler changed (they run engine code)
        self.mux.write_dirty()  # committed: no commit per connection (Multiplexer.send)

    def _drop(self, conn_id: int) -> None:
        self.live_update.connection_closed(conn_id)
        self.mux.remove(conn_id)
        self.engine.disconnect(conn_id)
        self._apply_effects(self.engine.take_effects())

    # ------------------------------------------------------------------ effects

    def _apply_effects(self, effects: list[Effect]) -> None:
        for effect in effects:
            self._apply(effect)

    def _apply(self, effect: Effect) -> None:
        """One handler per effect class (``xsd.core.effects``); the type checker sees
        that every class has one."""
        match effect:
            case CloseConnection():
                self._on_close(effect)
            case DomainIntroduced():
                self._on_introduced(effect)
            case DomainReleased():
                self._on_released(effect)
            case LogLine():
                self._on_log_line(effect)
            case MemReport():
                self._on_memreport(effect)
            case DeferredRequest():
                self._on_deferred(effect)
            case ResumeConnection():
                self._on_resume(effect)
            case RequestBug():
                self._on_bug(effect)
            case TimerChanged():
                self._on_timer(effect)
            case WatchdogAction():
                self._on_watchdog_action(effect)
            case TraceChanged():
                self._on_trace_changed(effect)
            case _:
                assert_never(effect)

    def _on_close(self, effect: CloseConnection) -> None:
        self.mux.remove(effect.conn_id)

    def _on_introduced(self, effect: DomainIntroduced) -> None:
        self.open_domain_socket(effect.domid)

    def _on_released(self, effect: DomainReleased) -> None:
        sock = self.listeners.get(effect.domid)
        if sock is not None:
            self._close_listener(effect.domid, sock)
            fdstore.remove(fdstore.domain_name(effect.domid))
        log.info("domain %d: released", effect.domid)  # logging

    def _on_log_line(self, effect: LogLine) -> None:
        log.info("%s", effect.text)

    def _on_memreport(self, effect: MemReport) -> None:
        memreport.write(self.engine.state, effect.target)

    def _on_deferred(self, effect: DeferredRequest) -> None:
        if effect.command == "live-update":
            self.live_update.command(effect.conn_id, effect.args)
        elif effect.command in ("log", "logfile"):  # logging
            self._log_command(effect.conn_id, effect.command, effect.args)
        else:
            self.engine.complete_deferred(effect.conn_id, b"", "EINVAL")

    def _on_resume(self, effect: ResumeConnection) -> None:
        self.mux.resume(effect.conn_id)

    def _on_bug(self, effect: RequestBug) -> None:
        log.error(
            "internal error answering %s (client got EIO)", effect.request, exc_info=effect.error
        )

    def _on_timer(self, effect: TimerChanged) -> None:
        self.host.timer_changed()

    def _on_watchdog_action(self, effect: WatchdogAction) -> None:
        self.start_soon(watchdog_actions.perform_effect, self, effect)

    def _on_trace_changed(self, effect: TraceChanged) -> None:
        self._log_apply("configured")  # logging

    # ------------------------------------------------------------------ logging

    def reopen_log(self, reason: str = "SIGHUP") -> None:
        """Reopen the log file by its path (SIGHUP: after a rotation)."""
        self.logfile.reopen(reason)

    def _log_trace(self) -> None:
        """Write out the engine's trace records."""
        trace = self.engine.trace
        if trace:
            self.logfile.trace(trace)
            trace.clear()

    def _log_apply(self, reason: str) -> str | None:
        """Make the file follow the settings; let the engine trace iff ``io`` is wanted."""
        engine = self.engine
        error = self.logfile.apply(engine.state.settings, reason)
        if self.logfile.wants("io"):
            if engine.trace is None:
                engine.trace = []
        else:
            self._log_trace()
            engine.trace = None
        return error

    def _log_command(self, conn_id: int, command: str, args: list[bytes]) -> None:
        """Answer ``log on``, ``log status`` or ``logfile FILE`` (opening is I/O)."""
        if command == "log" and args == [b"status"]:
            self.engine.complete_deferred(conn_id, self.logfile.status().encode() + b"\0")
        else:
            reason = "log on" if command == "log" else "logfile"
            was_open = self.logfile.fd is not None
            error = self._log_apply(reason)
            if was_open and error is None:
                error = self.logfile.reopen(reason)  # as C: on and logfile reopen
            self.engine.complete_deferred(conn_id, b"OK\0", error)
        # Not from inside _flush_dirty: effects keep their order.
        self.host.call_soon(lambda: self.wake(conn_id))

    def _log_started(self) -> None:
        how = "live update" if LIVE_UPDATE_OPTION in sys.argv else "fresh"
        log.info(
            "start: xsd %s pid %d (%s) on %s; %s",
            VERSION,
            os.getpid(),
            how,
            self.config.socket_path,
            compiled.status(),
        )

    def _log_stop(self) -> None:
        self._log_trace()
        log.info("stop: xsd pid %d", os.getpid())
        self.logfile.close("stopped")
        self.logfile.path = None
        logging.getLogger("xsd").removeHandler(self._log_handler)

    def open_domain_socket(self, domid: int) -> None:
        """Listen on domain ``domid``'s socket (introduced; or restored by durable mode)."""
        path = self.domain_socket_path(domid)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            name = fdstore.domain_name(domid)
            sock = fdstore.bind_or_inherit(
                self.kept_sockets, name, path, self.config.domain_socket_mode
            )
        except OSError as exc:
            log.error("domain %d: %s", domid, exc)
            return
        self.listeners[domid] = sock
        self._listen(domid, sock)
        log.info("domain %d: listening on %s", domid, path)
