"""The node tree: path -> node, with a global generation counter.

Invariants:

* every node's ancestors exist (``/`` always does);
* a node's ``children`` lists the full paths of its children in creation order
  (C xenstored's order), each child path being the very string used as its key in
  ``Tree.nodes`` (so a child name costs no second string);
* ``gen`` of a node is the value of the global counter when the node was last
  written; the counter only grows, so equal ``gen`` means unchanged node.
"""

from __future__ import annotations

from xsd.core import perms as P
from xsd.core.paths import basename

_NO_CHILDREN: list[str] = []


class Node:
    """One node: a value, a permission list, child paths, and a generation."""

    __slots__ = ("children", "gen", "perms", "value")

    def __init__(self, value: bytes, perms: P.Perms, children: list[str], gen: int) -> None:
        self.value = value
        self.perms = perms
        self.children = children
        self.gen = gen

    def copy(self) -> Node:
        """A copy whose child list can be changed without touching this node."""
        return Node(self.value, self.perms, list(self.children), self.gen)

    def child_names(self) -> list[str]:
        """Names (last components) of the children, in order."""
        return [basename(c) for c in self.children]

    def __repr__(self) -> str:
        return f"Node({self.value!r}, {P.to_strings(self.perms)}, gen={self.gen})"


class Tree:
    """All nodes by canonical path, and the generation counter they share."""

    __slots__ = ("generation", "nodes")

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.generation = 0

    def next_generation(self) -> int:
        """Advance the counter and return the new value."""
        self.generation += 1
        return self.generation

    @classmethod
    def initial(cls) -> Tree:
        """The tree C xenstored starts with: ``/``, ``/tool``, ``/tool/xenstored``."""
        tree = cls()
        for path in ("/", "/tool", "/tool/xenstored"):
            tree.nodes[path] = Node(b"", P.DEFAULT, [], tree.next_generation())
        tree.nodes["/"].children = ["/tool"]
        tree.nodes["/tool"].children = ["/tool/xenstored"]
        return tree

    def get(self, path: str) -> Node | None:
        """The node at ``path``, if any."""
        return self.nodes.get(path)

    def walk(self, top: str = "/") -> list[str]:
        """Paths of ``top`` and its descendants, depth first in child order."""
        out = []
        stack = [top]
        nodes = self.nodes
        while stack:
            path = stack.pop()
            out.append(path)
            stack.extend(reversed(nodes[path].children))
        return out
