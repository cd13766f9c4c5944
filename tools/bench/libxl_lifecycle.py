"""What a Xen toolstack asks of the store over a domain's life, written down as data.

The blocks in ``libxl_lifecycle.txt`` (beside this file) are the xenstore requests that
libxl (Xen 4.17, ``tools/libs/light``) and the components it drives make for ``xl
create`` of a PV and an HVM guest with a disk and a vif, ``xl shutdown``, ``xl reboot``,
``xl destroy`` and a network hot-plug and unplug, in their order, with their
transactions and watches, including the frontend/backend ``XenbusState`` handshake as
Linux's xenbus drivers perform it (1 Initialising, 2 InitWait, 3 Initialised, 4
Connected, 5 Closing, 6 Closed). Comments name the function each step comes from. The
paths, permissions, transactions, watches and their order are libxl's; values (memory
sizes, ring references, MACs) are representative, and ``libxl__xs_path_cleanup()``'s
walk up through emptied parents is written for one level. The tests
(``tests/conformance/test_libxl_replay.py``) replay the blocks against xsd and against
C xenstored and compare every reply and event; the boot-storm benchmark
(``tools/bench/bootstorm.py``) replays them as its unit of work.

Format: blocks headed ``## name``; ``#`` starts a comment; one request a line,
``actor [tx] OP args...`` (arguments split as a shell does;
``''`` is an empty value). ``tx`` runs the request in the actor's open transaction.
Placeholders: ``{d}`` the domid, ``{dom}`` its home, ``{uuid}``, ``{vm}`` (``/vm/{uuid}``),
``{name}``, ``{type}`` (pv or hvm), ``{ring}`` and ``{port}`` (its store ring), and in
device blocks ``{kind}`` (vbd, vif), ``{devid}``, ``{fe}`` / ``{be}`` / ``{lx}`` (the
frontend, backend and libxl paths). A line starting ``[pv]`` or ``[hvm]`` is for that
guest type only, ``[force]`` or ``[live]`` for a device removed from a dead guest or
from a running one. ``= BLOCK key=value...`` plays another block with more placeholders.
Pseudo-requests: ``CLOSE`` (the actor's connection goes away).

The actors, each one connection:

* ``xl``: libxl inside ``xl`` (domain 0), which stays to watch the domain die;
* ``init``: dom0's boot scripts (xencommons), ``hotplug``: the hotplug scripts libxl
  runs (``block``, ``vif-bridge``; a connection per run), ``backend``: dom0 kernel's
  xenbus backends (blkback, netback), ``console``: xenconsoled, ``qemu``: the device
  model of an HVM guest: all domain 0;
* ``guest`` (``guest<domid>`` once expanded): the guest kernel's xenbus (frontends,
  shutdown, balloon). It acts on its own connection: against xsd that is the domain's
  socket, a real unprivileged connection that only the permissions libxl laid out
  before INTRODUCE let through; C xenstored's
  socket clients are all domain 0 (its guests talk over rings, which the shim cannot
  give), so there the same requests come from a domain 0 connection of their own. The
  guest therefore writes absolute paths (the kernel's relative ones resolve to the same
  nodes; relative paths are tested elsewhere). A permission libxl forgot shows up as an
  error on xsd that C, seeing domain 0, does not give: the comparison catches it.

What no xenstore can see without a hypervisor is stood in for by the actor that causes
it: the domain dying (C's ``VIRQ_DOM_EXC``: the hypervisor destroyed the domain, the
daemon releases it and fires ``@releaseDomain``) is ``xl RELEASE {d}`` right after libxl's
``xc_domain_destroy``, and the guest's connection closes just before (its kernel is
gone); C's extra ``@releaseDomain`` when a domain merely shuts down, and the moments
processes run, are not modelled. Every request is one at a time: what arrives in the
same instant on Xen (a watch event reaching several components) is played in the order
the components would then act.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).with_name("libxl_lifecycle.txt")
"""The blocks, each headed ``## name``."""


def _load(path: Path) -> dict[str, str]:
    blocks: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            lines = blocks.setdefault(line[3:].strip(), [])
        elif lines is not None:
            lines.append(line)
    return {name: "\n".join(body) for name, body in blocks.items()}


BLOCKS: dict[str, str] = _load(DATA)
"""Block name -> its lines."""


