"""The guest load generators (``tools/bench_guest_memory.py``, ``tools/bench_guest_fairness.py``)
run for real with short settings against this tree's daemon.

The memory attack must leave the daemon alive with its RSS under the documented bound
(256 MB) and domain 0 answered in both phases; the fairness run must get every keepalive
of the guest's second connection through while its first floods.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(tool: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / tool), "--code", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_guest_memory_attack_stays_bounded() -> None:
    lines = _run(
        "bench_guest_memory.py",
        *("--connections", "128", "--nodes", "300", "--seconds", "3", "--probe", "1"),
    )
    row = lines[-1].split()
    assert "DIED" not in lines[-1], lines
    rss_idle, peak, after = (float(v) for v in row[1:4])
    assert peak < 256, lines  # MiB
    assert peak - rss_idle < 64, lines
    assert after - rss_idle < 32, lines
    assert all(float(v) >= 0 for v in row[4:9]), lines  # dom0 answered in both phases


def test_guest_fairness_keepalive_gets_through() -> None:
    lines = _run(
        "bench_guest_fairness.py",
        *("--seconds", "3", "--interval", "0.2"),
        *("--xsd-arg=--write-rate=40", "--xsd-arg=--write-burst=1"),
    )
    done, tried = (int(v) for v in lines[-1].split()[1].split("/"))
    assert tried >= 10 and done >= tried - 1, lines
