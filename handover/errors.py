"""The one error of handover: the records (or the frame around them) cannot be loaded."""

from __future__ import annotations


class StateError(Exception):
    """The records do not describe a state this version can load."""