@dataclass(frozen=True)
class Request:
    """One request of the replay: who sends it, what, whether in its transaction."""

    actor: str
    op: str
    args: tuple[str, ...]
    tx: bool = False


@dataclass(frozen=True)
class Guest:
    """One domain a sequence is about."""

    domid: int
    type: str = "pv"  # "pv" or "hvm"

    def values(self) -> dict[str, object]:
        d = self.domid
        uuid = f"00000000-0000-4000-8000-{d:012x}"
        return {
            "d": d,
            "dom": f"/local/domain/{d}",
            "uuid": uuid,
            "vm": f"/vm/{uuid}",
            "name": f"guest{d}",
            "type": self.type,
            "ring": 4094 - d % 1000,
            "port": 1,
            # the boot disk: xvda on a PV guest, hda (with a PV path) on an HVM one
            "disk": 51712 if self.type == "pv" else 768,
            "vdev": "xvda" if self.type == "pv" else "hda",
            self.type: 1,
        }


def _device_values(values: dict[str, object]) -> dict[str, object]:
    kind, devid, d = values["kind"], values["devid"], values["d"]
    values["fe"] = f"/local/domain/{d}/device/{kind}/{devid}"
    values["be"] = f"/local/domain/0/backend/{kind}/{d}/{devid}"
    values["lx"] = f"/libxl/{d}/device/{kind}/{devid}"
    values["fe_ready"] = 3 if kind == "vbd" else 4  # netfront goes straight to Connected
    values.setdefault("live" if "force" not in values else "force", 1)
    return values


def expand(block: str, guest: Guest | None = None, **extra: object) -> Iterator[Request]:
    """The requests of ``block`` for ``guest`` (None: no domain, e.g. ``boot``)."""
    values = guest.values() if guest else {}
    values.update(extra)
    yield from _expand(block, values)


def _expand(block: str, values: dict[str, object]) -> Iterator[Request]:
    for raw in BLOCKS[block].splitlines():
        line = raw.strip()
        while line.startswith("["):
            cond, _, line = line[1:].partition("]")
            if cond not in values:
                break
            line = line.strip()
        else:
            if not line or line.startswith("#"):
                continue
            if line.startswith("="):
                name, *pairs = line[1:].split()
                inner = dict(values)
                for pair in pairs:
                    key, _, value = pair.partition("=")
                    text = value.format(**values)
                    inner[key] = int(text) if text.isdigit() else text
                if "kind" in inner and "devid" in inner and "fe" not in pairs:
                    inner = _device_values(inner)
                yield from _expand(name.format(**inner), inner)
                continue
            words = shlex.split(line.format(**values))
            actor, words = words[0], words[1:]
            if actor == "guest":
                actor = f"guest{values['d']}"  # each domain's kernel: its own connection
            tx = words[0] == "tx"
            if tx:
                words = words[1:]
            yield Request(actor, words[0], tuple(words[1:]), tx)


def lifecycle(first: int = 1) -> list[tuple[str, list[Request]]]:
    """The whole replay, as ``(what, requests)`` parts in order.

    A PV guest (domain ``first``) and an HVM one (``first + 1``) are created; the PV
    one gets a vif hot-plugged and unplugged, then is shut down; the HVM one is
    rebooted (destroyed, created again as domain ``first + 2``), and the new one is
    destroyed; finally domain ``first`` is created again, its id released and reused,
    and destroyed.
    """
    pv, hvm = Guest(first, "pv"), Guest(first + 1, "hvm")
    again = Guest(first + 2, "hvm")
    return [
        ("boot", list(expand("boot"))),
        ("xl create (PV)", list(expand("create", pv))),
        ("xl create (HVM)", list(expand("create", hvm))),
        ("xl network-attach/-detach", list(expand("hotplug", pv))),
        ("xl shutdown (PV)", list(expand("shutdown", pv))),
        ("xl reboot (HVM)", list(expand("reboot", hvm))),
        ("xl create (HVM, after reboot)", list(expand("create", again))),
        ("xl destroy (HVM)", list(expand("destroy", again))),
        ("xl create (PV, domid reused)", list(expand("create", pv))),
        ("xl destroy (PV, domid reused)", list(expand("destroy", pv))),
    ]
