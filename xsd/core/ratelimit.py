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

from xsd.core.domains import Domain

_NS = 1_000_000_000


def _refill(domain: Domain, now: int, rate: float, burst: float) -> None:
    if now > domain.wrl_stamp:
        domain.wrl_credit = min(burst, domain.wrl_credit + rate * (now - domain.wrl_stamp) / _NS)
        domain.wrl_stamp = now


def spend(domain: Domain, now: int, rate: float, burst: float, cost: float = 1.0) -> None:
    """``cost`` writes by the domain."""
    _refill(domain, now, rate, burst)
    domain.wrl_credit -= cost


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
