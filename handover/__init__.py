"""handover: the daemon's state to a flat stream of records and back, for live update."""
