"""tools/bench_pass.py: the daemon's request path timed in one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_pass.py"), *args],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_cell_gets_a_positive_figure() -> None:
    proc = run("-c", "1,3", "-w", "read,write", "-n", "200", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("read", "1"),
        ("read", "3"),
        ("write", "1"),
        ("write", "3"),
    ]
    assert all(float(r[2]) > 0 for r in rows)


def test_a_bad_workload_is_one_line() -> None:
    proc = run("-w", "delete")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith("unknown workload 'delete'; choose from read, write")
    )
