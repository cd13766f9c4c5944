"""The request engine: bytes from a connection in, replies, events and effects out.

The shell feeds each connection's bytes to :meth:`Engine.receive` and writes out what
:meth:`Connection.output` holds. One request at a time per connection, in arrival
order, as C xenstored does. Invariants:

* every request gets exactly one reply, of its own type or ERROR, echoing its req_id
  and tx_id; a reply that would exceed the payload limit becomes E2BIG;
* watch events caused by a request are queued (to every connection, the requester's
  included) before the request's reply; WATCH's own first event comes after its ``OK``;
* a connection whose output queue is over :data:`OUT_HIGH_WATER` is not read further
  until it drains, so a client that does not read cannot make the daemon grow;
* the engine never performs I/O: what the shell must do besides writing (open a
  domain socket, close a connection, reopen the trace file) comes out of
  :meth:`Engine.take_effects`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xsd.core import control, ops
from xsd.core import perms as P
from xsd.core.connections import Connection, Credentials
from xsd.core.domains import Domain, c_atoi, parse_domid
from xsd.core.errors import XsError
from xsd.core.ops import Caller
from xsd.core.paths import canonicalize, home_of
from xsd.core.state import State
from xsd.core.views import DirectView, Transaction, TransactionView, View, apply, conflicts
from xsd_client.protocol import PAYLOAD_MAX, Op, Packet, encode, split_args

OUT_HIGH_WATER = 1 << 20
"""Stop reading a connection's requests while this many output bytes wait for it."""

EVENT_QUEUE_LIMIT = 16 << 20
"""Drop watch events for a connection that has this many output bytes unread."""

_OK = b"OK\0"
_EVENT = int(Op.WATCH_EVENT)
_ERROR = int(Op.ERROR)


@dataclass(frozen=True, slots=True)
class Effect:
    """Something the shell must do: ``kind`` is one of the names below, ``arg`` its input.

    * ``"introduced"``: domain ``arg`` (int) was introduced: open its socket;
    * ``"released"``: domain ``arg`` was released: close its socket;
    * ``"close"``: close connection ``arg``;
    * ``"trace"``: the trace settings changed (``arg``: a description);
    * ``"log"``: write ``arg`` (str) to the daemon's log;
    * ``"memreport"``: write a memory report to file ``arg`` (or the trace file if None).
    """

    kind: str
    arg: object


Handler = Callable[[Connection, Transaction | None, bytes], bytes]


