"""The node tree: path -> node, with a global generation counter.

Invariants:

* every node's ancestors exist (``/`` always does);
* a node's ``children`` lists the full paths of its children in creation order
  (C xenstored's order), each child path being the very string used as its key in
  ``Tree.nodes`` (so a child name costs no second string); a leaf's is the shared
  empty tuple (an empty list would cost 56 bytes a node), so children are added with
  :func:`add_child` and removed with :func:`remove_child`;
* ``gen`` of a node is the value of the global counter when the node was last
  written; the counter only grows, so equal ``gen`` means unchanged node;
* ``usage[domid]`` is ``[nodes, bytes]`` owned by that domain: the number of nodes
  whose owner it is and the sum of their :func:`node_cost`. Whoever replaces or
  removes a node keeps it true through :meth:`Tree.charge`;
* ``listings[path]``, when present, is the DIRECTORY payload of the node at ``path`` as
  it is now: whoever writes or removes a node drops its entry (:meth:`Tree.changed`).
  It is a cache, never serialized, bounded by :data:`LISTINGS_MAX` entries;
* ``journal``, when not None, holds every path written or removed since it was started
  (live update dumps the tree once, ahead, and then only what the journal names). Every
  change to a node goes through :meth:`Tree.changed`;
* ``dirty``, when not None, does the same for durable mode (``xsd.server.durable``),
  which empties it at every commit: a live update's ``journal`` is not disturbed.
"""

from __future__ import annotations

from collections.abc import Iterator

from xsd.core import perms as P

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final


def add_child(node: Node, child: str) -> None:
    """Append ``child`` (a full path) to ``node``'s children, in place."""
    if node.children:
        node.children.append(child)
    else:
        node.children = [child]


def remove_child(node: Node, child: str) -> None:
    """Remove ``child`` from ``node``'s children, in place (a leaf again shares the
    empty tuple)."""
    children = node.children
    if children:
        children.remove(child)
        if not children:
            node.children = NO_CHILDREN


def node_cost(path: str, node: Node) -> int:
    """Memory charged to a node's owner, as C xenstored's accounting adds it up.

    A fixed record overhead, the path, the value, the extra permission entries, and
    the node's entry in its parent's child list (charged here rather than to the parent,
    so that the cost of a node depends on the node alone).
    """
    cost = 32 + len(path) + len(node.value) + 8 * (len(node.perms) - 1)
    if path != "/":
        cost += len(path) - path.rfind("/")
    return cost


def record_size(node: Node) -> int:
    """The size of C's node record, which the ``node-size`` quota limits."""
    child_bytes = sum(len(c) - c.rfind("/") for c in node.children)
    return 16 + 8 * len(node.perms) + len(node.value) + child_bytes


Children = list[str] | tuple[()]
NO_CHILDREN: Final[tuple[()]] = ()


class Node:
    """One node: a value, a permission list, child paths, and a generation."""

    __slots__ = ("children", "gen", "perms", "value")

    def __init__(
        self, value: bytes, perms: P.Perms, children: Children = NO_CHILDREN, gen: int = 0
    ) -> None:
        self.value = value
        self.perms = perms
        self.children: Children = children
        self.gen = gen

    def copy(self) -> Node:
        """A copy whose child list can be changed without touching this node."""
        children = self.children
        return Node(self.value, self.perms, list(children) if children else NO_CHILDREN, self.gen)

    def child_names(self, path: str) -> list[str]:
        """Names (last components) of the children of this node, which is at ``path``."""
        cut = 1 if path == "/" else len(path) + 1
        return [c[cut:] for c in self.children]

    def __repr__(self) -> str:
        return f"Node({self.value!r}, {P.to_strings(self.perms)}, gen={self.gen})"


LISTINGS_MAX: Final = 4096
"""Cached directory listings at most (each at most one payload, 4 KiB)."""
LISTING_BYTES_MAX: Final = 4096


