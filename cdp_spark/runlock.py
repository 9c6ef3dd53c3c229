"""One run at a time per lakehouse: a lock file with its holder, a heartbeat and stale-lock takeover.

The lock is ``<lakehouse>/_cdp_run.lock`` (Delta readers and vacuum ignore names starting with
``_``), created with ``O_CREAT | O_EXCL`` so exactly one process wins. It holds the run id, host,
pid and start time; a heartbeat thread touches it while the run lives. A lock is stale when its
holder is a dead process on this host, or its heartbeat is older than ``stale_after_seconds``
(any host). A stale lock is taken over by renaming it away first (atomic: two takers cannot both
succeed) and creating a fresh one.

Object-store lakehouses (``s3a://`` ...) need a lock service of the scheduler's (Airflow
``max_active_runs=1``, Databricks ``max_concurrent_runs: 1``); there the lock logs that and does nothing.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cdp_spark.errors import CdpError, StorageError

if TYPE_CHECKING:
    from cdp_spark.config import CdpConfig

log = logging.getLogger(__name__)

LOCK_NAME = "_cdp_run.lock"


class RunLockedError(CdpError):
    """Another run holds the lakehouse."""


@dataclass(frozen=True)
class Holder:
    run_id: str
    host: str
    pid: int
    started_at: str

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host}, started {self.started_at})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``with RunLock(lakehouse, run_id=...):`` — raises RunLockedError naming the holder, or waits."""

    def __init__(self, lakehouse: str, *, run_id: str, wait_seconds: float = 0.0, stale_after_seconds: float = 600.0, heartbeat_seconds: float = 15.0) -> None:
        self.enabled = "://" not in lakehouse
        self.path = Path(lakehouse) / LOCK_NAME
        self.run_id = run_id
        self.wait_seconds = wait_seconds
        self.stale_after_seconds = stale_after_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._me = Holder(run_id, socket.gethostname(), os.getpid(), datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def for_config(cls, cfg: CdpConfig, *, run_id: str, wait_seconds: float | None = None) -> RunLock:
        """The lock of ``cfg``'s lakehouse with its ``ops`` settings; ``wait_seconds`` overrides ``ops.lock_wait_seconds``."""
        wait = cfg.ops.lock_wait_seconds if wait_seconds is None else wait_seconds
        return cls(cfg.paths.lakehouse, run_id=run_id, wait_seconds=wait, stale_after_seconds=cfg.ops.lock_stale_after_seconds)

    # -- holder inspection
    def holder(self) -> Holder | None:
        try:
            return Holder(**json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            return Holder("unknown (unreadable lock file)", "?", -1, "?")

    def _is_stale(self, holder: Holder) -> bool:
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        if holder.host == self._me.host and holder.pid > 0 and not _pid_alive(holder.pid):
            return True
        return age > self.stale_after_seconds

    # -- acquire / release
    def _try_create(self) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:  # read-only mount, permissions, full disk: say where, without a traceback
            raise StorageError(
                f"cannot create the run lock {self.path}: {exc.strerror or exc}; the lakehouse {self.path.parent} "
                "must be writable by this run (nothing was read or written)"
            ) from exc
        with os.fdopen(fd, "w") as fh:
            json.dump(self._me.__dict__, fh)
        return True

    def _take_over(self, holder: Holder) -> bool:
        aside = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}-{time.time_ns()}")
        try:
            os.rename(self.path, aside)  # only one taker wins the rename
        except FileNotFoundError:
            return False
        log.warning("took over a stale run lock from %s", holder.describe())
        aside.unlink(missing_ok=True)
        return self._try_create()

    def acquire(self) -> None:
        if not self.enabled:
            log.info("run lock: %s is not a local path; rely on the scheduler for one run at a time", self.path.parent)
            return
        deadline = time.monotonic() + self.wait_seconds
        while True:
            if self._try_create():
                break
            holder = self.holder()
            if holder is not None and self._is_stale(holder) and self._take_over(holder):
                break
            if time.monotonic() >= deadline:
                who = holder.describe() if holder else "another run"
                raise RunLockedError(
                    f"the lakehouse {self.path.parent} is locked by {who}; wait for it to finish, "
                    f"pass --wait-lock SECONDS, or remove {self.path} if you are sure that run is gone"
                )
            time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))
        self._thread = threading.Thread(target=self._beat, name="cdp-run-lock-heartbeat", daemon=True)
        self._thread.start()
        log.info("run lock acquired: %s", self.path)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                log.error("run lock %s disappeared while run %s was running", self.path, self.run_id)
                return

    def release(self) -> None:
        if not self.enabled:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = self.holder()
        if holder is not None and holder.pid == self._me.pid and holder.run_id == self.run_id:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
