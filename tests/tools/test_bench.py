"""The benchmark tool (``python -m tools.bench``) run for real with tiny settings.

Each test starts real daemons through the tool itself, runs every workload in every
client shape on both the small and the preloaded store, and checks that the table and
the JSON carry a number in every cell, so that the benchmark cannot rot unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench.daemons import start_daemon
from tools.bench.runner import CellRow, median_row

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SCRIPT = ROOT / "tools" / "peers" / "reference-xenstored"
WORKLOADS = ["read", "write", "dir", "mix", "txn", "watch", "boot"]
SHAPES = [(1, 1), (1, 4), (2, 1)]
TINY = [
    "-t", "0.1",
    "--grace", "3",
    "-s", ",".join(f"{c}x{d}" for c, d in SHAPES),
    "--preload", "500",
    "--memory", "1000,2000",
    "--memory-budget", "20",
    "--watchers", "10",
]  # fmt: skip


def need_reference() -> None:
    """Skip (in CI: fail) without Xen's C xenstored and the peers script that starts it."""
    if not (REFERENCE_SCRIPT.exists()
            and Path("/usr/lib/xen-4.17/bin/xenstored").exists()):  # fmt: skip
        if os.environ.get("CI"):
            pytest.fail("reference peers are not installed: .ci/run must install them")
        pytest.skip("reference peers not installed (tools/peers/reference-xenstored install)")


