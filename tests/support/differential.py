"""The differential harness: run one scripted request sequence against two daemons.

A script is a list of :class:`Step`. :func:`run_script` plays it against one daemon over
real Unix-socket connections and returns a *transcript*: one readable line per request,
reply and watch event, in the order the daemon produced them. Two transcripts of the same
script (reference C xenstored and xsd) must be equal, after the normalisations listed in
``docs/differences.md`` (the only place deliberate differences live). :func:`dump_tree`
walks the whole store (DIRECTORY/DIRECTORY_PART, READ, GET_PERMS) so the trees left behind
can be compared too.

Event collection is deterministic: after each step every live connection is sent a
*barrier* request (GET_DOMAIN_PATH, tx 0) and everything that arrives before its reply is
recorded as events of that step. Replies are matched on req_id, so a daemon that answers
the wrong request, or not at all, shows up in the transcript.
"""

from __future__ import annotations

import contextlib
import difflib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.differential_pairs import (
    Pair,
    PairPool,
    pair_fixture,
    pool_fixture,
    start_sut,
    sut_fixture,
    sut_kind,
    sut_label,
)
from tests.support.differential_rules import (
    DIFFERENCES,
    Rule,
    load_rules,
    mask_generations,
    normalise_reply,
    op_name,
)
from tests.support.wire import RawConn, is_closed
from xsd_client.protocol import HEADER, Op, Packet, encode, join_args

BARRIER_REQ_ID = 0xFFFF_FFF0
REPLY_TIMEOUT = 5.0


class _Current:
    """Marker: use the id of the last transaction this connection started."""

    def __repr__(self) -> str:
        return "TX"


TX = _Current()
"""Use as ``Step.tx``: the connection's most recent successful TRANSACTION_START id."""


@dataclass
class Step:
    """One thing a client does.

    ``expect``: ``"reply"`` (read one reply, record it), ``"close"`` (the daemon must or may
    close the connection: record whether it did), ``"none"`` (send only; e.g. half a
    packet; no barrier on this connection afterwards).
    """

    conn: int
    op: int
    payload: bytes = b""
    tx: int | _Current = 0
    req_id: int | None = None
    raw: bytes | None = None
    expect: str = "reply"
    note: str = ""

    def __repr__(self) -> str:
        where = (
            f"raw={self.raw!r}" if self.raw is not None else f"{op_name(self.op)} {self.payload!r}"
        )
        extra = "" if self.tx == 0 else f" tx={self.tx!r}"
        return f"<c{self.conn} {where}{extra}>"

    def describe(self, req_id: int, tx: int) -> str:
        if self.raw is not None:
            return f"c{self.conn} RAW {self.raw!r}" + (f"  # {self.note}" if self.note else "")
        return f"c{self.conn} {op_name(self.op)} req={req_id} tx={tx} {self.payload!r}" + (
            f"  # {self.note}" if self.note else ""
        )


def s(
    conn: int, op: Op | int, *args: bytes | str | int, tx: int | _Current = 0, note: str = ""
) -> Step:
    """A step whose payload is the NUL-terminated ``args``."""
    return Step(conn, int(op), join_args(*args), tx=tx, note=note)


def w(conn: int, path: str, value: bytes | str, tx: int | _Current = 0) -> Step:
    """A WRITE step (the value is raw bytes with no terminator)."""
    v = value.encode() if isinstance(value, str) else value
    return Step(conn, Op.WRITE, path.encode() + b"\0" + v, tx=tx)


def p(conn: int, op: Op | int, payload: bytes, tx: int | _Current = 0, note: str = "") -> Step:
    """A step with an exact payload."""
    return Step(conn, int(op), payload, tx=tx, note=note)


