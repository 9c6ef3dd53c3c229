"""Shared argument handling of the thin ``jobs/<stage>.py`` spark-submit entry points."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cdp_spark.cli import _date, configure_logging
from cdp_spark.errors import CdpError


def parse_args(stage: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"jobs/{stage}.py", description=f"run the {stage} stage")
    parser.add_argument("--config", required=True, help="YAML config, e.g. conf/local.yaml or conf/cluster.yaml")
    parser.add_argument("--landing", help="override paths.landing")
    parser.add_argument("--lakehouse", help="override paths.lakehouse")
    parser.add_argument("--run-date", type=_date)
    parser.add_argument("--run-id", help="reuse a run id (resume or correlate stages of one scheduled run)")
    parser.add_argument("--wait-lock", type=float, help="seconds to wait for another run holding the lakehouse (default: refuse at once)")
    return parser.parse_args(argv)


def stage_main(stage: str, argv: list[str] | None = None) -> int:
    """Parse arguments, load config, build the session, run one stage; exit code 0 on success."""
    args = parse_args(stage, argv)
    configure_logging()
    import cdp_spark

    logging.getLogger("cdp_spark.jobs").info("cdp_spark loaded from %s", Path(cdp_spark.__file__).parent.parent)
    from cdp_spark.config import load_config
    from cdp_spark.ops import record_stage_result
    from cdp_spark.pipeline import new_run_id, run_stage
    from cdp_spark.session import build_session

    try:
        cfg = load_config(args.config).with_paths(landing=args.landing, lakehouse=args.lakehouse)
    except CdpError as err:
        print(f"jobs/{stage}.py: error: {err}")
        return 2
    from cdp_spark.runlock import RunLock

    run_id = args.run_id or new_run_id(args.run_date)
    try:
        spark = build_session(cfg)
        with RunLock.for_config(cfg, run_id=run_id, wait_seconds=args.wait_lock):
            result = run_stage(spark, cfg, stage, run_id=run_id, run_date=args.run_date)
            record_stage_result(spark, cfg, result)
    except CdpError as err:  # lock held, lakehouse not writable, bad table: a message, not a traceback
        print(f"jobs/{stage}.py: error: {err}", file=sys.stderr, flush=True)
        return 2
    print(result.line(), flush=True)
    return 0 if result.status == "succeeded" else 1
