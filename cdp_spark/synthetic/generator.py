"""``generate``: labelled synthetic CDP landing data plus ground truth, deterministic by seed."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from cdp_spark.errors import ConfigError
from cdp_spark.synthetic import _sources as src
from cdp_spark.synthetic._countries import resolve_mix
from cdp_spark.synthetic._fmt import OffsetTable, jsonl_bytes
from cdp_spark.synthetic._noise import EntityCounter, NoiseLog
from cdp_spark.synthetic._phones import phone_plan
from cdp_spark.synthetic._pools import build_pools
from cdp_spark.synthetic._truth import linkable_groups, people_table
from cdp_spark.synthetic._world import DAY, build_world

log = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = (
    "crm_customers", "legacy_customers", "orders", "web_events", "app_events", "pos_transactions",
    "marketing_responses", "support_tickets", "consents", "fx_rates",
)
HORIZON_DAYS = 90


@dataclass(frozen=True)
class GenerationReport:
    """What :func:`generate` wrote: rows and files per source, noise counts, time taken, paths."""

    out: str
    people: int
    countries: tuple[str, ...]
    seed: int
    rows: Mapping[str, int]  # rows written per source (duplicate deliveries included)
    files: Mapping[str, int]
    truth_records: int
    noise: Mapping[str, int]
    seconds: float
    paths: Mapping[str, str]  # source name / truth file -> path

    def summary(self) -> str:
        """A few lines for the CLI."""
        lines = [
            f"generated {self.people:,} people in {len(self.countries)} countries (seed {self.seed}) "
            f"into {self.out} in {self.seconds:.1f}s",
        ]
        lines += [f"  {name:<20} {self.rows[name]:>12,} rows {self.files[name]:>5} files" for name in SOURCES]
        lines.append(f"  {'truth records':<20} {self.truth_records:>12,} rows")
        return "\n".join(lines)


def generate(
    out: str | Path,
    *,
    customers: int,
    countries: int = 10,
    seed: int = 42,
    days: int = 365,
    start: str = "2025-01-01",
    spark: SparkSession | None = None,
    country_mix: dict[str, float] | None = None,
    overwrite: bool = False,
) -> GenerationReport:
    """Write labelled synthetic customer data under ``out/landing/<source>/`` and truth under ``out/truth/``.

    ``customers`` people are spread over ``countries`` markets (or the shares in ``country_mix``,
    ISO alpha-2 code -> weight) and observed for ``days`` days from ``start``. The same arguments
    always give byte-identical files. Generation runs in numpy/pyarrow on the driver; ``spark`` is
    accepted so callers holding a session can pass it, and is not needed. Existing ``landing``/``truth``
    folders under ``out`` are an error unless ``overwrite`` (which deletes those two folders only).
    The layout and every column are documented in ``docs/data.md``.
    """
    began = time.perf_counter()
    if customers < 1:
        raise ConfigError(f"synthetic.customers={customers}: must be at least 1")
    if days < 30:
        raise ConfigError(f"synthetic.days={days}: must be at least 30 (campaigns and files are monthly/quarterly)")
    try:
        t_start = int(dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC).timestamp())
    except ValueError as exc:
        raise ConfigError(f"synthetic.start={start!r}: expected an ISO date such as 2025-01-01") from exc
    root = Path(out)
    _prepare(root, overwrite)
    specs, weights = resolve_mix(countries, country_mix)
    log.info("synthetic: %d people, %d countries, seed %d, %d days from %s", customers, len(specs), seed, days, start)

    pools_by_locale = {loc: build_pools(loc, seed) for loc in sorted({s.locale for s in specs})}
    world = build_world(specs, weights, [pools_by_locale[s.locale] for s in specs],
                        [phone_plan(s.code, seed) for s in specs], customers, seed, t_start, days)
    log.info("synthetic: world built (%d purchases) after %.1fs", len(world.purchase_ts), time.perf_counter() - began)

    currencies = sorted({s.currency for s in specs} | {"EUR"})
    base = {s.currency: s.rate_to_eur for s in specs} | {"EUR": 1.0}
    fx_days = np.arange(t_start // DAY - 7, world.t_end // DAY + 8)
    ctx = src.Context(
        world=world, seed=seed, days=days,
        offsets=OffsetTable([s.tz for s in specs], t_start - 800 * DAY, world.t_end + 30 * DAY),
        fx_days=fx_days, fx_rates=src.fx_rates(currencies, [base[c] for c in currencies], fx_days, seed),
        currency_of_country=np.array([currencies.index(s.currency) for s in specs]), currencies=currencies,
        log=NoiseLog(), email_entities=EntityCounter(len(world.email_person)), other_entities=EntityCounter(world.n),
    )
    rows, files, paths = {}, {}, {}

    def emit(data: src.SourceData) -> src.SourceData:
        # write as soon as built and drop the rows: only the truth arrays stay in memory
        files[data.name] = _write_source(root / "landing" / data.name, data)
        rows[data.name] = data.table.num_rows
        paths[data.name] = str(root / "landing" / data.name)
        data.table = data.table.slice(0, 0)
        return data

    sessions = src.sessions(ctx)
    web = src.web_events(ctx, sessions)
    emit(web.source)
    app = src.app_events(ctx, sessions)
    emit(app.source)
    consents, optins = src.consents(ctx)
    emit(consents)
    datasets = [emit(src.crm(ctx)), emit(src.legacy(ctx)), emit(src.orders(ctx, sessions, web, app)), web.source,
                app.source, emit(src.pos(ctx)), emit(src.marketing(ctx, optins)), emit(src.support(ctx)), consents,
                emit(src.fx_table(ctx))]
    log.info("synthetic: landing written after %.1fs", time.perf_counter() - began)
    with_truth = [d for d in datasets if d.record_id is not None]
    groups = linkable_groups(with_truth)
    truth_dir = root / "truth"
    truth_dir.mkdir(parents=True)
    truth_records = _write_records(truth_dir / "records.parquet", with_truth, groups)
    pq.write_table(people_table(world, HORIZON_DAYS, seed), truth_dir / "people.parquet")
    paths |= {"records": str(truth_dir / "records.parquet"), "people": str(truth_dir / "people.parquet")}
    ctx.log["shared_device_household"] = int((world.family_device >= 0).sum())
    report = GenerationReport(
        out=str(root), people=customers, countries=tuple(s.code for s in specs), seed=seed,
        rows=MappingProxyType(rows), files=MappingProxyType(files), truth_records=truth_records,
        noise=MappingProxyType(dict(sorted(ctx.log.items()))), seconds=time.perf_counter() - began,
        paths=MappingProxyType(paths),
    )
    log.info("synthetic: generated %d people into %s in %.1fs", report.people, report.out, report.seconds)
    return report


def _prepare(root: Path, overwrite: bool) -> None:
    for sub in ("landing", "truth"):
        path = root / sub
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise ConfigError(f"{path} already holds data; pass overwrite=True or choose an empty output folder")
            shutil.rmtree(path)
    root.mkdir(parents=True, exist_ok=True)


def _write_source(folder: Path, data: src.SourceData) -> int:
    """Write each file of the source; returns the number of files."""
    folder.mkdir(parents=True)
    if data.table.num_rows == 0:
        log.warning("synthetic: %s has no rows at this size; no file written", data.name)
        return 0
    encoded = pc.dictionary_encode(data.file_name)
    names = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    table = data.table if np.all(np.diff(codes) >= 0) else data.table.take(pa.array(order))
    sorted_codes = codes[order]
    bounds = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        part = table.slice(int(a), int(b - a))
        path = folder / names[sorted_codes[a]]
        if data.fmt == "csv":
            pacsv.write_csv(part, path, write_options=pacsv.WriteOptions(quoting_style="needed"))
        elif data.fmt == "jsonl":
            path.write_bytes(jsonl_bytes(part))
        else:
            pq.write_table(part, path)
    return len(bounds) - 1


def _write_records(path: Path, sources: list[src.SourceData], groups: list[np.ndarray]) -> int:
    schema = pa.schema([("source", pa.string()), ("record_id", pa.string()), ("person_id", pa.int64()), ("linkable_group", pa.int64())])
    total = 0
    with pq.ParquetWriter(path, schema) as writer:
        for data, group in zip(sources, groups):
            n = len(data.record_person)
            writer.write_table(pa.table({
                "source": pc.fill_null(pa.nulls(n, pa.string()), data.name),
                "record_id": data.record_id,
                "person_id": pa.array(data.record_person.astype(np.int64)),
                "linkable_group": pa.array(group),
            }, schema=schema))
            total += n
    return total
