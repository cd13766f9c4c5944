"""Fixtures for the client tests: every test runs against Xen's C xenstored 4.17 and xsd."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.xsc import XSC, tool_env
from xsd_client.client import Client


@pytest.fixture(params=["cxenstored", "xsd"])
def daemon_socket(request: pytest.FixtureRequest) -> str:
    """The socket of a fresh daemon: the reference C xenstored, then ours."""
    daemon = request.getfixturevalue(request.param)
    path = str(daemon.socket)
    # The shared fixtures return once the socket file exists, which is between the
    # daemon's bind() and listen(): wait until it really accepts.
    deadline = time.monotonic() + 10
    while True:
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(path)
            return path
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
        finally:
            probe.close()


@pytest.fixture
def client(daemon_socket: str) -> Iterator[Client]:
    with Client(daemon_socket, timeout=10) as c:
        yield c


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
