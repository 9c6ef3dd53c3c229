"""Bronze parsing and record checks as pure transforms (no tables)."""

from __future__ import annotations

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp_spark.ingest import _reasons as R
from cdp_spark.ingest._checks import country_is_plausible, delta_safe_name
from cdp_spark.ingest._landing import fingerprint, list_files
from cdp_spark.ingest._text import parse_csv_header, read_text_lines, with_json_fields, with_text_checks

LINES_SCHEMA = "file_path string, line long, value string, last_line_cut boolean"


def test_country_check_rejects_only_values_nothing_could_resolve(spark):
    values = ["DE", "deu", "Türkiye", "Deutschland", "日本", "uk", "XX", "??", "ZZZ", "1", None, " "]
    df = spark.createDataFrame([(v,) for v in values], "country string")
    actual = df.select("country", country_is_plausible(F.col("country")).alias("ok"))
    expected = [(v, ok) for v, ok in zip(values, [True, True, True, True, True, True, False, False, False, False, True, True])]
    assertDataFrameEqual(actual, spark.createDataFrame(expected, "country string, ok boolean"))


def test_json_lines_are_parsed_to_string_fields_and_bad_lines_get_one_reason_each(spark):
    lines = spark.createDataFrame(
        [
            ("f", 1, '{"id": "1", "n": 2, "o": {"a": [1]}, "z": null}', False),
            ("f", 2, '{"id": "2", "deep": [[[[1]]]]}', False),
            ("f", 3, '"just a string"', False),
            ("f", 4, '{"id": "4", "ts": "31/12/2025"}', False),
            ("f", 5, '{"ts": "2025-12-31T00:00:00Z"}', False),
            ("f", 6, '{"id": "6", "ts": "2025-12-31T00', True),
        ],
        LINES_SCHEMA,
    )
    checked = lines.transform(with_json_fields(max_record_bytes=1000, max_depth=3)).transform(
        with_text_checks(key_field="id", event_field="ts", timestamp_format=None, country_field=None, fixed_country="FR")
    )
    assertDataFrameEqual(
        checked.select("line", "fields", "reason", "record_key", "country"),
        spark.createDataFrame(
            [
                (1, {"id": "1", "n": "2", "o": '{"a":[1]}', "z": None}, None, "1", "FR"),
                (2, {"id": "2", "deep": "[[[[1]]]]"}, R.JSON_TOO_DEEP, "2", "FR"),
                (3, None, R.JSON_NOT_OBJECT, None, "FR"),
                (4, {"id": "4", "ts": "31/12/2025"}, R.BAD_EVENT_TIME, "4", "FR"),
                (5, {"ts": "2025-12-31T00:00:00Z"}, R.MISSING_KEY, None, "FR"),
                (6, None, R.TRUNCATED, None, "FR"),
            ],
            "line long, fields map<string,string>, reason string, record_key string, country string",
        ),
    )


def test_csv_header_is_parsed_on_the_driver_with_repeated_names_made_unique():
    assert parse_csv_header(b'id;"full name";id', {"sep": ";"}) == ["id", "full name", "id_2"]
    assert parse_csv_header(b"id,\xdd\xfeehir", {}) is None


def test_delta_unsafe_field_names_are_cleaned():
    assert [delta_safe_name(n) for n in ["first name", "a.b", "x=y", " ", "şehir"]] == ["first_name", "a_b", "x_y", "_blank_", "şehir"]


def test_file_paths_agree_between_listing_and_reading_for_awkward_names(spark, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a b+c%.csv").write_bytes(b"h\nv1\nv2")
    (tmp_path / "in" / "empty.csv").write_bytes(b"")

    listed = fingerprint(spark, list_files(spark, str(tmp_path), "in/*.csv"), "csv")

    named = {f.path.rsplit("/", 1)[1]: f for f in listed}
    assert sorted(named) == ["a b+c%.csv", "empty.csv"]
    assert (named["empty.csv"].issue, named["a b+c%.csv"].issue, named["a b+c%.csv"].ends_with_newline) == (R.EMPTY_FILE, None, False)
    path = named["a b+c%.csv"].path
    lines = read_text_lines(spark, [path], {path: False})
    assertDataFrameEqual(lines, spark.createDataFrame([(path, 1, "h", False), (path, 2, "v1", False), (path, 3, "v2", True)], LINES_SCHEMA))
