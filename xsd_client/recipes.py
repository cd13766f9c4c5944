"""Recipes on top of the blocking client, after kazoo's: retried transactions and
re-reading watches.

Invariants:

* :func:`transact` runs the whole function again, in a fresh transaction, every time the
  commit answers EAGAIN (a reconnecting client raises it too for a transaction the
  daemon lost in a restart); any other error, or an exception from the function, aborts
  the transaction and propagates; a commit whose reply a restart lost
  (:class:`~xsd_client.errors.RequestLostError`) is run again only for an ``idempotent``
  function;
* :class:`DataWatch` and :class:`ChildrenWatch` call their function once at once, with
  the current state, and afterwards only when a watch event shows a *different* state
  (xenstore watches fire for the whole subtree and may fire spuriously); calls never
  overlap and come in order; a function returning ``False`` stops the watch.

The trio twin of :func:`transact` is :func:`xsd_client.aio.transact`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from .client import Client, Transaction, Watch, WatchEvent
from .errors import EAGAIN, ENOENT, ConnectionClosedError, RequestLostError

__all__ = ["ChildrenWatch", "DataWatch", "transact"]

T = TypeVar("T")
S = TypeVar("S")


def transact(
    client: Client,
    fn: Callable[[Transaction], T],
    *,
    max_tries: int | None = None,
    idempotent: bool = False,
) -> T:
    """Run ``fn(tx)`` in a transaction, again from scratch on EAGAIN.

    ``fn`` must do all its reads and writes through ``tx`` and have no other effects
    that cannot be repeated.

    Args:
        client: the connection.
        fn: the work; its return value is returned.
        max_tries: give up (re-raising EAGAIN) after this many attempts; None: never.
        idempotent: ``fn`` does nothing more when its change is already there (it
            checks a marker it writes, say): then a commit whose reply was lost in a
            daemon restart is run again rather than raising ``RequestLostError``.

    Returns:
        What the successful attempt of ``fn`` returned.
    """
    tries = 0
    while True:
        tries += 1
        try:
            with client.transaction() as tx:
                result = fn(tx)
        except (EAGAIN, RequestLostError) as exc:
            if isinstance(exc, RequestLostError) and not idempotent:
                raise
            if max_tries is not None and tries >= max_tries:
                raise
            continue
        return result


class _StateWatch(Generic[S]):
    """A watch that re-reads a state on each event and calls back when it changed."""

    def __init__(
        self,
        client: Client,
        path: str,
        func: Callable[[S], bool | None] | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self._func = func
        self._lock = threading.RLock()  # func may call stop()
        self._last: S | None = None
        self._called = False
        self._stopped = False
        self._watch: Watch | None = None
        if func is not None:
            self._start()

    def __call__(self, func: Callable[[S], bool | None]) -> Callable[[S], bool | None]:
        """Use as a decorator: ``@DataWatch(client, path)``; starts the watch."""
        if self._func is not None:
            raise TypeError("this watch already has a function")
        self._func = func
        self._start()
        return func

    @property
    def stopped(self) -> bool:
        """True once the function returned False, :meth:`stop` was called, or the
        connection closed."""
        return self._stopped

    def _start(self) -> None:
        # Register first, then read: a change between the two fires an event that
        # reads again, so nothing is missed; the comparison drops the duplicate.
        self._watch = self.client.watch(self.path, callback=self._on_event)
        self._refresh()

    def _on_event(self, event: WatchEvent) -> None:
        self._refresh()

    def _fetch(self) -> S:
        raise NotImplementedError

    def _refresh(self) -> None:
        with self._lock:
            if self._stopped:
                return
            try:
                state = self._fetch()
            except ConnectionClosedError:
                self._stopped = True
                return
            if self._called and state == self._last:
                return
            self._called, self._last = True, state
            assert self._func is not None
            if self._func(state) is False:
                self._stop_locked()

    def _stop_locked(self) -> None:
        self._stopped = True
        if self._watch is not None:
            self._watch.unwatch()

    def stop(self) -> None:
        """Stop watching; the function is not called again."""
        with self._lock:
            self._stop_locked()


class DataWatch(_StateWatch[bytes | None]):
    """Call ``func(value)`` with the value of ``path`` now and whenever it changes.

    ``value`` is the node's bytes, or None while the node does not exist. Works as a
    decorator (``@DataWatch(client, "/vm/state")``) or called with the function. The
    function runs on the client's callback thread (the first time, on the caller's);
    returning ``False`` stops the watch.
    """

    def _fetch(self) -> bytes | None:
        try:
            return self.client.read(self.path)
        except ENOENT:
            return None


class ChildrenWatch(_StateWatch[list[str]]):
    """Call ``func(names)`` with the children of ``path`` now and whenever they change.

    ``names`` is the list of child names (empty while the node does not exist). Works as
    a decorator or called with the function; returning ``False`` stops the watch.
    """

    def _fetch(self) -> list[str]:
        try:
            return self.client.directory(self.path)
        except ENOENT:
            return []
