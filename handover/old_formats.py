"""Readers of records that only earlier versions write, for ``handover.load``.

Format 1 sent the tree as ``nodes`` records of full paths in depth-first order, parents
first, followed by the permission table, and each watch as a ``watch`` record. (Format
2 sent the watchdogs as an ``ext`` record: ``handover.load`` reads it as any ``ext``.)
"""

from __future__ import annotations

import re

from handover.errors import StateError
from xsd.core import perms as P
from xsd.core.state import State
from xsd.core.tree import NO_CHILDREN, Node

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    Record: TypeAlias = list[Any]
    """One record: a list headed by its kind (a str)."""


class Format1:
    """The loader's readers of format 1's records (the loader dispatches on the kind)."""

    state: State
    perm_table: list[P.Perms] | None
    pending_nodes: list[Record]

    def _watches(self, r: Record) -> None:
        raise NotImplementedError  # the loader's

    def _nodes(self, r: Record) -> None:
        # Format 1. Permission ids are resolved when the table arrives (it follows).
        if self.perm_table is not None:
            raise StateError("node records after the permission table")
        _, paths, values, perm_col, gens = r
        if not (len(paths) == len(values) == len(perm_col) == len(gens)):
            raise StateError("a nodes record has columns of different lengths")
        self.pending_nodes.append(r)

    def _build_nodes(self, table: list[P.Perms]) -> None:
        """Format 1: the tree from ``nodes`` records, one node at a time."""
        tree = self.state.tree
        nodes = tree.nodes
        usage = tree.usage
        for _, paths, values, perm_col, gens in self.pending_nodes:
            _check_paths(paths, values)
            # The hot loop of a restore: one iteration per node, nothing it can skip.
            for path, value, pid, gen in zip(paths, values, perm_col, gens, strict=True):
                perms = table[pid]
                node = Node(value, perms, NO_CHILDREN, gen)
                cut = path.rfind("/")
                if cut > 0:
                    parent = nodes.get(path[:cut])
                elif path != "/":
                    parent = nodes.get("/")
                else:
                    if nodes:
                        raise StateError("the root is not the first node")
                    parent = None
                if parent is not None:
                    siblings = parent.children  # add_child(), inlined: the hot loop
                    if siblings:
                        siblings.append(path)
                    else:
                        parent.children = [path]
                elif path != "/":
                    raise StateError(f"node {path} comes before its parent")
                if nodes.setdefault(path, node) is not node:
                    raise StateError(f"node {path} appears twice")
                owner = perms[0][1]
                cost = 32 + len(path) + len(value) + 8 * (len(perms) - 1)
                if cut >= 0 and path != "/":
                    cost += len(path) - cut
                entry = usage.get(owner)
                if entry is None:
                    usage[owner] = [1, cost]
                else:
                    entry[0] += 1
                    entry[1] += cost
        self.pending_nodes = []

    def _watch(self, r: Record) -> None:
        # Format 1: a record per watch.
        _, cid, seq, path, token, relative_to = r
        self._watches(["watches", [cid], [seq], [path], [bytes(token)], [relative_to]])


_PATHS_OK = re.compile(r"(?:(?:/[A-Za-z0-9_@-]+)+|/)(?:\n(?:(?:/[A-Za-z0-9_@-]+)+|/))*")
_PATH_OK = re.compile(r"(?:/[A-Za-z0-9_@-]+)+|/")


def _check_paths(paths: list[Any], values: list[Any]) -> None:
    """Every path canonical and every value bytes, checked in bulk (one regex pass over
    all paths; only a failure looks for the culprit)."""
    if not all(type(p) is str for p in paths) or not _PATHS_OK.fullmatch("\n".join(paths)):
        bad = next(p for p in paths if type(p) is not str or not _PATH_OK.fullmatch(p))
        raise StateError(f"invalid node path {bad!r}")
    if not all(type(v) is bytes for v in values):
        raise StateError("a node value is not a byte string")
