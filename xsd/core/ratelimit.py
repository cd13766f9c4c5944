"""The write rate limit of unprivileged domains, after C xenstored's ``wrl``.

Each domain has a credit of writes that refills at ``rate`` per second up to ``burst``.
A write (WRITE, MKDIR, RM, SET_PERMS) by an unprivileged domain spends one, in a
transaction too, and so does a transaction commit (C charges a transaction only its
commit, one credit whatever it wrote: a guest's transactional writes bypassed the
limit). A domain whose credit went below zero is not
served until it has earned it back: its connections' later requests wait, and the
others, domain 0 first, are served meanwhile. Its own connections then take turns (the
engine queues them), so one of them cannot starve the rest. Invariants: the credit is
never above ``burst``; it is only brought up to date with the ``now`` the engine is
given (the core reads no clock).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from xsd.core.domains import Domain

_NS = 1_000_000_000


def _refill(domain: Domain, now: int, rate: float, burst: float) -> None:
    if now > domain.wrl_stamp:
        domain.wrl_credit = min(burst, domain.wrl_credit + rate * (now - domain.wrl_stamp) / _NS)
        domain.wrl_stamp = now


def spend(domain: Domain, now: int, rate: float, burst: float) -> None:
    """One write by the domain."""
    _refill(domain, now, rate, burst)
    domain.wrl_credit -= 1.0


def in_debt(domain: Domain, now: int, rate: float, burst: float) -> bool:
    """True while the domain must wait before its next request is served."""
    if domain.wrl_credit >= 0:
        return False
    _refill(domain, now, rate, burst)
    return domain.wrl_credit < 0


def paid_back_at(domain: Domain, rate: float) -> int | None:
    """When (monotonic ns) a domain in debt may be served again; None if not in debt."""
    if domain.wrl_credit >= 0 or rate <= 0:
        return None
    return domain.wrl_stamp + int(-domain.wrl_credit / rate * _NS) + 1


class Turns:
    """The connections of each domain waiting for its write credit, in the order they
    will be served, and the one being served now (by connection id).

    A connection that must wait joins the back of its domain's queue; once the domain
    is out of debt, the head takes its turn and keeps it until it must wait again (it
    then joins the back). Meanwhile the others wait even though the domain has credit.
    """

    __slots__ = ("queues", "turn")

    def __init__(self) -> None:
        self.queues: dict[int, deque[int]] = {}
        self.turn: dict[int, int] = {}

    def must_wait(self, domid: int, conn_id: int, in_debt: bool, take: bool) -> bool:
        """True if the connection must wait for credit. With ``take`` (its next request
        is about to be answered) one that must wait joins the queue, and the head of
        the queue takes its turn."""
        queue = self.queues.get(domid)
        if in_debt:
            if take and (queue is None or conn_id not in queue):
                self.queues.setdefault(domid, deque()).append(conn_id)
            return True
        if not queue or self.turn.get(domid) == conn_id:
            return False
        if queue[0] == conn_id:
            if take:
                queue.popleft()
                self.turn[domid] = conn_id
                if not queue:
                    del self.queues[domid]
            return False
        if take and conn_id not in queue:
            queue.append(conn_id)
        return True

    def next_turn(self, domid: int, can_go: Callable[[int], bool]) -> None:
        """The domain has credit again: end the current turn and drop from the head of
        its queue the connections that cannot go now (they queue again when they next
        have a request), so that the head is the next one to serve."""
        self.turn.pop(domid, None)
        queue = self.queues.get(domid)
        while queue and not can_go(queue[0]):
            queue.popleft()
        if not queue:
            self.queues.pop(domid, None)
