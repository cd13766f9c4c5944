"""The node operations, each applied to a :class:`~xsd.core.views.View` for a caller.

Each function checks permissions the way C xenstored does, changes the view, and
returns the watch events the change causes as ``(path, exact, old_perms)``: ``exact``
events fire only watches on exactly that path (the descendants of a removed subtree),
the others fire watches on the path and on its ancestors; ``old_perms`` are the node's
permissions before the change where they matter for who may see the event. Failures raise
:class:`~xsd.core.errors.XsError` before anything is changed.

Information hiding (C's ``errno_from_parents``): for a missing node, the caller learns
ENOENT only if it has the same access to the nearest existing ancestor, else EACCES.
"""

from __future__ import annotations

from collections.abc import Mapping

from xsd.core import perms as P
from xsd.core.caller import Caller
from xsd.core.errors import XsError
from xsd.core.paths import parent_of
from xsd.core.tree import Node, add_child, node_cost, record_size, remove_child
from xsd.core.views import View
from xsd_client.protocol import PAYLOAD_MAX

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final

Event = tuple[str, bool, "P.Perms | None"]
"""A watch event: path, whether it fires exact watches only, permissions before the change."""


DOM0: Final = Caller(0, True)


def access(caller: Caller, node: Node) -> int:
    """The access bits ``caller`` has on ``node``.

    A function here, not a method of :class:`Caller`: this module is compiled and
    ``Caller`` (a :class:`~xsd.core.fields.Fields` class) is not, so a method would cost
    every request an interpreted call.
    """
    if caller.privileged:
        return P.FULL
    return P.access_for(node.perms, caller.domid, caller.target)


def _missing(view: View, caller: Caller, path: str, need: int) -> XsError:
    """The error for a missing node: ENOENT if the nearest ancestor allows ``need``.

    The ancestors are read even for a privileged caller, as C does: in a transaction
    that read counts, so a change to the nearest ancestor makes the commit fail.
    """
    while path != "/":
        path = parent_of(path)
        node = view.get(path)
        if node is not None:
            return XsError("ENOENT" if access(caller, node) & need == need else "EACCES")
    return XsError("ENOENT")


def get_checked(view: View, caller: Caller, path: str, need: int) -> Node:
    """The node at ``path`` if the caller has ``need`` on it.

    Raises:
        XsError: ENOENT or EACCES as C decides them.
    """
    node = view.get(path)
    if node is None:
        raise _missing(view, caller, path, need)
    if not caller.privileged and access(caller, node) & need != need:
        raise XsError("EACCES")
    return node


def read(view: View, caller: Caller, path: str) -> bytes:
    """READ: the node's value."""
    return get_checked(view, caller, path, P.READ).value


def directory(view: View, caller: Caller, path: str) -> bytes:
    """DIRECTORY: child names, each NUL-terminated (E2BIG if over the payload limit)."""
    node = get_checked(view, caller, path, P.READ)
    payload = view.listing(path, node)
    if len(payload) > PAYLOAD_MAX:
        raise XsError("E2BIG")
    return payload


def directory_part(view: View, caller: Caller, path: str, offset: int) -> bytes:
    """DIRECTORY_PART: ``<gen>\\0`` then the child list from byte ``offset``.

    ``offset`` counts bytes of the ``name\\0name\\0...`` list and is taken literally,
    as C does. Whole names are added while they fit; a chunk that reaches the end of the
    list carries one extra NUL, and an offset at or past the end gives just that NUL.
    """
    node = get_checked(view, caller, path, P.READ)
    head = str(node.gen).encode() + b"\0"  # compiled, an f-string of one int calls format
    listing = b"".join(n.encode() + b"\0" for n in node.child_names(path))
    total = len(listing)
    if offset < 0 or offset >= total:
        return head + b"\0"
    budget = PAYLOAD_MAX - len(head) - 1
    length = 0
    while True:
        start = offset + length
        name_len = listing.index(b"\0", start) - start
        if length + name_len >= budget:
            break
        length += name_len + 1
        if offset + length == total:
            break
    end = b"\0" if offset + length == total else b""
    return head + listing[offset : offset + length] + end


def get_perms(view: View, caller: Caller, path: str) -> bytes:
    """GET_PERMS: the permission strings, owner first."""
    return P.format_perms(get_checked(view, caller, path, P.READ).perms)


def _create(view: View, caller: Caller, path: str, value: bytes) -> None:
    """Create ``path`` and every missing ancestor; each copies its parent's permissions."""
    missing = [path]
    parent_path = parent_of(path)
    parent = view.get(parent_path)
    while parent is None:
        missing.append(parent_path)
        parent_path = parent_of(parent_path)
        parent = view.get(parent_path)
    if access(caller, parent) & P.WRITE != P.WRITE:
        raise XsError("EACCES")
    # Build top down, then write bottom up, as C xenstored does (the generation
    # counter then numbers the new leaf first and the existing parent last).
    new_nodes: list[tuple[str, Node]] = []
    perms = parent.perms
    for p in reversed(missing):
        perms = P.for_new_child(perms, caller.domid, caller.privileged)
        node = Node(value if p == path else b"", perms)
        if new_nodes:
            add_child(new_nodes[-1][1], p)
        new_nodes.append((p, node))
    top = new_nodes[0][0]
    if caller.limits is not None:
        try:
            _check_create_quota(view, caller, caller.limits, parent, top, new_nodes)
        except XsError:
            view.doom()  # C fails the transaction of a create refused by a quota
            raise
    for p, node in reversed(new_nodes):
        view.written(p, node)
    parent = view.for_write(parent_path)
    add_child(parent, top)
    view.written(parent_path, parent)


