"""``cdp doctor``: what this machine has, what the project needs, and how to fix the gaps."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cdp_spark.config import CdpConfig, load_config
from cdp_spark.errors import CdpError

_PACKAGES = ("pyspark", "delta-spark", "deltalake", "graphframes-py", "great-expectations", "mlflow", "splink", "pandas", "pyarrow", "phonenumbers", "pycountry", "faker")


def _java_version() -> tuple[int | None, str]:
    java = shutil.which("java") or (os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else None)
    if not java:
        return None, "not found"
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None, out.strip().splitlines()[0] if out else "unknown"
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major, out.strip().splitlines()[0]


def _writable(path: str) -> bool:
    if "://" in path:
        return True  # object store: checked by the first write
    target = Path(path)
    probe_dir = target if target.exists() else next((p for p in target.parents if p.exists()), Path("/"))
    try:
        with tempfile.NamedTemporaryFile(dir=probe_dir):
            return True
    except OSError:
        return False


def checks(cfg: CdpConfig, *, start_spark: bool = True) -> list[tuple[str, bool, str]]:
    """(check, ok, detail-or-fix) rows."""
    rows: list[tuple[str, bool, str]] = []
    py_ok = sys.version_info >= (3, 11)
    rows.append(("python >= 3.11", py_ok, sys.version.split()[0] if py_ok else f"{sys.version.split()[0]}: install Python 3.11+"))
    major, text = _java_version()
    rows.append(("java >= 17", bool(major and major >= 17), text if major and major >= 17 else f"{text}: install a JDK 17+ (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"))
    for pkg in _PACKAGES:
        try:
            rows.append((f"package {pkg}", True, md.version(pkg)))
        except md.PackageNotFoundError:
            rows.append((f"package {pkg}", False, "missing: pip install --require-hashes -r requirements/base.txt"))
    for name in ("landing", "lakehouse", "checkpoints", "exports"):
        path = getattr(cfg.paths, name)
        ok = _writable(path)
        rows.append((f"path {name}", ok, path if ok else f"{path}: not writable; fix permissions or point paths.{name} elsewhere"))
    secret_env = cfg.silver.pseudonymization_secret_env
    if os.environ.get(secret_env):
        rows.append(("pseudonymization secret", True, f"from ${secret_env}"))
    elif cfg.spark.mode == "embedded":
        rows.append(("pseudonymization secret", True, f"${secret_env} unset: the embedded default uses/creates {cfg.silver.local_secret_file}"))
    else:
        rows.append(("pseudonymization secret", False, f"set ${secret_env} (cluster runs never create a secret)"))
    if start_spark:
        from cdp_spark.session import build_session, detect_capabilities

        spark = build_session(cfg)
        caps = detect_capabilities(spark)
        rows.append(("spark session", True, f"Spark {spark.version}, master {spark.sparkContext.master}"))
        rows.append(("storage engine", True, "delta-spark (Delta JVM classes found)" if caps.delta else "delta-rs (embedded; Delta JVM classes not on the classpath: add the delta-spark jar via spark.jars to use delta-spark)"))
        rows.append(("components engine", True, "graphframes (jar found)" if caps.graphframes else "native (randomized contraction, local finish on the driver; GraphFrames jar not on the classpath)"))
        rows.extend(_pii_scan(spark, cfg))
    return rows


def _pii_scan(spark, cfg: CdpConfig) -> list[tuple[str, bool, str]]:
    try:
        from cdp_spark.privacy.scan import scan_for_raw_pii
    except ImportError:
        return []
    findings = scan_for_raw_pii(spark, cfg)
    if not findings:
        return [("PII scan of gold and exports", True, "no raw emails or phone numbers found")]
    return [("PII scan of gold and exports", False, "; ".join(findings))]


def run_doctor(config_path: str) -> int:
    try:
        cfg = load_config(config_path)
    except CdpError as err:
        print(f"config: {err}")
        return 2
    print(f"cdp doctor (config {config_path})")
    rows = checks(cfg)
    width = max(len(r[0]) for r in rows)
    for name, ok, detail in rows:
        print(f"  [{'ok' if ok else 'FAIL'}] {name:<{width}}  {detail}")
    failed = [r for r in rows if not r[1]]
    print("all checks passed" if not failed else f"{len(failed)} check(s) failed: see the fixes above")
    return 0 if not failed else 1
