"""The lakehouse run lock: one run at a time, a clear refusal naming the holder, stale-lock takeover."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from cdp_spark.runlock import LOCK_NAME, RunLock, RunLockedError


def test_second_run_is_refused_naming_the_holder(tmp_path):
    with RunLock(str(tmp_path), run_id="first"):
        with pytest.raises(RunLockedError) as err:
            RunLock(str(tmp_path), run_id="second").acquire()
    assert f"run first (pid {os.getpid()}" in str(err.value)
    assert "--wait-lock" in str(err.value)
    assert not (tmp_path / LOCK_NAME).exists()  # released on exit


def test_waiting_run_gets_the_lock_when_the_holder_finishes(tmp_path):
    first = RunLock(str(tmp_path), run_id="first")
    first.acquire()
    threading.Timer(1.0, first.release).start()
    started = time.monotonic()
    with RunLock(str(tmp_path), run_id="second", wait_seconds=30) as second:
        assert second.holder().run_id == "second"
    assert time.monotonic() - started >= 0.9


def test_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    # A real process takes the lock and is killed with SIGKILL: its lock file stays behind.
    code = f"from cdp_spark.runlock import RunLock; RunLock({str(tmp_path)!r}, run_id='killed').acquire(); import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while not (tmp_path / LOCK_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["run_id"] == "killed"
    with RunLock(str(tmp_path), run_id="next") as lock:
        assert lock.holder().run_id == "next"


def test_lock_with_an_old_heartbeat_from_another_host_is_stale(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"run_id": "remote", "host": "other-host", "pid": 1, "started_at": "x"}))
    old = time.time() - 3600
    os.utime(tmp_path / LOCK_NAME, (old, old))
    with RunLock(str(tmp_path), run_id="mine", stale_after_seconds=600) as lock:
        assert lock.holder().run_id == "mine"


def test_live_lock_from_another_host_is_respected(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"run_id": "remote", "host": "other-host", "pid": 1, "started_at": "x"}))
    with pytest.raises(RunLockedError, match="run remote \\(pid 1 on other-host"):
        RunLock(str(tmp_path), run_id="mine").acquire()


def test_heartbeat_keeps_a_long_run_fresh(tmp_path):
    with RunLock(str(tmp_path), run_id="long", heartbeat_seconds=0.2):
        before = (tmp_path / LOCK_NAME).stat().st_mtime
        time.sleep(0.8)
        assert (tmp_path / LOCK_NAME).stat().st_mtime > before
