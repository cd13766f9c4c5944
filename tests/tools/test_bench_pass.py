"""tools/bench_pass.py: the daemon's request path timed in one process."""

from __future__ import annotations

from tests.support.tools import run_tool


def test_every_cell_gets_a_positive_figure() -> None:
    proc = run_tool("bench_pass.py", "-c", "1,3", "-w", "read,write", "-n", "200", "--repeat", "1")
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
    proc = run_tool("bench_pass.py", "-w", "delete")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith("unknown workload 'delete'; choose from read, write")
    )
