"""The live-update benchmark (``python -m tools.bench_lu``) run for real with tiny settings.

One run of the tool against xsd and, when Xen's C xenstored is installed, against it too:
1k nodes, 20 connections, 100 watches, 10 armed watchdogs. Every figure of the table and
the JSON must be a number, every update must have kept the daemon's PID (the same process,
exec'd anew), and every held connection and watchdog must have survived.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SCRIPT = ROOT / "tools" / "peers" / "reference-xenstored"

TINY = [
    "-n", "1k",
    "--connections", "20",
    "--watches", "100",
    "--watchdogs", "10",
    "--repeat", "1",
    "--settle", "0.1",
    "--update-timeout", "20",
    "--load-budget", "20",
    "--time-budget", "60",
]  # fmt: skip

FIGURES = [
    "stall_ms",
    "worst_read_ms_update",
    "rss_steady",
    "rss_peak_update",
    "peak_ratio",
]
"""Figures every daemon's update must have (xsd also has its dry run's)."""


def have_reference() -> bool:
    """Xen's C xenstored and the peers script that starts it are installed."""
    return REFERENCE_SCRIPT.exists() and Path("/usr/lib/xen-4.17/bin/xenstored").exists()


def test_live_update_benchmark_tiny(tmp_path: Path) -> None:
    daemons = ["xsd", "c"] if have_reference() or os.environ.get("CI") else ["xsd"]
    out = tmp_path / "lu.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench_lu", "-d", ",".join(daemons), *TINY,
         "--json", str(out), "--rundir", str(tmp_path)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["skipped"] == {}
    names = {"xsd": "xsd", "c": "cxenstored"}
    for kind in daemons:
        name = names[kind]
        rows = [r for r in data["rows"] if r["daemon"] == name]
        assert [r["nodes"] for r in rows] == [1000], rows
        (row,) = rows
        assert row["skipped"] == "" and row["loaded"] == 1000
        (up,) = row["updates"]
        assert up["ok"], up["error"]
        figures = [*FIGURES, "dry_run_ms", "worst_read_ms_dry_run"] if kind == "xsd" else FIGURES
        for key in figures:
            assert isinstance(up[key], int | float) and up[key] > 0, (name, key, up[key])
        assert up["reads"] > 0 and up["read_errors"] == 0 and up["samples"] > 10
        # The PID is unchanged: the same process (same start time), now the new program.
        assert up["pid_after"] == up["pid_before"] == data["setup"][name]["pid"]
        assert up["same_process"] and up["exec_seen"]
        assert up["conns_answering"] == up["conns_total"] == 20
        if kind == "xsd":
            assert up["watchdogs_armed"] == 10
            assert up["store_nodes"] > 1000
        assert row["summary"]["stall_ms"] == up["stall_ms"]
    # The printed table: the 1k line has a number in the stall column of every daemon run.
    line = next(ln for ln in proc.stdout.splitlines() if ln.split("|")[0].strip() == "1k")
    xsd_stall, c_stall = line.split("|")[1].split()[:2]
    assert float(xsd_stall) > 0, line
    if "c" in daemons:
        assert float(c_stall) > 0, line
    assert "FAILED" not in proc.stdout
