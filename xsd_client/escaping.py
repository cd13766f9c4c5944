"""Xen's escaping of values for printing, as xenstore-utils apply it.

``sanitise`` and ``unsanitise`` are ``xs_lib.c``'s ``sanitise_value`` and
``unsanitise_value``, quirks included (``tests/client/test_cli.py`` checks them
against Debian's xenstore-utils).
"""

from __future__ import annotations

_SAFE = bytes(range(0x20, 0x5C)) + bytes(range(0x5D, 0x7F))
"""The bytes printed as they are: printable ASCII but the backslash."""

_table: list[bytes] | None = None  # byte -> its escape, built when first needed (~0.1 ms)


def _escapes() -> list[bytes]:
    global _table
    if _table is None:
        table = [
            bytes([c]) if c in _SAFE else b"\\%03o" % c if c < 8 else b"\\x%02x" % c
            for c in range(256)
        ]
        table[0x09], table[0x0A], table[0x0D] = b"\\t", b"\\n", b"\\r"
        table[0x5C] = b"\\\\"
        _table = table  # whole, then published: threads never see half of it
    return _table


def sanitise(value: bytes) -> bytes:
    """Escape a value for printing: printable ASCII but ``\\`` as is, ``\\t \\n \\r \\\\``,
    bytes below 8 as ``\\ooo``, every other byte as ``\\xNN``."""
    if not value.translate(None, _SAFE):
        return value
    table = _escapes()
    return b"".join([table[c] for c in value])


_SPACE = b" \t\n\v\f\r"
_HEX = b"0123456789abcdefABCDEF"
_OCT = b"01234567"
_SIMPLE = {ord("t"): 9, ord("n"): 10, ord("r"): 13, ord("\\"): 92}


def _scan_hex2(s: bytes, i: int) -> tuple[int, int] | None:
    """glibc ``sscanf(s + i, "%2x")``: (value, index after) or None on no match."""
    while i < len(s) and s[i] in _SPACE:
        i += 1
    width, neg, digits, value = 2, False, 0, 0
    if i < len(s) and s[i] in b"+-":
        neg, i, width = s[i] == 0x2D, i + 1, width - 1
    if width and s[i : i + 1] == b"0":
        # A "0x" prefix is eaten (and uses the width) but the 0 counts as a digit.
        i, width, digits = i + 1, width - 1, 1
        if width and s[i : i + 1] in (b"x", b"X"):
            i, width = i + 1, width - 1
    while width and i < len(s) and s[i] in _HEX:
        value, i, width, digits = value * 16 + int(s[i : i + 1], 16), i + 1, width - 1, digits + 1
    if not digits:
        return None
    return (-value if neg else value), i


def unsanitise(spec: bytes) -> bytes:
    """Reverse :func:`sanitise` as Xen's ``unsanitise_value`` does, quirks included:
    an unknown escape stands for its letter, ``\\x`` without hex digits for ``x``, and a
    trailing lone backslash for a NUL byte."""
    if b"\\" not in spec:
        return spec
    out = bytearray()
    i, n = 0, len(spec)
    while i < n:
        c = spec[i]
        i += 1
        if c != 0x5C:
            out.append(c)
            continue
        if i == n:  # a lone trailing backslash becomes the terminating NUL, kept
            out.append(0)
            break
        c = spec[i]
        i += 1
        if c in _SIMPLE:
            c = _SIMPLE[c]
        elif c == ord("x"):
            scanned = _scan_hex2(spec, i)
            if scanned is not None:
                c, i = scanned
        elif c in _OCT:
            j = i - 1
            end = j
            while end < n and end - j < 3 and spec[end] in _OCT:
                end += 1
            c, i = int(spec[j:end], 8), end
        out.append(c & 0xFF)
    return bytes(out)
