"""The node tree as one record of columns in breadth-first order, and back.

A restore's cost is the tree: a million nodes rebuilt one by one in Python take seconds.
This layout lets both directions run almost entirely in C-level bulk operations (``map``,
slices, ``str.split``, ``dict(zip(...))``), with Python-level work once per directory,
not per node:

* nodes go in breadth-first order from ``/``, children in their stored (creation) order,
  so the children of every node are one contiguous run of the columns;
* the names (last path components) of all nodes but ``/`` go as one text, separated by
  newlines, with a column of their lengths; each node also carries its number of
  children. A directory's children are then one slice of that text, and their full
  paths one ``replace`` and one ``split`` of it (prefix + name: a path cannot disagree
  with its place in the tree), with no string per name in between;
* permissions are ids into the permission table (``perms`` record, sent before);
* the columns of integers go packed, as little-endian arrays in one byte string each
  (``INT_COLUMNS``: unsigned, 32 bits, 64 for generations): unpacking a list of a
  million ints into a million objects, only to walk them once, would cost more than
  the rest of the columns. (Format 2 sent them as lists; those still load.)

The record: ``["tree", names, name_lengths, values, perm_ids, generations,
child_counts]``; every column has one entry per node, ``/`` first (name length 0).
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Generator
from itertools import compress, repeat
from operator import attrgetter, itemgetter

from xsd.core import perms as P
from xsd.core.tree import NO_CHILDREN, Node, Tree

_NAME_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@-"
NAME_OK = re.compile(r"[A-Za-z0-9_@-]+")
"""One valid path component."""

_value = attrgetter("value")
_perms = attrgetter("perms")
_gen = attrgetter("gen")


class TreeError(ValueError):
    """The columns do not describe a tree."""


INT_COLUMNS = {2: "I", 4: "I", 5: "Q", 6: "I"}
"""The columns of integers, by position in the record, with their ``array`` type codes:
name lengths, permission ids and child counts 32 bits, generations 64."""


def pack_ints(values: list[int], code: str) -> bytes:
    """``values`` as a little-endian array of type ``code`` (OverflowError if one does
    not fit)."""
    packed = array(code, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack_ints(column: Any, code: str, name: str) -> array[int] | list[Any]:
    """A column of integers as :func:`pack_ints` packed it (an ``array``), or as format
    2 sent it (a list, checked later)."""
    if isinstance(column, list):
        return column
    if not isinstance(column, bytes):
        raise TreeError(f"the {name} are neither packed nor a list")
    unpacked = array(code)
    if len(column) % unpacked.itemsize:
        raise TreeError(f"the packed {name} are not a whole number of {unpacked.itemsize} bytes")
    unpacked.frombytes(column)
    if sys.byteorder == "big":
        unpacked.byteswap()
    return unpacked


STEP_NODES = 20_000
"""About how many nodes :func:`dump_tree_steps` walks between two steps."""

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any, TypeAlias, TypeVar

    Ints: TypeAlias = "array[int] | list[Any]"
    """A column of integers: packed (format 3) or a list (format 2)."""
    Steps: TypeAlias = Generator[None, None, tuple[list[Any], list[P.Perms]]]
    T = TypeVar("T")


def run_steps(steps: Generator[None, None, T]) -> T:
    """Run a generator of steps (see :func:`dump_tree_steps`) at once, to its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result


def dump_tree(tree: Tree) -> tuple[list[Any], list[P.Perms]]:
    """The ``tree`` record of ``tree`` and the permission table its ids refer to."""
    return run_steps(dump_tree_steps(tree))


def dump_tree_steps(tree: Tree) -> Steps:
    """:func:`dump_tree` in steps (a generator that yields between them and returns
    the record and the table), so that a daemon can serve between them.

    If the tree changes between steps, the record is a fuzzy copy: still one tree, each
    directory listed as it was when the walk reached it and each value as it is at the
    end, and exact for every node that did not change meanwhile. Whoever changes the
    tree meanwhile must journal what they change (``Tree.journal``), so that a delta
    (``handover.tree_delta``) can make it exact.
    """
    nodes = tree.nodes
    order = ["/"]
    node_list = [nodes["/"]]
    texts: list[str] = []
    lengths = [0]
    counted: list[tuple[int, int]] = []  # (position, number of children listed)
    next_step = STEP_NODES
    # Both lists grow while we walk them: breadth first. Each node is looked up once,
    # in C (map), with its siblings; the Python loop only touches directories' lists.
    for i, (path, node) in enumerate(zip(order, node_list, strict=False)):
        children = node.children
        if not children:
            continue
        try:
            kids = list(map(nodes.__getitem__, children))
        except KeyError:
            # A node removed or replaced since it was queued (between steps): what is
            # left of its children; the journal has the rest.
            children = [c for c in children if c in nodes]
            if not children:
                continue
            kids = list(map(nodes.__getitem__, children))
        order.extend(children)
        node_list.extend(kids)
        cut = 1 if path == "/" else len(path) + 1
        names = list(map(itemgetter(slice(cut, None)), children))
        texts.append("\n".join(names))
        lengths.extend(map(len, names))
        counted.append((i, len(names)))
        if len(order) >= next_step:
            yield
            next_step = len(order) + STEP_NODES
    counts = [0] * len(order)
    for i, count in counted:
        counts[i] = count
    perms = list(map(_perms, node_list))
    yield
    table = list(dict.fromkeys(perms))
    ids = {p: i for i, p in enumerate(table)}
    perm_ids = list(map(ids.__getitem__, perms))
    del perms
    yield
    values = list(map(_value, node_list))
    gens = list(map(_gen, node_list))
    record: list[Any] = ["tree", "\n".join(texts), lengths, values, perm_ids, gens, counts]
    for column, code in INT_COLUMNS.items():
        record[column] = pack_ints(record[column], code)
    return record, table