class Tree:
    """All nodes by canonical path, and the generation counter they share."""

    __slots__ = ("dirty", "generation", "journal", "listings", "nodes", "usage")

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.generation = 0
        self.usage: dict[int, list[int]] = {}
        self.listings: dict[str, bytes] = {}
        self.journal: set[str] | None = None
        self.dirty: set[str] | None = None

    def changed(self, path: str) -> None:
        """The node at ``path`` was written or removed (or its permissions changed):
        forget its cached listing, and note it in the journal if one is kept."""
        if self.listings:
            self.listings.pop(path, None)
        if self.journal is not None:
            self.journal.add(path)
        if self.dirty is not None:
            self.dirty.add(path)

    def listing(self, path: str, node: Node) -> bytes:
        """The DIRECTORY payload of ``node`` (at ``path``): child names, each NUL-ended."""
        payload = self.listings.get(path)
        if payload is None:
            if not node.children:
                return b""
            payload = ("\0".join(node.child_names(path)) + "\0").encode()
            if len(payload) <= LISTING_BYTES_MAX:  # a bigger one is an E2BIG anyway
                if len(self.listings) >= LISTINGS_MAX:
                    self.listings.clear()
                self.listings[path] = payload
        return payload

    def charge(self, path: str, node: Node, sign: int) -> None:
        """Add (``sign`` 1) or remove (-1) a node's cost from its owner's usage."""
        usage = self._usage_of(node)
        usage[0] += sign
        usage[1] += sign * node_cost(path, node)

    def set_value(self, node: Node, value: bytes) -> None:
        """Give ``node`` (in the tree) a new value; its owner's usage changes by what
        :func:`node_cost` counts of it, the value's length (path and owner stay)."""
        self._usage_of(node)[1] += len(value) - len(node.value)
        node.value = value

    def _usage_of(self, node: Node) -> list[int]:
        """The usage row of ``node``'s owner (made if it has none yet)."""
        owner = node.perms[0][1]
        usage = self.usage.get(owner)
        if usage is None:
            usage = self.usage[owner] = [0, 0]
        return usage

    def count_usage(self) -> dict[int, list[int]]:
        """The usage recounted from the nodes: what :attr:`usage` holds, but for owners
        whose count fell to ``[0, 0]``, which it may keep."""
        usage: dict[int, list[int]] = {}
        for path, node in self.nodes.items():
            entry = usage.get(node.perms[0][1])
            if entry is None:
                entry = usage[node.perms[0][1]] = [0, 0]
            entry[0] += 1
            entry[1] += node_cost(path, node)
        return usage

    def check(self) -> list[str]:
        """Consistency check: every listed child exists and every node but ``/`` is
        listed by its parent; the problems found, as text."""
        nodes = self.nodes
        problems = []
        listed = {"/"}
        for path, node in nodes.items():
            for child in node.children:
                listed.add(child)
                if child not in nodes:
                    problems.append(f"{path} lists missing child {child}")
        problems.extend(f"{p} is not listed by its parent" for p in nodes.keys() - listed)
        return problems

    def next_generation(self) -> int:
        """Advance the counter and return the new value."""
        self.generation += 1
        return self.generation

    @classmethod
    def initial(cls) -> Tree:
        """The tree C xenstored starts with: ``/``, ``/tool``, ``/tool/xenstored``."""
        tree = cls()
        for path in ("/", "/tool", "/tool/xenstored"):
            tree.nodes[path] = Node(b"", P.DEFAULT, NO_CHILDREN, tree.next_generation())
        tree.nodes["/"].children = ["/tool"]
        tree.nodes["/tool"].children = ["/tool/xenstored"]
        for path, node in tree.nodes.items():
            tree.charge(path, node, 1)
        return tree

    def get(self, path: str) -> Node | None:
        """The node at ``path``, if any."""
        return self.nodes.get(path)

    def walk_nodes(self, top: str = "/") -> Iterator[tuple[str, Node]]:
        """``(path, node)`` for ``top`` and its descendants, depth first in child order."""
        nodes = self.nodes
        stack = [top]
        pop = stack.pop
        extend = stack.extend
        while stack:
            path = pop()
            node = nodes[path]
            yield path, node
            if node.children:
                extend(reversed(node.children))

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
