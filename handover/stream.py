"""The framed byte stream that carries the records: versioned and checksummed.

Layout: ``MAGIC`` (8 bytes), format version (u32), body length (u64), the body, then
the checksum of the body. Since format 3 the body is one msgpack array of the records
(its header, then the records back to back), which unpacks straight from the mapped
memfd with nothing copied, and the checksum is its CRC-32 (u32). Formats 1 and 2,
still read, have the records alone back to back and the body's SHA-256 (32 bytes).

The loader returns no record of a stream that does not check out whole, and refuses,
with a message naming the problem, a stream that is not ours, from a newer format,
truncated, padded or altered.

The checksum guards against damage (a truncated or corrupted file), not against
someone who can write the state: they could rewrite any checksum. CRC-32 does that
job, costs a millisecond for 4 MB, and ``zlib`` imports in a fraction of the time
``hashlib`` (OpenSSL) takes, in the new process of a live update, during its pause.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator

import msgpack

from handover.records import StateError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any

    from handover.records import Record

MAGIC = b"XSDSTATE"
FORMAT_VERSION = 3
"""3: the body one array of records, its checksum a CRC-32, the tree's integer columns
packed; 2 (still read): the tree as breadth-first columns; 1 (still read): depth-first
node records."""
_HEAD = struct.Struct("<8sIQ")
_CRC = struct.Struct("<I")
_SHA256_SIZE = 32
"""The checksum of formats 1 and 2."""


def _digest(version: int, body: bytes | memoryview) -> bytes:
    """The checksum that a stream of format ``version`` carries for ``body``."""
    if version >= 3:
        return _CRC.pack(zlib.crc32(body))
    import hashlib  # formats 1-2 only (the last update from an older xsd)

    return hashlib.sha256(body).digest()


def _digest_size(version: int) -> int:
    return _CRC.size if version >= 3 else _SHA256_SIZE


def pack_each(records: Iterable[Record | bytes]) -> list[bytes]:
    """Each record packed (one already packed, ``bytes``, is taken as it is)."""
    packer = msgpack.Packer(use_bin_type=True)
    return [r if isinstance(r, bytes) else packer.pack(r) for r in records]


def write_framed(parts: list[bytes], write: Callable[[bytes], None]) -> None:
    """Write a whole stream around a body given in parts (packed records), through
    ``write``, hashing the parts in a thread while they are written (both let go of the
    GIL: two cores)."""
    parts = [msgpack.Packer().pack_array_header(len(parts)), *parts]
    write(_HEAD.pack(MAGIC, FORMAT_VERSION, sum(map(len, parts))))
    crc = [0]

    def hash_parts() -> None:
        for part in parts:
            crc[0] = zlib.crc32(part, crc[0])

    hasher = threading.Thread(target=hash_parts)
    hasher.start()
    try:
        for part in parts:
            write(part)
    finally:
        hasher.join()
    write(_CRC.pack(crc[0]))


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


def _split(blob: bytes | memoryview) -> tuple[int, memoryview, bytes]:
    """The version, the body and the checksum of a stream whose header and length are
    right."""
    version, length = check_header(blob)
    expected = _HEAD.size + length + _digest_size(version)
    if len(blob) < expected:
        raise StateError(f"state truncated: {len(blob)} bytes of {expected}")
    if len(blob) > expected:
        raise StateError(f"state has {len(blob) - expected} bytes of trailing data")
    view = memoryview(blob)
    return version, view[_HEAD.size : _HEAD.size + length], bytes(view[_HEAD.size + length :])


def _check_digest(actual: bytes, expected: bytes) -> None:
    if actual != expected:
        raise StateError("state checksum mismatch: the state was altered or damaged")


def unpack_records(body: bytes | memoryview, version: int = FORMAT_VERSION) -> list[Record]:
    """The records of a checked body of format ``version``."""
    if version >= 3:
        try:
            records = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=False)
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
            raise StateError(f"state body does not decode: {exc}") from exc
        if not isinstance(records, list):
            raise StateError("state body is not an array of records")
        return records
    return list(_unpack_back_to_back(body))


def _unpack_back_to_back(body: bytes | memoryview) -> Iterator[Record]:
    """Formats 1-2: the records back to back, through an unpacker (which copies)."""
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
the checksum lets go of the GIL, so the two run on two cores."""


def decode_state(blob: bytes | memoryview) -> list[Any]:
    """A whole framed stream to its records; nothing unpacked is returned unless the
    whole stream checks out (the checksum first among the complaints).

    Unpacking before the checksum is known is safe: msgpack limits every length to
    the body's size.
    """
    version, body, digest = _split(blob)
    if len(body) < PARALLEL_CHECK_BYTES:
        _check_digest(_digest(version, body), digest)
        return unpack_records(body, version)
    hashed: list[bytes] = []
    hasher = threading.Thread(target=lambda: hashed.append(_digest(version, body)))
    hasher.start()
    try:
        records = unpack_records(body, version)
    except StateError:
        hasher.join()
        _check_digest(hashed[0], digest)
        raise
    hasher.join()
    _check_digest(hashed[0], digest)
    return records
