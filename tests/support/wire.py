"""A raw-protocol test connection: send exact bytes, read exact replies.

Used by the conformance tests to talk to xsd and to Xen's reference daemons the same
way, with no client library in between.
"""

from __future__ import annotations

import socket
import time

from xsd_client.protocol import HEADER, Decoder, Op, Packet, encode, join_args


class RawConn:
    """One Unix-socket connection speaking raw xenstore packets."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.decoder = Decoder()
        self.events: list[Packet] = []
        self.next_req_id = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, op: int, payload: bytes, tx_id: int = 0, req_id: int | None = None) -> int:
        if req_id is None:
            req_id = self.next_req_id
            self.next_req_id += 1
        self.sock.sendall(encode(op, req_id, tx_id, payload))
        return req_id

    def recv_packet(self, timeout: float | None = None) -> Packet:
        """The next packet of any type (raises socket.timeout / EOFError)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            packet = self.decoder.next_packet()
            if packet is not None:
                return packet
            if deadline is not None:
                self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("daemon closed the connection")
            self.decoder.receive_data(data)

    def recv_reply(self, timeout: float | None = None) -> Packet:
        """The next non-event packet; watch events met on the way go to ``self.events``."""
        while True:
            packet = self.recv_packet(timeout)
            if packet.op == Op.WATCH_EVENT:
                self.events.append(packet)
            else:
                return packet

    def request(self, op: int, payload: bytes, tx_id: int = 0) -> Packet:
        self.send(op, payload, tx_id)
        return self.recv_reply()

    def call(self, op: int, *args: bytes | str | int, tx_id: int = 0) -> tuple[str, bytes]:
        """Send NUL-joined args; return ("OK", payload) or ("ERROR", error payload)."""
        reply = self.request(op, join_args(*args), tx_id)
        kind = "ERROR" if reply.op == Op.ERROR else "OK"
        return kind, reply.payload

    def write(self, path: str, value: bytes | str, tx_id: int = 0) -> tuple[str, bytes]:
        """WRITE with the value as exact bytes (``call`` would NUL-terminate it)."""
        data = value.encode() if isinstance(value, str) else value
        reply = self.request(Op.WRITE, path.encode() + b"\0" + data, tx_id)
        return ("ERROR" if reply.op == Op.ERROR else "OK"), reply.payload

    def drain_events(self, settle: float = 0.05) -> list[Packet]:
        """Collect watch events that arrive within ``settle`` seconds."""
        end = time.monotonic() + settle
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                packet = self.recv_packet(left)
            except TimeoutError:
                break
            self.events.append(packet)
        out, self.events = self.events, []
        return out


def is_closed(conn: RawConn, timeout: float = 2.0) -> bool:
    """True if the daemon closed the connection (EOF or reset) within ``timeout``."""
    conn.sock.settimeout(timeout)
    try:
        return conn.sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


__all__ = ["HEADER", "RawConn", "is_closed"]
