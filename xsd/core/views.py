"""Two views of the tree that node operations run against: direct, or in a transaction.

Operations (``xsd.core.ops``) never touch ``Tree.nodes`` themselves; they ask a view.
:class:`DirectView` changes the tree at once and stamps each written node with a new
generation. :class:`TransactionView` works as C xenstored's transactions do:

* the first access to a node, read or write, records the node's generation (or that it
  did not exist) and from then on the transaction works on its own copy, so it reads its
  own writes and repeated reads agree;
* nothing is visible outside until commit; commit succeeds only if every node the
  transaction accessed still has the generation recorded (or still does not exist), and
  then the copies replace the global nodes in first-access order.
"""

from __future__ import annotations

from typing import Protocol

from xsd.core.tree import Node, Tree


class View(Protocol):
    """What node operations need from the tree."""

    def get(self, path: str) -> Node | None:
        """The node at ``path`` as this view sees it (do not modify it)."""

    def for_write(self, path: str) -> Node:
        """An existing node that the caller will modify, then pass to :meth:`written`."""

    def written(self, path: str, node: Node) -> None:
        """``node`` (from :meth:`for_write`, or new) now holds the state of ``path``."""

    def delete(self, path: str) -> None:
        """Remove the node at ``path`` (its children must be gone already)."""


class DirectView:
    """Operations applied straight to the tree."""

    __slots__ = ("tree",)

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def get(self, path: str) -> Node | None:
        return self.tree.nodes.get(path)

    def for_write(self, path: str) -> Node:
        return self.tree.nodes[path]

    def written(self, path: str, node: Node) -> None:
        node.gen = self.tree.next_generation()
        self.tree.nodes[path] = node

    def delete(self, path: str) -> None:
        # C xenstored spends a generation number on every delete too.
        self.tree.next_generation()
        del self.tree.nodes[path]


class Transaction:
    """One open transaction of a connection: its accessed nodes and pending events.

    ``accessed`` maps each path touched, in first-access order, to the generation it had
    then (None: it did not exist). ``nodes`` holds the transaction's own version of each
    accessed path (None: absent). ``events`` are the watch events to fire at commit.
    """

    __slots__ = ("accessed", "events", "failed", "generation", "id", "modified", "nodes")

    def __init__(self, tx_id: int, generation: int) -> None:
        self.id = tx_id
        self.generation = generation
        self.accessed: dict[str, int | None] = {}
        self.nodes: dict[str, Node | None] = {}
        self.modified: set[str] = set()
        self.events: list[tuple[str, bool]] = []
        self.failed = False


class TransactionView:
    """Operations applied to a transaction's private copies."""

    __slots__ = ("tree", "tx")

    def __init__(self, tree: Tree, tx: Transaction) -> None:
        self.tree = tree
        self.tx = tx

    def _access(self, path: str) -> Node | None:
        nodes = self.tx.nodes
        if path in nodes:
            return nodes[path]
        node = self.tree.nodes.get(path)
        if node is None:
            self.tx.accessed[path] = None
        else:
            self.tx.accessed[path] = node.gen
            node = node.copy()
        nodes[path] = node
        return node

    def get(self, path: str) -> Node | None:
        return self._access(path)

    def for_write(self, path: str) -> Node:
        node = self._access(path)
        assert node is not None, "for_write of a missing node"
        return node

    def written(self, path: str, node: Node) -> None:
        if path not in self.tx.nodes:
            self._access(path)
        # The transaction's copy is numbered now and renumbered at commit, as in C.
        node.gen = self.tree.next_generation()
        self.tx.nodes[path] = node
        self.tx.modified.add(path)

    def delete(self, path: str) -> None:
        if path not in self.tx.nodes:
            self._access(path)
        self.tree.next_generation()
        self.tx.nodes[path] = None
        self.tx.modified.add(path)


def conflicts(tree: Tree, tx: Transaction) -> bool:
    """True if a node the transaction accessed changed since (commit must fail: EAGAIN)."""
    nodes = tree.nodes
    for path, gen in tx.accessed.items():
        node = nodes.get(path)
        if (node.gen if node is not None else None) != gen:
            return True
    return False


def apply(tree: Tree, tx: Transaction) -> None:
    """Write a transaction's changes into the tree (after :func:`conflicts` said no).

    Changed nodes get new generations in first-access order, as C xenstored commits.
    """
    nodes = tree.nodes
    modified = tx.modified
    for path in tx.accessed:
        if path not in modified:
            continue
        node = tx.nodes[path]
        if node is None:
            nodes.pop(path, None)
        else:
            node.gen = tree.next_generation()
            nodes[path] = node
