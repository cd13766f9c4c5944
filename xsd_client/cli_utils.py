"""The xenstore-utils commands of ``xsc``: read, write, rm, exists, list, ls, chmod, watch.

Each ``Command.do_<mode>`` is ``xenstore_client.c``'s mode of that name: the same output
byte for byte (collected in ``out``, which Xen buffers until the end), the same messages
and exit statuses. ``cli`` parses the command line and runs them, in a transaction where
Xen does: every mode but ``watch`` with a
:class:`~xsd_client.oneshot.OneShotClient` (no threads), ``watch`` with the threaded
:class:`~xsd_client.client.Client`.
"""

from __future__ import annotations

import sys

from .cli_common import Exit, atoi, errno_text, fs, warn
from .errors import ENOENT, XenstoreError
from .escaping import sanitise, unsanitise

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # the threaded client is for watch alone: the rest never import it
    from .client import Client, WatchEvent
    from .operations import Operations as Ops

_STRING_MAX = 3072 + 1024  # XENSTORE_ABS_PATH_MAX + 1024: longer ls paths read as missing
_MAX_PATH_LEN = 256  # chmod -r builds child paths in a buffer of this size
_TAG_LEN = len(' = "..."')
_INT_MAX = 2**31 - 1


class Command:
    """One xenstore-utils command: ``do_<mode>`` runs it, ``out`` collects its output."""

    def __init__(self, mode: str, flags: dict[str, str], keys: list[str]) -> None:
        self.mode = mode
        self.flags = flags
        self.keys = keys
        self.out = bytearray()

    def warn(self, msg: str) -> None:
        warn(self.mode, msg)

    def do_read(self, xs: Ops) -> int:
        prefix, raw = "p" in self.flags, "R" in self.flags
        for key in self.keys:
            try:
                value = xs.read(key)
            except XenstoreError:
                self.warn(f"couldn't read path {key}")
                return 1
            if prefix:
                self.out += fs(key) + b": "
            self.out += value if raw else sanitise(value) + b"\n"
        return 0

    def do_write(self, xs: Ops) -> int:
        raw = "R" in self.flags
        for key, spec in zip(self.keys[::2], self.keys[1::2], strict=True):
            value = fs(spec).split(b"\0", 1)[0]
            try:
                xs.write(key, value if raw else unsanitise(value))
            except XenstoreError:
                self.warn(f"could not write path {key}")
                return 1
        return 0

    def do_rm(self, xs: Ops) -> int:
        for key in self.keys:
            path = key
            while True:
                try:
                    xs.rm(path)
                except XenstoreError:
                    self.warn(f"could not remove path {path}")
                    return 1
                if "t" not in self.flags or "/" not in path:
                    break
                path = path[: path.rindex("/")]
                try:
                    if xs.read(path) or xs.directory(path):
                        break
                except XenstoreError:
                    break
        return 0

    def do_exists(self, xs: Ops) -> int:
        for key in self.keys:
            try:
                xs.read(key)
            except XenstoreError:
                return 1
        return 0

    def do_list(self, xs: Ops) -> int:
        prefix = "p" in self.flags
        for key in self.keys:
            try:
                names = xs.directory(key)
            except XenstoreError:
                self.warn(f"could not list path {key}")
                return 1
            for name in names:
                if prefix:
                    self.out += fs(key) + b"/"
                self.out += fs(name) + b"\n"
        return 0

    def do_chmod(self, xs: Ops) -> int:
        key, modes = self.keys[0], self.keys[1:]
        perms = []
        for spec in modes:
            letter = spec[:1] or "\0"
            if letter not in ("n", "r", "w", "b"):
                self.warn(f"Invalid permission specification: '{letter}'")
                raise Exit(1)
            perms.append(f"{letter}{atoi(spec[1:])}")
        self._chmod(xs, fs(key), perms, "u" in self.flags, "r" in self.flags)
        return 0

    def _chmod(self, xs: Ops, path: bytes, perms: list[str], upto: bool, recurse: bool) -> None:
        if not path:
            return
        text = path.decode("utf-8", "surrogateescape")
        try:
            xs.set_perms(text, perms)
        except XenstoreError as e:
            self.warn(f"Error occurred setting permissions on '{text}': {errno_text(e)}")
            raise Exit(1) from None
        if upto:
            cut = path.rfind(b"/")
            if cut < 0:
                self.warn(f"Unable to locate path separator '/' in '{text}'")
                raise Exit(1)
            self._chmod(xs, path[:cut], perms, True, False)
        if recurse:
            try:
                names = xs.directory(text)
            except XenstoreError:
                return
            for name in names:
                child = (path + b"/" + fs(name))[: _MAX_PATH_LEN - 1]
                self._chmod(xs, child, perms, False, True)

    def do_ls(self, xs: Ops) -> int:
        flat, show_perms = "f" in self.flags, "p" in self.flags
        if flat:
            max_width, desired_width = _INT_MAX // 2, 0
        else:
            max_width, desired_width = 80, 60
            from os import get_terminal_size  # ls alone (see oneshot.getenv)

            try:
                max_width = get_terminal_size(1).columns - 2
            except (OSError, ValueError):
                pass
        paths = self.keys or ["/"]
        for path in paths:
            self._ls(xs, fs(path), 0, show_perms, flat, max_width, desired_width)
        return 0

    def _ls(
        self, xs: Ops, path: bytes, depth: int, show_perms: bool, flat: bool,
        max_width: int, desired_width: int,
    ) -> None:  # fmt: skip
        out = self.out
        text = path.decode("utf-8", "surrogateescape")
        try:
            names = xs.directory(text)
        except XenstoreError as e:
            if depth and isinstance(e, ENOENT):
                return  # a node that vanished while we walked: move on, as Xen does
            self.warn(f"xs_directory ({text}): {errno_text(e)}")
            raise Exit(1) from None
        sep = b"" if path.endswith(b"/") else b"/"
        for name in names:
            bname = fs(name)
            newpath = path + sep + bname
            if flat:
                out += newpath
                width = 0
            else:
                out += b" " * depth
                width = depth
                cut = max_width - _TAG_LEN - width
                shown = bname[:cut] if cut >= 0 else bname
                out += shown
                width += len(shown)
            value: bytes | None = None
            if len(newpath) < _STRING_MAX:
                try:
                    value = xs.read(newpath.decode("utf-8", "surrogateescape"))
                except XenstoreError:
                    value = None
            if value is None:
                out += b":\n"
            else:
                shown = sanitise(value)
                if max_width < width + len(value) + _TAG_LEN:
                    cut = max_width - _TAG_LEN - width
                    out += b' = "' + (shown[:cut] if cut >= 0 else shown) + b'\\..."'
                else:
                    piece = b' = "' + shown + b'"'
                    out += piece
                    width += len(piece)
                    if show_perms:
                        out += b" "
                        width += 1
                        while width < min(desired_width, max_width):
                            out += b"." if width & 1 else b" "
                            width += 1
            if show_perms:
                try:
                    perms = xs.get_perms(newpath.decode("utf-8", "surrogateescape"))
                except XenstoreError as e:
                    self.warn(f"\ncould not access permissions for {name}: {errno_text(e)}")
                else:
                    out += b"  (" + ",".join(str(p) for p in perms).encode() + b")"
            out += b"\n"
            self._ls(xs, newpath, depth + 1, show_perms, flat, max_width, desired_width)

    def do_watch(self, xs: Client) -> int:
        import queue

        events: queue.SimpleQueue[str] = queue.SimpleQueue()
        depth = atoi(self.flags["d"]) if "d" in self.flags else -1
        number = atoi(self.flags["n"]) if "n" in self.flags else -1

        def on_event(event: WatchEvent) -> None:
            events.put(event.path)

        for key in self.keys:
            try:
                xs.watch(key, key, callback=on_event, depth=depth if depth >= 0 else None)
            except XenstoreError:
                if depth >= 0:
                    self.warn(f"Unable to add watch on {key} with depth {depth}\n")
                else:
                    self.warn(f"Unable to add watch on {key}\n")
                raise Exit(1) from None
        stdout = sys.stdout.buffer
        count = 0
        while number == -1 or count < number:
            try:
                path = events.get(timeout=0.5)
            except queue.Empty:
                if xs.closed:
                    return 0  # libxenstore stops at EOF too, without a word
                continue
            stdout.write(fs(path) + b"\n")
            stdout.flush()
            count += 1
        return 0
