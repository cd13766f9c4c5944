"""The shell's modules import each other without a cycle, and the services reach the
server only through ``xsd.server.shell`` (every import counts: at the top, inside a
function, or for the type checker only)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "xsd" / "server"
PACKAGE = "xsd.server"


def _graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in SERVER.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
                deps |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith(PACKAGE + "."):
                    deps.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PACKAGE + "."):
                        deps.add(alias.name.split(".")[2])
        graph[name] = deps - {name}
    return graph


def _cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start, if there is one."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for dep in graph.get(node, ()):
            if dep == start:
                return [*path, start]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, [*path, dep]))
    return None


def test_the_server_package_has_no_import_cycle() -> None:
    graph = _graph()
    assert "host" in graph and "daemon" in graph
    cycles = [c for m in sorted(graph) if (c := _cycle_from(graph, m)) is not None]
    assert cycles == []


def test_only_main_imports_the_server() -> None:
    graph = _graph()
    importers = sorted(name for name, deps in graph.items() if "daemon" in deps)
    assert importers == ["main"]
