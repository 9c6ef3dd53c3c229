"""Driver-side file operations for the delta-rs engine (list, move, delete, footers).

Only per-file metadata passes through here: names, sizes and Parquet footers, never rows.
pyarrow's filesystems cover local paths and object stores (credentials from the environment);
Spark's ``s3a://`` becomes ``s3://`` for pyarrow and delta-rs.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote

import pyarrow.parquet as pq
from pyarrow import fs as pafs

log = logging.getLogger(__name__)

_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3"}
_IO_THREADS = 8
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def normalize_root(root: str) -> str:
    """Absolute local path, or the URI as given (without a trailing slash)."""
    if root.startswith("file://"):
        root = root[len("file://") :]
    elif root.startswith("file:"):
        root = root[len("file:") :]
    if "://" not in root:
        return os.path.abspath(os.path.expanduser(root))
    return root.rstrip("/")


def native_uri(uri: str) -> str:
    """The URI as delta-rs / pyarrow spell it."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    return f"{_SCHEME_ALIASES.get(scheme, scheme)}://{rest}"


@dataclass(frozen=True)
class StoredFile:
    rel_path: str  # relative to the directory listed, "/"-separated, on-disk spelling
    size: int
    mtime_ms: int


class FileStore:
    """Filesystem rooted at one table directory."""

    def __init__(self, table_uri: str) -> None:
        self.table_uri = table_uri
        self._fs, self._base = pafs.FileSystem.from_uri(native_uri(table_uri)) if "://" in table_uri else (pafs.LocalFileSystem(), table_uri)

    def _abs(self, rel: str) -> str:
        return f"{self._base}/{rel}" if rel else self._base

    def list_files(self, rel_dir: str) -> list[StoredFile]:
        """Data files under ``rel_dir`` (recursive), skipping hidden and ``_``-prefixed names."""
        base = self._abs(rel_dir)
        infos = self._fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        out = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(base) :].lstrip("/")
            if any(part.startswith((".", "_")) for part in rel.split("/")):
                continue
            mtime = info.mtime_ns // 1_000_000 if info.mtime_ns is not None else 0
            out.append(StoredFile(rel, int(info.size), mtime))
        return out

    def list_dirs(self, rel_dir: str) -> list[str]:
        infos = self._fs.get_file_info(pafs.FileSelector(self._abs(rel_dir), recursive=False, allow_not_found=True))
        return [os.path.basename(i.path) for i in infos if i.type == pafs.FileType.Directory]

    def exists(self, rel: str) -> bool:
        return self._fs.get_file_info(self._abs(rel)).type != pafs.FileType.NotFound

    def row_counts(self, rel_paths: list[str]) -> list[int]:
        """Rows per Parquet file, from the footers (read in parallel threads)."""

        def count(rel: str) -> int:
            with self._fs.open_input_file(self._abs(rel)) as handle:
                return pq.read_metadata(handle).num_rows

        with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
            return list(pool.map(count, rel_paths))

    def move_all(self, pairs: list[tuple[str, str]]) -> None:
        """Move files (relative src -> relative dst); destination directories are created."""
        for parent in sorted({os.path.dirname(dst) for _, dst in pairs}):
            if parent:
                self._fs.create_dir(self._abs(parent), recursive=True)

        def move(pair: tuple[str, str]) -> None:
            self._fs.move(self._abs(pair[0]), self._abs(pair[1]))

        with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
            list(pool.map(move, pairs))

    def delete_files(self, rel_paths: list[str]) -> None:
        """Best effort: used to clean up after a failed commit."""
        for rel in rel_paths:
            try:
                self._fs.delete_file(self._abs(rel))
            except OSError as exc:
                log.warning("could not delete %s/%s: %s", self.table_uri, rel, exc)

    def delete_dir(self, rel_dir: str) -> None:
        try:
            self._fs.delete_dir(self._abs(rel_dir))
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not delete %s/%s: %s", self.table_uri, rel_dir, exc)


def partition_values_of(rel_path: str, partition_by: list[str]) -> dict[str, str | None]:
    """Partition values encoded in a Hive-style relative path (``col=val/.../file``)."""
    values: dict[str, str | None] = {}
    for segment in rel_path.split("/")[:-1]:
        key, sep, raw = segment.partition("=")
        if not sep:
            continue
        value = unquote(raw)
        values[unquote(key)] = None if value == HIVE_NULL else value
    missing = set(partition_by) - set(values)
    if missing:
        raise ValueError(f"file {rel_path} has no directory for partition column(s) {sorted(missing)}")
    return {c: values[c] for c in partition_by}
