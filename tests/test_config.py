from pathlib import Path

import pytest

from cdp_spark.config import load_config, parse_config
from cdp_spark.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_configs_load_and_share_sources():
    local = load_config(ROOT / "conf/local.yaml")
    cluster = load_config(ROOT / "conf/cluster.yaml")
    assert local.spark.mode == "embedded" and cluster.spark.mode == "cluster"
    assert [s.name for s in local.sources] == [s.name for s in cluster.sources]
    assert local.paths.lakehouse == str(ROOT / "data/lakehouse")  # relative to the project root
    assert cluster.paths.lakehouse == "s3a://example-cdp/lakehouse"  # URIs untouched
    # one set of business rules (conf/rules.yaml): a cluster resolves, segments and exports as the demo does
    assert (cluster.identity, cluster.gold, cluster.models) == (local.identity, local.gold, local.models)
    assert cluster.silver.model_dump(exclude={"local_secret_file"}) == local.silver.model_dump(exclude={"local_secret_file"})
    assert local.gold.segments and local.gold.exports and local.identity.per_type_caps["device_id"] == 1


def test_identifier_types_in_caps_and_link_rules_are_checked():
    with pytest.raises(ConfigError, match=r"identity\.per_type_caps: Value error, unknown identifier type\(s\) \['device'\]"):
        parse_config({"identity": {"per_type_caps": {"device": 8}}})
    with pytest.raises(ConfigError, match=r"identity\.link_rules\.0\.types: Value error, unknown identifier type\(s\) \['mail'\]"):
        parse_config({"identity": {"link_rules": [{"types": ["mail", "phone"]}]}})
    assert parse_config({}).identity.per_type_caps == {"email": 5, "phone": 5, "device_id": 8}


def test_unknown_key_and_wrong_type_name_the_key_path():
    with pytest.raises(ConfigError) as err:
        parse_config({"spark": {"mastr": "local[2]", "shuffle_partitions": "many"}})
    text = str(err.value)
    assert "spark.mastr: unknown key" in text
    assert "spark.shuffle_partitions: Input should be a valid integer" in text


def test_missing_source_fields_are_listed():
    with pytest.raises(ConfigError, match=r"sources\.0\.record_key: Field required"):
        parse_config({"sources": [{"name": "crm", "path": "crm/*.csv", "format": "csv", "kind": "customer"}]})


def test_include_is_merged_and_the_including_file_wins(tmp_path):
    (tmp_path / "base.yaml").write_text("spark: {master: 'local[1]', app_name: base}\nmodels: {churn_days: 60}\n")
    (tmp_path / "env.yaml").write_text("include: [base.yaml]\nspark: {app_name: env}\n")
    cfg = load_config(tmp_path / "env.yaml")
    assert (cfg.spark.master, cfg.spark.app_name, cfg.models.churn_days) == ("local[1]", "env", 60)


def test_include_cycle_and_missing_file_are_clear(tmp_path):
    (tmp_path / "a.yaml").write_text("include: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("include: [a.yaml]\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_is_frozen():
    cfg = parse_config({})
    with pytest.raises(Exception):
        cfg.spark.master = "yarn"  # type: ignore[misc]


def test_composite_record_key():
    cfg = parse_config({"sources": [{"name": "fx", "path": "fx/*.csv", "format": "csv", "kind": "fx", "record_key": "date, currency"}]})
    assert cfg.source("fx").key_columns == ("date", "currency")
    with pytest.raises(ConfigError, match="no source named 'crm'"):
        cfg.source("crm")
