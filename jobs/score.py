"""spark-submit entry point for the score stage: `spark-submit jobs/score.py --config conf/local.yaml`."""

from __future__ import annotations

import sys

from cdp_spark.jobs import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("score", sys.argv[1:]))
