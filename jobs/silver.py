"""spark-submit entry point for the silver stage: `spark-submit jobs/silver.py --config conf/local.yaml`."""

from __future__ import annotations

import sys

from cdp_spark.jobs import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("silver", sys.argv[1:]))
