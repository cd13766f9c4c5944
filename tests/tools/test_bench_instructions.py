"""tools/bench_instructions.py: instructions per request, counted under callgrind."""

from __future__ import annotations

import shutil

import pytest

from tests.support.tools import run_tool


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_xsd_gets_a_count_per_request() -> None:
    # Few requests: under valgrind, the daemon's start-up is what takes the time.
    proc = run_tool(
        "bench_instructions.py", "-d", "xsd", "-w", "read", "-n", "200", "--base", "20", timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()
    assert header.split()[:3] == ["workload", "daemon", "instructions/request"]
    workload, daemon, figure = row.split()
    assert (workload, daemon) == ("read", "xsd")
    # Tens of thousands at most: a count that included start-up would be millions.
    assert 1_000 < int(figure.replace(",", "")) < 200_000


def test_a_bad_workload_is_one_line() -> None:
    proc = run_tool("bench_instructions.py", "-w", "delete", timeout=600)
    assert proc.returncode == 2
    assert "unknown workload 'delete'" in proc.stderr
    assert "Traceback" not in proc.stderr
