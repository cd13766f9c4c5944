"""Live-update benchmark: xsd's live update side by side with C xenstored 4.17's.

``python -m tools.bench_lu --help``; see README.md beside this file.
"""
