"""Typed, validated configuration.

One YAML file per environment under ``conf/`` is loaded into the frozen :class:`CdpConfig`.
Unknown keys and wrong types are errors that name the offending key path. Relative paths are
resolved against the directory the YAML file lives in's parent (the project root for
``conf/*.yaml``), so a config works from any working directory. Secrets never live here: they
come from environment variables named in the config (``*_env`` keys).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdp_spark.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Model):
    """Where data lives. Local paths or object-store URIs (``s3a://``, ``abfss://``...)."""

    landing: str = "data/landing"
    lakehouse: str = "data/lakehouse"
    checkpoints: str = "data/checkpoints"
    exports: str = "data/exports"
    reports: str = "data/reports"
    mlflow_tracking_uri: str = "sqlite:///data/mlflow/mlflow.db"
    mlflow_artifacts: str = "data/mlflow/artifacts"


class JarPackagesConfig(_Model):
    """Off by default: only for clusters that can reach a Maven repository."""

    enabled: bool = False
    coordinates: tuple[str, ...] = (
        "io.delta:delta-spark_2.13:4.0.0",
        "io.graphframes:graphframes-spark4_2.13:0.10.0",
    )


class SparkConfig(_Model):
    mode: Literal["embedded", "cluster"] = "embedded"
    app_name: str = "cdp-spark"
    master: str = "local[2]"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(default=8, ge=1)
    log_level: str = "WARN"
    jars: tuple[str, ...] = ()
    packages: JarPackagesConfig = JarPackagesConfig()
    conf: dict[str, str] = Field(default_factory=dict)


class EnginesConfig(_Model):
    storage: Literal["auto", "delta-spark", "delta-rs"] = "auto"
    components: Literal["auto", "graphframes", "native"] = "auto"


class SourceConfig(_Model):
    """One landing source. Adding a source is a config entry, no code."""

    name: str
    path: str  # glob relative to the landing root, e.g. "crm/*.csv"
    format: Literal["csv", "json", "parquet"]
    options: dict[str, str] = Field(default_factory=dict)
    country: str | None = None  # fixed ISO alpha-2 for every record
    country_column: str | None = None  # or taken from this column
    event_time_column: str | None = None
    timestamp_format: str | None = None  # Spark datetime pattern; ISO-8601 when None
    timezone: str = "UTC"  # zone of naive timestamps: an IANA name, or "country" for the record's country zone
    record_key: str  # column name; a composite key is comma-separated ("date,currency")
    columns: dict[str, str] = Field(default_factory=dict)  # source field -> canonical name
    kind: Literal[
        "customer", "order", "web_event", "app_event", "pos", "marketing", "support", "consent", "fx", "person"
    ]
    max_record_bytes: int = Field(default=1_000_000, ge=1)

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.record_key.split(",") if part.strip())

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.replace("_", "").isalnum() or not value[0].isalpha():
            raise ValueError("must be letters, digits and underscores, starting with a letter")
        return value


class BronzeConfig(_Model):
    partition_by: tuple[str, ...] = ("ingest_date",)
    target_file_mb: int = Field(default=128, ge=1)


class SilverConfig(_Model):
    reporting_currency: str = "EUR"
    gmail_normalization: bool = True
    pseudonymization_secret_env: str = "CDP_PSEUDONYMIZATION_KEY"
    local_secret_file: str = ".secrets/pseudonymization.key"
    quality_severity: dict[str, Literal["error", "warn", "critical"]] = Field(default_factory=dict)
    # Process only the bronze rows added since the last silver batch (off: rebuild silver from all of bronze every run).
    incremental: bool = True


# The identifier types silver keys (silver.identifiers.id_type, besides "record" for a record with none).
IDENTIFIER_TYPES: tuple[str, ...] = ("customer_id", "email", "phone", "loyalty_id", "device_id", "cookie_id", "legacy_id", "national_id")


def _known_identifier_types(types: Any) -> None:
    unknown = sorted(set(types) - set(IDENTIFIER_TYPES))
    if unknown:
        raise ValueError(f"unknown identifier type(s) {unknown}; use some of {', '.join(IDENTIFIER_TYPES)}")


class LinkRule(_Model):
    types: tuple[str, str]
    confidence: float = Field(default=1.0, gt=0, le=1)

    @field_validator("types")
    @classmethod
    def _types_known(cls, value: tuple[str, str]) -> tuple[str, str]:
        _known_identifier_types(value)
        return value


