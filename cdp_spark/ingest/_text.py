"""CSV and JSON-lines sources read as text lines, parsed into ``fields: map<string,string>``.

Reading text (not the CSV/JSON readers) keeps every physical line: line numbers and raw text
for quarantine, invalid bytes still visible (``spark.read.text`` keeps the raw bytes, so
``is_valid_utf8`` finds wrong encodings). Values stay strings: bronze is faithful, silver types.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.ingest import _reasons as R
from cdp_spark.ingest._checks import record_reason
from cdp_spark.ingest._landing import decoded_path

FIELDS_TYPE = T.MapType(T.StringType(), T.StringType())
# Columns of a text-records frame (the output of read_text_lines).
LINE_COLUMNS = ("file_path", "line", "value", "last_line_cut")
# Columns of a parsed frame (the output of with_json_fields / with_csv_fields).
PARSED_COLUMNS = ("file_path", "line", "value", "fields", "pre_reason")
# from_csv options that make sense for one line; the rest (header, multiLine, mode...) do not apply.
_CSV_LINE_OPTIONS = ("sep", "delimiter", "quote", "escape", "comment", "ignoreLeadingWhiteSpace", "ignoreTrailingWhiteSpace", "nullValue")


def read_text_lines(spark: SparkSession, paths: Sequence[str], ends_with_newline: Mapping[str, bool]) -> DataFrame:
    """Non-blank physical lines of ``paths`` with 1-based line numbers.

    ``last_line_cut`` is true on a file's last line when the file does not end with a newline
    (a parse failure there is reported as a truncated file). Line order comes from the split
    start offset and, within a split, the reader's order.
    """
    cut_files = [p for p in paths if not ends_with_newline.get(p, True)]
    raw = spark.read.text(list(paths)).select(
        decoded_path(F.col("_metadata.file_path")).alias("file_path"),
        F.col("_metadata.file_block_start").alias("block"),
        F.monotonically_increasing_id().alias("seq"),
        F.col("value"),
    )
    by_file = Window.partitionBy("file_path")
    numbered = raw.select(
        "file_path",
        "value",
        F.row_number().over(by_file.orderBy("block", "seq")).cast("long").alias("line"),
        F.count(F.lit(1)).over(by_file).alias("n_lines"),
    )
    return numbered.where(F.trim(F.col("value")) != "").select(
        "file_path",
        "line",
        "value",
        ((F.col("line") == F.col("n_lines")) & F.col("file_path").isin(cut_files)).alias("last_line_cut"),
    )


def _encoding_reason(value: Column, max_record_bytes: int) -> Column:
    return (
        F.when(~F.is_valid_utf8(value), F.lit(R.INVALID_UTF8))
        .when(F.instr(value, "\u0000") > 0, F.lit(R.NUL_BYTE))
        .when(F.octet_length(value) > max_record_bytes, F.lit(R.OVERSIZED))
    )


def _json_depth_exceeds(value: Column, max_depth: int) -> Column:
    """True when brackets nest deeper than ``max_depth`` (string contents ignored).

    One left-to-right fold over the brackets tracks the depth and its maximum; only lines with
    more than ``2 * max_depth`` brackets (the least a too-deep document has) pay for it.
    """
    brackets = F.regexp_replace(F.regexp_replace(value, r'"(?:[^"\\]|\\.)*"', ""), r"[^\[\]{}]", "")

    def step(acc: Column, char: Column) -> Column:
        depth = acc["depth"] + F.when(char.isin("{", "["), 1).otherwise(-1)
        return F.struct(depth.alias("depth"), F.greatest(acc["deepest"], depth).alias("deepest"))

    start = F.struct(F.lit(0).alias("depth"), F.lit(0).alias("deepest"))
    deepest = F.aggregate(F.split(brackets, ""), start, step, lambda acc: acc["deepest"])
    return F.when(F.length(brackets) > 2 * max_depth, deepest > max_depth).otherwise(F.lit(False))


def with_json_fields(*, max_record_bytes: int, max_depth: int) -> Callable[[DataFrame], DataFrame]:
    """Parse JSON lines into a field map; ``pre_reason`` names encoding, size and parse failures."""

    def apply(lines: DataFrame) -> DataFrame:
        parsed = lines.withColumn("fields", F.from_json(F.col("value"), FIELDS_TYPE))
        keys = F.map_keys(F.col("fields"))
        parse_reason = (
            F.when(~F.ltrim(F.col("value")).startswith("{"), F.lit(R.JSON_NOT_OBJECT))
            .when(F.col("fields").isNull(), F.lit(R.MALFORMED_JSON))
            .when(F.size(keys) != F.size(F.array_distinct(keys)), F.lit(R.JSON_DUPLICATE_KEY))
            .when(_json_depth_exceeds(F.col("value"), max_depth), F.lit(R.JSON_TOO_DEEP))
        )
        pre = F.coalesce(
            _encoding_reason(F.col("value"), max_record_bytes),
            F.when(parse_reason.isNotNull() & F.col("last_line_cut"), F.lit(R.TRUNCATED)).otherwise(parse_reason),
        )
        return parsed.select("file_path", "line", "value", "fields", pre.alias("pre_reason"))

    return apply


def csv_line_options(options: Mapping[str, str]) -> dict[str, str]:
    """The source's reader options that apply to parsing a single CSV line."""
    return {k: v for k, v in options.items() if k in _CSV_LINE_OPTIONS}


