"""Fixtures every folder uses: daemons (``tests/support/daemons.py``), the shared daemon and
checked environments of the guest tests (``tests/support/domains.py``), a daemon factory."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemons import ReferenceDaemon, XsdDaemon, need_reference
from tests.support.domains import FAST, Env


@pytest.fixture
def xsd(tmp_path: Path) -> Iterator[XsdDaemon]:
    """A fresh xsd daemon; its socket is ``xsd.socket``."""
    daemon = XsdDaemon(tmp_path / "xsd")
    yield daemon
    daemon.stop()


@pytest.fixture
def cxenstored(tmp_path: Path) -> Iterator[ReferenceDaemon]:
    """A fresh reference C xenstored 4.17."""
    need_reference()
    daemon = ReferenceDaemon(tmp_path / "cxs", "c")
    yield daemon
    daemon.stop()


@pytest.fixture
def xs_env() -> Iterator[dict[str, str]]:
    """The environment for running Xen's command-line clients (set XENSTORED_PATH on it)."""
    yield {k: v for k, v in os.environ.items() if not k.startswith("XENSTORED_")}


# Guests on their own sockets: one daemon per module, a checked environment per test.


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


@pytest.fixture
def start_xsd(tmp_path: Path) -> Iterator[Callable[..., XsdDaemon]]:
    """``start_xsd(*options)``: a fresh xsd daemon with extra options."""
    started: list[XsdDaemon] = []

    def start(*args: str) -> XsdDaemon:
        daemon = XsdDaemon(tmp_path / f"xsd{len(started)}", *args)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
