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


COMMANDS = {"run": _cmd_run, "generate": _cmd_generate, "demo": _cmd_demo, "doctor": _cmd_doctor, "package": _cmd_package, "report": _cmd_report, "status": _cmd_status}


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
