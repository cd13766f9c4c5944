"""The requests of the blocking client, as methods: the data operations (which a
:class:`Transaction` runs too), the domain and control requests, and the transaction.

Each method builds its request with ``xsd_client.calls`` and hands it to ``_run``: the
client sends it outside any transaction, a :class:`Transaction` inside its own.
"""

from __future__ import annotations

from . import calls
from ._typing import TypeVar
from .calls import Call
from .errors import E2BIG, ENOENT, ENOSYS, XenstoreError, error_from_name
from .values import Perm

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # collections.abc imports collections, functools...: ~3 ms
    from collections.abc import Iterable
    from types import TracebackType
    from typing import Protocol

    class _Client(Protocol):
        """What a transaction needs of its client (``xsd_client.client.Client``)."""

        _epoch: int

        def _send(self, call: Call[T], tx_id: int) -> T: ...


T = TypeVar("T")


class Operations:
    """The data operations shared by :class:`Client` (outside any transaction) and
    :class:`Transaction` (inside one)."""

    def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    def read(self, path: str) -> bytes:
        """The value of ``path``.

        Raises:
            ENOENT: no such node. EACCES: not readable.
        """
        return self._run(calls.read(path))

    def write(self, path: str, value: bytes | str) -> None:
        """Set the value of ``path``, creating it and any missing parents.

        ``value`` is stored as given (a str is encoded as UTF-8).
        """
        self._run(calls.write(path, value))

    def mkdir(self, path: str) -> None:
        """Create ``path`` with an empty value, if it does not exist yet."""
        self._run(calls.mkdir(path))

    def rm(self, path: str) -> None:
        """Remove ``path`` and everything below it."""
        self._run(calls.rm(path))

    def directory(self, path: str) -> list[str]:
        """The names of the children of ``path``, in the daemon's order.

        A list too long for one reply (the daemon answers E2BIG) is fetched with
        DIRECTORY_PART chunks, starting over if the node changes in between, as
        libxenstore does.

        Raises:
            E2BIG: the list is too long and the daemon has no DIRECTORY_PART.
        """
        parts = calls.DirectoryParts(path)
        try:
            return self._run(parts.whole())
        except E2BIG:
            pass
        while True:
            try:
                names = self._run(parts.next_part())
            except ENOSYS:
                raise error_from_name("E2BIG", path) from None
            if names is not None:
                return names

    def get_perms(self, path: str) -> list[Perm]:
        """The permission list of ``path``, owner first."""
        return self._run(calls.get_perms(path))

    def set_perms(self, path: str, perms: Iterable[Perm | str]) -> None:
        """Replace the permission list of ``path``; the first entry names the owner.

        Entries are :class:`Perm` objects or wire strings such as ``"r5"``.
        """
        self._run(calls.set_perms(path, perms))

    def exists(self, path: str) -> bool:
        """True if ``path`` can be read, False if it does not exist (ENOENT).

        Raises:
            EACCES: the node is there but not readable (or hidden).
        """
        try:
            self.read(path)
        except ENOENT:
            return False
        return True


class DomainOperations:
    """The requests about domains, and XS_CONTROL (outside transactions only)."""

    def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    def get_domain_path(self, domid: int) -> str:
        """The home path of a domain (``/local/domain/<domid>``)."""
        return self._run(calls.get_domain_path(domid))

    def is_domain_introduced(self, domid: int) -> bool:
        """True if the domain has been introduced and not released."""
        return self._run(calls.is_domain_introduced(domid))

    def introduce(self, domid: int, gfn: int, evtchn: int) -> None:
        """Introduce a domain with its store page frame and event channel."""
        self._run(calls.introduce(domid, gfn, evtchn))

    def release(self, domid: int) -> None:
        """Release a domain: its connection and nodes go, ``@releaseDomain`` fires."""
        self._run(calls.release(domid))

    def resume(self, domid: int) -> None:
        """Clear a domain's shutdown flag (after suspend and resume)."""
        self._run(calls.resume(domid))

    def set_target(self, domid: int, target: int) -> None:
        """Let ``domid`` act with the privileges of its target domain ``target``."""
        self._run(calls.set_target(domid, target))

    def control(self, cmd: str, *args: str | bytes) -> str:
        """Run an XS_CONTROL command (``control("check")``, ``control("log", "on")``).

        Returns:
            The reply text up to its first NUL (``"OK"`` for simple commands).
        """
        return self._run(calls.control(cmd, *args))


class Transaction(Operations):
    """An open transaction: the data operations of :class:`Client`, seen and applied
    atomically.

    As a context manager it commits when the block ends normally and aborts when it
    raises. A commit that conflicts raises :class:`~xsd_client.errors.EAGAIN`: run the
    whole block again (:func:`xsd_client.recipes.transact` does that). Several
    transactions may be open on one client at once, from different threads.
    """

    def __init__(self, client: _Client, tx_id: int, epoch: int = 0) -> None:
        self.client = client
        self.tx_id = tx_id
        self._ended = False
        self._epoch = epoch  # the connection it was started on (see reconnect)

    def __repr__(self) -> str:
        return f"<Transaction {self.tx_id}{' (ended)' if self._ended else ''}>"

    def _run(self, call: Call[T]) -> T:
        if self._epoch != self.client._epoch:  # the daemon restarted: it is gone
            raise error_from_name("EAGAIN", call.path)
        return self.client._send(call, self.tx_id)

    def _end(self, commit: bool) -> None:
        if self._ended:
            raise ValueError(f"transaction {self.tx_id} already ended")
        self._ended = True
        if not commit and self._epoch != self.client._epoch:
            return  # nothing left to abort
        self._run(calls.transaction_end(commit))

    def commit(self) -> None:
        """Apply the transaction.

        Raises:
            EAGAIN: another change conflicted; nothing was applied.
        """
        self._end(True)

    def abort(self) -> None:
        """Discard the transaction."""
        self._end(False)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ended:
            return
        if exc_type is None:
            self.commit()
        else:
            # The block's own exception is the one that matters.
            try:
                self.abort()
            except XenstoreError:
                pass
