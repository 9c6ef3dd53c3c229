"""spark-submit entry point for the gold stage: `spark-submit jobs/gold.py --config conf/local.yaml`."""

from __future__ import annotations

import sys

from cdp_spark.jobs import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("gold", sys.argv[1:]))
