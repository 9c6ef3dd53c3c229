"""cdp-spark: a Customer Data Platform core on PySpark and Delta Lake.

Stages follow the data: ``ingest`` (bronze), ``standardize``/``quality`` (silver),
``identity``, ``profiles``/``segments``/``activation`` (gold), ``models`` (scores).
Storage goes through :mod:`cdp_spark.lake`; the SparkSession is always passed in.
"""

__version__ = "0.1.0"
