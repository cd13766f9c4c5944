"""What a one-shot ``xsc`` command imports: a pinned budget (issue 16).

Each one-shot command (read, write, ls, list, exists, rm, chmod, control, watchdog) runs in a fresh
``python -S`` process (no site.py, so nothing is imported for it in advance) against a
real daemon; the test checks that it did its work and that every module it brought in
is on the budget below. A module off the budget costs every ``xsc`` start: add it here
only with a reason, and measure it with ``tools/bench_cli.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.xsc import ROOT, tool_env

BUDGET = {
    # the package: the CLI, the thread-free client and the request layer
    "xsd_client",
    "xsd_client.cli",
    "xsd_client.cli_common",
    "xsd_client.cli_getopt",
    "xsd_client.cli_utils",
    "xsd_client.cli_watchdog",
    "xsd_client.escaping",
    "xsd_client.oneshot",
    "xsd_client.calls",
    "xsd_client.operations",
    "xsd_client.errors",
    "xsd_client.protocol",
    "xsd_client.values",
    "xsd_client.frozen",
    "xsd_client.intenum",
    "xsd_client._typing",
    # the standard library: the socket's C half, the header's struct, errno, and os
    # where a command needs it (ls, error messages)
    "__future__",
    "_socket",
    "_struct",
    "struct",
    "errno",
    "os",
    "os.path",
    "posixpath",
    "genericpath",
    "stat",
    "_stat",
    "_collections_abc",
    # the framing, compiled with mypyc at install (setup.py), and its guard against a
    # stale build: mypyc's runtime imports importlib.machinery (and importlib, warnings)
    # to give a compiled module its spec. About 1.1 ms of a python -S start (median of
    # 60, against the same client with the framing interpreted), for a ninth of the
    # instructions the daemon spends on a request (callgrind, tools/bench_pass.py).
    "xsd_client._compiled",
    "xsd_client.compiled__mypyc",
    "xsd_client.framing",
    "xsd_client.message",
    "importlib",
    "importlib._bootstrap",
    "importlib._bootstrap_external",
    "importlib.machinery",
    "warnings",
}

NEVER = {
    # what the threaded client brings, and what its modules were written to avoid
    "threading",
    "queue",
    "_queue",
    "socket",
    "selectors",
    "collections",
    "collections.abc",
    "enum",
    "typing",
    "functools",
    "re",
    "dataclasses",
    "logging",
    "trio",
    "xsd_client.client",
    "xsd_client.client_watch",
    "xsd_client.reconnect",
    "xsd_client.watch_table",
}

# Runs main() for real, then reports what it imported on the last line of stderr.
CHILD = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
before = set(sys.modules)
from xsd_client.cli import main
status = main(["xsc", *sys.argv[1:]])
sys.stdout.flush()
sys.stderr.write("\\n" + " ".join(sorted(set(sys.modules) - before)) + "\\n")
sys.exit(status)
"""


def run_lean(socket: str, *args: str) -> tuple[subprocess.CompletedProcess[bytes], set[str]]:
    out = subprocess.run(
        [sys.executable, "-S", "-c", CHILD, *args],
        env=tool_env(socket),
        capture_output=True,
        timeout=30,
        cwd="/",  # -c puts the current directory first on sys.path: not a checkout
    )
    imported = set(out.stderr.decode().rsplit("\n", 2)[-2].split())
    return out, imported


def assert_within_budget(imported: set[str]) -> None:
    assert "xsd_client.cli" in imported  # the report is real: the command was imported
    assert not imported & NEVER, sorted(imported & NEVER)
    assert imported <= BUDGET, f"off the budget: {sorted(imported - BUDGET)}"


def test_a_one_shot_read_imports_only_its_budget(daemon_socket: str) -> None:
    out, imported = run_lean(daemon_socket, "write", "/lean/key", "value")
    assert out.returncode == 0, out.stderr
    out, imported = run_lean(daemon_socket, "read", "/lean/key")
    assert (out.returncode, out.stdout) == (0, b"value\n"), out.stderr
    assert_within_budget(imported)
    # os only where it is needed (ls's terminal width, an error's text): site.py imports
    # it anyway in a normal start, but under -S it would be a fifth of the budget.
    assert "os" not in imported


@pytest.mark.parametrize(
    ("args", "stdout"),
    [
        (["write", "/lean/a", "1", "/lean/b", "2"], b""),  # in a transaction
        (["read", "/lean/a", "/lean/b"], b"1\n2\n"),  # in a transaction
        (["exists", "/lean/a"], b""),
        (["list", "/lean"], b"a\nb\n"),
        (["ls", "-f", "/lean"], b'/lean/a = "1"\n/lean/b = "2"\n'),
        (["ls", "-p", "/lean"], None),  # GET_PERMS: its Perm values
        (["chmod", "/lean/a", "b0"], b""),
        (["rm", "-t", "/lean/a"], b""),
        (["control", "help"], None),
        (["watchdog", "list"], None),  # not xenstore-utils', but as one-shot
    ],
)
def test_every_one_shot_command_stays_within_the_budget(
    daemon_socket: str, args: list[str], stdout: bytes | None
) -> None:
    run_lean(daemon_socket, "write", "/lean/a", "1", "/lean/b", "2", "/local/domain", "")
    out, imported = run_lean(daemon_socket, *args)
    assert out.returncode == 0, out.stderr
    if stdout is not None:
        assert out.stdout == stdout
    else:
        assert out.stdout
    assert_within_budget(imported)


def test_an_unreachable_daemon_stays_within_the_budget() -> None:
    out, imported = run_lean("/nonexistent/socket", "read", "/x")
    assert out.returncode == 1
    assert out.stderr.startswith(b"xsc read: xs_open: No such file or directory\n")
    assert_within_budget(imported)


def test_watch_still_uses_the_threaded_client(daemon_socket: str) -> None:
    # The budget is for one-shot commands: watch needs the reader thread's events.
    out, imported = run_lean(daemon_socket, "watch", "-n", "1", "/lean")
    assert (out.returncode, out.stdout) == (0, b"/lean\n"), out.stderr
    assert "xsd_client.client" in imported
