"""``cdp package``: what spark-submit needs to ship cdp-spark to a cluster.

* ``dist/cdp_spark.zip`` for ``--py-files`` (the pure-Python package, no caches);
* ``dist/cdp_spark-<version>-py3-none-any.whl`` for clusters that install wheels (Databricks, YARN images);
* the jobs stay as plain files: ``spark-submit ... jobs/<stage>.py``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import cdp_spark

log = logging.getLogger(__name__)


def build_zip(out_dir: Path) -> Path:
    package_dir = Path(cdp_spark.__file__).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "cdp_spark.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                zf.write(path, Path("cdp_spark") / path.relative_to(package_dir))
    log.info("wrote %s", target)
    return target


def build_wheel(project_dir: Path, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out_dir), str(project_dir)]
    subprocess.run(cmd, check=True)
    wheels = sorted(out_dir.glob("cdp_spark-*.whl"), key=lambda p: p.stat().st_mtime)
    log.info("wrote %s", wheels[-1])
    return wheels[-1]


def package(project_dir: Path, out_dir: Path, *, wheel: bool = True) -> list[Path]:
    built = [build_zip(out_dir)]
    if wheel:
        built.append(build_wheel(project_dir, out_dir))
    return built