def run_module(
    module: str, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` from the repository root (``env`` added to ours)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_tool(tmp_path: Path, daemon: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run the tool against one daemon; return the process and its JSON."""
    out = tmp_path / "bench.json"
    proc = run_module(
        "tools.bench", "-d", daemon, *TINY, "--json", str(out), "--rundir", str(tmp_path)
    )
    data = json.loads(out.read_text()) if out.exists() else {}
    return proc, data


def check_complete(proc: subprocess.CompletedProcess[str], data: dict, name: str) -> None:
    """Every cell and memory row of ``name`` has its numbers, in the JSON and the table."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert data["skipped"] == {}
    cells = [c for c in data["cells"] if c["daemon"] == name]
    want = {(s, w, c, d) for s in ("empty", "500") for w in WORKLOADS for c, d in SHAPES}
    want = {cell for cell in want if cell[1] != "boot" or cell[3] == 1}  # one request at a time
    assert {(c["store"], c["workload"], c["clients"], c["depth"]) for c in cells} == want
    for c in cells:
        where = f"{c['store']} {c['workload']} {c['clients']}x{c['depth']}: {c['error']}"
        assert c["errors"] == 0 and c["lost"] == 0, where
        for key in ("ops_per_s", "p50_us", "p99_us", "cpu_us_per_op", "rss_bytes"):
            assert isinstance(c[key], int | float) and c[key] >= 0, (key, where)
        assert c["ops_per_s"] > 0 and c["rss_bytes"] > 0, where
    mem = [m for m in data["memory"] if m["daemon"] == name]
    assert [m["nodes"] for m in mem] == [1000, 2000]
    assert all(m["bytes_per_node"] is not None and m["errors"] == 0 for m in mem), mem
    # The printed table: one line per cell, none failed, numbers in the throughput column.
    lines = [ln.split() for ln in proc.stdout.splitlines() if f" {name} " in f" {ln} "]
    cell_lines = [ln for ln in lines if ln[1] in WORKLOADS]
    assert len(cell_lines) == len(want)
    assert not any("FAILED:" in ln for ln in proc.stdout.splitlines())
    for ln in cell_lines:
        assert ln[5] != "-" and ln[5].rstrip("k").replace(".", "").isdigit(), ln


@pytest.mark.reference
def test_bench_tool_against_c_xenstored(tmp_path: Path) -> None:
    need_reference()
    proc, data = run_tool(tmp_path, "c")
    check_complete(proc, data, "cxenstored")
    assert "ops vs C" in proc.stdout


def test_bench_tool_against_xsd(tmp_path: Path) -> None:
    proc, data = run_tool(tmp_path, "xsd")
    check_complete(proc, data, "xsd")


def test_daemons_take_turns_cell_by_cell(tmp_path: Path) -> None:
    """Two daemons run side by side and are measured cell by cell, the first of each
    cell's turn rotating, so that neither the VM's drift over minutes nor the order
    within a turn lands on one."""
    out = tmp_path / "bench.json"
    proc = run_module(
        "tools.bench", "-d", "xsd,xsd-durable", "-w", "read,write", "-s", "1x1,1x4",
        "-t", "0.1", "--preload", "200", "--memory", "", "--json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = json.loads(out.read_text())["cells"]
    assert all(c["errors"] == 0 and c["ops_per_s"] for c in cells), cells
    run = [(c["store"], c["workload"], c["clients"], c["depth"], c["daemon"]) for c in cells]
    pairs = [run[i : i + 2] for i in range(0, len(run), 2)]
    assert len(pairs) == 2 * 2 * 2  # stores x workloads x shapes
    for a, b in pairs:
        assert a[:4] == b[:4] and {a[4], b[4]} == {"xsd", "xsd --state-dir"}, (a, b)
    assert [p[0][0] for p in pairs] == ["empty"] * 4 + ["200"] * 4
    # Each daemon goes first in some cell of every store and shape: no shape always
    # measures them in the same order.
    for store in ("empty", "200"):
        for shape in ((1, 1), (1, 4)):
            firsts = {a[4] for a, _ in pairs if a[0] == store and a[2:4] == shape}
            assert firsts == {"xsd", "xsd --state-dir"}, (store, shape)


@pytest.mark.parametrize("kind", ["xsd", pytest.param("c", marks=pytest.mark.reference)])
def test_every_daemon_runs_in_a_session_of_its_own(kind: str, tmp_path: Path) -> None:
    """As an init system starts a daemon, and not in the load generator's session: with
    autogroup scheduling the session decides a daemon's share of the CPU, and one in
    the clients' session shares theirs (``tools/bench/daemons.py``)."""
    if kind == "c":
        need_reference()
    daemon = start_daemon(kind, tmp_path / kind)
    try:
        assert os.getsid(daemon.pid) == daemon.pid  # it leads a session
        assert os.getsid(daemon.pid) != os.getsid(0)
    finally:
        daemon.stop()


def test_bench_tool_skips_a_daemon_that_does_not_start(tmp_path: Path) -> None:
    """A daemon that cannot start is reported and skipped, and the run still ends."""
    proc = run_module(
        "tools.bench", "-d", "c", "-w", "read", "-s", "1x1", "-t", "0.1", "--preload", "0",
        "--memory", "", timeout=60, XSD_REFERENCE_SCRIPT=str(tmp_path / "nowhere"),
    )  # fmt: skip
    assert proc.returncode == 1
    assert "cxenstored: skipped:" in proc.stdout
    assert "not found" in proc.stdout


@pytest.mark.parametrize("tool", ["tools.bench", "tools.bench_lu"])
def test_a_missing_rundir_is_one_line_not_a_traceback(tool: str, tmp_path: Path) -> None:
    """``--rundir`` that does not exist: argparse's one line, before any daemon starts."""
    proc = run_module(tool, "--rundir", str(tmp_path / "missing"), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("is not a directory: create it first")


def test_rounds_give_each_figure_as_the_median_of_its_rounds(tmp_path: Path) -> None:
    """``--rounds 3``: every cell's turn comes round three times, and its row holds each
    round's throughput and their median."""
    out = tmp_path / "bench.json"
    proc = run_module(
        "tools.bench", "-d", "xsd,xsd-durable", "-w", "write", "-s", "1x1", "-r", "3",
        "-t", "0.1", "--preload", "0", "--memory", "", "--json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = json.loads(out.read_text())["cells"]
    assert sorted(c["daemon"] for c in cells) == ["xsd", "xsd --state-dir"]
    for cell in cells:
        rounds = cell["rounds_ops_per_s"]
        assert len(rounds) == 3 and cell["errors"] == 0, cell
        assert cell["ops_per_s"] == sorted(rounds)[1]
        assert cell["units"] >= 3  # the three rounds' units together
    assert proc.stderr.count("xsd empty write 1x1:") == 3


def test_a_median_row_takes_each_figure_alone_and_keeps_the_first_error() -> None:
    rows = [
        CellRow("xsd", "empty", "read", 1, 1, ops_per_s=10.0, cpu_us_per_op=5.0, units=20),
        CellRow("xsd", "empty", "read", 1, 1, ops_per_s=30.0, cpu_us_per_op=1.0, units=60),
        CellRow("xsd", "empty", "read", 1, 1, error="daemon died"),
        CellRow("xsd", "empty", "read", 1, 1, ops_per_s=20.0, cpu_us_per_op=9.0, units=40),
    ]
    row = median_row(rows)
    assert (row.ops_per_s, row.cpu_us_per_op, row.p50_us) == (20.0, 5.0, None)
    assert row.rounds_ops_per_s == [10.0, 30.0, 20.0]
    assert (row.units, row.error) == (120, "daemon died")
    failed = median_row([CellRow("xsd", "empty", "read", 1, 1, error="daemon not running")])
    assert failed.ops_per_s is None and failed.error == "daemon not running"
