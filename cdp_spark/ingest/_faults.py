"""Bronze's fault points: delegates to :mod:`cdp_spark.faults` (``CDP_FAULT_POINT=<name>`` kills the process there)."""

from __future__ import annotations

from cdp_spark import faults

ENV_VAR = faults.ENV_POINT


def _crash(name: str) -> None:
    faults.crash(name)


def fault_point(name: str) -> None:
    """Exit the process abruptly (as a kill would) when the environment asks for ``name``."""
    if faults.should_fire(name):
        _crash(name)
