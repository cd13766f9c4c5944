"""Fixtures for the watchdog tests: a daemon factory that stops what it started."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemons import XsdDaemon


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
