"""Plain-text tables of a run: throughput cells, then memory per node.

Every ratio is "this daemon / C xenstored in the same run" for the same cell: above 1.0
is more throughput (or more CPU) than C. A cell that failed shows its reason instead of
numbers; a missing C figure shows ``-`` for the ratios.
"""

from __future__ import annotations

from tools.bench.runner import CellRow, MemoryRow, Results

C_NAME = "cxenstored"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def _align(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _grouped(cells: list[CellRow]) -> list[CellRow]:
    """Cells ordered store, workload, shape, then daemon, each in order of first appearance."""
    order: dict[str, dict[object, int]] = {"s": {}, "w": {}, "c": {}, "d": {}}
    for c in cells:
        keys = (("s", c.store), ("w", c.workload), ("c", (c.clients, c.depth)), ("d", c.daemon))
        for k, v in keys:
            order[k].setdefault(v, len(order[k]))
    return sorted(
        cells,
        key=lambda c: (
            order["s"][c.store],
            order["w"][c.workload],
            order["c"][(c.clients, c.depth)],
            order["d"][c.daemon],
        ),
    )


def cell_table(cells: list[CellRow]) -> list[str]:
    """The throughput table, one line per daemon and cell, C's line as the base of ratios."""
    header = [
        "store", "workload", "clients", "depth", "daemon", "ops/s", "unit",
        "p50 us", "p99 us", "cpu us/op", "client us/op", "RSS MB", "ops vs C", "cpu vs C",
        "notes",
    ]  # fmt: skip
    rows = [header]
    base = {(c.store, c.workload, c.clients, c.depth): c for c in cells if c.daemon == C_NAME}
    for c in _grouped(cells):
        ref = base.get((c.store, c.workload, c.clients, c.depth))
        key = [c.store, c.workload, str(c.clients), str(c.depth), c.daemon]
        if c.ops_per_s is None:
            failed = f"FAILED: {c.error[:60]}"
            rows.append([*key, "-", c.unit, "-", "-", "-", "-", "-", "-", "-", failed])
            continue
        note = str(c.errors) if c.errors else ""
        if c.error and c.errors:
            note += f" ({c.error[:40]})"
        elif c.error:
            note = c.error[:40]
        if c.lost:
            note = f"{note} {c.lost} events lost".strip()
        rows.append(
            [
                *key,
                _rate(c.ops_per_s),
                c.unit,
                _num(c.p50_us, ".0f"),
                _num(c.p99_us, ".0f"),
                _num(c.cpu_us_per_op, ".1f"),
                _num(c.client_us_per_op, ".1f"),
                _mb(c.rss_bytes),
                _ratio(c.ops_per_s, ref.ops_per_s if ref else None),
                _ratio(c.cpu_us_per_op, ref.cpu_us_per_op if ref else None),
                note,
            ]
        )
    return _align(rows, right={2, 3, 5, 7, 8, 9, 10, 11, 12, 13})


def memory_table(memory: list[MemoryRow]) -> list[str]:
    """Resident bytes per node: (RSS after loading - RSS empty) / nodes loaded."""
    header = [
        "daemon", "target", "nodes", "load s", "nodes/s", "RSS empty MB", "RSS MB",
        "B/node (RSS)", "B/node (PSS)", "vs C", "note",
    ]  # fmt: skip
    rows = [header]
    base = {m.target_nodes: m for m in memory if m.daemon == C_NAME}
    for m in memory:
        ref = base.get(m.target_nodes)
        rate = m.nodes / m.load_seconds if m.load_seconds else None
        note = m.error[:60] + (f" {m.errors} writes failed" if m.errors else "")
        rows.append(
            [
                m.daemon,
                f"{m.target_nodes:,}",
                f"{m.nodes:,}",
                f"{m.load_seconds:.1f}",
                _rate(rate),
                _mb(m.rss_empty),
                _mb(m.rss),
                _num(m.bytes_per_node, ".0f"),
                _num(m.pss_bytes_per_node, ".0f"),
                _ratio(m.bytes_per_node, ref.bytes_per_node if ref else None),
                note,
            ]
        )
    return _align(rows, right={1, 2, 3, 4, 5, 6, 7, 8, 9})


def render(results: Results) -> str:
    """The whole report as text."""
    out: list[str] = []
    if results.cells:
        out += cell_table(results.cells)
    if results.memory:
        if out:
            out.append("")
        out += memory_table(results.memory)
    for name, why in results.skipped.items():
        out.append(f"{name}: skipped: {why.splitlines()[0] if why else ''}")
        out += [f"  {line}" for line in why.splitlines()[1:]]
    return "\n".join(out) + "\n"
