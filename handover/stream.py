"""The framed byte stream that carries the records: versioned and checksummed.

Layout: ``MAGIC`` (8 bytes), format version (u32), body length (u64), the body (msgpack
records back to back), then the SHA-256 of the body (32 bytes). The loader returns no
record of a stream that does not check out whole, and refuses, with a message naming
the problem, a stream that is not ours, from a newer format, truncated, padded or
altered.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgpack

from handover.records import Record, StateError

MAGIC = b"XSDSTATE"
FORMAT_VERSION = 2
"""2: the tree as breadth-first columns; 1 (still read): depth-first node records."""
_HEAD = struct.Struct("<8sIQ")
_DIGEST = 32


def pack_each(records: Iterable[Record | bytes]) -> list[bytes]:
    """Each record packed (one already packed, ``bytes``, is taken as it is)."""
    packer = msgpack.Packer(use_bin_type=True)
    return [r if isinstance(r, bytes) else packer.pack(r) for r in records]


def write_framed(parts: list[bytes], write: Callable[[bytes], None]) -> None:
    """Write a whole stream around a body given in parts, through ``write``, hashing the
    parts in a thread while they are written (both let go of the GIL: two cores)."""
    write(_HEAD.pack(MAGIC, FORMAT_VERSION, sum(map(len, parts))))
    digest = hashlib.sha256()

    def hash_parts() -> None:
        for part in parts:
            digest.update(part)

    hasher = threading.Thread(target=hash_parts)
    hasher.start()
    try:
        for part in parts:
            write(part)
    finally:
        hasher.join()
    write(digest.digest())


def check_header(blob: bytes | memoryview) -> tuple[int, int]:
    """``(version, body_length)`` from the start of a stream.

    Raises:
        StateError: not a state stream, or one of a format this version cannot read.
    """
    if len(blob) < _HEAD.size:
        raise StateError(f"state is {len(blob)} bytes: too short to be an xsd state")
    magic, version, length = _HEAD.unpack_from(blob)
    if magic != MAGIC:
        raise StateError("not an xsd state (bad magic)")
    if version > FORMAT_VERSION:
        raise StateError(
            f"state format version {version} is newer than this xsd reads ({FORMAT_VERSION})"
        )
    if version < 1:
        raise StateError(f"state format version {version} is not a valid version")
    return version, length


def _split(blob: bytes | memoryview) -> tuple[memoryview, bytes]:
    """The body and the digest of a stream whose header and length are right."""
    _, length = check_header(blob)
    expected = _HEAD.size + length + _DIGEST
    if len(blob) < expected:
        raise StateError(f"state truncated: {len(blob)} bytes of {expected}")
    if len(blob) > expected:
        raise StateError(f"state has {len(blob) - expected} bytes of trailing data")
    view = memoryview(blob)
    return view[_HEAD.size : _HEAD.size + length], bytes(view[_HEAD.size + length :])


def _check_digest(actual: bytes, expected: bytes) -> None:
    if actual != expected:
        raise StateError("state checksum mismatch: the state was altered or damaged")


def unpack_records(body: bytes | memoryview) -> Iterator[Record]:
    """The records of a checked body."""
    unpacker = msgpack.Unpacker(
        raw=False,
        use_list=True,
        strict_map_key=False,
        max_buffer_size=max(len(body), 1),
    )
    unpacker.feed(body)
    try:
        yield from unpacker
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
        raise StateError(f"state body does not decode: {exc}") from exc


def frame_parts(parts: list[bytes]) -> list[bytes]:
    """A whole stream around a body given in parts, as parts (nothing copied)."""
    out: list[bytes] = []
    write_framed(parts, out.append)
    return out


def encode_state(records: Iterable[Record | bytes]) -> bytes:
    """Records to a whole framed stream."""
    return b"".join(frame_parts(pack_each(records)))


PARALLEL_CHECK_BYTES = 1 << 20
"""From this size on the checksum is computed in a thread while the body is unpacked:
hashlib lets go of the GIL, so the two run on two cores."""


def decode_state(blob: bytes | memoryview) -> list[Any]:
    """A whole framed stream to its records; nothing unpacked is returned unless the
    whole stream checks out (the checksum first among the complaints).

    Unpacking before the checksum is known is safe: msgpack limits every length to
    the body's size.
    """
    body, digest = _split(blob)
    if len(body) < PARALLEL_CHECK_BYTES:
        _check_digest(hashlib.sha256(body).digest(), digest)
        return list(unpack_records(body))
    hashed: list[bytes] = []
    hasher = threading.Thread(target=lambda: hashed.append(hashlib.sha256(body).digest()))
    hasher.start()
    try:
        records = list(unpack_records(body))
    except StateError:
        hasher.join()
        _check_digest(hashed[0], digest)
        raise
    hasher.join()
    _check_digest(hashed[0], digest)
    return records
