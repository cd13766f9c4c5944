"""Fixtures for the domain tests: one daemon per module, a checked environment per test."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemons import XsdDaemon
from domutil import FAST, Env


@pytest.fixture(scope="module")
def shared_xsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XsdDaemon]:
    """One xsd for a module's tests (short slow-client deadlines, no watchdog nodes)."""
    daemon = XsdDaemon(tmp_path_factory.mktemp("xsd") / "run", *FAST)
    yield daemon
    daemon.stop()


_domids = itertools.count(10)


@pytest.fixture
def domid() -> Callable[[], int]:
    """A domid no earlier test of the session used."""
    return lambda: next(_domids)


@pytest.fixture
def env(shared_xsd: XsdDaemon) -> Iterator[Env]:
    """The shared daemon, checked healthy after the test; the test's domains released."""
    e = Env(shared_xsd)
    yield e
    try:
        e.healthy()
    finally:
        for d in list(e.domains):
            e.release(d)
        e.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Callable[..., Env]]:
    """``fresh(*options)``: an Env on a new daemon of its own (FAST options first)."""
    made: list[Env] = []

    def start(*args: str) -> Env:
        daemon = XsdDaemon(tmp_path / f"xsd{len(made)}", *FAST, *args)
        made.append(Env(daemon))
        return made[-1]

    yield start
    for e in made:
        try:
            e.healthy()
        finally:
            e.close()
            e.daemon.stop()
