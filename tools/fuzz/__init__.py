"""Fuzzing the whole request path of a real xsd, as a hostile guest would.

``python -m tools.fuzz`` (see :mod:`tools.fuzz.__main__`) runs one seeded run of
:mod:`tools.fuzz.run`; ``python -m tools.fuzz.codec`` is the coverage-guided (atheris)
fuzzer of the codec and the engine's entry point.
"""
