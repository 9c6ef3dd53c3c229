"""Silver standardizers: Column→Column functions that make values comparable across countries.

Emails, phones, names, countries and times are Column→Column; money conversion needs the FX
table, so it is a DataFrame→DataFrame function.
"""

from cdp_spark.standardize.countries import country_code
from cdp_spark.standardize.emails import standardize_email
from cdp_spark.standardize.money import convert_currency
from cdp_spark.standardize.names import name_clean, name_key
from cdp_spark.standardize.phones import standardize_phone
from cdp_spark.standardize.timestamps import country_timezone, to_utc

__all__ = [
    "convert_currency",
    "country_code",
    "country_timezone",
    "name_clean",
    "name_key",
    "standardize_email",
    "standardize_phone",
    "to_utc",
]
