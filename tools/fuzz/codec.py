"""Coverage-guided fuzzing (atheris, libFuzzer) of the codec and the engine's entry point.

``python -m tools.fuzz.codec [libFuzzer options]``, for example::

    python -m tools.fuzz.codec -max_total_time=120          # two minutes
    python -m tools.fuzz.codec -runs=200000 corpus_dir/     # keep what it learns

Each input is cut (by the input itself) into chunks that go to one of three connections
of one engine: domain 0, and two connections of an introduced guest, as
``Engine.receive`` calls with a fixed clock and a batch budget, with ``resume`` and
``tick`` in between, as the shell makes them. The decoder of ``xsd_client.protocol`` is
fed the same chunks on its own.

A finding is any exception other than :class:`ProtocolError` (which the shell turns into
a disconnect), an internal error the engine caught and answered with EIO (its ``bug``
effect: a traceback in a real daemon's log), or an inconsistent tree (``check``).
"""

from __future__ import annotations

import sys

try:
    import atheris  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the machine
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["xsd", "xsd_client"]):
        from xsd.core.effects import RequestBug
        from xsd.core.engine import Engine
        from xsd_client.protocol import Decoder, Op, ProtocolError, encode, join_args
else:
    from xsd.core.effects import RequestBug
    from xsd.core.engine import Engine
    from xsd_client.protocol import Decoder, Op, ProtocolError, encode, join_args

_NOW = 1_000_000_000  # the fixed clock (ns); ticks move it on by whole seconds
_GUEST = 5


class Finding(Exception):
    """Something the daemon must never do."""


_FRESH_EVERY = 1000  # inputs an engine serves before a new one (one costs ~15 ms)
_engine_now: list[Engine] = []
_served = [0]


def _engine() -> Engine:
    """The engine, with the guest introduced; a new one every ``_FRESH_EVERY`` inputs
    (so an input may meet what earlier ones left: replay a crash file on its own and,
    if it does not crash, with the run's corpus before it)."""
    _served[0] += 1
    if _engine_now and _served[0] % _FRESH_EVERY:
        return _engine_now[0]
    engine = Engine()
    dom0 = engine.connect(0)
    setup = [
        encode(Op.INTRODUCE, 1, 0, join_args(_GUEST, 1, 1)),
        encode(Op.MKDIR, 2, 0, join_args(f"/local/domain/{_GUEST}")),
        encode(Op.SET_PERMS, 3, 0, join_args(f"/local/domain/{_GUEST}", f"n{_GUEST}")),
    ]
    engine.receive(dom0, b"".join(setup), _NOW)
    engine.disconnect(dom0)
    engine.take_effects()
    _engine_now[:] = [engine]
    return engine


_WORDS = [
    b"/a",
    b"/a/b",
    b"a",
    b"/local/domain/5",
    b"@releaseDomain",
    b"@introduceDomain",
    b"5",
    b"0",
    b"T",
    b"F",
    b"n5",
    b"r0",
    b"b5",
    b"tok",
    b"help",
    b"quota",
    b"",
    b"/",
]


def _request(fdp: atheris.FuzzedDataProvider) -> bytes:
    """One request whose fields come from the input: a type, small ids, and arguments
    from a vocabulary of paths, domids and tokens, or raw bytes."""
    op = fdp.ConsumeIntInRange(0, 27)
    tx = fdp.ConsumeIntInRange(0, 3)
    args = []
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        if fdp.ConsumeBool():
            args.append(_WORDS[fdp.ConsumeIntInRange(0, len(_WORDS) - 1)])
        else:
            args.append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 20)))
    payload = b"\0".join(args) + (b"\0" if fdp.ConsumeBool() else b"")
    return encode(op, 1, tx, payload[:4096])


def one_input(data: bytes) -> None:
    """Run one input (the libFuzzer entry point)."""
    assert atheris is not None
    fdp = atheris.FuzzedDataProvider(data)
    engine = _engine()
    conns = [engine.connect(0), engine.connect(_GUEST), engine.connect(_GUEST)]
    decoder = Decoder()
    now = _NOW
    while fdp.remaining_bytes():
        which = fdp.ConsumeIntInRange(0, len(conns) - 1)
        if fdp.ConsumeIntInRange(0, 3):
            chunk = _request(fdp)  # well framed: the input reaches the handlers
        else:
            chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 300))
        budget = fdp.ConsumeIntInRange(0, 17)
        decoder.receive_data(chunk)
        try:
            while decoder.next_packet() is not None:
                pass
        except ProtocolError:
            decoder = Decoder()
        conn_id = conns[which]
        if conn_id not in engine.state.connections:
            continue
        try:
            engine.receive(conn_id, chunk, now, budget)
            while engine.resume(conn_id, now, budget) and not engine.blocked(conn_id):
                pass
        except ProtocolError:
            engine.disconnect(conn_id)
        if fdp.ConsumeBool():
            now += 1_000_000_000
            engine.tick(now)
        for effect in engine.take_effects():
            if isinstance(effect, RequestBug):
                raise Finding(f"internal error answering {effect.request}: {effect.error!r}")
        for conn in engine.state.connections.values():
            conn.consume(conn.out_bytes)  # the client reads everything
    for conn_id in conns:
        engine.disconnect(conn_id)
    engine.take_effects()
    problems = engine.check()
    if problems:
        raise Finding(f"inconsistent tree: {problems[:3]}")


def main(argv: list[str] | None = None) -> int:
    if atheris is None:
        print("tools.fuzz.codec: atheris is not installed (pip install atheris)", file=sys.stderr)
        return 2
    atheris.Setup([sys.argv[0], *(sys.argv[1:] if argv is None else argv)], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
