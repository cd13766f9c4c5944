"""Shared fixtures: a fresh xsd, a fresh reference C xenstored (see ``daemons.py``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemons import ReferenceDaemon, XsdDaemon, need_reference


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
