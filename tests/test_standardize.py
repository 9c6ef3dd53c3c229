"""Standardizers: emails, phones, countries, time, names and money on small inline rows."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp_spark.errors import ConfigError, MissingColumnsError
from cdp_spark.standardize import (
    convert_currency,
    country_code,
    country_timezone,
    name_clean,
    name_key,
    standardize_email,
    standardize_phone,
    to_utc,
)
from cdp_spark.standardize.countries import _tiers, country_lookup


def _value_reason(spark, cases, fn):
    """Apply ``fn`` to the first field of each case; return (actual, expected) DataFrames of
    input(s), value and reason in input order."""
    width = len(cases[0]) - 2
    inputs = [f"in{i}" for i in range(width)]
    schema = ", ".join(["id int"] + [f"{c} string" for c in inputs] + ["value string", "reason string"])
    expected = spark.createDataFrame([(i, *case) for i, case in enumerate(cases)], schema)
    std = fn(*[F.col(c) for c in inputs])
    actual = expected.select("id", *inputs, std["value"].alias("value"), std["reason"].alias("reason"))
    return actual, expected


# --- emails -----------------------------------------------------------------------------------

EMAIL_CASES = [
    # Turkish dotted/dotless I: all three spellings meet at "ilker".
    ("İLKER@firma.com.tr", "ilker@firma.com.tr", None),
    ("ilker@firma.com.tr", "ilker@firma.com.tr", None),
    ("ılker@firma.com.tr", "ilker@firma.com.tr", None),
    ("i\u0307lker@firma.com.tr", "ilker@firma.com.tr", None),  # i + combining dot (Java's lower("İ"))
    # German ß is lowercased, not folded: groß@ and GROSS@ stay different mailboxes.
    ("GROSS@post.de", "gross@post.de", None),
    ("groß@post.de", "groß@post.de", None),
    ("Straße@Bäckerei.de", "straße@bäckerei.de", None),
    # Full-width letters and ＠ (Japanese IME) become ASCII through NFKC.
    ("ＴＡＲＯ＠ｍａｉｌ．ｊｐ", "taro@mail.jp", None),
    # Unicode blanks (NBSP, ideographic space, tab) at the edges are trimmed.
    ("\u00a0 Jo@Shop.co.uk\u3000\t", "jo@shop.co.uk", None),
    # gmail rule: dots and +tags removed, googlemail.com is gmail.com; other domains keep them.
    ("Ay.Se+promo@GoogleMail.com", "ayse@gmail.com", None),
    ("a.y.s.e@gmail.com", "ayse@gmail.com", None),
    ("ay.se+promo@outlook.com", "ay.se+promo@outlook.com", None),
    # Invalid input: null value plus the reason.
    (None, None, "missing"),
    ("   ", None, "missing"),
    ("ilker.firma.com", None, "missing @"),
    ("a@b@firma.com", None, "multiple @"),
    ("a..b@firma.com", None, "invalid local part"),
    (".ab@firma.com", None, "invalid local part"),
    ("ay se@firma.com", None, "invalid local part"),
    ("+promo@gmail.com", None, "invalid local part"),
    ("ayse@localhost", None, "invalid domain"),
    ("ayse@firma..com", None, "invalid domain"),
    ("ayse@-firma.com", None, "invalid domain"),
    ("ayse@firma.c0m", None, "invalid domain"),
    ("test@gmail.com", None, "junk"),
    ("ＡＹＳＥ＠ＥＸＡＭＰＬＥ．ＣＯＭ", None, "junk"),
    ("NoReply@firma.com", None, "junk"),
]


def test_email_normalizes_turkish_german_fullwidth_and_gmail_and_explains_invalid(spark):
    actual, expected = _value_reason(spark, EMAIL_CASES, lambda c: standardize_email(c, gmail_rule=True))
    assertDataFrameEqual(actual, expected)


def test_email_rules_are_configurable(spark):
    gmail_off = [
        ("Ay.Se+promo@GoogleMail.com", "ay.se+promo@googlemail.com", None),
        ("test@gmail.com", "test@gmail.com", None),  # empty junk lists
    ]
    fn = lambda c: standardize_email(c, gmail_rule=False, junk_local_parts=(), junk_domains=())  # noqa: E731
    assertDataFrameEqual(*_value_reason(spark, gmail_off, fn))
    tags_off_everywhere = [
        ("Ay.Se+promo@gmail.com", "ay.se@gmail.com", None),
        ("ay.se+promo@outlook.com", "ay.se@outlook.com", None),
        ("+promo@outlook.com", None, "invalid local part"),
    ]
    fn = lambda c: standardize_email(c, gmail_rule=False, strip_plus_tags=True)  # noqa: E731
    assertDataFrameEqual(*_value_reason(spark, tags_off_everywhere, fn))


def test_turkish_email_spellings_link_to_one_address(spark):
    df = spark.createDataFrame([("İLKER@x.com.tr",), ("ilker@x.com.tr",), ("ılker@X.COM.TR",), ("ILKER@x.com.tr",)], "email string")
    distinct = df.select(standardize_email(F.col("email"))["value"].alias("v")).distinct()
    assertDataFrameEqual(distinct, spark.createDataFrame([("ilker@x.com.tr",)], "v string"))


# --- phones -----------------------------------------------------------------------------------

PHONE_CASES = [
    # (raw, record country, E.164, reason): national and international forms, 11 countries.
    ("0532 123 45 67", "TR", "+905321234567", None),
    ("+90 532 123 45 67", "TR", "+905321234567", None),
    ("00 90 532 123 45 67", "DE", "+905321234567", None),  # international via 00 from Germany
    ("030 123456", "DE", "+4930123456", None),
    ("0151 23456789", "DE", "+4915123456789", None),
    ("+49 30 123456", "FR", "+4930123456", None),  # own country code beats the record's
    ("06 12 34 56 78", "FR", "+33612345678", None),
    ("+33 6 12 34 56 78", "TR", "+33612345678", None),
    ("612 34 56 78", "ES", "+34612345678", None),
    ("0034 612 345 678", "ES", "+34612345678", None),
    ("312 345 6789", "IT", "+393123456789", None),
    ("+39 06 1234 5678", "IT", "+390612345678", None),  # Italian fixed lines keep their 0
    ("06 12345678", "NL", "+31612345678", None),
    ("+31 20 123 4567", "NL", "+31201234567", None),
    ("512 345 678", "PL", "+48512345678", None),
    ("+48 22 123 45 67", "PL", "+48221234567", None),
    ("(11) 91234-5678", "BR", "+5511912345678", None),
    ("+55 21 2345-6789", "BR", "+552123456789", None),
    ("０９０-１２３４-５６７８", "JP", "+819012345678", None),  # full-width digits
    ("03-1234-5678", "JP", "+81312345678", None),
    ("＋８１ ３ １２３４ ５６７８", "US", "+81312345678", None),  # full-width plus too
    ("(212) 555-0199", "US", "+12125550199", None),
    ("+1 212 555 0199", "GB", "+12125550199", None),
    ("07911 123456", "GB", "+447911123456", None),
    ("020 7946 0958", "GB", "+442079460958", None),
    ("+44 20 7946 0958", "DE", "+442079460958", None),
    ("+90 532 123 45 67 ext. 12", "TR", "+905321234567", None),  # extension dropped
    # Invalid or impossible: null plus reason.
    (None, "TR", None, "missing"),
    ("  ", "TR", None, "missing"),
    ("abc", "TR", None, "not a number"),
    ("0532 123 45 67", None, None, "no country code and no record country"),
    ("+999 123456", "DE", None, "invalid country code"),
    ("12345678901234567890", "DE", None, "too long"),
    ("0612", "FR", None, "too short"),
    ("555 0199", "US", None, "local number without area code"),
    ("0000000000", "TR", None, "invalid number"),
]


def test_phone_to_e164_from_eleven_countries_and_reasons_for_invalid(spark):
    actual, expected = _value_reason(spark, PHONE_CASES, standardize_phone)
    assertDataFrameEqual(actual, expected)


# --- countries --------------------------------------------------------------------------------

COUNTRY_CASES = [
    ("Türkiye", "TR"), ("TÜRKİYE", "TR"), ("Turkey", "TR"), ("turkiye", "TR"), ("TUR", "TR"), ("tr", "TR"),
    ("Deutschland", "DE"), ("germany", "DE"), ("DEU", "DE"), (" de ", "DE"), ("ＤＥ", "DE"),
    ("España", "ES"), ("Espana", "ES"), ("Brasil", "BR"), ("日本", "JP"), ("Nederland", "NL"),
    ("the Netherlands", "NL"), ("Holland", "NL"), ("Polska", "PL"), ("Italia", "IT"), ("Österreich", "AT"),
    ("UK", "GB"), ("U.K.", "GB"), ("United Kingdom", "GB"), ("USA", "US"), ("Vereinigte Staaten", "US"),
    ("Côte d’Ivoire", "CI"), ("Cote d'Ivoire", "CI"), ("Republic of Korea", "KR"),
    ("Narnia", None), ("Korea", None), ("", None), (None, None),
]


def test_country_code_from_codes_names_and_local_spellings(spark):
    expected = spark.createDataFrame(COUNTRY_CASES, "raw string, code string")
    assertDataFrameEqual(expected.select("raw", country_code(F.col("raw")).alias("code")), expected)


def test_country_lookup_in_spark_agrees_with_the_python_dictionary(spark):
    """Oracle: every name fed to the lookup resolves in the JVM exactly as the driver-side key
    function says (catches drift between the Python and Spark normalizations)."""
    from cdp_spark.standardize.countries import _key

    lookup = country_lookup()
    names = sorted({name for tier in _tiers() for name, _ in tier})
    expected = spark.createDataFrame([(n, lookup.get(_key(n))) for n in names], "raw string, code string")
    assertDataFrameEqual(expected.select("raw", country_code(F.col("raw")).alias("code")), expected)


# --- time -------------------------------------------------------------------------------------


def test_to_utc_honours_offsets_and_reads_naive_times_in_the_country_zone(spark):
    rows = [
        # raw, country, expected UTC
        ("2024-01-15T10:00:00+03:00", "DE", "2024-01-15 07:00:00"),  # offset wins over the country
        ("2024-01-15T10:00:00Z", "TR", "2024-01-15 10:00:00"),
        ("2024-01-15T10:00:00.250-0500", "TR", "2024-01-15 15:00:00.25"),
        ("2024-01-15 10:00:00", "TR", "2024-01-15 07:00:00"),  # Istanbul, UTC+3 all year
        ("2024-01-15 10:00:00", "DE", "2024-01-15 09:00:00"),  # Berlin winter, UTC+1
        ("2024-07-15 10:00:00", "DE", "2024-07-15 08:00:00"),  # Berlin summer, UTC+2
        ("2024-07-15T10:00:00", "BR", "2024-07-15 13:00:00"),  # Sao Paulo, UTC-3
        ("2024-01-15", "JP", "2024-01-14 15:00:00"),  # a date is local midnight
        ("2024-01-15 10:00:00", None, None),  # naive with no known zone: caller quarantines
        ("15/01/2024 10h", "TR", None),
        ("2024-13-01 10:00:00", "TR", None),
        (None, "TR", None),
    ]
    df = spark.createDataFrame(rows, "raw string, country string, expected string")
    expected = df.select("raw", "country", F.col("expected").cast("timestamp").alias("utc"))
    actual = df.select("raw", "country", to_utc(F.col("raw"), tz_col=country_timezone(F.col("country"))).alias("utc"))
    assertDataFrameEqual(actual, expected)


def test_to_utc_with_a_fixed_source_zone_and_a_per_row_fallback(spark):
    rows = [
        ("2024-01-15 10:00:00", None, "2024-01-15 15:00:00", "2024-01-15 15:00:00"),  # New York winter
        ("2024-07-15 10:00:00", None, "2024-07-15 14:00:00", "2024-07-15 14:00:00"),  # New York summer
        ("2024-07-15 10:00:00", "Asia/Tokyo", "2024-07-15 14:00:00", "2024-07-15 01:00:00"),
        ("2024-07-15T10:00:00+02:00", "Asia/Tokyo", "2024-07-15 08:00:00", "2024-07-15 08:00:00"),
    ]
    df = spark.createDataFrame(rows, "raw string, zone string, fixed string, per_row string")
    expected = df.select("raw", F.col("fixed").cast("timestamp").alias("fixed"), F.col("per_row").cast("timestamp").alias("per_row"))
    actual = df.select(
        "raw",
        to_utc(F.col("raw"), source_tz="America/New_York").alias("fixed"),
        to_utc(F.col("raw"), source_tz="America/New_York", tz_col=F.col("zone")).alias("per_row"),
    )
    assertDataFrameEqual(actual, expected)


def test_to_utc_rejects_an_unknown_source_zone():
    with pytest.raises(ConfigError, match="Europe/Istambul"):
        to_utc(F.col("ts"), source_tz="Europe/Istambul")


def test_country_timezone_picks_the_main_zone_of_multi_zone_countries(spark):
    expected = spark.createDataFrame(
        [("TR", "Europe/Istanbul"), ("us", "America/New_York"), ("BR", "America/Sao_Paulo"), ("ES", "Europe/Madrid"), ("JP", "Asia/Tokyo"), ("XX", None)],
        "country string, zone string",
    )
    assertDataFrameEqual(expected.select("country", country_timezone(F.col("country")).alias("zone")), expected)


# --- names ------------------------------------------------------------------------------------


def test_name_clean_handles_turkish_german_particles_and_kana(spark):
    rows = [
        ("şükrü çağlayan", "TR", "Şükrü Çağlayan"),
        ("ilker ışık", "TR", "İlker Işık"),  # Turkish: i → İ, ı → I
        ("KIRIŞ", "TR", "Kırış"),  # Turkish: I → ı
        ("İLKER", "TR", "İlker"),
        ("ilker", "DE", "Ilker"),  # elsewhere: i → I
        ("İLKER", "DE", "Ilker"),  # and İ is read as I
        ("  jean-pierre   o'brien ", "FR", "Jean-Pierre O'Brien"),
        ("JAN VAN DER BERG", "NL", "Jan van der Berg"),
        ("McDonald", "US", "McDonald"),  # mixed case typed on purpose is kept
        ("straße", "DE", "Straße"),
        ("STRAßE", "DE", "Straße"),
        ("ﾔﾏﾀﾞ\u3000ﾀﾛｳ", "JP", "ヤマダ タロウ"),  # half-width kana and ideographic space
        ("Ｔａｒｏ", "JP", "Taro"),
        ("   ", "TR", None),
        (None, "TR", None),
    ]
    expected = spark.createDataFrame(rows, "raw string, country string, clean string")
    actual = expected.select("raw", "country", name_clean(F.col("raw"), F.col("country")).alias("clean"))
    assertDataFrameEqual(actual, expected)


def test_name_key_transliterates_to_one_ascii_key(spark):
    rows = [
        ("Şükrü Çağlayan", "sukru caglayan"),
        ("ŞÜKRÜ  ÇAĞLAYAN", "sukru caglayan"),
        ("İlker Işık", "ilker isik"),
        ("ILKER ISIK", "ilker isik"),
        ("Straße", "strasse"),
        ("STRASSE", "strasse"),
        ("Müller", "muller"),  # not "mueller": see name_key's docstring
        ("Mueller", "mueller"),
        ("O’Brien", "obrien"),
        ("Jean-Pierre", "jean pierre"),
        ("やまだ たろう", "yamada tarou"),
        ("ヤマダ タロウ", "yamada tarou"),
        ("ﾔﾏﾀﾞ ﾀﾛｳ", "yamada tarou"),
        ("山田太郎", "shantiantailang"),
        ("---", None),
        (None, None),
    ]
    expected = spark.createDataFrame(rows, "raw string, key string")
    assertDataFrameEqual(expected.select("raw", name_key(F.col("raw")).alias("key")), expected)


# --- money ------------------------------------------------------------------------------------

FX_ROWS = [
    # date, currency, rate_to_eur (EUR per unit)
    ("2024-01-01", "USD", 0.90),
    ("2024-01-10", "USD", 0.95),
    ("2024-01-01", "TRY", 0.03),
    ("2024-01-01", "GBP", 1.20),
    ("2024-01-15", "GBP", 1.25),
    ("2024-03-01", "JPY", 0.0062),
]


def test_convert_currency_uses_the_latest_rate_on_or_before_the_date(spark):
    fx = spark.createDataFrame(FX_ROWS, "date string, currency string, rate_to_eur double").withColumn("date", F.to_date("date"))
    orders = spark.createDataFrame(
        [
            (1, 100.0, "USD", "2024-01-09"),  # rate of Jan 1
            (2, 100.0, "usd ", "2024-01-10"),  # rate of the same day
            (3, 100.0, "USD", "2024-02-20"),  # latest before: Jan 10
            (4, 1000.0, "TRY", "2024-01-05"),
            (5, 50.0, "EUR", "2024-01-05"),  # EUR needs no table row
            (6, 100.0, "GBP", "2024-01-20"),
            (7, 100.0, "USD", "2023-12-31"),  # before the first rate
            (8, 100.0, "JPY", "2024-01-05"),
            (9, None, "USD", "2024-01-05"),
            (10, 100.0, None, "2024-01-05"),
            (11, 100.0, "USD", None),
            (12, 100.0, "USD", "2025-06-01"),  # latest rate is older than max_staleness_days
        ],
        "order_id int, amount double, currency string, order_date string",
    )
    actual = convert_currency(orders, fx, amount_col="amount", currency_col="currency", date_col="order_date", reporting_currency="eur")
    expected = spark.createDataFrame(
        [
            (1, 100.0, "USD", "2024-01-09", "90.00", None),
            (2, 100.0, "usd ", "2024-01-10", "95.00", None),
            (3, 100.0, "USD", "2024-02-20", "95.00", None),
            (4, 1000.0, "TRY", "2024-01-05", "30.00", None),
            (5, 50.0, "EUR", "2024-01-05", "50.00", None),
            (6, 100.0, "GBP", "2024-01-20", "125.00", None),
            (7, 100.0, "USD", "2023-12-31", None, "no fx rate for USD on or before 2023-12-31"),
            (8, 100.0, "JPY", "2024-01-05", None, "no fx rate for JPY on or before 2024-01-05"),
            (9, None, "USD", "2024-01-05", None, "missing amount"),
            (10, 100.0, None, "2024-01-05", None, "missing currency"),
            (11, 100.0, "USD", None, None, "missing date"),
            (12, 100.0, "USD", "2025-06-01", None, "no fx rate for USD on or before 2025-06-01"),
        ],
        "order_id int, amount double, currency string, order_date string, amount_reporting string, amount_reporting_reason string",
    ).withColumn("amount_reporting", F.col("amount_reporting").cast("decimal(18,2)"))
    assertDataFrameEqual(actual, expected)


def test_convert_currency_to_a_non_euro_reporting_currency_uses_cross_rates(spark):
    fx = spark.createDataFrame(FX_ROWS, "date string, currency string, rate_to_eur double")
    orders = spark.createDataFrame(
        [
            (1, 120.0, "USD", "2024-01-12"),  # 120 × 0.95 / 1.20 (GBP of Jan 1)
            (2, 100.0, "EUR", "2024-01-20"),  # 100 / 1.25 (GBP of Jan 15)
            (3, 80.0, "GBP", "2023-06-01"),  # already GBP: no rate needed
            (4, 100.0, "EUR", "2023-06-01"),  # no GBP rate yet
        ],
        "order_id int, amount double, currency string, order_date string",
    )
    actual = convert_currency(orders, fx, amount_col="amount", currency_col="currency", date_col="order_date", reporting_currency="GBP", out_col="amount_gbp")
    expected = spark.createDataFrame(
        [
            (1, 120.0, "USD", "2024-01-12", "95.00", None),
            (2, 100.0, "EUR", "2024-01-20", "80.00", None),
            (3, 80.0, "GBP", "2023-06-01", "80.00", None),
            (4, 100.0, "EUR", "2023-06-01", None, "no fx rate for reporting currency GBP on or before 2023-06-01"),
        ],
        "order_id int, amount double, currency string, order_date string, amount_gbp string, amount_gbp_reason string",
    ).withColumn("amount_gbp", F.col("amount_gbp").cast("decimal(18,2)"))
    assertDataFrameEqual(actual, expected)


def test_convert_currency_names_missing_columns(spark):
    fx = spark.createDataFrame(FX_ROWS, "date string, currency string, rate_to_eur double")
    orders = spark.createDataFrame([(1.0, "USD")], "amount double, currency string")
    with pytest.raises(MissingColumnsError, match="convert_currency input is missing required column.*order_date"):
        convert_currency(orders, fx, amount_col="amount", currency_col="currency", date_col="order_date", reporting_currency="EUR")
