"""Landing files: list (path, size, mtime) and fingerprint (content hash, file-level issues).

Both passes run on the executors through Spark's ``binaryFile`` source (any Hadoop file system);
only per-file metadata reaches the driver. The content hash reads each candidate file once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote
from datetime import datetime

from pyspark.errors import AnalysisException
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from cdp_spark.errors import ConfigError
from cdp_spark.ingest import _reasons as R

log = logging.getLogger(__name__)

_SNIFF_BYTES = 8192
# Share of control bytes (not tab/newline/CR/FF) in the first bytes above which a text file is binary.
_BINARY_CONTROL_SHARE = 0.05


_EPOCH = datetime(1970, 1, 1)
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class LandingFile:
    """One landing file as the ingestion log identifies it."""

    path: str
    size: int
    mtime: datetime
    content_hash: str = ""
    issue: str | None = None  # file-level quarantine reason, None when the file is readable
    ends_with_newline: bool = True


def require_landing_root(spark: SparkSession, root: str) -> None:
    """Fail naming ``root`` when the landing directory itself is missing (a wrong path or an unmounted
    share), instead of reporting "no new files". A source's own folder may be missing: it has not
    delivered yet."""
    jvm = spark.sparkContext._jvm  # Hadoop's FileSystem: local paths, HDFS and object stores alike
    path = jvm.org.apache.hadoop.fs.Path(root)
    if not path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(path):
        raise ConfigError(f"paths.landing: the landing directory {root} does not exist; check the path or the mount")


def list_files(spark: SparkSession, root: str, pattern: str) -> list[LandingFile]:
    """Files matching ``<root>/<pattern>`` (sorted by path), without reading their content."""
    try:
        listing = spark.read.format("binaryFile").load(f"{root.rstrip('/')}/{pattern}")
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            log.info("no landing files match %s/%s", root, pattern)
            return []
        raise
    files = {r.path: LandingFile(r.path, r.length, r.modificationTime) for r in listing.select("path", "length", "modificationTime").collect()}
    # The scan skips zero-length files; the file index still lists them.
    for uri in listing.inputFiles():
        path = _scan_form(uri)
        if path not in files:
            files[path] = LandingFile(path, 0, _EPOCH, _EMPTY_SHA256, R.EMPTY_FILE, True)
    return sorted(files.values(), key=lambda f: f.path)


def _scan_form(uri: str) -> str:
    """A file index URI as the scan's ``path`` column spells it (``file:///a%20b`` -> ``file:/a b``)."""
    return unquote("file:/" + uri[len("file:///") :] if uri.startswith("file:///") else uri)


def decoded_path(file_path: Column) -> Column:
    """``_metadata.file_path`` (URL-encoded) as the landing listing spells it (decoded; '+' kept)."""
    return F.url_decode(F.regexp_replace(file_path, r"\+", "%2B"))


def _control_share(content: Column) -> Column:
    prefix = F.decode(F.substring(content, 1, _SNIFF_BYTES), "ISO-8859-1")
    controls = F.regexp_count(prefix, F.lit(r"[\x00-\x08\x0B\x0E-\x1F\x7F]"))
    return controls / F.greatest(F.length(prefix), F.lit(1))


def _issue(fmt: str) -> Column:
    """File-level quarantine reason of a non-empty file, null when its records can be read."""
    content, size = F.col("content"), F.col("length")
    if fmt == "parquet":
        magic = F.lit(b"PAR1")
        not_parquet = (size < 12) | (F.substring(content, 1, 4) != magic) | (F.substring(content, -4, 4) != magic)
        return F.when(not_parquet, F.lit(f"{R.CORRUPT_PARQUET}: no PAR1 magic bytes"))
    return F.when(_control_share(content) > _BINARY_CONTROL_SHARE, F.lit(R.BINARY_FILE))


def fingerprint(spark: SparkSession, files: Sequence[LandingFile], fmt: str) -> list[LandingFile]:
    """``files`` with their SHA-256 content hash, file-level issue and trailing-newline flag."""
    empty = [f for f in files if f.size == 0]
    files = [f for f in files if f.size > 0]
    if not files:
        return empty
    rows = (
        spark.read.format("binaryFile")
        .load([f.path for f in files])
        .select(
            "path",
            "length",
            "modificationTime",
            F.sha2(F.col("content"), 256).alias("content_hash"),
            _issue(fmt).alias("issue"),
            (F.substring(F.col("content"), -1, 1) == F.lit(b"\n")).alias("ends_with_newline"),
        )
        .collect()
    )
    out = [LandingFile(r.path, r.length, r.modificationTime, r.content_hash, r.issue, bool(r.ends_with_newline)) for r in rows]
    return sorted(out + empty, key=lambda f: f.path)
