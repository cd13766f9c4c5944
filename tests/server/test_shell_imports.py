"""The shell's modules import each other without a cycle, and the services reach the
server only through ``xsd.server.shell`` (every import counts: at the top, inside a
function, or for the type checker only)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "xsd" / "server"
PACKAGE = "xsd.server"


def _graph() -> dict[str, set[str]]:
    """Each module of the package (``liveupdate.session`` for a subpackage's, its
    ``__init__`` by the subpackage's name) and the modules of the package it imports."""
    modules: dict[str, Path] = {}
    for path in SERVER.rglob("*.py"):
        parts = path.relative_to(SERVER).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            modules[".".join(parts)] = path

    def resolve(dotted: str) -> str | None:
        """The module of ``dotted`` (a name below the package), or its package."""
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph: dict[str, set[str]] = {}
    prefix = PACKAGE + "."
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == PACKAGE or node.module.startswith(prefix):
                    base = node.module[len(prefix) :] if node.module != PACKAGE else ""
                    for alias in node.names:
                        full = f"{base}.{alias.name}" if base else alias.name
                        targets.append(full if full in modules else base)
            elif isinstance(node, ast.Import):
                targets = [a.name[len(prefix) :] for a in node.names if a.name.startswith(prefix)]
            deps |= {dep for t in targets if (dep := resolve(t)) is not None}
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
