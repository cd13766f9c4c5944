"""The watchdogs' state (``State.watchdogs``) as one ``watchdogs`` record of columns.

The record: ``["watchdogs", settings, domids, dog_counts, domains, dogs, heap]``:

* ``settings``: the scalar fields of :class:`~xsd.core.watchdogs.WatchdogState`, a map;
* ``domids``: the domains that have watchdogs, in their order;
* ``dog_counts``: how many watchdogs each has;
* ``domains``: the scalar fields of their :class:`~xsd.core.watchdogs.DomainDogs`, a
  column each (``handover.columns``);
* ``dogs``: every :class:`~xsd.core.watchdogs.Dog`, domain after domain, a column per
  field;
* ``heap``: the timer heap, ``[when, domid, slot, token]`` entries in heap order.

Earlier versions sent this part as an ``ext`` record of maps (``handover.plain``);
``records`` still loads that.
"""

from __future__ import annotations

from itertools import accumulate, pairwise

from handover import columns
from xsd.core.watchdog_state import Dog, DomainDogs, WatchdogState

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any


class WatchdogRecordError(ValueError):
    """A ``watchdogs`` record that does not rebuild the watchdogs' state."""


def dump_watchdogs(state: WatchdogState) -> list[Any]:
    """The ``watchdogs`` record of ``state``."""
    domains = list(state.domains.values())
    dogs = [dog for domain in domains for dog in domain.dogs]
    settings = columns.to_columns(WatchdogState, [state])
    return [
        "watchdogs",
        {name: values[0] for name, values in settings.items()},
        list(state.domains),
        [len(domain.dogs) for domain in domains],
        columns.to_columns(DomainDogs, domains),
        columns.to_columns(Dog, dogs),
        [list(entry) for entry in state.heap],
    ]


def load_watchdogs(record: list[Any]) -> WatchdogState:
    """The watchdogs' state from a ``watchdogs`` record.

    Raises:
        WatchdogRecordError: the record is malformed.
    """
    if len(record) != 7:
        raise WatchdogRecordError("a watchdogs record has the wrong number of parts")
    _, settings, domids, counts, domain_columns, dog_columns, heap = record
    try:
        if not isinstance(settings, dict) or not set(map(type, domids)) <= {int}:
            raise WatchdogRecordError("watchdog settings or domain ids of the wrong type")
        if (
            len(counts) != len(domids)
            or not set(map(type, counts)) <= {int}
            or (counts and min(counts) < 0)
        ):
            raise WatchdogRecordError("watchdog counts do not match the domains")
        dogs = columns.from_columns(Dog, dog_columns, sum(counts))
        bounds = list(accumulate(counts, initial=0))
        dog_lists = [dogs[a:b] for a, b in pairwise(bounds)]
        domains = columns.from_columns(DomainDogs, domain_columns, len(domids), {"dogs": dog_lists})
        state: WatchdogState = columns.from_columns(
            WatchdogState,
            {name: [value] for name, value in settings.items()},
            1,
            {
                "domains": [dict(zip(domids, domains, strict=True))],
                "heap": [_heap(heap)],
            },
        )[0]
    except columns.ColumnError as exc:
        raise WatchdogRecordError(str(exc)) from None
    if len(state.domains) != len(domids):
        raise WatchdogRecordError("a domain appears twice among the watchdogs")
    return state


def _heap(entries: Any) -> list[tuple[int, int, int, int]]:
    """The timer heap from its ``[when, domid, slot, token]`` entries."""
    if not isinstance(entries, list) or not all(
        isinstance(e, list) and len(e) == 4 and set(map(type, e)) <= {int} for e in entries
    ):
        raise WatchdogRecordError("the timer heap is not a list of [when, domid, slot, token]")
    return [(when, domid, slot, token) for when, domid, slot, token in entries]
