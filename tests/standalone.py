"""A real Spark standalone cluster on 127.0.0.1 (a master and workers via ``spark-class``), for tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as resp:
            import json

            return sum(1 for w in json.load(resp).get("workers", []) if w.get("state") == "ALIVE")
    except OSError:
        return 0


@contextlib.contextmanager
def standalone_cluster(work_dir: Path, *, workers: int = 2, cores: int = 1, memory: str = "1g"):
    """Start a master and ``workers`` workers; yield the master URL; always tear everything down."""
    home = _spark_home()
    spark_class = str(home / "bin" / "spark-class")
    env = dict(os.environ, SPARK_HOME=str(home), PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1", SPARK_NO_DAEMONIZE="1")
    port, ui = _free_port(), _free_port()
    procs: list[subprocess.Popen] = []
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)],
            env=env, stdout=open(logs / "master.log", "wb"), stderr=subprocess.STDOUT,
        ))
        master = f"spark://127.0.0.1:{port}"
        for i in range(workers):
            wdir = work_dir / f"worker{i}"
            wdir.mkdir(exist_ok=True)
            procs.append(subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1", "--cores", str(cores),
                 "--memory", memory, "--work-dir", str(wdir), "--webui-port", str(_free_port())],
                env=env, stdout=open(logs / f"worker{i}.log", "wb"), stderr=subprocess.STDOUT,
            ))
        _wait_for(lambda: _alive_workers(ui) == workers, 120, f"{workers} workers to register with {master}")
        yield master
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
