"""Keyed pseudonyms (HMAC-SHA256 computed in the JVM) and loading of the pseudonymization secret."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdp_spark.errors import ConfigError, SecretMissingError

log = logging.getLogger(__name__)

_BLOCK = 64  # SHA-256 block size in bytes (RFC 2104: B)
_MIN_SECRET_BYTES = 32


def _padded_keys(key: bytes) -> tuple[bytes, bytes]:
    """RFC 2104: keys longer than the block are hashed, then zero-padded and XOR-ed with ipad/opad."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def keyed_hash(col: Column, key: bytes) -> Column:
    """HMAC-SHA256 of the column's UTF-8 bytes as 64 lowercase hex characters; null stays null.

    Spark has no HMAC function, so this is RFC 2104 spelled with built-ins that stay in the JVM:
    ``sha2(opad_key || unhex(sha2(ipad_key || message)))``. It equals Python's
    ``hmac.new(key, message.encode(), hashlib.sha256).hexdigest()``. Hash standardized values
    (:func:`cdp_spark.standardize.standardize_email`...), so equal people get equal pseudonyms.
    Non-string columns are hashed as their string cast.

    The padded keys are plan literals: anyone who can read query plans (Spark UI, event logs,
    ``explain``) can recover the secret, so restrict access to those as you would to the key.
    """
    if not key:
        raise ConfigError("keyed_hash: the key is empty; load it with load_secret()")
    inner_key, outer_key = _padded_keys(key)
    message = col.cast("string").cast("binary")
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_key), message), 256))
    return F.sha2(F.concat(F.lit(outer_key), inner), 256)


def load_secret(env_var: str, *, local_file: str | None, allow_create: bool) -> bytes:
    """The pseudonymization secret, as the UTF-8 bytes of ``env_var``'s value (surrounding blanks stripped).

    Without the variable: when ``allow_create`` (embedded runs) and ``local_file`` is given, read
    that file, creating it first with 32 random bytes (hex, mode 0600, parent directory 0700) and
    logging that it did; keep it outside version control (the default ``.secrets/`` is ignored by
    git). Otherwise (cluster runs) raise :class:`SecretMissingError` naming the variable. A secret
    shorter than 32 bytes raises :class:`ConfigError`. The secret is never logged.
    """
    value = os.environ.get(env_var, "").strip()
    if value:
        return _checked(value.encode("utf-8"), f"environment variable {env_var}")
    if not allow_create or local_file is None:
        raise SecretMissingError(
            f"environment variable {env_var} is not set: set it to the pseudonymization secret "
            f"(at least {_MIN_SECRET_BYTES} random bytes, e.g. `export {env_var}=$(openssl rand -hex 32)`); "
            "use the same value for every run, or pseudonyms will not match across runs"
        )
    path = Path(local_file).expanduser()
    if not path.exists():
        _create_secret_file(path)
        log.warning("created a local pseudonymization secret at %s (%s is not set); back it up, and set %s for shared or cluster runs", path, env_var, env_var)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("local secret file %s is readable by group or others (mode %o); run chmod 600 %s", path, mode, path)
    return _checked(path.read_text(encoding="utf-8").strip().encode("utf-8"), f"local secret file {path}")


def _create_secret_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(_MIN_SECRET_BYTES) + "\n")


def _checked(secret: bytes, where: str) -> bytes:
    if len(secret) < _MIN_SECRET_BYTES:
        raise ConfigError(
            f"the pseudonymization secret in {where} is {len(secret)} bytes; use at least {_MIN_SECRET_BYTES} "
            "(e.g. `openssl rand -hex 32`)"
        )
    return secret
