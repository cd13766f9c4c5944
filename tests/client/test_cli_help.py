"""``xsc`` describes itself: every mode in ``--help``, each mode's own help, ``--version``.
Fresh ``python -m xsd_client.cli`` processes; no daemon needed (help never connects)."""

from __future__ import annotations

import subprocess
from importlib import metadata

import pytest

from tests.support.xsc import XSC, tool_env


def xsc(*args: str) -> subprocess.CompletedProcess[str]:
    # A socket nobody serves: help and --version must not need one.
    return subprocess.run(
        [*XSC, *args], capture_output=True, text=True, timeout=30, env=tool_env("/nonexistent")
    )


def test_help_lists_every_mode() -> None:
    out = xsc("--help")
    assert out.returncode == 0, out.stderr
    modes = {line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")}
    expected = {"read", "ls", "exists", "chmod", "control", "live-update", "watchdog"}
    assert expected <= modes
    assert "--version" in out.stdout


def test_live_update_has_its_own_help() -> None:
    asked = (["live-update", "--help"], ["live-update", "-h"], ["control", "live-update", "-h"])
    for args in asked:
        out = xsc(*args)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("usage: xsc live-update [-c CMDLINE] [-F] [-t SECS]")
        assert "--state memfd|lmdb:PATH" in out.stdout
        assert "usage: xsc control" not in out.stdout


@pytest.mark.parametrize("command", [[], ["arm"], ["arm", "7"], ["list"], ["status"]])
def test_watchdog_help_works_after_any_command(command: list[str]) -> None:
    out = xsc("watchdog", *command, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: xsc watchdog <command> [args]")
    assert "arm DOMID N [TIMEOUT_MS]" in out.stdout


def test_version() -> None:
    out = xsc("--version")
    assert out.returncode == 0, out.stderr
    try:
        version = metadata.version("xsd")
    except metadata.PackageNotFoundError:
        version = "(not installed)"
    assert out.stdout == f"xsc {version}\n"