class ProbabilisticConfig(_Model):
    """Probabilistic (Splink) matching of person records; see docs/matching.md."""

    enabled: bool = True
    match_probability: float = Field(default=0.99, gt=0, lt=1)  # pairs above it become identity edges
    # Each rule lists matching-feature columns (or Spark SQL expressions over them) that must be equal.
    blocking_rules: tuple[tuple[str, ...], ...] = (
        ("country", "dob"),
        # both initials: (country, postcode, last_initial) alone made 25M pairs at 1M customers (docs/benchmarks-1m.md)
        ("country", "postcode", "first_initial", "last_initial"),
        ("name_key", "birth_year"),
    )
    model_dir: str | None = None  # None: <paths.lakehouse>/models/identity_probabilistic; relative: under the lakehouse
    retrain: bool = False  # train a new model version instead of scoring with the latest saved one
    max_pairs: int = Field(default=20_000_000, ge=1)  # refuse blocking rules that would score more candidate pairs
    max_links_per_record: int = Field(default=3, ge=1)  # an edge must be among the best N of both its records

    @field_validator("blocking_rules")
    @classmethod
    def _rules_given(cls, value: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        if not value or any(not rule or any(not part.strip() for part in rule) for rule in value):
            raise ValueError("give at least one rule, each a non-empty list of column names such as [country, dob]")
        return value


class IdentityConfig(_Model):
    max_rounds: int | None = None
    # Connected components finish on the driver once contraction leaves this many edge rows (0: never)
    cc_local_finish_rows: int = Field(default=16_000_000, ge=0)
    junk_max_records: int = Field(default=50, ge=2)
    junk_values: tuple[str, ...] = ("test@test.com", "0000000000", "unknown", "n/a", "none", "null")
    # identifier type -> most customer accounts it may link; above it the identifier is shared and blocklisted
    per_type_caps: dict[str, int] = Field(default_factory=lambda: {"email": 5, "phone": 5, "device_id": 8})
    component_size_alarm: int = Field(default=200, ge=2)
    anonymous_ttl_days: int = Field(default=395, ge=1)
    link_rules: tuple[LinkRule, ...] = ()
    probabilistic: ProbabilisticConfig = ProbabilisticConfig()

    @field_validator("per_type_caps")
    @classmethod
    def _caps_known(cls, value: dict[str, int]) -> dict[str, int]:
        _known_identifier_types(value)
        if any(v < 1 for v in value.values()):
            raise ValueError("caps must be at least 1 customer account")
        return value


class SurvivorshipRule(_Model):
    """How one golden profile attribute is chosen (see ``cdp_spark.profiles.survivorship``)."""

    attribute: str
    rule: Literal["most_recent", "most_frequent", "source_priority", "first_non_null", "max", "min", "union"]
    source_priority: tuple[str, ...] = Field(default=(), validate_default=True)

    @field_validator("source_priority")
    @classmethod
    def _priority_given(cls, value: tuple[str, ...], info: Any) -> tuple[str, ...]:
        if info.data.get("rule") == "source_priority" and not value:
            raise ValueError("rule source_priority needs the list of sources, best first")
        return value


class SegmentConfig(_Model):
    """A segment: a Spark SQL boolean condition over the profile and the point-in-time features."""

    name: str
    description: str = ""
    condition: str

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value or not value.replace("_", "").isalnum() or not value[0].isalpha():
            raise ValueError("must be letters, digits and underscores, starting with a letter")
        return value


class ExportConfig(_Model):
    """An activation destination. Identifiers are only ever exported as SHA-256 (``email_sha256``, ``phone_sha256``)."""

    name: str
    segments: tuple[str, ...]
    fields: tuple[str, ...]
    format: Literal["csv", "parquet", "json"] = "csv"
    purpose: Literal["marketing_email", "sms", "ads", "analytics", "profiling"] = "marketing_email"
    mode: Literal["full", "incremental"] = "full"
    # how email/phone are normalized before SHA-256: Google Customer Match or Meta Custom Audiences (docs/gold.md)
    identifier_hashing: Literal["google", "meta"] = "google"

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value or not value.replace("_", "").isalnum() or not value[0].isalpha():
            raise ValueError("must be letters, digits and underscores, starting with a letter (it names a directory)")
        return value


class GoldConfig(_Model):
    survivorship: tuple[SurvivorshipRule, ...] = ()  # attributes without a rule use the defaults in cdp_spark.profiles
    # A web/app session ends after this many minutes without an event of the customer on that channel.
    session_gap_minutes: int = Field(default=30, ge=1)
    segments: tuple[SegmentConfig, ...] = ()
    exports: tuple[ExportConfig, ...] = ()


class ModelsConfig(_Model):
    churn_days: int = Field(default=90, ge=1)  # churn: no purchase in the next N days
    propensity_days: int = Field(default=30, ge=1)  # propensity: a purchase in the next N days
    cutoff: str | None = None  # YYYY-MM-DD validation cutoff; default: last order date minus churn_days
    registered_prefix: str = "cdp"
    clv_horizon_days: int = Field(default=365, ge=1)
    clv_frequency: Literal["D", "W"] = "W"
    gbt_max_iter: int = Field(default=30, ge=1)
    min_improvement: float = Field(default=0.0, ge=0)  # challenger must beat the champion's ROC-AUC by this much
    seed: int = 7


class PrivacyConfig(_Model):
    """Erasure, retention and residency (see docs/privacy.md)."""

    # Files a delete replaced stay on disk until vacuumed with this retention: erased rows are
    # physically gone at most this long after an erasure (168 h, inside GDPR's one month) when
    # purge_expired runs daily; 0 removes them during forget itself.
    vacuum_retention_hours: int = Field(default=168, ge=0)
    suppression_enabled: bool = True
    objecting_purposes_block_scores: bool = True
    erasure_in_list_max: int = Field(default=1000, ge=1)  # larger key sets delete through a semi-join
    delivered_marker: str = "_DELIVERED"  # file a delivery job writes into an export run directory
    default_retention_days: int = Field(default=730, ge=1)  # events of countries without their own policy
    retention_days_by_country: dict[str, int] = Field(default_factory=dict)  # ISO alpha-2 -> days
    # bronze.quarantine keeps raw lines that could not be parsed, for the sender to fix and re-deliver
    quarantine_retention_days: int = Field(default=90, ge=1)
    residency: dict[str, str] = Field(default_factory=dict)  # ISO alpha-2 -> lakehouse root kept in-country

    @field_validator("retention_days_by_country", "residency")
    @classmethod
    def _country_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if not (len(k) == 2 and k.isascii() and k.isalpha())]
        if bad:
            raise ValueError(f"keys must be ISO 3166 alpha-2 country codes such as DE or TR, got {bad}")
        if any(isinstance(v, int) and v < 1 for v in value.values()):
            raise ValueError("retention days must be at least 1")
        return {k.upper(): v for k, v in value.items()}