class Engine:
    """Applies requests to a :class:`State`."""

    def __init__(self, state: State | None = None) -> None:
        self.state = state if state is not None else State()
        self.dirty: set[int] = set()
        self.effects: list[Effect] = []
        self._after_reply: list[tuple[Connection, bytes]] = []
        self._handlers: dict[int, Handler] = {
            Op.CONTROL: self._control,
            Op.DIRECTORY: self._directory,
            Op.READ: self._read,
            Op.GET_PERMS: self._get_perms,
            Op.WATCH: self._watch,
            Op.UNWATCH: self._unwatch,
            Op.TRANSACTION_START: self._transaction_start,
            Op.TRANSACTION_END: self._transaction_end,
            Op.INTRODUCE: self._introduce,
            Op.RELEASE: self._release,
            Op.GET_DOMAIN_PATH: self._get_domain_path,
            Op.WRITE: self._write,
            Op.MKDIR: self._mkdir,
            Op.RM: self._rm,
            Op.SET_PERMS: self._set_perms,
            Op.IS_DOMAIN_INTRODUCED: self._is_domain_introduced,
            Op.RESUME: self._resume,
            Op.SET_TARGET: self._set_target,
            Op.RESET_WATCHES: self._reset_watches,
            Op.DIRECTORY_PART: self._directory_part,
        }

    # ------------------------------------------------------------------ connections

    def connect(self, domid: int = 0, creds: Credentials | None = None) -> int:
        """Register a new connection acting as ``domid``; returns its id."""
        state = self.state
        conn_id = state.next_conn_id
        state.next_conn_id += 1
        state.connections[conn_id] = Connection(conn_id, domid, domid == 0, creds)
        return conn_id

    def disconnect(self, conn_id: int) -> None:
        """Forget a connection: its watches and open transactions go with it."""
        conn = self.state.connections.pop(conn_id, None)
        if conn is None:
            return
        for watch in conn.watches:
            self.state.watches.remove(watch)
        self.dirty.discard(conn_id)

    def receive(self, conn_id: int, data: bytes, now: int = 0) -> bool:
        """Buffer bytes from a connection and answer every whole request that fits.

        Returns True if requests remain buffered because the output queue is full
        (call :meth:`resume` once the connection's output has drained).

        Raises:
            ProtocolError: the connection broke the framing rules and must be closed.
        """
        conn = self.state.connections[conn_id]
        conn.decoder.receive_data(data)
        return self._process(conn, now)

    def resume(self, conn_id: int, now: int = 0) -> bool:
        """Answer requests held back by a full output queue (see :meth:`receive`)."""
        return self._process(self.state.connections[conn_id], now)

    def _process(self, conn: Connection, now: int) -> bool:
        decoder = conn.decoder
        while conn.out_bytes < OUT_HIGH_WATER:
            packet = decoder.next_packet()
            if packet is None:
                return False
            self.handle(conn, packet)
            if conn.id not in self.state.connections:
                return False
        return decoder.has_packet()

    def take_effects(self) -> list[Effect]:
        """Effects produced since the last call, in order."""
        effects, self.effects = self.effects, []
        return effects

    def take_dirty(self) -> set[int]:
        """Ids of connections that got output since the last call."""
        dirty, self.dirty = self.dirty, set()
        return dirty

    # ------------------------------------------------------------------ dispatch

    def handle(self, conn: Connection, packet: Packet) -> None:
        """Answer one request (replies and events go to the output queues)."""
        op = packet.op
        tx: Transaction | None = None
        handler = self._handlers.get(op)
        try:
            if handler is None:
                raise XsError("ENOSYS")
            if op in _PRIVILEGED and not conn.privileged:
                raise XsError("EACCES")
            if op not in _IGNORES_TX and packet.tx_id:
                tx = conn.transactions.get(packet.tx_id)
                if tx is None:
                    raise XsError("ENOENT")
            payload = handler(conn, tx, packet.payload)
            if len(payload) > PAYLOAD_MAX:
                raise XsError("E2BIG")
            frame = encode(op, packet.req_id, packet.tx_id, payload)
        except XsError as err:
            frame = encode(_ERROR, packet.req_id, packet.tx_id, err.name.encode() + b"\0")
        if conn.id in self.state.connections:
            conn.queue(frame)
            self.dirty.add(conn.id)
        if self._after_reply:
            for target, event in self._after_reply:
                self._queue_event(target, event)
            self._after_reply.clear()

    # ------------------------------------------------------------------ helpers

    def _caller(self, conn: Connection) -> Caller:
        if conn.privileged:
            return ops.DOM0 if conn.domid == 0 else Caller(conn.domid, True)
        domain = self.state.domains.get(conn.domid)
        return Caller(conn.domid, False, domain.target if domain else None)

    def _view(self, tx: Transaction | None) -> View:
        if tx is None:
            return DirectView(self.state.tree)
        return TransactionView(self.state.tree, tx)

    def _path(self, conn: Connection, raw: bytes, special: bool = False) -> str:
        return canonicalize(
            raw, conn.domid, allow_special=special, path_max=self.state.settings.path_max
        )

    def _fire(self, events: list[ops.Event], tx: Transaction | None) -> None:
        if tx is not None:
            tx.events.extend(events)
            return
        for path, exact in events:
            self.fire(path, exact)

    def fire(self, path: str, exact: bool = False) -> None:
        """Queue a watch event for ``path`` to every watch it fires."""
        connections = self.state.connections
        for watch in self.state.watches.matching(path, exact):
            conn = connections.get(watch.conn_id)
            if conn is None:
                continue
            if not conn.privileged and not self._may_see(conn, path):
                continue
            payload = watch.event_path(path).encode() + b"\0" + watch.token + b"\0"
            if len(payload) > PAYLOAD_MAX:
                continue
            self._queue_event(conn, encode(_EVENT, 0, 0, payload))

    def _queue_event(self, conn: Connection, frame: bytes) -> None:
        if frame in conn.event_frames:
            return  # an identical event is still waiting to be sent: coalesce
        if conn.out_bytes > EVENT_QUEUE_LIMIT:
            conn.dropped_events += 1
            return
        conn.queue(frame)
        conn.event_frames.add(frame)
        self.dirty.add(conn.id)

    def _may_see(self, conn: Connection, path: str) -> bool:
        """C's watch_permitted(): the watcher can read the node or its parent."""
        caller = self._caller(conn)
        if path[:1] == "@":
            perms = self.state.special_perms.get(path)
            return perms is not None and bool(
                P.access_for(perms, caller.domid, caller.target) & P.READ
            )
        tree = self.state.tree
        node = tree.get(path)
        if node is not None and caller.access(node) & P.READ:
            return True
        parent = tree.get(path.rsplit("/", 1)[0] or "/")
        return parent is not None and bool(caller.access(parent) & P.READ)

    # ------------------------------------------------------------------ node requests

    def _read(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        path = self._path(conn, _one_arg(payload))
        return ops.read(self._view(tx), self._caller(conn), path)

    def _directory(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        path = self._path(conn, _one_arg(payload))
        return ops.directory(self._view(tx), self._caller(conn), path)

    def _directory_part(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        args = split_args(payload)
        if len(args) != 2:
            raise XsError("EINVAL")
        path = self._path(conn, args[0])
        return ops.directory_part(self._view(tx), self._caller(conn), path, c_atoi(args[1]))

    def _get_perms(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        raw = _one_arg(payload)
        path = self._path(conn, raw)
        return ops.get_perms(self._view(tx), self._caller(conn), path)

    def _write(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        raw, sep, value = payload.partition(b"\0")
        if not sep:
            raise XsError("EINVAL")
        path = self._path(conn, raw)
        self._fire(ops.write(self._view(tx), self._caller(conn), path, value), tx)
        return _OK

    def _mkdir(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        path = self._path(conn, _one_arg(payload))
        self._fire(ops.mkdir(self._view(tx), self._caller(conn), path), tx)
        return _OK

    def _rm(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        path = self._path(conn, _one_arg(payload))
        self._fire(ops.rm(self._view(tx), self._caller(conn), path), tx)
        return _OK

    def _set_perms(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        args = split_args(payload)
        if len(args) < 2:
            raise XsError("EINVAL")
        new = P.parse(args[1:])
        caller = self._caller(conn)
        if args[0][:1] == b"@":
            return self._set_special_perms(caller, args[0], new)
        path = self._path(conn, args[0])
        if new[0][1] not in self.state.domains:
            raise XsError("ENOENT")
        self._fire(ops.set_perms(self._view(tx), caller, path, new), tx)
        return _OK

    def _set_special_perms(self, caller: Caller, raw: bytes, new: P.Perms) -> bytes:
        name = raw.decode("latin-1")
        special = self.state.special_perms
        if name not in special:
            raise XsError("EINVAL")
        if not caller.privileged and not (
            P.access_for(special[name], caller.domid, caller.target) & (P.WRITE | P.OWNER)
            == P.WRITE | P.OWNER
        ):
            raise XsError("EACCES")
        special[name] = new
        self.fire(name)
        return _OK

    # ------------------------------------------------------------------ watches

    def _watch(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        args = split_args(payload)
        if len(args) != 2:
            raise XsError("EINVAL")
        raw, token = args
        relative_to = None
        if raw[:1] == b"@":
            if len(raw) > self.state.settings.path_max:
                raise XsError("EINVAL")
            path = raw.decode("latin-1")
        else:
            path = self._path(conn, raw)
            if raw[:1] != b"/":
                relative_to = home_of(conn.domid)
        for existing in conn.watches:
            if existing.path == path and existing.token == token:
                raise XsError("EEXIST")
        watch = self.state.watches.add(conn.id, path, token, relative_to)
        conn.watches.append(watch)
        event = watch.event_path(path).encode() + b"\0" + token + b"\0"
        if len(event) <= PAYLOAD_MAX:
            self._after_reply.append((conn, encode(_EVENT, 0, 0, event)))
        return _OK

    def _unwatch(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        args = split_args(payload)
        if len(args) != 2:
            raise XsError("EINVAL")
        raw, token = args
        if raw[:1] in (b"/", b"@"):
            path = raw.decode("latin-1")
        else:
            path = home_of(conn.domid) + "/" + raw.decode("latin-1")
        for watch in conn.watches:
            if watch.path == path and watch.token == token:
                conn.watches.remove(watch)
                self.state.watches.remove(watch)
                return _OK
        raise XsError("ENOENT")

    def _reset_watches(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        for watch in conn.watches:
            self.state.watches.remove(watch)
        conn.watches.clear()
        conn.transactions.clear()
        return _OK

    # ------------------------------------------------------------------ transactions

    def _transaction_start(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        if tx is not None:
            raise XsError("EBUSY")
        tx_id = conn.next_tx_id
        while tx_id == 0 or tx_id in conn.transactions:
            tx_id = (tx_id + 1) & 0xFFFFFFFF
        conn.next_tx_id = (tx_id + 1) & 0xFFFFFFFF
        tree = self.state.tree
        conn.transactions[tx_id] = Transaction(tx_id, tree.next_generation())
        return f"{tx_id}".encode() + b"\0"

    def _transaction_end(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        arg = _one_arg(payload)
        if arg not in (b"T", b"F"):
            raise XsError("EINVAL")
        if tx is None:
            raise XsError("ENOENT")
        del conn.transactions[tx.id]
        if arg == b"F":
            return _OK
        if tx.failed:
            raise XsError("ENOMEM")
        tree = self.state.tree
        if conflicts(tree, tx):
            raise XsError("EAGAIN")
        apply(tree, tx)
        for path, exact in tx.events:
            self.fire(path, exact)
        return _OK

    # ------------------------------------------------------------------ domains

    def _introduce(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        args = split_args(payload)
        if len(args) < 3:
            raise XsError("EINVAL")
        domid = parse_domid(args[0])
        evtchn = c_atoi(args[2])
        if evtchn <= 0:
            raise XsError("EINVAL")
        domains = self.state.domains
        if domid not in domains:
            domains[domid] = Domain(domid, c_atoi(args[1]), evtchn)
            if domid != 0:
                self.fire("@introduceDomain")
                self.effects.append(Effect("introduced", domid))
        else:
            domains[domid].evtchn = evtchn
        return _OK

    def _known_domain(self, payload: bytes) -> int:
        domid = parse_domid(_one_arg(payload))
        if domid == 0:
            raise XsError("EINVAL")
        if domid not in self.state.domains:
            raise XsError("ENOENT")
        return domid

    def _release(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        domid = self._known_domain(payload)
        self.release_domain(domid)
        return _OK

    def release_domain(self, domid: int) -> None:
        """Forget a domain: close its connections, remove its nodes, fire @releaseDomain."""
        for other in list(self.state.connections.values()):
            if other.domid == domid and not other.privileged:
                self.disconnect(other.id)
                self.effects.append(Effect("close", other.id))
        del self.state.domains[domid]
        tree = self.state.tree
        view = DirectView(tree)
        owned = [p for p in tree.walk() if p != "/" and tree.nodes[p].perms[0][1] == domid]
        for path in owned:
            if path in tree.nodes:
                for event_path, exact in ops.rm(view, ops.DOM0, path):
                    self.fire(event_path, exact)
        self.fire("@releaseDomain")
        self.effects.append(Effect("released", domid))

    def _resume(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        self._known_domain(payload)
        return _OK

    def _set_target(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        args = split_args(payload)
        if len(args) < 2:
            raise XsError("EINVAL")
        domid = parse_domid(args[0])
        target = parse_domid(args[1])
        domains = self.state.domains
        if domid not in domains or target not in domains:
            raise XsError("ENOENT")
        domains[domid].target = target
        return _OK

    def _is_domain_introduced(
        self, conn: Connection, tx: Transaction | None, payload: bytes
    ) -> bytes:
        domid = parse_domid(_one_arg(payload))
        return b"T\0" if domid in self.state.domains else b"F\0"

    def _get_domain_path(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        domid = parse_domid(_one_arg(payload))
        return home_of(domid).encode() + b"\0"

    # ------------------------------------------------------------------ control

    def log(self, message: str) -> None:
        """Ask the shell to write a line to the daemon's log."""
        self.effects.append(Effect("log", message))

    def trace_changed(self) -> None:
        """Tell the shell the trace settings changed (reopen or close the file)."""
        self.effects.append(Effect("trace", None))

    def memreport(self, target: str | None) -> None:
        """Ask the shell to write a memory report (to ``target``, else the trace file)."""
        self.effects.append(Effect("memreport", target))

    def check(self) -> list[str]:
        """Consistency check of the tree: every listed child exists and vice versa."""
        nodes = self.state.tree.nodes
        problems = []
        listed = {"/"}
        for path, node in nodes.items():
            for child in node.children:
                listed.add(child)
                if child not in nodes:
                    problems.append(f"{path} lists missing child {child}")
        problems.extend(f"{p} is not listed by its parent" for p in nodes.keys() - listed)
        return problems

    def _control(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        return control.run(self, split_args(payload))


def _one_arg(payload: bytes) -> bytes:
    """The argument of a one-string request: exactly one NUL, and it ends the payload."""
    if not payload or payload.find(b"\0") != len(payload) - 1:
        raise XsError("EINVAL")
    return payload[:-1]


_PRIVILEGED = frozenset(
    {
        Op.CONTROL,
        Op.INTRODUCE,
        Op.RELEASE,
        Op.IS_DOMAIN_INTRODUCED,
        Op.RESUME,
        Op.SET_TARGET,
    }
)
_IGNORES_TX = frozenset({Op.WATCH, Op.UNWATCH})
