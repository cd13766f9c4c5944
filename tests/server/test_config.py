"""The configuration file and the quota options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.daemons import ROOT, XsdDaemon
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def test_config_file_sets_options_and_quotas(tmp_path: Path) -> None:
    config = tmp_path / "xsd.toml"
    config.write_text('socket-mode = "0660"\n[quota]\nnodes = 7\nwatches = 3\n')
    daemon = XsdDaemon(tmp_path / "rd", "--config", str(config), "--quota", "watches=4")
    try:
        assert (daemon.socket.stat().st_mode & 0o777) == 0o660
        with RawConn(str(daemon.socket)) as conn:
            kind, text = conn.call(Op.CONTROL, "quota")
            assert kind == "OK"
            assert b"nodes            :        7 " in text
            assert b"watches          :        4 " in text  # the option overrides the file
    finally:
        daemon.stop()


def test_the_shipped_example_config_is_valid(tmp_path: Path) -> None:
    example = (ROOT / "docs" / "xsd.example.toml").read_text()
    config = tmp_path / "xsd.toml"
    config.write_text(example.replace('rundir = "/var/run/xenstored"', f'rundir = "{tmp_path}/rd"'))
    daemon = XsdDaemon(tmp_path / "rd", "--config", str(config))
    try:
        with RawConn(str(daemon.socket)) as conn:
            assert conn.call(Op.CONTROL, "quota-soft")[1].startswith(b"Quota settings:\nmemory")
    finally:
        daemon.stop()


def test_unknown_keys_and_bad_values_are_named(tmp_path: Path) -> None:
    cases = {
        "colour = 1\n": "unknown key 'colour'",
        "[quota]\nnodes = -1\n": "quota.nodes must be a number >= 0",
        'event-timeout = "soon"\n': "event-timeout = 'soon'",
        "rundir = \n": "xsd.toml",
    }
    for text, message in cases.items():
        config = tmp_path / "xsd.toml"
        config.write_text(text)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "xsd",
                "--rundir",
                str(tmp_path / "rd"),
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert result.returncode == 2, text
        assert message in result.stderr, (text, result.stderr)
    bad = subprocess.run(
        [sys.executable, "-m", "xsd", "--rundir", str(tmp_path / "rd"), "--quota", "nodez=5"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert bad.returncode == 2 and "bad quota 'nodez=5'" in bad.stderr