def load_tree(record: list[Any], table: list[P.Perms], *, count_usage: bool = True) -> Tree:
    """A tree (nodes, and usage unless not ``count_usage``; generation left at 0) from
    a ``tree`` record.

    Raises:
        TreeError: the columns are malformed or do not describe one tree rooted at ``/``.
        TypeError, IndexError, KeyError: a column holds something of the wrong kind
            (``handover.records.load`` reports these as a malformed record).
    """
    if len(record) != 7:
        raise TreeError("a tree record has the wrong number of columns")
    text: Any = record[1]
    values: list[Any] = record[3]
    lengths, ids, gens, counts = (
        unpack_ints(record[i], INT_COLUMNS[i], _NAMES[i]) for i in (2, 4, 5, 6)
    )
    n = len(lengths)
    if not n or not (len(values) == len(ids) == len(gens) == len(counts) == n):
        raise TreeError("a tree record has empty columns or columns of different lengths")
    _check_columns(text, lengths, values, gens, counts)
    node_list = list(
        map(Node, values, map(dict(enumerate(table)).__getitem__, ids), repeat(NO_CHILDREN), gens)
    )  # KeyError: an id not in the table
    # Usage per permission id: the sum of the per-node part of node_cost and the count.
    sums = [0] * len(table)
    nums = [0] * len(table)
    sums[ids[0]] += 1 + len(values[0])  # /: its path, its value, and no name
    nums[ids[0]] += 1
    # Directories come in breadth-first order, so the runs of their children follow one
    # another: the k-th node's children start where the previous directory's ended, and
    # their names right after the previous run's names in the text. Running sums, not a
    # column of offsets: a million int objects would cost more than the walk.
    paths: list[str] = [""] * n
    paths[0] = "/"
    start = 1
    at = 0
    for k in compress(range(n), counts):
        if start <= k:
            raise TreeError("the tree record is not in breadth-first order")
        count = counts[k]
        end = start + count
        if end > n:
            raise TreeError(f"child counts add up to more than the {n - 1} nodes below /")
        span = sum(lengths[start:end]) + count - 1
        prefix = "/" if k == 0 else paths[k] + "/"
        names = text[at : at + span]
        at += span + 1
        children = (prefix + names.replace("\n", "\n" + prefix)).split("\n")
        if len(children) != count:
            raise TreeError("the name lengths do not match the names")
        paths[start:end] = children
        node_list[k].children = children
        begin, start = start, end
        if not count_usage:
            continue
        # A child costs its path (prefix + name), its value, its name and separator.
        kid_ids = ids[begin:end]
        pid = kid_ids[0]
        if kid_ids.count(pid) == count:  # the usual case: one owner, in bulk
            name_chars = len(names) - (count - 1)
            value_chars = sum(map(len, values[begin:end]))
            sums[pid] += count * (len(prefix) + 1) + 2 * name_chars + value_chars
            nums[pid] += count
        else:
            fixed = len(prefix) + 1
            kid_lengths = lengths[begin:end]
            kid_values = values[begin:end]
            for pid, name_length, value in zip(kid_ids, kid_lengths, kid_values, strict=True):
                sums[pid] += fixed + 2 * name_length + len(value)
                nums[pid] += 1
    if start != n:
        raise TreeError(f"child counts add up to {start - 1} nodes below / of {n - 1}")
    tree = Tree()
    tree.nodes = dict(zip(paths, node_list, strict=True))
    if len(tree.nodes) != n:
        raise TreeError("a node appears twice (two siblings of the same name)")
    for pid, count in enumerate(nums):
        if count:
            owner_perms = table[pid]
            entry = tree.usage.setdefault(owner_perms[0][1], [0, 0])
            entry[0] += count
            entry[1] += sums[pid] + count * (32 + 8 * (len(owner_perms) - 1))
    return tree


_NAMES = {2: "name lengths", 4: "permission ids", 5: "generations", 6: "child counts"}


def _check_columns(text: Any, lengths: Ints, values: list[Any], gens: Ints, counts: Ints) -> None:
    """What the build would not catch by itself, in bulk C-level passes: names of path
    characters only, none empty, as long as their lengths say; values of bytes;
    generations non-negative ints."""
    n = len(lengths)
    if not isinstance(text, str) or lengths[0] != 0:
        raise TreeError("the tree record does not start at / or its names are no text")
    if n > 1:
        # Only path characters and newlines (bytes.translate is a C loop; a regex over a
        # million names is ten times slower), no empty name, one newline between names.
        raw = text.encode(errors="replace")
        if (
            raw.translate(None, _NAME_CHARS + b"\n")
            or not raw
            or raw.startswith(b"\n")
            or raw.endswith(b"\n")
            or b"\n\n" in raw
            or raw.count(b"\n") != n - 2
            or sum(lengths) + n - 2 != len(text)
        ):
            bad = next((x for x in text.split("\n") if not NAME_OK.fullmatch(x)), "?")
            raise TreeError(f"invalid node name {bad!r} (or names that their lengths belie)")
    elif text:
        raise TreeError("names in a tree of / alone")
    if not set(map(type, values)) <= {bytes}:
        raise TreeError("a node value is not a byte string")
    if isinstance(gens, list):  # format 2; packed ones are ints from 0 up by their type
        try:
            array("Q", gens)  # one C pass: ints from 0 up only (and bools, which are ints)
        except (TypeError, OverflowError):
            raise TreeError("a generation is not a non-negative integer") from None
    # Child counts need no pass of their own: accumulate() into an array refuses
    # anything but ints, and a negative count cannot match the names it claims.
