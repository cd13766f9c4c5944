"""Binding the daemon's Unix sockets (its own, the domains', the kickers'), the lock
beside its own, and what the kernel says of them: a peer's credentials, how many
descriptors the daemon may hold."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
from pathlib import Path

from xsd.core.credentials import Credentials

__all__ = [
    "BindError",
    "bind_unix",
    "lock_socket",
    "peer_credentials",
    "raise_fd_limit",
    "remove_stale_domain_sockets",
]


class BindError(OSError):
    """A socket could not be set up; ``str()`` says where and why, in one line."""

    def __str__(self) -> str:
        return str(self.strerror)


def bind_unix(
    path: Path, mode: int = 0o600, kind: int = socket.SOCK_STREAM, backlog: int = 1024
) -> socket.socket:
    """A non-blocking Unix socket bound at ``path`` (a stale socket file is replaced),
    listening if it is a stream socket.

    A socket file is stale only if nobody answers on it: it is probed (a connect) first,
    and one that some program serves (C xenstored, another xsd run elsewhere, anything
    that does not hold our lock) is never replaced (EADDRINUSE).

    The backlog is long (1024, the kernel caps it at ``net.core.somaxconn``): a burst of
    connects, such as a guest opening 150 connections at once, waits there for the loop
    to accept it instead of failing with EAGAIN in a client that does not block.

    The socket is bound under a temporary name, given its mode, set listening and only
    then renamed into place, so a client that sees the path can connect, and never
    finds a socket with the wrong mode. A file at ``path`` that is not a socket is
    left alone.

    Raises:
        BindError: ``path`` is something other than a socket (EEXIST), a socket some
            program answers on (EADDRINUSE), or what mkdir, bind, chmod or rename raised.
    """
    try:
        return _bind(path, mode, kind, backlog)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise BindError(exc.errno, f"cannot listen on {path}: {reason}") from exc


def _bind(path: Path, mode: int, kind: int, backlog: int) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise OSError(errno.EEXIST, "it exists and is not a socket")
    except FileNotFoundError:
        pass
    else:
        if _answers(path, kind):
            raise OSError(
                errno.EADDRINUSE,
                "another program serves this socket (stop it, or choose another path)",
            )
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, kind)
    try:
        sock.bind(str(staging))
        os.chmod(staging, mode)
        if kind == socket.SOCK_STREAM:
            sock.listen(backlog)
        os.rename(staging, path)
    except BaseException:
        sock.close()
        staging.unlink(missing_ok=True)
        raise
    sock.setblocking(False)
    return sock


def remove_stale_domain_sockets(domains: Path, served: set[int]) -> list[int]:
    """Remove ``domains/<domid>/socket`` for each domid not in ``served`` that nobody
    listens on any more; returns those domids.

    A daemon killed with SIGKILL leaves its per-domain sockets behind: they refuse every
    connection (ECONNREFUSED) until the domain is introduced again. The next daemon
    serves no domain yet (or, restored by a live update, those it inherited: ``served``),
    so a socket that refuses is stale; one that accepts is someone else's and stays.
    An emptied ``<domid>`` directory goes too.
    """
    removed: list[int] = []
    try:
        entries = sorted(domains.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) in served:
            continue
        path = entry / "socket"
        try:
            if not stat.S_ISSOCK(path.lstat().st_mode) or _answers(path, socket.SOCK_STREAM):
                continue
            path.unlink()
        except OSError:
            continue
        removed.append(int(entry.name))
        with contextlib.suppress(OSError):
            entry.rmdir()  # only if empty
    return removed


def _answers(path: Path, kind: int) -> bool:
    """Whether a program serves the socket file at ``path`` (a connect succeeds, or
    its backlog is full, or it cannot be reached); False for a stale file (refused)."""
    probe = socket.socket(socket.AF_UNIX, kind)
    probe.setblocking(False)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False  # nobody listens: a stale file
    except OSError:
        return True  # listening with a full backlog (EAGAIN), or not ours to reach
    else:
        return True
    finally:
        probe.close()


def raise_fd_limit() -> None:
    """Let the daemon hold as many descriptors as the hard limit allows: each client is
    one, and a soft limit of 1024 would turn the thousandth guest away (EMFILE)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def peer_credentials(sock: socket.socket) -> Credentials | None:
    """The pid, uid and gid of the process at the other end of ``sock`` (SO_PEERCRED),
    or None if the kernel will not say."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    except OSError:
        return None
    pid, uid, gid = (int.from_bytes(raw[i : i + 4], "little", signed=True) for i in (0, 4, 8))
    return Credentials(pid, uid, gid)


def lock_socket(socket_path: Path) -> int:
    """Take the lock beside ``socket_path`` (``.lock``): its descriptor, held by whoever
    serves that socket (taken before anything else is read, durable mode's state too).

    Raises:
        OSError: another daemon holds it (EWOULDBLOCK), or it cannot be created.
    """
    path = socket_path.with_name(socket_path.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd
