"""Erasure in activation export files (private).

Exports live in ``<exports>/<destination>/<run_id>/`` (data files + ``manifest.json``, see
``cdp_spark.activation``). A run directory is *delivered* once the job that ships it to the
destination writes the marker file ``privacy.delivered_marker`` (default ``_DELIVERED``) into it,
or sets ``delivered_at`` in its manifest. Undelivered files are rewritten without the erased
customers and their manifest updated; delivered ones are left as they are (the copy that
matters is at the recipient, who must be told: GDPR Art. 17(2)/19) and reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from pyarrow import fs as pafs
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExportRun:
    directory: str  # as given to Spark (URI or local path)
    base: str  # the same, for the pyarrow filesystem
    manifest: dict
    delivered: bool


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path and not path.startswith("file://"):
        return pafs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))
    return pafs.LocalFileSystem(), path.removeprefix("file://")


def export_runs(root: str, *, marker: str) -> list[ExportRun]:
    """Every ``<destination>/<run>/`` directory under ``root`` that has a manifest."""
    fs, base = filesystem(root)
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        return []
    runs = []
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if info.type != pafs.FileType.File or info.base_name != MANIFEST:
            continue
        run_base = info.path.rsplit("/", 1)[0]
        with fs.open_input_stream(info.path) as stream:
            manifest = json.loads(stream.read().decode("utf-8"))
        delivered = bool(manifest.get("delivered_at")) or fs.get_file_info(f"{run_base}/{marker}").type == pafs.FileType.File
        directory = root.rstrip("/") + run_base[len(base.rstrip("/")):]
        runs.append(ExportRun(directory, run_base, manifest, delivered))
    return sorted(runs, key=lambda r: r.directory)


def data_paths(run: ExportRun) -> list[str]:
    return [f"{run.directory}/{f['name']}" for f in run.manifest.get("files", [])]


def read_export(spark: SparkSession, run: ExportRun) -> DataFrame:
    """The run's data files as written (CSV columns come back as text)."""
    fmt, paths = run.manifest.get("format", "csv"), data_paths(run)
    if fmt == "csv":
        return spark.read.option("header", "true").option("escape", '"').csv(paths)
    return spark.read.format(fmt).load(paths)


def _sha256(fs: pafs.FileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def rewrite_without(spark: SparkSession, run: ExportRun, uids: DataFrame, *, run_id: str) -> int:
    """Rewrite an undelivered run without the rows of ``uids`` (``customer_uid``); returns rows removed."""
    df = read_export(spark, run)
    if "customer_uid" not in df.columns:
        return 0
    kept = df.join(F.broadcast(uids.select("customer_uid").distinct()), "customer_uid", "left_anti").select(*df.columns).localCheckpoint()
    total, remaining = df.count(), kept.count()
    if total == remaining:
        return 0
    fmt = run.manifest.get("format", "csv")
    staging = f"{run.directory}/_erasure-{run_id}"
    writer = kept.repartition(1).sortWithinPartitions(*[c for c in ("action", "customer_uid") if c in kept.columns]).write.mode("overwrite")
    if fmt == "csv":
        writer = writer.option("header", "true").option("escape", '"')
    writer.format(fmt).save(staging)
    fs, _ = filesystem(run.directory)
    staged_base = f"{run.base}/_erasure-{run_id}"
    new_files = sorted(
        i for i in fs.get_file_info(pafs.FileSelector(staged_base)) if i.type == pafs.FileType.File and i.base_name.startswith("part-")
    )
    for old in run.manifest.get("files", []):
        for name in (old["name"], f".{old['name']}.crc"):  # Hadoop's local checksum file goes too
            if fs.get_file_info(f"{run.base}/{name}").type == pafs.FileType.File:
                fs.delete_file(f"{run.base}/{name}")
    files = []
    for info in new_files:
        target = f"{run.base}/{info.base_name}"
        fs.move(info.path, target)
        files.append({"name": info.base_name, "bytes": fs.get_file_info(target).size, "sha256": _sha256(fs, target)})
    fs.delete_dir(staged_base)
    manifest = dict(run.manifest)
    manifest["files"] = files
    manifest["rows"] = remaining
    if "action" in kept.columns:
        by_action = {r["action"]: int(r["n"]) for r in kept.groupBy("action").agg(F.count(F.lit(1)).alias("n")).collect()}
        manifest["added"], manifest["removed"] = by_action.get("add", 0), by_action.get("remove", 0)
    removed = total - remaining
    manifest["erasures"] = [*manifest.get("erasures", []), {"run_id": run_id, "rows_removed": removed, "at": datetime.now(timezone.utc).isoformat()}]
    with fs.open_output_stream(f"{run.base}/{MANIFEST}") as stream:
        stream.write(json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
    log.info("export %s: %d row(s) of erased customers removed, %d left", run.directory, removed, remaining)
    return removed


def count_rows_of(spark: SparkSession, run: ExportRun, uids: DataFrame) -> int:
    df = read_export(spark, run)
    if "customer_uid" not in df.columns:
        return 0
    return df.join(F.broadcast(uids.select("customer_uid").distinct()), "customer_uid", "left_semi").count()
