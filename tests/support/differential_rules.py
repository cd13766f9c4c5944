"""The differential harness's normalisations, read from ``docs/differences.md``.

Its toml block is the only place deliberate differences between xsd and C xenstored live;
:func:`load_rules` reads it, :func:`normalise_reply` applies the reply-level rules.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.differential_pairs import sut_kind
from xsd_client.protocol import Op, Packet

ROOT = Path(__file__).resolve().parents[2]
DIFFERENCES = ROOT / "docs" / "differences.md"


def op_name(op: int) -> str:
    try:
        return Op(op).name
    except ValueError:
        return f"TYPE{op}"


@dataclass(frozen=True)
class Rule:
    """One normalisation. ``op`` is a type name, ``*``, or several names joined by ``|``.

    Reply-level actions (applied to both daemons' replies): ``mask-generation``,
    ``ignore-payload``, ``regex``. Step-level actions: ``unordered`` (the lines a step
    produced, its reply and the events it caused, are compared as a sorted list) and
    ``expect`` (the reference's whole output for the step is replaced by one reply of type
    ``reply_type`` with payload ``reply``: xsd must give exactly that documented answer).
    """

    id: str
    op: str
    action: str
    request_prefix: bytes = b""
    request_regex: str = ""
    pattern: str = ""
    replace: str = ""
    reply_type: str = "ERROR"
    reply: bytes = b""

    def applies(self, op: int, payload: bytes) -> bool:
        if self.op != "*" and op_name(op) not in self.op.split("|"):
            return False
        if not payload.startswith(self.request_prefix):
            return False
        return (
            not self.request_regex
            or re.fullmatch(self.request_regex, payload.decode("latin-1"), re.S) is not None
        )


def load_rules(path: Path = DIFFERENCES) -> list[Rule]:
    """The ``[[normalise]]`` rules of the toml block in ``docs/differences.md``.

    They describe xsd; when the daemon under test is a second reference daemon (harness
    self-check) there are none.
    """
    if sut_kind() != "xsd" or not path.exists():
        return []
    m = re.search(r"```toml\n(.*?)```", path.read_text(), re.S)
    if m is None:
        return []
    data = tomllib.loads(m.group(1))
    rules = []
    for r in data.get("normalise", []):
        if r["action"] not in ("mask-generation", "ignore-payload", "regex", "unordered", "expect"):
            raise ValueError(f"unknown normalisation action {r['action']!r} in {path}")
        rules.append(
            Rule(
                id=r["id"],
                op=r.get("op", "*"),
                action=r["action"],
                request_prefix=r.get("request_prefix", "").encode("latin-1"),
                request_regex=r.get("request_regex", ""),
                pattern=r.get("pattern", ""),
                replace=r.get("replace", ""),
                reply_type=r.get("reply_type", "ERROR"),
                reply=r.get("reply", "").encode("latin-1"),
            )
        )
    return rules


def normalise_reply(rules: Sequence[Rule], op: int, request: bytes, reply: Packet) -> bytes:
    """The reply payload after every rule that matches the request."""
    payload = reply.payload
    for rule in rules:
        if not rule.applies(op, request):
            continue
        if rule.action == "mask-generation" and reply.op == op:
            payload = re.sub(rb"^\d+\0", b"<gen>\0", payload)
        elif rule.action == "ignore-payload":
            payload = b"<ignored>"
        elif rule.action == "regex":
            text = payload.decode("latin-1")
            payload = re.sub(rule.pattern, rule.replace, text, flags=re.S).encode("latin-1")
    return payload


def mask_generations(rules: Sequence[Rule]) -> bool:
    return any(r.action == "mask-generation" and r.op == "DIRECTORY_PART" for r in rules)