def _csv_separator(options: Mapping[str, str]) -> str:
    return options.get("sep", options.get("delimiter", ","))


def parse_csv_header(header: bytes, options: Mapping[str, str]) -> list[str] | None:
    """Field names of a header line (driver side, one line per file); None if not valid UTF-8."""
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError:
        return None
    row = next(csv.reader([text], delimiter=_csv_separator(options), quotechar=options.get("quote", '"')), [])
    names: list[str] = []
    for raw in row:
        name = raw.strip()
        base, n = name, 1
        while name in names:  # a repeated header name would make the field map ambiguous
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names


def _csv_field_count(value: Column, options: Mapping[str, str]) -> Column:
    """Fields on a CSV line: separators outside quoted sections, plus one."""
    quote = re.escape(options.get("quote", '"'))
    escape = re.escape(options.get("escape", "\\"))
    unquoted = F.regexp_replace(value, f"{quote}(?:[^{quote}{escape}]|{escape}.|{quote}{quote})*{quote}", "")
    return F.size(F.split(unquoted, re.escape(_csv_separator(options)), -1))


def with_csv_fields(
    headers: DataFrame, *, width: int, options: Mapping[str, str], max_record_bytes: int
) -> Callable[[DataFrame], DataFrame]:
    """Parse CSV lines against each file's own header (``headers``: file_path, header, header_line;
    ``width``: the longest header's field count).

    Line 1 of each file is its header and is not a record. A later line equal to the header is a
    duplicate header; a line with more or fewer fields than its header is quarantined.
    """

    def apply(lines: DataFrame) -> DataFrame:
        schema = ", ".join(f"`_c{i}` string" for i in range(width))
        parsed = F.from_csv(F.col("value"), schema, csv_line_options(options))
        n_header = F.size("header")
        stage1 = (
            lines.where(F.col("line") > 1)
            .join(F.broadcast(headers), "file_path", "left")
            .select(
                "file_path", "line", "value", "last_line_cut", "header", "header_line",
                _csv_field_count(F.col("value"), options).alias("n_fields"),
            )
        )
        parse_reason = (
            F.when(F.trim(F.col("value")) == F.trim(F.col("header_line")), F.lit(R.CSV_DUPLICATE_HEADER))
            .when(F.col("n_fields") > n_header, F.lit(R.CSV_TOO_MANY_FIELDS))
            .when(F.col("n_fields") < n_header, F.lit(R.CSV_TOO_FEW_FIELDS))
        )
        stage2 = stage1.select(
            "file_path", "line", "value", "header",
            F.coalesce(
                _encoding_reason(F.col("value"), max_record_bytes),
                F.when(parse_reason.isNotNull() & F.col("last_line_cut"), F.lit(R.TRUNCATED)).otherwise(parse_reason),
            ).alias("pre_reason"),
        )
        values = F.array(*[parsed[f"_c{i}"] for i in range(width)])
        fields = F.when(F.col("pre_reason").isNull(), F.map_from_arrays(F.col("header"), F.slice(values, 1, n_header)))
        return stage2.select("file_path", "line", "value", fields.cast(FIELDS_TYPE).alias("fields"), "pre_reason")

    return apply


def composite_key(parts: list[Column]) -> Column:
    """One key column; a composite key (``record_key: "date,currency"``) joins its parts with ``|``
    and is null (a missing key) when any part is null or blank."""
    if len(parts) == 1:
        return parts[0]
    complete = None
    for part in parts:
        ok = part.isNotNull() & (F.trim(part.cast("string")) != "")
        complete = ok if complete is None else complete & ok
    return F.when(complete, F.concat_ws("|", *[p.cast("string") for p in parts]))


def with_text_checks(
    *, key_field: str, event_field: str | None, timestamp_format: str | None, country_field: str | None, fixed_country: str | None
) -> Callable[[DataFrame], DataFrame]:
    """Add ``reason`` (null when good), ``record_key`` and ``country`` to a parsed text frame."""

    def field(name: str) -> Column:
        return F.try_element_at(F.col("fields"), F.lit(name))

    def apply(parsed: DataFrame) -> DataFrame:
        country = field(country_field) if country_field else F.lit(fixed_country).cast("string")
        key = composite_key([field(name.strip()) for name in key_field.split(",")])
        reason = record_reason(
            F.col("pre_reason"),
            key=key,
            event_time=field(event_field) if event_field else None,
            timestamp_format=timestamp_format,
            country=country if country_field else None,
        )
        return parsed.select(
            "file_path", "line", "value", "fields", reason.alias("reason"), key.alias("record_key"), country.alias("country")
        )

    return apply