def _check_create_quota(
    view: View,
    caller: Caller,
    limits: Mapping[str, int],
    parent: Node,
    top: str,
    new_nodes: list[tuple[str, Node]],
) -> None:
    """Refuse, before anything changes, a create that would exceed the caller's quotas."""
    count, size = view.usage(caller.domid)
    if limits["nodes"] and count + len(new_nodes) > limits["nodes"]:
        raise XsError("ENOSPC")
    node_size = limits["node-size"]
    if node_size:
        grown = Node(parent.value, parent.perms, [*parent.children, top])
        if any(record_size(n) > node_size for _, n in new_nodes) or (
            record_size(grown) > node_size
        ):
            raise XsError("ENOSPC")
    if limits["memory"]:
        added = sum(node_cost(p, n) for p, n in new_nodes)
        if size + added > limits["memory"]:
            raise XsError("ENOMEM")


def write(view: View, caller: Caller, path: str, value: bytes) -> list[Event]:
    """WRITE: set the value, creating the node and its missing ancestors."""
    node = view.get(path)
    if node is None:
        _create(view, caller, path, value)
    else:
        if access(caller, node) & P.WRITE != P.WRITE:
            raise XsError("EACCES")
        limits = caller.limits
        if limits is not None:
            changed = Node(value, node.perms, node.children)
            if limits["node-size"] and record_size(changed) > limits["node-size"]:
                raise XsError("ENOSPC")
            if limits["memory"] and node.perms[0][1] == caller.domid:
                size = view.usage(caller.domid)[1] + len(value) - len(node.value)
                if size > limits["memory"]:
                    raise XsError("ENOMEM")
        view.set_value(path, value)
    return [(path, False, None)]


def mkdir(view: View, caller: Caller, path: str) -> list[Event]:
    """MKDIR: create the node (empty) unless it exists; no event if it did."""
    node = view.get(path)
    if node is not None:
        if access(caller, node) & P.WRITE != P.WRITE:
            raise XsError("EACCES")
        return []
    _create(view, caller, path, b"")
    return [(path, False, None)]


def rm(view: View, caller: Caller, path: str) -> list[Event]:
    """RM: remove the node and its subtree, children before parents.

    A missing node whose parent exists is fine (no event); ``/`` cannot be removed.
    """
    node = view.get(path)
    if node is None:
        err = _missing(view, caller, path, P.WRITE)
        if err.name == "ENOENT" and path != "/" and view.get(parent_of(path)) is not None:
            return []
        raise err
    if access(caller, node) & P.WRITE != P.WRITE:
        raise XsError("EACCES")
    if path == "/":
        raise XsError("EINVAL")
    parent_path = parent_of(path)
    parent = view.get(parent_path)  # C touches the parent next (transaction access order)
    if parent is None or path not in parent.children:
        # Only in a transaction: the node was created after the transaction copied its
        # parent, so the copy does not list it. C finds no entry to remove and answers
        # EIO; the commit fails anyway (EAGAIN: the parent changed). Nothing is changed.
        raise XsError("EIO")
    events: list[Event] = []
    _remove_subtree(view, path, node, events)
    events[-1] = (path, False, node.perms)
    parent = view.for_write(parent_path)
    remove_child(parent, path)
    view.written(parent_path, parent)
    return events


def _remove_subtree(view: View, top: str, top_node: Node, events: list[Event]) -> None:
    # Post-order without recursion: paths can be ~1,500 levels deep. Each entry keeps a
    # snapshot of the child list, since the parent is rewritten as children go.
    stack: list[tuple[str, tuple[str, ...], int, P.Perms]] = [
        (top, tuple(top_node.children), 0, top_node.perms)
    ]
    while stack:
        path, children, i, perms = stack[-1]
        if i < len(children):
            stack[-1] = (path, children, i + 1, perms)
            child_node = view.get(children[i])
            if child_node is not None:
                stack.append((children[i], tuple(child_node.children), 0, child_node.perms))
            continue
        stack.pop()
        view.delete(path)
        events.append((path, True, perms))
        if stack:
            # C rewrites the parent after each child's delete, spending a generation.
            parent_path = stack[-1][0]
            parent = view.for_write(parent_path)
            remove_child(parent, path)
            view.written(parent_path, parent)


def set_perms(view: View, caller: Caller, path: str, new: P.Perms) -> list[Event]:
    """SET_PERMS: replace the list; needs write and ownership; only dom0 moves ownership."""
    node = get_checked(view, caller, path, P.WRITE | P.OWNER)
    if not caller.privileged and new[0][1] != node.perms[0][1]:
        raise XsError("EPERM")
    old = node.perms
    node = view.for_write(path)
    node.perms = new
    view.written(path, node)
    return [(path, False, old)]
