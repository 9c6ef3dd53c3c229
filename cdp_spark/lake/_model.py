"""Value types shared by the Lake facade and its engines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Keys of the JSON document stored as the commit's ``userMetadata`` (same on both engines).
META_RUN_ID = "cdp.runId"
META_STAGE = "cdp.stage"
META_OPERATION = "cdp.operation"


@dataclass(frozen=True)
class Txn:
    """Delta application transaction id: a rerun of the same logical write is a no-op.

    A write carrying ``Txn(app_id, version)`` is skipped when the table already recorded a
    transaction version >= ``version`` for ``app_id``; otherwise the marker is committed
    atomically with the data.
    """

    app_id: str
    version: int


@dataclass(frozen=True)
class CommitResult:
    """What one Lake write did."""

    table: str  # "<layer>.<name>"
    version: int | None  # table version after the commit (None if the table does not exist)
    skipped: bool  # True when txn showed this write was already committed
    rows_written: int | None  # rows in the added files when known
    files_added: int
    files_removed: int


@dataclass(frozen=True)
class CommitContext:
    """Who is committing: recorded in every commit's ``userMetadata``."""

    table: str
    run_id: str | None
    stage: str | None
    operation: str

    def user_metadata(self) -> str:
        return json.dumps({META_RUN_ID: self.run_id, META_STAGE: self.stage, META_OPERATION: self.operation}, sort_keys=True)


def parse_user_metadata(raw: Any) -> dict[str, Any]:
    """The cdp keys of a commit's ``userMetadata``; empty for commits not made by cdp-spark."""
    if not isinstance(raw, str) or not raw.startswith("{"):
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
