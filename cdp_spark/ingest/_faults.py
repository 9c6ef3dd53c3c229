"""Fault injection for crash tests: ``CDP_FAULT_POINT=<name>`` kills the process at that point."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

ENV_VAR = "CDP_FAULT_POINT"


def _crash(name: str) -> None:
    log.error("fault point %s reached: exiting with 137 (simulated crash)", name)
    os._exit(137)


def fault_point(name: str) -> None:
    """Exit the process abruptly (as a kill would) when ``CDP_FAULT_POINT`` equals ``name``."""
    if os.environ.get(ENV_VAR) == name:
        _crash(name)
