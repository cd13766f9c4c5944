"""What a live-update benchmark run is told and what it finds: options, updates, rows.

:class:`Options` is everything the command line sets; :class:`Update` holds the figures
of one live update, :class:`Row` one daemon at one size with its updates and their
summary, :class:`Results` a whole run. :class:`RunError` stops the measuring of one daemon.
Plain data only: measuring is in :mod:`tools.bench_lu.update`, driving in
:mod:`tools.bench_lu.run`, printing in :mod:`tools.bench_lu.report`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

C_PROGRAM = "/usr/lib/xen-4.17/bin/xenstored"


@dataclass(slots=True)
class Options:
    """Everything the command line sets."""

    daemons: list[str] = field(default_factory=lambda: ["xsd", "c"])
    sizes: list[int] = field(default_factory=lambda: [1_000, 10_000, 50_000, 100_000, 1_000_000])
    c_max_nodes: int = 100_000
    connections: int = 1000
    watches: int = 10_000
    watchdogs: int = 1000
    watchdog_timeout_ms: int = 3_600_000
    repeat: int = 3
    transport: str = "memfd"
    xsd_program: str = ""
    c_program: str = C_PROGRAM
    update_timeout: float = 120.0
    settle: float = 0.3
    sample_interval: float = 0.001
    load_budget: float = 240.0
    time_budget: float = 900.0
    rundir: Path | None = None


@dataclass(slots=True)
class Update:
    """The figures of one live update."""

    ok: bool = False
    error: str = ""
    dry_run_ms: float | None = None
    stall_ms: float | None = None
    reads: int = 0
    read_errors: int = 0
    worst_read_ms_update: float | None = None
    """Worst latency of a READ in flight at any moment between sending -s and its OK."""
    worst_read_ms_dry_run: float | None = None
    """The same for the -f window (the dry run)."""
    worst_read_ms_idle: float | None = None
    """The same before -f: what the reader sees with no update going on."""
    rss_steady: int | None = None
    rss_peak_dry_run: int | None = None
    rss_peak_update: int | None = None
    rss_after: int | None = None
    peak_ratio: float | None = None
    """max(daemon VmRSS from -f to the end) / steady VmRSS before -f."""
    child_peak: int | None = None
    """Peak resident memory of the daemon's children (the xsd dry run)."""
    whole_peak: int | None = None
    """Peak of daemon VmRSS + children + growth of the system's Shmem (a memfd)."""
    whole_ratio: float | None = None
    samples: int = 0
    pid_before: int = 0
    pid_after: int = 0
    same_process: bool = False
    exec_seen: bool = False
    conns_answering: int | None = None
    conns_total: int | None = None
    watchdogs_armed: int | None = None
    store_nodes: int | None = None
    phases: str = ""
    """xsd's own account of where the stall went (its log's timeline line)."""
    marks: dict[str, int] = field(default_factory=dict)
    """``time.monotonic_ns()`` when -f (f0) and -s (s0) were sent and answered (f1, s1)."""


@dataclass(slots=True)
class Row:
    """One daemon at one size: its updates and their summary."""

    daemon: str
    nodes: int
    loaded: int = 0
    load_seconds: float = 0.0
    machine_ms: float | None = None
    """This shared machine's speed just before the cell's updates: the median time an
    interpreter takes to start (``python -S -c pass``); it varies by half and more
    from one hour to the next, and every stall with it."""
    skipped: str = ""
    updates: list[Update] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Results:
    """Every row of a run, what it ran with, and the daemons that could not run."""

    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    setup: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "options": self.options,
            "skipped": self.skipped,
            "setup": self.setup,
            "rows": [asdict(r) for r in self.rows],
        }


class RunError(RuntimeError):
    """A daemon cannot go on being measured; the message says why."""


def size_name(n: int) -> str:
    """``1000`` -> ``1k``, ``1000000`` -> ``1M``."""
    if n and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)
