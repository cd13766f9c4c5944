"""What changed in the tree since a dump of it: a ``delta`` record, and applying it.

Live update dumps the tree at ``-f`` (for the dry run) and keeps that dump; from then
on the tree's journal names every path written or removed. At ``-s`` the old process
sends the kept dump and, after it, the current state of just the journaled paths, so
the stall does not pay for dumping a million unchanged nodes.

The record: ``["delta", entries]``, one entry per changed path, in any order:
``[path, None]`` for a path that no longer exists, else
``[path, value, permission id, generation, [child names]]``. Applying it replaces those
nodes (removing, adding, or rewriting them), recharges their owners' usage, and checks
that every node it touched is linked to its parent and its children as a tree must be.
"""

from __future__ import annotations

from collections.abc import Iterable

from handover.tree_columns import NAME_OK
from xsd.core import perms as P
from xsd.core.tree import NO_CHILDREN, Children, Node, Tree

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any


class DeltaError(ValueError):
    """The delta does not fit the tree it applies to."""


def dump_delta(
    tree: Tree, paths: Iterable[str], ids: dict[P.Perms, int], ordered: bool = True
) -> list[Any]:
    """The ``delta`` record for ``paths``; permissions not yet in ``ids`` are added
    to it (the caller sends the table after this call). ``ordered``: the entries sorted
    by path (a dump that reads the same every time); :func:`apply_delta` takes any
    order, so durable mode's journal leaves the sort out."""
    entries: list[Any] = []
    nodes = tree.nodes
    last: P.Perms | None = None  # nodes share their permissions object: look it up once
    last_id = 0
    for path in sorted(paths) if ordered else paths:
        node = nodes.get(path)
        if node is None:
            entries.append([path, None])
            continue
        perms = node.perms
        if perms is not last:
            pid = ids.get(perms)
            if pid is None:
                pid = ids[perms] = len(ids)
            last, last_id = perms, pid
        names = node.child_names(path) if node.children else []
        entries.append([path, node.value, last_id, node.gen, names])
    return ["delta", entries]


def apply_delta(tree: Tree, record: list[Any], table: list[P.Perms]) -> None:
    """Apply a ``delta`` record to ``tree`` (nodes and usage).

    Child lists hold the very strings the dict is keyed by, as everywhere in the tree
    (a child's key from the delta if it is in it, else from its parent's old list).

    Raises:
        DeltaError: an entry is malformed, or the result is not a tree where it changed.
    """
    if len(record) != 2 or not isinstance(record[1], list):
        raise DeltaError("a tree-delta record is not [kind, entries]")
    nodes = tree.nodes
    present: list[tuple[str, Node, list[str]]] = []
    touched: list[str] = []
    replaced: list[tuple[str, Children]] = []  # nodes the delta replaces: their old lists
    for entry in record[1]:
        path = entry[0]
        if not isinstance(path, str) or not path.startswith("/"):
            raise DeltaError(f"a tree-delta entry has no valid path: {entry!r:.80}")
        old = nodes.pop(path, None)
        if old is not None:
            tree.charge(path, old, -1)
            if old.children:
                replaced.append((path, old.children))
        touched.append(path)
        if len(entry) == 2 and entry[1] is None:
            continue
        _, value, pid, gen, names = entry
        if not isinstance(value, bytes) or type(gen) is not int or not isinstance(names, list):
            raise DeltaError(f"a tree-delta entry for {path} is malformed")
        if not 0 <= pid < len(table):
            raise DeltaError(f"a tree-delta entry for {path} names no permission")
        present.append((path, Node(value, table[pid], NO_CHILDREN, gen), names))
    for path, node, _ in present:
        nodes[path] = node
        tree.charge(path, node, 1)
    keys: dict[str, str] = {}  # the strings the dict is keyed by now
    for _, old_children in replaced:
        keys.update(zip(old_children, old_children, strict=True))
    keys.update((path, path) for path, _, _ in present)  # re-inserted: the delta's
    for path, node, names in present:
        if names:
            if not all(isinstance(n, str) and NAME_OK.fullmatch(n) for n in names):
                raise DeltaError(f"a tree-delta entry for {path} has an invalid child name")
            prefix = "/" if path == "/" else path + "/"
            children = [prefix + name for name in names]
            node.children = [keys.get(child, child) for child in children]
    if len(set(touched)) != len(touched):
        raise DeltaError("a path appears twice in the tree-delta")
    _check(tree, touched, replaced)


def _check(tree: Tree, touched: list[str], replaced: list[tuple[str, Children]]) -> None:
    """Every touched path linked as a tree requires, both ways, and no node left behind
    by a parent that stopped listing it (set operations: a directory can have a
    hundred thousand children)."""
    nodes = tree.nodes
    touched_set = set(touched)
    for path, old_children in replaced:
        new = nodes.get(path)
        gone = set(old_children).difference(new.children if new is not None else ())
        gone -= touched_set
        if any(child in nodes for child in gone):
            raise DeltaError(f"after the tree-delta, a child of {path} has no parent listing it")
    listed_by: dict[str, set[str]] = {}  # a parent's children as a set, made once
    for path in touched:
        node = nodes.get(path)
        if path == "/":
            if node is None:
                raise DeltaError("the tree-delta removes /")
        else:
            parent_path = path[: path.rfind("/")] or "/"
            parent = nodes.get(parent_path)
            listed = False
            if parent is not None:
                children = listed_by.get(parent_path)
                if children is None:
                    children = listed_by[parent_path] = set(parent.children)
                listed = path in children
            if listed != (node is not None):
                raise DeltaError(f"after the tree-delta, {path} and its parent disagree")
        if node is not None and not all(child in nodes for child in node.children):
            raise DeltaError(f"after the tree-delta, {path} lists a child that does not exist")
