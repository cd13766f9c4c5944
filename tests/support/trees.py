"""Trees for the handover tests: a store of every shape, and two trees compared node by node.

The names keep the underscore they had as private helpers of
``tests/handover/test_records.py``; that file and ``test_records_deltas.py`` share them.
"""

from __future__ import annotations

from xsd.core.engine import Engine
from xsd.core.tree import Tree
from xsd_client.protocol import Op, encode


def _engine_with_tree() -> Engine:
    """A store with depth, siblings, several owners and permission lists."""
    engine = Engine()
    dom0 = engine.connect(0)
    requests: list[tuple[Op, bytes]] = [(Op.INTRODUCE, b"5\0001\0001\0")]
    for i in range(30):
        requests.append((Op.WRITE, f"/a/b{i % 4}/c{i}\0v{i}".encode()))
    requests += [
        (Op.WRITE, b"/local/domain/5/x\0" + b"y" * 300),
        (Op.SET_PERMS, b"/local/domain/5/x\0n5\0r0\0b7\0"),
        (Op.SET_PERMS, b"/a/b1\0n0\0r5\0"),
        (Op.WRITE, b"/deep/" + b"/".join(b"l%d" % i for i in range(200)) + b"\0end"),
        (Op.RM, b"/a/b2/c6\0"),
        (Op.WRITE, b"/a/b2/c6\0back"),  # re-created: now last among its siblings
    ]
    for rid, (op, payload) in enumerate(requests, 1):
        engine.receive(dom0, encode(op, rid, 0, payload), 0)
    return engine


def _same_tree(a: Tree, b: Tree) -> None:
    assert set(a.nodes) == set(b.nodes)  # dict order may differ: breadth first now
    for path, node in a.nodes.items():
        other = b.nodes[path]
        assert (other.value, other.perms, list(other.children), other.gen) == (
            node.value,
            node.perms,
            list(node.children),
            node.gen,
        ), path
        for child in other.children:
            assert child in b.nodes
    assert a.generation == b.generation

    def owning(usage: dict[int, list[int]]) -> dict[int, list[int]]:
        return {domid: u for domid, u in usage.items() if u != [0, 0]}  # [0, 0]: none

    assert owning(a.usage) == owning(b.usage)
