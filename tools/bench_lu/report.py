"""The live-update table: xsd and C xenstored side by side, then the targets.

Only formatting: every figure comes from :class:`tools.bench_lu.model.Results`.
"""

from __future__ import annotations

from typing import Any

from tools.bench_lu.model import Options, Results, Row, size_name

MiB = 1 << 20

TARGETS_MS = {100_000: 200.0, 1_000_000: 1500.0}
"""Most stall allowed at these node counts."""
BELOW_C_FROM = 50_000
"""From this node count up, xsd's stall must be below C xenstored's."""
PEAK_RATIO_MAX = 2.0


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def _mem(s: dict[str, Any]) -> str:
    if s.get("rss_steady") is None or s.get("peak_ratio") is None:
        return "-"
    return f"{s['rss_peak'] / MiB:.0f}/{s['rss_steady'] / MiB:.0f} MiB {s['peak_ratio']:.2f}x"


def _cells(row: Row | None, n: int) -> dict[str, str]:
    if row is None:
        return {"stall": "-", "read": "-", "mem": "-", "dry": "-", "dread": "-", "whole": "-"}
    if row.skipped and not row.summary:
        return {"stall": "skipped", "read": "", "mem": "", "dry": "", "dread": "", "whole": ""}
    if not row.summary:
        err = next((u.error for u in row.updates if u.error), "no update")
        return {"stall": f"FAILED: {err}", "read": "", "mem": "", "dry": "", "dread": "",
                "whole": ""}  # fmt: skip
    s = row.summary
    return {
        "stall": _ms(s["stall_ms"]),
        "read": _ms(s["worst_read_ms_update"]),
        "mem": _mem(s),
        "dry": _ms(s["dry_run_ms"]),
        "dread": _ms(s["worst_read_ms_dry_run"]),
        "whole": "-" if s.get("whole_ratio") is None else f"{s['whole_ratio']:.2f}x",
    }


def _find(results: Results, daemon: str, n: int) -> Row | None:
    return next((r for r in results.rows if r.daemon == daemon and r.nodes == n), None)


def _stall(row: Row | None) -> float | None:
    return None if row is None or not row.summary else row.summary["stall_ms"]


def render(results: Results, opts: Options) -> str:
    """The whole report as text."""
    lines: list[str] = []
    dogs = f"{opts.watchdogs} armed watchdogs (xsd only)" if opts.watchdogs else "no watchdogs"
    lines.append(
        f"Live update: {opts.connections} connections, {opts.watches} watches, {dogs}; "
        f"xsd state via {opts.transport}; {opts.repeat} update(s) per cell (median; worst of "
        "the worst reads)"
    )
    lines.append(
        "stall = -s sent to OK received; read = worst latency of a concurrent client's READ "
        "in flight during it; VmRSS = the daemon's peak/steady from -f to after OK, sampled "
        "every ~1 ms; dry run = xsd's -f (dump + the new program loading it in a child)"
    )
    head = (
        f"{'nodes':>6} | {'stall ms':^24} | {'worst read ms':^17} | {'peak/steady VmRSS':^42} |"
        f" {'xsd dry run (-f)':^24}"
    )
    sub = (
        f"{'':>6} | {'xsd':>8} {'C':>8} {'xsd/C':>6} | {'xsd':>8} {'C':>8} |"
        f" {'xsd':>20} {'C':>21} | {'ms':>6} {'read ms':>8} {'+child':>8}"
    )
    lines += ["", head, sub, "-" * len(sub)]
    for n in opts.sizes:
        x = _cells(_find(results, "xsd", n), n)
        c = _cells(_find(results, "cxenstored", n), n)
        xs, cs = _stall(_find(results, "xsd", n)), _stall(_find(results, "cxenstored", n))
        ratio = f"{xs / cs:.1f}x" if xs is not None and cs else "-"
        line = (
            f"{size_name(n):>6} | {x['stall']:>8} {c['stall']:>8} {ratio:>6} |"
            f" {x['read']:>8} {c['read']:>8} | {x['mem']:>20} {c['mem']:>21} |"
            f" {x['dry']:>6} {x['dread']:>8} {x['whole']:>8}"
        )
        lines.append(line)
    lines.append("")
    lines.append("+child: xsd's peak of VmRSS + the dry-run child's + the memfd (Shmem growth), "
                 "over steady VmRSS")  # fmt: skip
    notes = _notes(results, opts)
    lines += _targets(results, opts)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def _targets(results: Results, opts: Options) -> list[str]:
    out = ["", "targets (xsd):"]
    below = []
    for n in opts.sizes:
        if n < BELOW_C_FROM:
            continue
        xs = _stall(_find(results, "xsd", n))
        cs = _stall(_find(results, "cxenstored", n))
        if xs is None or cs is None:
            below.append(f"{size_name(n)} n/a")
        else:
            below.append(f"{size_name(n)} {'ok' if xs < cs else 'MISS'} ({_ms(xs)} vs {_ms(cs)})")
    out.append(f"  below C from {size_name(BELOW_C_FROM)}: " + ("; ".join(below) or "n/a"))
    for n, limit in TARGETS_MS.items():
        xs = _stall(_find(results, "xsd", n))
        verdict = "n/a" if xs is None else f"{'ok' if xs <= limit else 'MISS'} ({_ms(xs)} ms)"
        out.append(f"  at most {_ms(limit)} ms at {size_name(n)}: {verdict}")
    ratios = []
    for n in opts.sizes:
        row = _find(results, "xsd", n)
        if row is not None and row.summary and row.summary.get("peak_ratio") is not None:
            r = row.summary["peak_ratio"]
            ratios.append(f"{size_name(n)} {'ok' if r <= PEAK_RATIO_MAX else 'MISS'} ({r:.2f}x)")
    out.append(
        f"  peak VmRSS at most {PEAK_RATIO_MAX:.0f}x steady: " + ("; ".join(ratios) or "n/a")
    )
    return out


def _notes(results: Results, opts: Options) -> list[str]:
    notes = []
    for name, why in results.skipped.items():
        notes.append(f"{name} stopped: {why}")
    for row in results.rows:
        if row.skipped:
            notes.append(f"{row.daemon} {size_name(row.nodes)}: skipped, {row.skipped}")
        for up in row.updates:
            if not up.ok:
                notes.append(f"{row.daemon} {size_name(row.nodes)}: update failed: {up.error}")
    gauges = [
        f"{r.daemon} {size_name(r.nodes)} {r.machine_ms:.1f}"
        for r in results.rows
        if r.machine_ms is not None
    ]
    if gauges:
        notes.append(
            "machine speed before each cell (median ms of `python -S -c pass`; the same "
            "machine at another hour can be half again as slow, and every figure with it): "
            + ", ".join(gauges)
        )
    for row in results.rows:
        for i, up in enumerate(row.updates, 1):
            if up.phases:
                notes.append(f"xsd {size_name(row.nodes)} update {i}: {up.phases}")
    xsd_rows = [r for r in results.rows if r.daemon == "xsd" and r.summary.get("store_nodes")]
    if xsd_rows:
        extra = xsd_rows[-1].summary["store_nodes"] - xsd_rows[-1].nodes
        notes.append(
            f"xsd's store also holds ~{extra} nodes besides the bulk ones (the introduced "
            "domains' watchdog nodes and directories), exact count from its log"
        )
    return notes
