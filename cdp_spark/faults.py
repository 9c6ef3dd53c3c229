"""Fault points: named places where a crash test can kill the process (see docs/reliability.md).

A fault point is one line in library code, ``fault_point("lake.after_commit", ctx.table)``. It does
nothing unless the environment asks for it:

* ``CDP_FAULT_POINT`` is a comma list of specs. A spec is a point name (``silver.between_tables``),
  optionally narrowed to a detail (``lake.after_commit:gold.customer_profile``) and/or to the N-th
  matching hit in this process (``lake.after_files_before_commit#3``, 1-based).
* ``CDP_FAULT_RANDOM_SEED`` with ``CDP_FAULT_PROBABILITY`` (default 0.05) fires each hit with that
  probability, drawn from a hash of (seed, point, detail, hit number): the same seed kills the same
  run at the same place, whatever else the process does.

A firing point logs and calls ``os._exit(137)``: no ``finally`` blocks, no atexit handlers, no
flushing (the exit status a SIGKILL gives), so the crash is as abrupt as a kill.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import Counter

log = logging.getLogger(__name__)

ENV_POINT = "CDP_FAULT_POINT"
ENV_SEED = "CDP_FAULT_RANDOM_SEED"
ENV_PROBABILITY = "CDP_FAULT_PROBABILITY"
EXIT_CODE = 137  # 128 + SIGKILL
DEFAULT_PROBABILITY = 0.05

# Every fault point in the code base (name -> where it is); the docs and the trial harness use it.
POINTS: dict[str, str] = {
    "bronze.after_plan": "bronze: the batch plan is in ops.ingestion_log, nothing read yet",
    "bronze.after_data_commit": "bronze: quarantine and data committed, ingestion log not yet updated",
    "lake.after_files_before_commit": "every delta-rs write: data files in their final place, Delta commit not yet made (detail: table)",
    "lake.after_commit": "every delta-rs write: right after the Delta commit (detail: table)",
    "silver.between_tables": "silver: after each silver table is written, before the next",
    "identity.after_map_before_registry": "identity: identity_map/nodes/edges written, customer_id_registry not yet",
    "gold.after_profile": "gold: customer_profile written, features and segments not yet",
    "score.before_upsert": "score: scores computed, gold.customer_scores not yet written",
}

_hits: Counter[tuple[str, str]] = Counter()
_lock = threading.Lock()


def _matches(spec: str, name: str, detail: str | None, hit: int) -> bool:
    target, _, nth = spec.partition("#")
    point, _, wanted_detail = target.partition(":")
    if point != name or (wanted_detail and wanted_detail != detail):
        return False
    return not nth or hit == int(nth)


def _draw(seed: str, name: str, detail: str | None, hit: int) -> float:
    digest = hashlib.sha256(f"{seed}|{name}|{detail or ''}|{hit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def should_fire(name: str, detail: str | None = None) -> bool:
    """Whether this hit of the point ``name`` (with ``detail``) is asked to crash; counts the hit."""
    specs = os.environ.get(ENV_POINT, "")
    seed = os.environ.get(ENV_SEED, "")
    if not specs and not seed:
        return False
    with _lock:
        _hits[(name, detail or "")] += 1
        hit_by_detail = _hits[(name, detail or "")]
        hit = sum(n for (point, _), n in _hits.items() if point == name)
    for spec in (s.strip() for s in specs.split(",") if s.strip()):
        # "#N" counts hits of the spec's scope: of the point, or of the point with that detail.
        if _matches(spec, name, detail, hit_by_detail if ":" in spec.partition("#")[0] else hit):
            return True
    if seed:
        probability = float(os.environ.get(ENV_PROBABILITY, DEFAULT_PROBABILITY))
        return _draw(seed, name, detail, hit_by_detail) < probability
    return False


def crash(name: str, detail: str | None = None) -> None:
    """Die now, as a SIGKILL would (exit status 137)."""
    where = f"{name}:{detail}" if detail else name
    log.error("fault point %s reached: exiting with %d (simulated crash)", where, EXIT_CODE)
    os._exit(EXIT_CODE)


def fault_point(name: str, detail: str | None = None) -> None:
    """Crash here when the environment asks for this point (see the module docstring); else nothing."""
    if should_fire(name, detail):
        crash(name, detail)