class OpsConfig(_Model):
    lock_wait_seconds: float = Field(default=0.0, ge=0)  # 0: refuse at once when another run holds the lakehouse
    lock_stale_after_seconds: float = Field(default=600.0, gt=0)


class CdpConfig(_Model):
    paths: PathsConfig = PathsConfig()
    spark: SparkConfig = SparkConfig()
    engines: EnginesConfig = EnginesConfig()
    sources: tuple[SourceConfig, ...] = ()
    bronze: BronzeConfig = BronzeConfig()
    silver: SilverConfig = SilverConfig()
    identity: IdentityConfig = IdentityConfig()
    gold: GoldConfig = GoldConfig()
    models: ModelsConfig = ModelsConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    ops: OpsConfig = OpsConfig()

    def with_paths(self, **overrides: str | None) -> CdpConfig:
        """A copy with some paths replaced (CLI ``--landing``/``--lakehouse``)."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        if not changes:
            return self
        return self.model_copy(update={"paths": self.paths.model_copy(update=changes)})

    def source(self, name: str) -> SourceConfig:
        for src in self.sources:
            if src.name == name:
                return src
        raise ConfigError(f"sources: no source named {name!r} (known: {', '.join(s.name for s in self.sources)})")


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration in {origin}:"]
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"]) or "<root>"
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "unknown key (check spelling; see conf/local.yaml for the known keys)"
        if item["type"] in ("extra_forbidden", "missing"):
            lines.append(f"  - {path}: {msg}")
        else:
            lines.append(f"  - {path}: {msg} (got {item.get('input')!r})")
    return "\n".join(lines)


def _resolve_local(value: str, base: Path) -> str:
    if "://" in value or value.startswith("sqlite:"):
        if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
            rel = value[len("sqlite:///"):]
            return "sqlite:///" + str((base / rel).resolve())
        return value
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else (base / path).resolve())


def parse_config(data: dict[str, Any], *, origin: str = "<dict>", base_dir: str | Path | None = None) -> CdpConfig:
    """Validate a mapping into a :class:`CdpConfig`; relative paths resolve against ``base_dir``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {origin}: the top level must be a mapping")
    try:
        cfg = CdpConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from None
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    paths = {k: _resolve_local(v, base) for k, v in cfg.paths.model_dump().items()}
    silver = cfg.silver.model_copy(update={"local_secret_file": _resolve_local(cfg.silver.local_secret_file, base)})
    return cfg.model_copy(update={"paths": PathsConfig(**paths), "silver": silver})


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read_yaml(file: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML mapping; ``include: [a.yaml, ...]`` (relative to the file) is merged first,
    so the including file's own keys win. Lists (e.g. ``sources``) are replaced, not appended."""
    if not file.is_file():
        where = f" (included from {seen[-1]})" if seen else ""
        raise ConfigError(f"config file not found: {file}{where} (try conf/local.yaml)")
    if file.resolve() in seen:
        raise ConfigError(f"config include cycle: {' -> '.join(str(p) for p in (*seen, file))}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {file} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {file}: the top level must be a mapping")
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    merged: dict[str, Any] = {}
    for inc in includes:
        merged = _deep_merge(merged, _read_yaml(file.parent / inc, (*seen, file.resolve())))
    return _deep_merge(merged, data)


def load_config(path: str | Path) -> CdpConfig:
    """Load and validate a YAML config file. Relative paths resolve against the project root
    (the parent of the ``conf/`` directory) or, elsewhere, the file's own directory."""
    file = Path(path)
    data = _read_yaml(file)
    base = file.resolve().parent
    if base.name == "conf":
        base = base.parent
    return parse_config(data, origin=str(file), base_dir=base)
