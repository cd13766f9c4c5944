"""Fixtures for the client tests: every test runs against Xen's C xenstored 4.17 and xsd."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from xsd_client.client import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["cxenstored", "xsd"])
def daemon_socket(request: pytest.FixtureRequest) -> str:
    """The socket of a fresh daemon: the reference C xenstored, then ours."""
    daemon = request.getfixturevalue(request.param)
    return str(daemon.socket)


@pytest.fixture
def client(daemon_socket: str) -> Iterator[Client]:
    with Client(daemon_socket, timeout=10) as c:
        yield c


def tool_env(socket: str) -> dict[str, str]:
    """An environment pointing xenstore-utils and xsc at ``socket``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XENSTORED_")}
    env["XENSTORED_PATH"] = socket
    env["PYTHONPATH"] = str(ROOT)
    return env


XSC = [sys.executable, "-m", "xsd_client.cli"]


@pytest.fixture
def xsc(daemon_socket: str) -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """Run ``xsc ARGS`` as a fresh process against the daemon."""

    def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*XSC, *args], env=tool_env(daemon_socket), capture_output=True, timeout=timeout
        )

    return run


@pytest.fixture
def xenstore(daemon_socket: str) -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """Run Debian's ``xenstore-<mode> ARGS`` against the daemon."""

    def run(mode: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [f"xenstore-{mode}", *args],
            env=tool_env(daemon_socket),
            capture_output=True,
            timeout=timeout,
        )

    return run
