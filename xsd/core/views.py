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

Generation numbers are spent as C spends them: one per node write and per delete, in a
transaction too (its copies are renumbered at commit).

Accounting: a view keeps each owner's ``[nodes, bytes]`` usage true. A node obtained
with ``for_write`` must be handed back to ``written`` before anything else happens (no
check may fail in between), since its old cost was already taken off.
"""

from __future__ import annotations

from xsd.core.errors import XsError
from xsd.core.perms import Perms
from xsd.core.tree import Node, Tree, node_cost


class View:
    """What node operations need from the tree: the base of the two views.

    A class rather than a protocol: compiled, a call through a protocol is a call by
    name with its arguments parsed (about 750 instructions); through a base class, an
    indirect C call.
    """

    __slots__ = ()

    def get(self, path: str) -> Node | None:
        """The node at ``path`` as this view sees it (do not modify it)."""
        raise NotImplementedError

    def for_write(self, path: str) -> Node:
        """An existing node that the caller will modify, then pass to :meth:`written`."""
        raise NotImplementedError

    def written(self, path: str, node: Node) -> None:
        """``node`` (from :meth:`for_write`, or new) now holds the state of ``path``."""
        raise NotImplementedError

    def set_value(self, path: str, value: bytes) -> None:
        """The existing node at ``path`` holds ``value`` now (its permissions and
        children kept): :meth:`for_write` and :meth:`written` in one (WRITE's case)."""
        raise NotImplementedError

    def delete(self, path: str) -> None:
        """Remove the node at ``path`` (its children must be gone already)."""
        raise NotImplementedError

    def usage(self, domid: int) -> tuple[int, int]:
        """``(nodes, bytes)`` owned by ``domid`` as this view sees it."""
        raise NotImplementedError

    def listing(self, path: str, node: Node) -> bytes:
        """The DIRECTORY payload of ``node`` (at ``path``) as this view sees it."""
        raise NotImplementedError

    def doom(self) -> None:
        """A create failed: a transaction can no longer commit (C fails it: ENOMEM)."""
        raise NotImplementedError


class DirectView(View):
    """Operations applied straight to the tree."""

    __slots__ = ("_open", "tree")

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._open: str | None = None

    def get(self, path: str) -> Node | None:
        return self.tree.nodes.get(path)

    def for_write(self, path: str) -> Node:
        node = self.tree.nodes[path]
        self.tree.charge(path, node, -1)
        self._open = path
        return node

    def written(self, path: str, node: Node) -> None:
        tree = self.tree
        if self._open == path:
            self._open = None
        else:
            old = tree.nodes.get(path)
            if old is not None:
                tree.charge(path, old, -1)
        node.gen = tree.next_generation()
        tree.nodes[path] = node
        tree.charge(path, node, 1)
        tree.changed(path)

    def set_value(self, path: str, value: bytes) -> None:
        tree = self.tree
        node = tree.nodes[path]
        tree.set_value(node, value)
        node.gen = tree.next_generation()
        tree.changed(path)

    def delete(self, path: str) -> None:
        # C xenstored spends a generation number on every delete too.
        tree = self.tree
        tree.next_generation()
        tree.charge(path, tree.nodes.pop(path), -1)
        tree.changed(path)

    def usage(self, domid: int) -> tuple[int, int]:
        usage = self.tree.usage.get(domid)
        return (usage[0], usage[1]) if usage else (0, 0)

    def listing(self, path: str, node: Node) -> bytes:
        return self.tree.listing(path, node)

    def doom(self) -> None:
        pass  # outside a transaction a failed create changed nothing


class Transaction:
    """One open transaction of a connection: its accessed nodes and pending events.

    ``accessed`` maps each path touched, in first-access order, to the generation it had
    then (None: it did not exist). ``nodes`` holds the transaction's own version of each
    accessed path (None: absent); ``modified`` the paths it wrote or deleted. ``events``
    are the watch events to fire at commit, each (path, exact) recorded once however
    often the transaction changes the node; ``failed`` dooms the commit (ENOMEM).
    ``size`` is what the copies in ``nodes`` count against the ``transaction-memory``
    quota (:func:`copy_cost` of each). ``delta`` is what committing would change in each
    owner's ``[nodes, bytes]`` usage, kept up to date as the transaction writes (against
    the global nodes as they were then: the same at commit, or the commit conflicts).

    ``size`` and ``delta`` hold only while ``counted``: a transaction no quota applies
    to (a privileged connection's) is not counted as it goes, and :meth:`settle` counts
    it when someone asks.
    """

    __slots__ = (
        "accessed",
        "counted",
        "delta",
        "event_keys",
        "events",
        "failed",
        "generation",
        "id",
        "modified",
        "nodes",
        "size",
    )

    def __init__(self, tx_id: int, generation: int) -> None:
        self.id = tx_id
        self.generation = generation
        self.accessed: dict[str, int | None] = {}
        self.nodes: dict[str, Node | None] = {}
        self.modified: set[str] = set()
        self.events: list[tuple[str, bool, Perms | None]] = []
        self.event_keys: set[tuple[str, bool]] = set()
        self.failed = False
        self.size = 0
        self.delta: dict[int, list[int]] = {}
        self.counted = True

    def record(self, events: list[tuple[str, bool, Perms | None]]) -> None:
        """Remember events to fire at commit; one already recorded adds nothing (the
        commit fires one event per node: it needs each (path, exact) once)."""
        keys = self.event_keys
        for event in events:
            key = (event[0], event[1])
            if key not in keys:
                keys.add(key)
                self.events.append(event)

    def recount(self) -> None:
        """Compute ``size`` and ``event_keys`` afresh (a transaction restored from a
        live update's state)."""
        self.size = sum(copy_cost(path, node) for path, node in self.nodes.items())
        self.event_keys = {(path, exact) for path, exact, _ in self.events}

    def settle(self, tree: Tree) -> None:
        """Make ``size`` and ``delta`` true again if they are not kept (``counted``)."""
        if not self.counted:
            self.size = sum(copy_cost(path, node) for path, node in self.nodes.items())
            self.count_delta(tree)
            self.counted = True

    def count_delta(self, tree: Tree) -> None:
        """Compute ``delta`` afresh against ``tree`` (a restored transaction)."""
        self.delta = {}
        for path in self.modified:
            self.contribute(tree, path, 1)

    def contribute(self, tree: Tree, path: str, sign: int) -> None:
        """Add (1) or take back (-1) what this transaction's version of a modified
        ``path`` changes in its owners' usage."""
        delta = self.delta
        old = tree.nodes.get(path)
        if old is not None:
            entry = delta.get(old.perms[0][1])
            if entry is None:
                entry = delta[old.perms[0][1]] = [0, 0]
            entry[0] -= sign
            entry[1] -= sign * node_cost(path, old)
        new = self.nodes[path]
        if new is not None:
            entry = delta.get(new.perms[0][1])
            if entry is None:
                entry = delta[new.perms[0][1]] = [0, 0]
            entry[0] += sign
            entry[1] += sign * node_cost(path, new)


def copy_cost(path: str, node: Node | None) -> int:
    """Bytes a transaction's copy of ``path`` counts: the node's cost and its child
    list (the copy's own), or the record that it is absent."""
    if node is None:
        return 32 + len(path)
    return node_cost(path, node) + 8 * len(node.children)


class TransactionView(View):
    """Operations applied to a transaction's private copies.

    ``max_nodes`` (0: no limit) is the ``transaction-nodes`` quota: touching one node
    more fails with ENOSPC and dooms the transaction. ``max_bytes`` (None: no limit) is
    what is left of the domain's ``transaction-memory`` quota for this transaction's
    copies: a copy or a write that would take ``tx.size`` past it fails the same way
    (a failure between :meth:`for_write` and :meth:`written` is safe here: the doomed
    transaction's copies are never applied).

    ``count`` False (no quota applies: no limits given, no usage asked) leaves the
    transaction's ``size`` and ``delta`` to be counted later (:meth:`Transaction.settle`).
    """

    __slots__ = ("_count", "_open", "max_bytes", "max_nodes", "tree", "tx")

    def __init__(
        self,
        tree: Tree,
        tx: Transaction,
        max_nodes: int = 0,
        max_bytes: int | None = None,
        count: bool = True,
    ) -> None:
        self.tree = tree
        self.tx = tx
        self.max_nodes = max_nodes
        self.max_bytes = max_bytes
        self._open: str | None = None
        self._count = count
        if count:
            tx.settle(tree)
        else:
            tx.counted = False

    def _access(self, path: str) -> Node | None:
        tx = self.tx
        nodes = tx.nodes
        if path in nodes:
            return nodes[path]
        if self.max_nodes and len(nodes) >= self.max_nodes:
            tx.failed = True
            raise XsError("ENOSPC")
        node = self.tree.nodes.get(path)
        if self._count:
            cost = copy_cost(path, node)
            if self.max_bytes is not None and tx.size + cost > self.max_bytes:
                tx.failed = True
                raise XsError("ENOSPC")
            tx.size += cost
        else:
            tx.counted = False
        if node is None:
            tx.accessed[path] = None
        else:
            tx.accessed[path] = node.gen
            node = node.copy()
        nodes[path] = node
        return node

    def get(self, path: str) -> Node | None:
        return self._access(path)

    def for_write(self, path: str) -> Node:
        node = self._access(path)
        if node is None:
            raise KeyError(path)
        if self._count:
            tx = self.tx
            tx.size -= copy_cost(path, node)  # counted again, changed, by written()
            if path in tx.modified:
                tx.contribute(self.tree, path, -1)  # likewise
        self._open = path
        return node

    def written(self, path: str, node: Node) -> None:
        tx = self.tx
        if path not in tx.nodes:
            self._access(path)
        if not self._count:
            self._open = None
            node.gen = self.tree.next_generation()
            tx.nodes[path] = node
            tx.modified.add(path)
            tx.counted = False
            return
        if self._open == path:
            self._open = None
        else:
            tx.size -= copy_cost(path, tx.nodes[path])
            if path in tx.modified:
                tx.contribute(self.tree, path, -1)
        cost = copy_cost(path, node)
        if self.max_bytes is not None and tx.size + cost > self.max_bytes:
            tx.failed = True
            tx.size += copy_cost(path, tx.nodes[path])  # the copy stays as it was counted
            raise XsError("ENOSPC")
        # The transaction's copy is numbered now and renumbered at commit, as in C.
        node.gen = self.tree.next_generation()
        tx.nodes[path] = node
        tx.size += cost
        tx.modified.add(path)
        tx.contribute(self.tree, path, 1)

    def set_value(self, path: str, value: bytes) -> None:
        node = self.for_write(path)
        node.value = value
        self.written(path, node)

    def delete(self, path: str) -> None:
        tx = self.tx
        if path not in tx.nodes:
            self._access(path)
        self.tree.next_generation()
        if not self._count:
            tx.nodes[path] = None
            tx.modified.add(path)
            tx.counted = False
            return
        if path in tx.modified:
            tx.contribute(self.tree, path, -1)
        tx.size += copy_cost(path, None) - copy_cost(path, tx.nodes[path])
        tx.nodes[path] = None
        tx.modified.add(path)
        tx.contribute(self.tree, path, 1)

    def listing(self, path: str, node: Node) -> bytes:
        if not node.children:
            return b""
        return ("\0".join(node.child_names(path)) + "\0").encode()

    def doom(self) -> None:
        self.tx.failed = True

    def usage(self, domid: int) -> tuple[int, int]:
        self.tx.settle(self.tree)
        base = self.tree.usage.get(domid)
        count, size = (base[0], base[1]) if base else (0, 0)
        delta = self.tx.delta.get(domid)
        if delta is not None:
            count += delta[0]
            size += delta[1]
        return count, size


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
        old = nodes.get(path)
        if old is not None:
            tree.charge(path, old, -1)
        tree.changed(path)
        node = tx.nodes[path]
        if node is None:
            nodes.pop(path, None)
        else:
            node.gen = tree.next_generation()
            nodes[path] = node
            tree.charge(path, node, 1)
