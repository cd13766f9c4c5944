"""What docs/ ships for the daemon is true: the example configuration names every key the
daemon accepts (and they load), the systemd unit passes ``systemd-analyze verify``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from xsd.server import config
from xsd.server.options import build_parser

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "xsd.example.toml"
UNIT = ROOT / "docs" / "xsd.service"

NOT_KEYS = {"help", "config", "live_update", "check_state", "version"}
"""Options that are no configuration keys (config.apply_file refuses them)."""


def accepted_keys() -> set[str]:
    """Every top-level key and table the configuration file accepts."""
    keys = {a.dest.replace("_", "-") for a in build_parser()._actions if a.dest not in NOT_KEYS}
    return keys - {"quota", "quota-soft"} | {"[quota]", "[quota-soft]"}


def uncommented(text: str) -> str:
    """The example with its commented-out keys (``# key = value``) made real."""
    return re.sub(r"(?m)^# ([a-z-]+ = )", r"\1", text)


def example_keys(text: str) -> set[str]:
    data = tomllib.loads(uncommented(text))
    return {f"[{k}]" if isinstance(v, dict) else k for k, v in data.items()}


def test_the_example_config_names_every_key_the_daemon_accepts() -> None:
    text = EXAMPLE.read_text()
    assert example_keys(text) == accepted_keys()
    table = tomllib.loads(text)["quota"]
    from xsd.core.quota import Quotas

    assert set(table) == set(Quotas().hard)  # every quota, with C's default
    assert table == Quotas().hard


def test_every_key_of_the_example_loads(tmp_path: Path) -> None:
    """Even the commented-out ones: their values are valid."""
    path = tmp_path / "all.toml"
    path.write_text(uncommented(EXAMPLE.read_text()))
    parser = build_parser()
    config.apply_file(parser, path)  # raises ConfigError on a bad key or value
    args = parser.parse_args([])
    assert args.watchdog_hook == "/usr/local/sbin/xsd-watchdog-hook"
    assert args.watchdogs_per_domain == 2 and args.socket_mode == 0o600


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The unit names /usr/local/bin/xsd and Xen's xenstore-control: point them at
    # programs that exist here, so that verify checks the rest.
    xsd = shutil.which("xsd") or sys.executable
    control = "/usr/lib/xen-4.17/bin/xenstore-control"
    text = UNIT.read_text().replace("/usr/local/bin/xsd", xsd)
    if not Path(control).exists():
        text = text.replace(control, shutil.which("true") or "/bin/true")
    unit = tmp_path / "xsd.service"
    unit.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    if "Failed to" in result.stderr and "bus" in result.stderr.lower():
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert "xsd.service" not in result.stderr, result.stderr  # no warning about the unit
