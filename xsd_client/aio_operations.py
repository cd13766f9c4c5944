"""The requests of the trio client, as methods: the data operations, which an
:class:`AsyncTransaction` runs too, and the transaction (``xsd_client.aio``).

Each method builds its request with ``xsd_client.calls`` and awaits ``_run``: the client
sends it outside any transaction, an :class:`AsyncTransaction` inside its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from . import calls
from .calls import Call
from .errors import E2BIG, ENOENT, ENOSYS, error_from_name
from .values import Perm

T = TypeVar("T")


class _AsyncClient(Protocol):
    """What a transaction needs of its client (``xsd_client.aio.AsyncClient``)."""

    _epoch: int

    async def _send(self, call: Call[T], tx_id: int) -> T: ...


class AsyncOperations:
    """The data operations shared by :class:`AsyncClient` and :class:`AsyncTransaction`;
    each mirrors the method of the same name of :class:`xsd_client.client.Client`."""

    async def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    async def read(self, path: str) -> bytes:
        """The value of ``path``."""
        return await self._run(calls.read(path))

    async def write(self, path: str, value: bytes | str) -> None:
        """Set the value of ``path``, creating it and any missing parents."""
        await self._run(calls.write(path, value))

    async def mkdir(self, path: str) -> None:
        """Create ``path`` with an empty value, if it does not exist yet."""
        await self._run(calls.mkdir(path))

    async def rm(self, path: str) -> None:
        """Remove ``path`` and everything below it."""
        await self._run(calls.rm(path))

    async def directory(self, path: str) -> list[str]:
        """Child names of ``path``; falls back to DIRECTORY_PART on E2BIG."""
        parts = calls.DirectoryParts(path)
        try:
            return await self._run(parts.whole())
        except E2BIG:
            pass
        while True:
            try:
                names = await self._run(parts.next_part())
            except ENOSYS:
                raise error_from_name("E2BIG", path) from None
            if names is not None:
                return names

    async def get_perms(self, path: str) -> list[Perm]:
        """The permission list of ``path``, owner first."""
        return await self._run(calls.get_perms(path))

    async def set_perms(self, path: str, perms: Iterable[Perm | str]) -> None:
        """Replace the permission list of ``path``; the first entry names the owner."""
        await self._run(calls.set_perms(path, perms))

    async def exists(self, path: str) -> bool:
        """True if ``path`` can be read, False on ENOENT."""
        try:
            await self.read(path)
        except ENOENT:
            return False
        return True


class AsyncDomainOperations:
    """The requests about domains, and XS_CONTROL (outside transactions only)."""

    async def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    async def get_domain_path(self, domid: int) -> str:
        """The home path of a domain (``/local/domain/<domid>``)."""
        return await self._run(calls.get_domain_path(domid))

    async def is_domain_introduced(self, domid: int) -> bool:
        """True if the domain has been introduced and not released."""
        return await self._run(calls.is_domain_introduced(domid))

    async def introduce(self, domid: int, gfn: int, evtchn: int) -> None:
        """Introduce a domain with its store page frame and event channel."""
        await self._run(calls.introduce(domid, gfn, evtchn))

    async def release(self, domid: int) -> None:
        """Release a domain."""
        await self._run(calls.release(domid))

    async def resume(self, domid: int) -> None:
        """Clear a domain's shutdown flag."""
        await self._run(calls.resume(domid))

    async def set_target(self, domid: int, target: int) -> None:
        """Let ``domid`` act with the privileges of ``target``."""
        await self._run(calls.set_target(domid, target))

    async def control(self, cmd: str, *args: str | bytes) -> str:
        """Run an XS_CONTROL command; returns the reply text up to its first NUL."""
        return await self._run(calls.control(cmd, *args))


class AsyncTransaction(AsyncOperations):
    """An open transaction; see :meth:`AsyncClient.open_transaction`."""

    def __init__(self, client: _AsyncClient, tx_id: int, epoch: int = 0) -> None:
        self.client = client
        self.tx_id = tx_id
        self._ended = False
        self._epoch = epoch  # the connection it was started on (see reconnect)

    def __repr__(self) -> str:
        return f"<AsyncTransaction {self.tx_id}{' (ended)' if self._ended else ''}>"

    async def _run(self, call: Call[T]) -> T:
        if self._epoch != self.client._epoch:  # the daemon restarted: it is gone
            raise error_from_name("EAGAIN", call.path)
        return await self.client._send(call, self.tx_id)

    async def _end(self, commit: bool) -> None:
        if self._ended:
            raise ValueError(f"transaction {self.tx_id} already ended")
        self._ended = True
        if not commit and self._epoch != self.client._epoch:
            return  # nothing left to abort
        await self._run(calls.transaction_end(commit))

    async def commit(self) -> None:
        """Apply the transaction.

        Raises:
            EAGAIN: another change conflicted; nothing was applied.
        """
        await self._end(True)

    async def abort(self) -> None:
        """Discard the transaction."""
        await self._end(False)
