"""The fuzzing harness (``python -m tools.fuzz``) in its short version, for CI.

A real daemon, 64 hostile clients (domain 0 and four guests on their own sockets) for
about 25 s: the daemon must stay alive with a bounded RSS, answer a bystander in domain 0
within 5 s throughout (XSD_FUZZ_LATENCY sets another bound), and log no traceback. The
seed is random unless XSD_FUZZ_SEED says otherwise; a failure prints it, and
``python -m tools.fuzz --seed N`` replays the same client streams.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tools.fuzz.requests import Requests

ROOT = Path(__file__).resolve().parents[2]


def test_short_fuzz_run_keeps_every_invariant(tmp_path: Path) -> None:
    seed = int(os.environ.get("XSD_FUZZ_SEED") or random.randrange(1 << 32))
    out = tmp_path / "fuzz.json"
    # The tool's default bound is 1 s; here 5 s unless XSD_FUZZ_LATENCY says otherwise:
    # on a 2-core machine shared by several test runs (load ~12), single probes of
    # 2-3.6 s were seen with 64 clients. Before the multiplexer's batches and turns were
    # bounded, probes took 0.8 s at the median and up to 5.6 s with 150 clients.
    bound = os.environ.get("XSD_FUZZ_LATENCY", "5.0")
    args = ["--seed", str(seed), "-t", "25", "-c", "64", "-g", "4", "--latency-bound", bound]
    proc = subprocess.run(
        [sys.executable, "-m", "tools.fuzz", *args, "--rss-limit", "256", "--json", str(out)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = f"seed {seed}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    assert proc.returncode == 0, report
    figures = json.loads(out.read_text())
    assert figures["violations"] == [], report
    assert figures["alive"] and figures["exit_status"] == 0, report
    # It did fuzz: many requests, answers, connections closed for their bytes, probes.
    assert figures["requests"] > 20_000 and figures["replies"] > 5_000, report
    assert figures["connections"] > 64 and figures["closed_by_daemon"] > 0, report
    assert figures["probes"] > 50 and figures["probe_max"] < float(bound), report
    assert figures["peak_rss_kib"] < 256 * 1024, report
    assert f"fuzz: seed {seed} " in proc.stdout


def test_a_seed_gives_the_same_bytes_in_the_same_pieces() -> None:
    def stream(seed: str) -> list[list[bytes]]:
        requests = Requests(random.Random(seed), 3, 7, mutate=0.3)
        return [requests.pieces(requests.batch()) for _ in range(50)]

    assert stream("42/7/0") == stream("42/7/0")
    assert stream("42/7/0") != stream("42/7/1")


def test_the_coverage_guided_codec_fuzzer_runs_clean(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    proc = subprocess.run(
        [sys.executable, "-m", "tools.fuzz.codec", "-runs=1000", "-seed=1",
         f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 1000 runs" in proc.stderr
    assert not list(tmp_path.iterdir())  # no crash file
