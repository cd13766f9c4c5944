"""Side-by-side benchmark of xsd, Xen's C xenstored and oxenstored over the raw protocol.

Run ``python -m tools.bench --help`` from the repository root.
"""
