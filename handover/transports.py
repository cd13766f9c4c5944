"""Where the framed state travels: a memfd (default) or an LMDB file.

Both carry the same bytes: the memfd holds the framed stream; the LMDB file holds the
stream header, each part of the body (the array header, then each packed record) under
its index, and the digest, so that reading it back reassembles exactly the stream a
memfd would hold, checked the same way.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import struct
from collections.abc import Callable

from handover.records import StateError
from handover.stream import check_header, frame_parts, pack_each, write_framed

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)

if TYPE_CHECKING:
    from pathlib import Path  # the memfd transport, a live update's default, needs none

    from handover.records import Record

_KEY = struct.Struct(">Q")


def write_memfd(blob: bytes) -> int:
    """A new inheritable memfd holding ``blob``, positioned at its start."""
    return _memfd(lambda write: write(blob))


def write_memfd_stream(parts: list[bytes], into: int | None = None) -> int:
    """An inheritable memfd holding the whole stream around a body given in parts
    (``stream.write_framed``), positioned at its start: a new one, or memfd ``into``
    (its content replaced), which is then ours (closed if the write fails).

    Writing over a memfd that held an earlier stream copies into pages it has already:
    a live update's ``-s`` reuses its dry run's memfd, so that the pause does not
    include allocating a page for every 4 KiB of state."""
    return _memfd(lambda write: write_framed(parts, write), into)


def _memfd(fill: Callable[[Callable[[bytes], None]], None], into: int | None = None) -> int:
    fd = os.memfd_create("xsd-state", 0) if into is None else into

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    try:
        if into is not None:
            os.lseek(fd, 0, os.SEEK_SET)
        fill(write)
        if into is not None:
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))  # an earlier, longer stream
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int) -> bytes | memoryview:
    """Everything an fd holds from its start: the memfd's pages mapped, not copied."""
    size = os.fstat(fd).st_size
    if size == 0:
        return b""
    return memoryview(mmap.mmap(fd, size, prot=mmap.PROT_READ))


def write_lmdb(path: Path, records: list[Record | bytes]) -> None:
    """Write the records (lists, or already packed) to an LMDB file at ``path`` (replaced
    if it exists; its directory is created, mode 0700, if missing).

    A full filesystem is an error here, never a signal: the file is written with
    ``pwrite`` (no ``writemap``) and without LMDB's lock file, a sparse file LMDB writes
    through a shared mapping (on a full tmpfs that write is a SIGBUS). We are its only
    writer, the new process its only reader, after us. A file left half-written is removed.

    Raises:
        OSError: the directory or the file cannot be made, or the disk is full.
    """
    import lmdb  # only this transport needs it: a memfd update starts faster without it

    parts = frame_parts(pack_each(records))
    head, body, digest = parts[0], parts[1:-1], parts[-1]
    size_of_stream = sum(map(len, parts))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for suffix in ("", "-lock"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
    size = max(1 << 20, 2 * size_of_stream + (len(body) * 64))
    fs = os.statvfs(path.parent)
    if fs.f_bavail * fs.f_frsize < size_of_stream:  # the file holds at least the stream
        raise OSError(
            errno.ENOSPC,
            f"no space for the state on {path.parent}: {size_of_stream} bytes or more "
            f"needed, {fs.f_bavail * fs.f_frsize} free",
        )
    try:
        env = lmdb.open(str(path), subdir=False, map_size=size, max_dbs=0, mode=0o600, lock=False)
        try:
            with env.begin(write=True) as txn:
                txn.put(b"head", head)
                txn.put(b"digest", digest)
                for i, item in enumerate(body):
                    txn.put(b"r" + _KEY.pack(i), item)
            env.sync(True)
        finally:
            env.close()
    except lmdb.Error as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fs = os.statvfs(path.parent)
        free = fs.f_bavail * fs.f_frsize
        raise OSError(f"cannot write {path}: {exc} ({free} bytes free there)") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise


def read_lmdb(path: Path) -> bytes:
    """The framed stream kept in an LMDB file (checked by the caller: ``stream.decode_state``).

    Raises:
        StateError: the file is missing or not an xsd state.
    """
    import lmdb

    if not path.exists():
        raise StateError(f"no state file at {path}")
    try:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    except lmdb.Error as exc:
        raise StateError(f"{path} is not an LMDB file: {exc}") from exc
    try:
        with env.begin() as txn:
            head = txn.get(b"head")
            digest = txn.get(b"digest")
            if head is None or digest is None:
                raise StateError(f"{path} holds no xsd state")
            check_header(head)
            parts = [bytes(v) for k, v in txn.cursor() if k.startswith(b"r")]
    finally:
        env.close()
    return head + b"".join(parts) + digest


def load_blob(spec: str) -> bytes | memoryview:
    """The framed stream named by ``fd:N`` (a memfd) or ``lmdb:PATH`` (not yet checked:
    ``stream.decode_state`` checks it).

    Raises:
        StateError: the source cannot be read, or the stream is not whole.
    """
    if spec.startswith("fd:"):
        try:
            blob = read_fd(int(spec[3:]))
        except (ValueError, OSError) as exc:
            raise StateError(f"cannot read state from {spec}: {exc}") from exc
    elif spec.startswith("lmdb:"):
        from pathlib import Path

        blob = read_lmdb(Path(spec[5:]))
    else:
        raise StateError(f"unknown state source {spec!r} (use fd:N or lmdb:PATH)")
    return blob
