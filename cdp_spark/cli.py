"""The ``cdp`` command line: run the pipeline, generate data, demo, doctor, status."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date
from pathlib import Path

from cdp_spark.errors import CdpError

log = logging.getLogger("cdp_spark.cli")

DEFAULT_CONFIG = "conf/local.yaml"


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("py4j", "urllib3", "great_expectations", "mlflow", "alembic", "faker", "matplotlib", "splink"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _date(text: str) -> date | None:
    if not text.strip():  # schedulers pass "" for "no run date"
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _record_ref(text: str) -> tuple[str, str]:
    source, sep, record_id = text.partition(":")
    if not sep or not source or not record_id:
        raise argparse.ArgumentTypeError(f"expected SOURCE:RECORD_ID, got {text!r}")
    return source, record_id


def build_parser() -> argparse.ArgumentParser:
    from cdp_spark.pipeline import STAGES

    parser = argparse.ArgumentParser(prog="cdp", description="cdp-spark: a Customer Data Platform core on PySpark and Delta Lake")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the pipeline (all stages in order, or one with --stage)")
    run.add_argument("--config", default=DEFAULT_CONFIG)
    run.add_argument("--landing", help="override paths.landing")
    run.add_argument("--lakehouse", help="override paths.lakehouse")
    run.add_argument("--stage", choices=STAGES, action="append", help="run only this stage (repeatable)")
    run.add_argument("--run-date", type=_date, help="logical run date, YYYY-MM-DD")
    run.add_argument("--run-id", help="reuse a run id (resume a crashed run: committed writes are skipped)")
    run.add_argument("--wait-lock", type=float, help="seconds to wait for another run holding the lakehouse (default: refuse at once)")

    gen = sub.add_parser("generate", help="write labelled synthetic landing data and ground truth")
    gen.add_argument("--customers", type=int, required=True)
    gen.add_argument("--countries", type=int, default=10)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--out", required=True)
    gen.add_argument("--days", type=int, default=365)
    gen.add_argument("--start", default="2025-01-01")

    demo = sub.add_parser("demo", help="generate a small data set and run the whole pipeline on the embedded default")
    demo.add_argument("--config", default=DEFAULT_CONFIG)
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--fresh", action="store_true", help="delete the demo data, lakehouse and MLflow store first")

    doctor = sub.add_parser("doctor", help="check Java, Spark, Python, engines and paths, and say how to fix what is missing")
    doctor.add_argument("--config", default=DEFAULT_CONFIG)

    rep = sub.add_parser("report", help="write the HTML report of a run (the latest by default)")
    rep.add_argument("--config", default=DEFAULT_CONFIG)
    rep.add_argument("--run-id")

    pkg = sub.add_parser("package", help="build dist/cdp_spark.zip (for --py-files) and a wheel for spark-submit")
    pkg.add_argument("--out", default="dist")
    pkg.add_argument("--no-wheel", action="store_true")

    explain = sub.add_parser("explain", help="why two records are one customer: the chain of identity-graph edges joining them")
    explain.add_argument("--config", default=DEFAULT_CONFIG)
    explain.add_argument("record_a", type=_record_ref, help="SOURCE:RECORD_ID, e.g. crm_customers:C000123")
    explain.add_argument("record_b", type=_record_ref, help="SOURCE:RECORD_ID")

    forget = sub.add_parser("forget", help="erase data subjects from every layer and export (right to erasure), and suppress them at intake")
    forget.add_argument("--config", default=DEFAULT_CONFIG)
    forget.add_argument("--subject", action="append", default=[], help="email:<address>, phone:<E.164>, customer_uid:<uid>, <source>:<record_id>, ... (repeatable)")
    forget.add_argument("--requests", help="a file of subjects, one per line (# comments and blank lines skipped)")
    forget.add_argument("--run-id", help="id of this erasure run (default: a new one)")
    forget.add_argument("--wait-lock", type=float, help="seconds to wait for another run holding the lakehouse")

    purge = sub.add_parser("purge", help="apply retention: expired anonymous identities and events past their country's retention")
    purge.add_argument("--config", default=DEFAULT_CONFIG)
    purge.add_argument("--run-date", type=_date, help="the day retention is computed from (default: today, UTC)")
    purge.add_argument("--run-id")
    purge.add_argument("--wait-lock", type=float)

    status = sub.add_parser("status", help="show the recent runs")
    status.add_argument("--config", default=DEFAULT_CONFIG)
    status.add_argument("--limit", type=int, default=20)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from cdp_spark.config import load_config
    from cdp_spark.pipeline import run_pipeline
    from cdp_spark.session import build_session

    cfg = load_config(args.config).with_paths(landing=args.landing, lakehouse=args.lakehouse)
    if args.wait_lock is not None:
        cfg = cfg.model_copy(update={"ops": cfg.ops.model_copy(update={"lock_wait_seconds": args.wait_lock})})
    spark = build_session(cfg)
    results = run_pipeline(spark, cfg, stages=args.stage, run_id=args.run_id, run_date=args.run_date, on_result=lambda r: print(r.line(), flush=True))
    return 0 if results and all(r.status == "succeeded" for r in results) else 1


def _cmd_generate(args: argparse.Namespace) -> int:
    from cdp_spark.synthetic import generate

    report = generate(args.out, customers=args.customers, countries=args.countries, seed=args.seed, days=args.days, start=args.start)
    print(report.summary())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from cdp_spark.demo import run_demo

    return run_demo(config_path=args.config, customers=args.customers, seed=args.seed, fresh=args.fresh)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from cdp_spark.doctor import run_doctor

    return run_doctor(args.config)


def _cmd_report(args: argparse.Namespace) -> int:
    from cdp_spark.config import load_config
    from cdp_spark.reporting import build_run_report
    from cdp_spark.session import build_session

    cfg = load_config(args.config)
    print(build_run_report(build_session(cfg), cfg, args.run_id))
    return 0


def _cmd_package(args: argparse.Namespace) -> int:
    from cdp_spark.packaging import package

    for path in package(Path.cwd(), Path(args.out), wheel=not args.no_wheel):
        print(path)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from cdp_spark.config import load_config
    from cdp_spark.ops import recent_runs
    from cdp_spark.session import build_session

    cfg = load_config(args.config)
    spark = build_session(cfg)
    rows = recent_runs(spark, cfg, args.limit).collect()
    if not rows:
        print(f"no runs recorded yet in {cfg.paths.lakehouse}")
        return 0
    print(f"{'run_id':<22} {'stage':<9} {'status':<10} {'started (UTC)':<20} {'seconds':>8} {'rows in':>11} {'rows out':>11}")
    for r in rows:
        print(f"{r.run_id:<22} {r.stage:<9} {r.status:<10} {r.started_at:%Y-%m-%d %H:%M:%S}  {r.seconds:8.1f} {r.rows_in:11,} {r.rows_out:11,}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from cdp_spark.config import load_config
    from cdp_spark.identity.explain import explain_records
    from cdp_spark.ops import lake_for
    from cdp_spark.session import build_session

    cfg = load_config(args.config)
    steps = explain_records(lake_for(build_session(cfg), cfg), args.record_a, args.record_b)
    print(f"{':'.join(args.record_a)} and {':'.join(args.record_b)} are one customer through {len(steps)} edge(s):")
    for step in steps:
        print("  " + step.describe())
    return 0


def _cmd_forget(args: argparse.Namespace) -> int:
    from cdp_spark.config import load_config
    from cdp_spark.pipeline import new_run_id
    from cdp_spark.privacy import forget, read_requests
    from cdp_spark.privacy.subjects import ErasureRequestError
    from cdp_spark.runlock import RunLock
    from cdp_spark.session import build_session

    subjects = list(args.subject) + (read_requests(args.requests) if args.requests else [])
    if not subjects:
        raise ErasureRequestError("give at least one --subject or a --requests file")
    cfg = load_config(args.config)
    run_id = args.run_id or f"erase-{new_run_id(None)}"
    with RunLock.for_config(cfg, run_id=run_id, wait_seconds=args.wait_lock):
        report = forget(build_session(cfg), cfg, subjects, run_id=run_id)
    print(
        f"erasure {report.run_id}: {report.subjects} subject(s), {report.customers} customer(s), {report.records} record(s); "
        f"{sum(report.rows_removed.values())} row(s) deleted from {len(report.rows_removed)} table(s), "
        f"{sum(report.files_vacuumed.values())} file(s) vacuumed, {report.suppressed_keys} key(s) suppressed at intake, {report.seconds:.1f}s"
    )
    for table, rows in sorted(report.rows_removed.items()):
        print(f"  {table:<36} {rows:>8,} row(s)")
    for run_dir in report.exports_delivered:
        print(f"  already delivered, tell the recipient: {run_dir}")
    for n in report.blocked_subjects:
        print(f"  subject #{n} is a shared or junk identifier (identity blocklist): it names no single person, nothing was erased through it")
    return 0


def _cmd_purge(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from cdp_spark.config import load_config
    from cdp_spark.pipeline import new_run_id
    from cdp_spark.privacy import purge_expired
    from cdp_spark.runlock import RunLock
    from cdp_spark.session import build_session

    cfg = load_config(args.config)
    run_id = args.run_id or f"purge-{new_run_id(args.run_date)}"
    with RunLock.for_config(cfg, run_id=run_id, wait_seconds=args.wait_lock):
        result = purge_expired(build_session(cfg), cfg, run_date=args.run_date or datetime.now(timezone.utc).date(), run_id=run_id)
    print(f"retention purge {run_id}: {result}")
    return 0


COMMANDS = {"explain": _cmd_explain, "forget": _cmd_forget, "purge": _cmd_purge, "run": _cmd_run, "generate": _cmd_generate, "demo": _cmd_demo, "doctor": _cmd_doctor, "package": _cmd_package, "report": _cmd_report, "status": _cmd_status}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    started = time.perf_counter()
    try:
        code = COMMANDS[args.command](args)
    except CdpError as err:
        print(f"cdp {args.command}: error: {err}", file=sys.stderr)
        return 2
    log.info("cdp %s finished in %.1fs with exit code %d", args.command, time.perf_counter() - started, code)
    return code


if __name__ == "__main__":
    sys.exit(main())
