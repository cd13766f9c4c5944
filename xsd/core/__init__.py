"""The store as a pure state machine.

Nothing in this package does I/O, reads a clock or imports trio: requests go in as
bytes with the current time, replies and effects come out as data. The whole state is
one :class:`~xsd.core.state.State` of plain values, which is what live update carries.
"""
