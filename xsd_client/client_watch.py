"""A watch of the blocking client (``xsd_client.client``): a queue of its events, or a
callback the client runs on its callback thread."""

from __future__ import annotations

from .errors import ENOENT, ConnectionClosedError
from .values import WatchEvent

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # collections.abc imports collections, functools...: ~3 ms
    from collections.abc import Callable, Iterator
    from typing import Protocol

    class _Client(Protocol):
        """What a watch needs of its client (``xsd_client.client.Client``)."""

        def _run_callback(self, fn: Callable[[WatchEvent], object], event: WatchEvent) -> None: ...

        def _forget_watch(self, watch: Watch) -> None: ...

        def unwatch(self, path: str, token: str) -> None: ...


def _queue_empty() -> type[Exception]:
    from _queue import Empty

    return Empty


class Watch:
    """A registered watch. Iterate it (blocking) for :class:`WatchEvent` objects, or
    give :meth:`Client.watch` a callback instead.

    Iteration ends when the watch is removed (:meth:`unwatch`, ``RESET_WATCHES``) or the
    connection closes. Use it as a context manager to unwatch on exit.
    """

    def __init__(
        self,
        client: _Client,
        path: str,
        token: str,
        callback: Callable[[WatchEvent], object] | None,
    ) -> None:
        self.client = client
        self.path = path
        self.token = token
        self.callback = callback
        from _queue import SimpleQueue

        self._queue: SimpleQueue[WatchEvent | None] = SimpleQueue()
        self._active = True

    def __repr__(self) -> str:
        return f"<Watch {self.path!r} token={self.token!r}{'' if self._active else ' (ended)'}>"

    @property
    def active(self) -> bool:
        """False once the watch was removed or its connection closed."""
        return self._active

    def _deliver(self, event: WatchEvent) -> None:
        if self.callback is None:
            self._queue.put(event)
        else:
            self.client._run_callback(self.callback, event)

    def _end(self) -> None:
        if self._active:
            self._active = False
            self._queue.put(None)

    def get(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event, waiting up to ``timeout`` seconds (None: forever).

        Returns:
            The event, or None once the watch has ended and every event was taken.

        Raises:
            TimeoutError: nothing arrived in time.
        """
        try:
            item = self._queue.get(timeout=timeout)
        except _queue_empty():
            raise TimeoutError(f"no event on {self.path!r} within {timeout} s") from None
        if item is None:  # the end
            self._queue.put(None)  # every later get() sees the end too
        return item

    def __iter__(self) -> Iterator[WatchEvent]:
        while (event := self.get()) is not None:
            yield event

    def unwatch(self) -> None:
        """Remove the watch from the daemon (if still connected) and end iteration."""
        if not self._active:
            return
        self.client._forget_watch(self)
        try:
            self.client.unwatch(self.path, self.token)
        except (ENOENT, ConnectionClosedError):
            pass

    close = unwatch

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unwatch()
