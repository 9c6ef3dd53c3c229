"""Keyed pseudonyms (HMAC in the JVM against Python's hmac) and secret loading."""

from __future__ import annotations

import hashlib
import hmac
import logging
import stat

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp_spark.errors import ConfigError, SecretMissingError
from cdp_spark.privacy.pseudonymize import keyed_hash, load_secret

ENV = "CDP_TEST_PSEUDONYMIZATION_KEY"
MESSAGES = ["ilker@firma.com.tr", "+905321234567", "", "groß@post.de", "山田太郎", "x" * 200, None]


@pytest.mark.parametrize(
    "key",
    [
        b"0123456789abcdef0123456789abcdef",  # 32 bytes: padded to the 64-byte block
        bytes(range(64)),  # exactly one block
        "şifre-çok-gizli-ключ".encode() * 8,  # longer than a block: hashed first (RFC 2104)
    ],
    ids=["short-key", "block-key", "long-key"],
)
def test_keyed_hash_equals_python_hmac_sha256(spark, key):
    expected = spark.createDataFrame(
        [(m, None if m is None else hmac.new(key, m.encode("utf-8"), hashlib.sha256).hexdigest()) for m in MESSAGES],
        "msg string, digest string",
    )
    assertDataFrameEqual(expected.select("msg", keyed_hash(F.col("msg"), key).alias("digest")), expected)


def test_keyed_hash_depends_on_the_key(spark):
    df = spark.createDataFrame([("ilker@firma.com.tr",)], "msg string")
    one, two = df.select(keyed_hash(F.col("msg"), b"a" * 32), keyed_hash(F.col("msg"), b"b" * 32)).first()
    assert one != two


def test_keyed_hash_refuses_an_empty_key():
    with pytest.raises(ConfigError, match="key is empty"):
        keyed_hash(F.col("msg"), b"")


def test_secret_comes_from_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, "  " + "s" * 40 + "\n")
    assert load_secret(ENV, local_file=str(tmp_path / "unused.key"), allow_create=True) == b"s" * 40
    assert not (tmp_path / "unused.key").exists()


def test_cluster_run_without_the_variable_raises_naming_it(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(SecretMissingError, match=ENV):
        load_secret(ENV, local_file=str(tmp_path / "secret.key"), allow_create=False)
    assert not (tmp_path / "secret.key").exists()


def test_embedded_run_without_a_file_path_raises(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(SecretMissingError, match=ENV):
        load_secret(ENV, local_file=None, allow_create=True)


def test_embedded_run_creates_a_private_local_secret_once_and_reuses_it(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv(ENV, raising=False)
    path = tmp_path / ".secrets" / "pseudonymization.key"
    with caplog.at_level(logging.WARNING, logger="cdp_spark.privacy.pseudonymize"):
        first = load_secret(ENV, local_file=str(path), allow_create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(first) == 64 and bytes.fromhex(first.decode())  # 32 random bytes as hex
    assert [r.getMessage().startswith(f"created a local pseudonymization secret at {path}") for r in caplog.records] == [True]
    assert first.decode() not in caplog.text
    caplog.clear()
    assert load_secret(ENV, local_file=str(path), allow_create=True) == first
    assert caplog.records == []


def test_short_secret_is_rejected(monkeypatch):
    monkeypatch.setenv(ENV, "tooshort")
    with pytest.raises(ConfigError, match=f"environment variable {ENV} is 8 bytes"):
        load_secret(ENV, local_file=None, allow_create=False)
