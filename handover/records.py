"""The daemon's state as a flat list of records, and back: the format.

Every record is a msgpack-able list whose first item names its kind. Records are flat
on purpose: the tree goes as one record of columns (``handover.tree_columns``), so a
path 1,500 levels deep costs no nesting and no recursion, and a million nodes pack as a
few large arrays. Invariants of a stream (format 3, as the stream's version says:
``handover.stream``):

* ``meta`` comes first and ``end`` last, ``end`` carrying the number of records before it;
* the permission table (``perms``) comes before the ``tree`` that refers to it;
* connections come before their watches and transactions;
* a kind this version does not know is refused, never skipped;
* ``meta`` may carry the tree's ``usage`` (``[[owner, nodes, bytes], ...]``), exact when
  dumped: the loader then takes it rather than recounting every node in the pause of a
  live update. A live update's dry run recounts it (``xsd --check-state``), and if the
  two differ the update sends no usage, so that the new process recounts. A stream
  without it (from an earlier version) is recounted;
* a ``domain`` record is ``["domain", domid, gfn, evtchn, target, quota, wrl_credit,
  wrl_stamp, introduced]``: ``introduced`` False for a domain domain 0 has named but not
  introduced (``xsd.core.domain_ids``). Earlier versions knew introduced domains only and
  sent no ``introduced``; such records load as introduced.

Format 1 (written by earlier versions, still loaded) sent the tree as ``nodes`` records
of full paths in depth-first order, parents first, followed by the permission table.

``handover.dump`` writes the records, ``handover.load`` reads them (and
``handover.old_formats`` those of format 1); this module is their public surface.
"""

from __future__ import annotations

from handover.dump import (
    DELTA_SHARE_MAX,
    TreeAhead,
    dump,
    dump_ahead,
    dump_ahead_steps,
    forget_ahead,
)
from handover.errors import StateError
from handover.load import load, to_perms

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from handover.dump import Packed as Packed
    from handover.load import Record as Record

__all__ = [
    "DELTA_SHARE_MAX",
    "StateError",
    "TreeAhead",
    "dump",
    "dump_ahead",
    "dump_ahead_steps",
    "forget_ahead",
    "load",
    "to_perms",
]
