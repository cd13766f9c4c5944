"""The watchdogs' timers: one min-heap of deadlines with lazy deletion.

The heap (``WatchdogState.heap``) holds ``(when, domid, slot, token)`` entries; an entry
is live only while its watchdog still has that token and that next event time, others
are skipped when met, so arming and kicking cost O(log n). Every kick leaves its old
entry behind: once they are most of the heap they are dropped all at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from xsd.core.watchdog_state import Dog, WatchdogState

_COMPACT_MIN = 1024  # below this many heap entries, stale ones are left to pop


class Timers:
    """Schedules watchdogs in the heap of a :class:`WatchdogState`."""

    __slots__ = ("_compact_above",)

    def __init__(self) -> None:
        # The heap size above which a schedule first drops stale entries (not state: a
        # new process starts from the minimum and finds its own level).
        self._compact_above = _COMPACT_MIN

    def schedule(self, st: WatchdogState, domid: int, slot: int, dog: Dog) -> bool:
        """Give ``dog`` a new token and put its next event in the heap, if it has one.

        Returns True if that event is now the earliest (the shell's timer must change).
        """
        dog.token = st.next_token
        st.next_token += 1
        when = dog.next_event()
        if when is None:
            return False
        heap = st.heap
        if len(heap) > self._compact_above:
            # The bar follows the live count as of the last compaction, so a kick never
            # counts the watchdogs itself (that is O(domains)).
            _compact(st)
            heap = st.heap
            self._compact_above = max(_COMPACT_MIN, 4 * len(heap))
        heapq.heappush(heap, (when, domid, slot, dog.token))
        return heap[0][0] == when


def next_deadline(st: WatchdogState) -> int | None:
    """The earliest live pretimeout or expiry (monotonic ns), if any watchdog runs."""
    heap = st.heap
    while heap and _live(st, heap[0]) is None:
        heapq.heappop(heap)
    return heap[0][0] if heap else None


def due(st: WatchdogState, now: int) -> Iterator[tuple[int, int, int, Dog]]:
    """Pop the live entries at or before ``now``: ``(when, domid, slot, dog)`` each (the
    caller may schedule again between them)."""
    heap = st.heap
    while heap and heap[0][0] <= now:
        entry = heapq.heappop(heap)
        dog = _live(st, entry)
        if dog is not None:
            yield entry[0], entry[1], entry[2], dog


def _compact(st: WatchdogState) -> None:
    live = []
    for domid, dd in st.domains.items():
        for slot, dog in enumerate(dd.dogs):
            when = dog.next_event()
            if when is not None:
                live.append((when, domid, slot, dog.token))
    heapq.heapify(live)
    st.heap = live


def _live(st: WatchdogState, entry: tuple[int, int, int, int]) -> Dog | None:
    when, domid, slot, token = entry
    dd = st.domains.get(domid)
    if dd is None or slot >= len(dd.dogs):
        return None
    dog = dd.dogs[slot]
    if dog.token != token or dog.next_event() != when:
        return None
    return dog