def open_conn(path: Path | str, timeout: float = 5.0) -> RawConn:
    """A RawConn, retrying while the daemon's listen backlog is full.

    C xenstored listens with a backlog of 1; a second connect() issued before it accepted
    the first fails at once with EAGAIN on a socket that has a timeout set.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return RawConn(str(path))
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


# ---------------------------------------------------------------------------
# Running a script


def fmt(packet: Packet, payload: bytes | None = None) -> str:
    body = packet.payload if payload is None else payload
    return f"{op_name(packet.op)}(req={packet.req_id},tx={packet.tx_id}) {body!r}"


class Session:
    """The connections of one script run against one daemon."""

    def __init__(
        self, sock: Path | str, nconns: int, rules: Sequence[Rule], reference: bool = False
    ) -> None:
        self.path = str(sock)
        self.reference = reference
        self.rules = rules
        self.conns: list[RawConn | None] = [open_conn(self.path) for _ in range(nconns)]
        self.txids: list[int] = [0] * nconns
        self.lines: list[str] = []
        self.pending: set[int] = set()  # connections holding half a packet

    def close(self) -> None:
        for c in self.conns:
            if c is not None:
                c.close()

    def _read_until(self, i: int, req_id: int, label: str) -> Packet | None:
        """Read conn i until the reply with ``req_id``; record events on the way."""
        conn = self.conns[i]
        assert conn is not None
        while True:
            try:
                pkt = conn.recv_packet(REPLY_TIMEOUT)
            except TimeoutError:
                self.lines.append(f"  c{i} {label}: TIMEOUT (no reply in {REPLY_TIMEOUT} s)")
                self._drop(i)
                return None
            except (EOFError, ConnectionResetError):
                self.lines.append(f"  c{i} {label}: CLOSED by daemon")
                self._drop(i)
                return None
            except Exception as e:  # a framing error from the codec: record, do not crash
                self.lines.append(f"  c{i} {label}: BAD STREAM {e}")
                self._drop(i)
                return None
            if pkt.op == Op.WATCH_EVENT:
                self.lines.append(f"  c{i} event {fmt(pkt)}")
                continue
            if pkt.req_id != req_id:
                self.lines.append(f"  c{i} unexpected {fmt(pkt)}")
                continue
            return pkt

    def _drop(self, i: int) -> None:
        conn = self.conns[i]
        if conn is not None:
            conn.close()
        self.conns[i] = None

    def barrier(self) -> None:
        for i, conn in enumerate(self.conns):
            if conn is None or i in self.pending:
                continue
            try:
                conn.send(Op.GET_DOMAIN_PATH, b"0\0", 0, BARRIER_REQ_ID)
            except OSError:
                self.lines.append(f"  c{i} barrier: CLOSED by daemon")
                self._drop(i)
                continue
            pkt = self._read_until(i, BARRIER_REQ_ID, "barrier")
            if pkt is not None and (pkt.op, pkt.payload) != (
                Op.GET_DOMAIN_PATH,
                b"/local/domain/0\0",
            ):
                self.lines.append(f"  c{i} barrier reply {fmt(pkt)}")

    def step(self, n: int, st: Step) -> None:
        conn = self.conns[st.conn]
        req_id = st.req_id if st.req_id is not None else 1000 + n
        tx = self.txids[st.conn] if isinstance(st.tx, _Current) else st.tx
        self.lines.append(f"[{n}] " + st.describe(req_id, tx))
        if conn is None:
            self.lines.append(f"  c{st.conn} is closed")
            return
        data = (
            st.raw
            if st.raw is not None
            else HEADER.pack(st.op, req_id, tx, len(st.payload)) + st.payload
        )
        try:
            conn.send_raw(data)
        except OSError as e:
            self.lines.append(f"  c{st.conn} send failed: {type(e).__name__}")
            self._drop(st.conn)
            return
        if st.expect == "none":
            self.pending.add(st.conn)
            return
        self.pending.discard(st.conn)
        if st.expect == "close":
            closed = is_closed(conn, 1.0)
            self.lines.append(f"  c{st.conn} {'CLOSED by daemon' if closed else 'still open'}")
            if closed:
                self._drop(st.conn)
            return
        pkt = self._read_until(st.conn, req_id, "reply")
        if pkt is None:
            return
        payload = normalise_reply(self.rules, st.op, st.payload, pkt)
        self.lines.append(f"  c{st.conn} reply {fmt(pkt, payload)}")
        if st.op == Op.TRANSACTION_START and pkt.op == Op.TRANSACTION_START:
            with contextlib.suppress(ValueError):
                self.txids[st.conn] = int(pkt.payload.rstrip(b"\0"))
        if (
            st.op == Op.TRANSACTION_END
            and pkt.op == Op.TRANSACTION_END
            and tx == self.txids[st.conn]
        ):
            self.txids[st.conn] = 0

    def run(self, steps: Iterable[Step]) -> list[str]:
        for n, st in enumerate(steps):
            start = len(self.lines)
            self.step(n, st)
            self.barrier()
            self._step_rules(n, st, start)
        return self.lines

    def _step_rules(self, n: int, st: Step, start: int) -> None:
        if st.raw is not None:
            return
        for rule in self.rules:
            if not rule.applies(st.op, st.payload):
                continue
            body = self.lines[start + 1 :]
            if rule.action == "unordered":
                body = sorted(body)
            elif rule.action == "expect" and self.reference:
                req_id = st.req_id if st.req_id is not None else 1000 + n
                tx = self.txids[st.conn] if isinstance(st.tx, _Current) else st.tx
                body = [
                    f"  c{st.conn} reply {rule.reply_type}(req={req_id},tx={tx}) {rule.reply!r}"
                ]
            else:
                continue
            self.lines[start + 1 :] = body


def run_script(
    sock: Path | str,
    steps: Sequence[Step],
    nconns: int = 2,
    rules: Sequence[Rule] | None = None,
    reference: bool = False,
) -> list[str]:
    """Play ``steps`` against the daemon at ``sock``; return its transcript.

    ``reference``: this is the reference daemon (``expect`` rules rewrite its answers).
    """
    session = Session(sock, nconns, load_rules() if rules is None else rules, reference)
    try:
        return session.run(steps)
    finally:
        session.close()


# ---------------------------------------------------------------------------
# Tree dumps


def _directory(conn: RawConn, path: bytes) -> tuple[list[bytes], str | None]:
    """Child names of ``path`` (falling back to DIRECTORY_PART on E2BIG), or an error."""
    kind, payload = conn.call(Op.DIRECTORY, path)
    if kind == "OK":
        return payload.split(b"\0")[:-1], None
    if payload != b"E2BIG\0":
        return [], payload.decode(errors="replace")
    data = b""
    while True:
        kind, chunk = conn.call(Op.DIRECTORY_PART, path, len(data))
        if kind != "OK":
            return [], "DIRECTORY_PART " + chunk.decode(errors="replace")
        _gen, _, rest = chunk.partition(b"\0")
        if rest.endswith(b"\0\0") or rest in (b"\0", b""):
            data += rest[:-1] if rest else b""
            return data.split(b"\0")[:-1], None
        data += rest


def dump_tree(
    sock: Path | str, rules: Sequence[Rule] | None = None, root: bytes = b"/"
) -> list[str]:
    """One line per node, depth first in child order: path, perms, generation, value."""
    rules = load_rules() if rules is None else rules
    masked = mask_generations(rules)
    out: list[str] = []
    with open_conn(sock) as conn:
        stack = [root]
        while stack:
            path = stack.pop()
            children, err = _directory(conn, path)
            kind, value = conn.call(Op.READ, path)
            _, perms = conn.call(Op.GET_PERMS, path)
            _, part = conn.call(Op.DIRECTORY_PART, path, 0)
            gen = "<gen>" if masked else part.split(b"\0", 1)[0].decode(errors="replace")
            line = f"{path.decode()}  perms={perms!r} gen={gen} "
            line += f"value={value!r}" if kind == "OK" else f"READ {value!r}"
            if err:
                line += f" DIRECTORY {err}"
            out.append(line)
            base = path if path.endswith(b"/") else path + b"/"
            stack.extend(base + c for c in reversed(children))
    return out


# ---------------------------------------------------------------------------
# Comparing


def diff_text(
    ref: Sequence[str], got: Sequence[str], ref_name: str = "C xenstored", got_name: str = "xsd"
) -> str:
    return "\n".join(
        difflib.unified_diff(list(ref), list(got), ref_name, got_name, n=4, lineterm="")
    )


def assert_same(
    ref: Sequence[str],
    got: Sequence[str],
    what: str,
    ref_name: str = "C xenstored",
    got_name: str = "xsd",
) -> None:
    """Fail with a unified diff (and the first differing line) if the lists differ."""
    if list(ref) == list(got):
        return
    first = next(
        (i for i, (a, b) in enumerate(zip(ref, got, strict=False)) if a != b),
        min(len(ref), len(got)),
    )
    context = "\n".join(ref[max(0, first - 3) : first + 1])
    raise AssertionError(
        f"{what}: {got_name} differs from {ref_name} at line {first}\n"
        f"--- context ({ref_name}) ---\n{context}\n"
        f"--- diff ---\n{diff_text(ref, got, ref_name, got_name)}"
    )


def compare(
    ref_sock: Path | str,
    got_sock: Path | str,
    steps: Sequence[Step],
    nconns: int = 2,
    tree: bool = True,
    ref_name: str = "C xenstored",
    got_name: str = "xsd",
    tree_root: bytes = b"/",
) -> list[str]:
    """Play ``steps`` against both daemons; assert equal transcripts and trees."""
    rules = load_rules()
    ref = run_script(ref_sock, steps, nconns, rules, reference=True)
    got = run_script(got_sock, steps, nconns, rules)
    assert_same(ref, got, "reply transcript", ref_name, got_name)
    if tree:
        assert_same(
            dump_tree(ref_sock, rules, tree_root),
            dump_tree(got_sock, rules, tree_root),
            "tree after the script",
            ref_name,
            got_name,
        )
    return ref


__all__ = [
    "BARRIER_REQ_ID",
    "DIFFERENCES",
    "REPLY_TIMEOUT",
    "TX",
    "Pair",
    "PairPool",
    "Rule",
    "Step",
    "assert_same",
    "compare",
    "dump_tree",
    "encode",
    "fmt",
    "load_rules",
    "normalise_reply",
    "open_conn",
    "p",
    "pair_fixture",
    "pool_fixture",
    "run_script",
    "s",
    "start_sut",
    "sut_fixture",
    "sut_kind",
    "sut_label",
    "w",
]
