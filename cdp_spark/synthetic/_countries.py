"""Country reference data for the generator: currency, time zone, Faker locale, spellings.

One line per supported country in ``_TABLE``: ISO alpha-2, ISO 4217 currency, an approximate
rate to EUR (1 unit = rate EUR, early 2025) and, where Faker has no locale for the country,
the locale whose names and streets stand in for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pycountry
import pytz
from faker.config import AVAILABLE_LOCALES

from cdp_spark.errors import ConfigError

DEFAULT_COUNTRIES: tuple[str, ...] = ("TR", "DE", "FR", "ES", "IT", "NL", "PL", "BR", "JP", "US")

_FALLBACK_LOCALE = "en_US"

# alpha2 currency rate_to_eur [fallback_locale]
_TABLE = """
TR TRY 0.026
DE EUR 1
FR EUR 1
ES EUR 1
IT EUR 1
NL EUR 1
PL PLN 0.23
BR BRL 0.16
JP JPY 0.0061
US USD 0.92
GB GBP 1.18
AT EUR 1
BE EUR 1
HR EUR 1
CY EUR 1 el_CY
EE EUR 1
FI EUR 1
GR EUR 1
IE EUR 1
LV EUR 1
LT EUR 1
LU EUR 1 fr_FR
MT EUR 1
PT EUR 1
SK EUR 1
SI EUR 1
CH CHF 1.05
SE SEK 0.087
NO NOK 0.085
DK DKK 0.134
CZ CZK 0.040
HU HUF 0.0025
RO RON 0.20
BG BGN 0.511
RS RSD 0.0085 hr_HR
BA BAM 0.511 bs_BA
MK MKD 0.016 mk_MK
AL ALL 0.0098 sq_AL
UA UAH 0.022
RU RUB 0.010
GE GEL 0.33 ka_GE
AM AMD 0.0024 hy_AM
AZ AZN 0.54 az_AZ
IS ISK 0.0066
IL ILS 0.25 he_IL
EG EGP 0.019 ar_EG
SA SAR 0.245 ar_SA
AE AED 0.25 ar_AE
JO JOD 1.30 ar_JO
BH BHD 2.44 ar_BH
DZ DZD 0.0068 ar_DZ
PS ILS 0.25 ar_PS
MA MAD 0.092 fr_FR
TN TND 0.30 fr_FR
IR IRR 0.000022 fa_IR
IN INR 0.011 en_IN
PK PKR 0.0033 en_PK
BD BDT 0.0077 bn_BD
LK LKR 0.0031 si_LK
NP NPR 0.0069 ne_NP
CN CNY 0.127 zh_CN
TW TWD 0.028 zh_TW
KR KRW 0.00067 ko_KR
TH THB 0.026 th_TH
VN VND 0.000036 vi_VN
ID IDR 0.000057 id_ID
PH PHP 0.016 en_PH
MY MYR 0.20 en_US
SG SGD 0.69 en_US
AU AUD 0.60 en_AU
NZ NZD 0.55 en_NZ
CA CAD 0.67 en_CA
MX MXN 0.050 es_MX
AR ARS 0.00095 es_AR
CL CLP 0.00097 es_CL
CO COP 0.00022 es_CO
VE VES 0.025 es_VE
PE PEN 0.25 es_MX
EC USD 0.92 es_MX
UY UYU 0.022 es_AR
PY PYG 0.00012 es_AR
BO BOB 0.13 es_MX
CR CRC 0.0018 es_MX
PA USD 0.92 es_MX
DO DOP 0.015 es_MX
GT GTQ 0.12 es_MX
HN HNL 0.036 es_MX
SV USD 0.92 es_MX
NI NIO 0.025 es_MX
JM JMD 0.0058 en_US
TT TTD 0.136 en_US
ZA ZAR 0.050 zu_ZA
NG NGN 0.00060 en_NG
KE KES 0.0071 en_KE
GH GHS 0.060 tw_GH
ET ETB 0.0075 am_ET
TZ TZS 0.00035 sw
UG UGX 0.00025 en_KE
RW RWF 0.00067 en_KE
ZM ZMW 0.034 en_US
MU MUR 0.020 fr_FR
SN XOF 0.001524 fr_FR
CI XOF 0.001524 fr_FR
CM XAF 0.001524 fr_FR
UZ UZS 0.000072 uz_UZ
KZ KZT 0.0018 ru_RU
KG KGS 0.0105 ru_RU
MN MNT 0.00027 en_US
HK HKD 0.118 zh_TW
QA QAR 0.25 ar_SA
KW KWD 3.0 ar_SA
OM OMR 2.39 ar_SA
MD MDL 0.051 ro_RO
BY BYN 0.28 ru_RU
ME EUR 1 hr_HR
AD EUR 1 es_ES
MC EUR 1 fr_FR
LI CHF 1.05 de_LI
KH KHR 0.00023 en_US
MM MMK 0.00044 en_US
FJ FJD 0.41 en_AU
NA NAD 0.050 en_US
BW BWP 0.068 en_US
MZ MZN 0.0144 pt_PT
AO AOA 0.0010 pt_PT
MG MGA 0.00020 fr_FR
BS BSD 0.92 en_US
BB BBD 0.46 en_US
"""

# Time zone per country where pytz's first entry is not the main population centre.
_TZ_OVERRIDES = {
    "BR": "America/Sao_Paulo", "US": "America/New_York", "CA": "America/Toronto", "AU": "Australia/Sydney",
    "RU": "Europe/Moscow", "MX": "America/Mexico_City", "CN": "Asia/Shanghai", "KZ": "Asia/Almaty",
    "ID": "Asia/Jakarta", "AR": "America/Argentina/Buenos_Aires", "CL": "America/Santiago",
    "EC": "America/Guayaquil", "ES": "Europe/Madrid", "PT": "Europe/Lisbon", "UA": "Europe/Kyiv",
    "NZ": "Pacific/Auckland", "MN": "Asia/Ulaanbaatar", "CD": "Africa/Kinshasa", "UZ": "Asia/Tashkent",
}

# Local spellings the CRM systems of each market write into the country column.
_LOCAL_NAMES = {
    "TR": ("Türkiye", "Turkey", "TURKIYE"), "DE": ("Deutschland", "germany", "Germany"),
    "FR": ("France", "france", "République française"), "ES": ("España", "Spain", "ESPAÑA"),
    "IT": ("Italia", "Italy", "italia"), "NL": ("Nederland", "Netherlands", "Holland"),
    "PL": ("Polska", "Poland", "POLSKA"), "BR": ("Brasil", "Brazil", "brasil"),
    "JP": ("日本", "Japan", "Nippon"), "US": ("USA", "United States", "U.S.A."),
    "GB": ("United Kingdom", "UK", "Great Britain"),
}

# Country-specific national identifier layouts for the legacy file: '9' = digit, 'A' = letter.
_NATIONAL_ID_LAYOUT = {
    "TR": "99999999999", "DE": "99999999999", "FR": "999999999999999", "ES": "99999999A",
    "IT": "AAAAAA99A99A999A", "NL": "999999999", "PL": "99999999999", "BR": "999.999.999-99",
    "JP": "999999999999", "US": "999-99-9999", "GB": "AA999999A",
}
_DEFAULT_NATIONAL_ID_LAYOUT = "9999999999"


@dataclass(frozen=True)
class CountrySpec:
    """Everything the generator needs to know about one market."""

    code: str
    alpha3: str
    name: str
    currency: str
    rate_to_eur: float
    tz: str
    locale: str
    spellings: tuple[str, ...]
    national_id_layout: str


@cache
def _table() -> dict[str, tuple[str, float, str | None]]:
    rows: dict[str, tuple[str, float, str | None]] = {}
    for line in _TABLE.strip().splitlines():
        parts = line.split()
        rows[parts[0]] = (parts[1], float(parts[2]), parts[3] if len(parts) > 3 else None)
    return rows


def supported_countries() -> tuple[str, ...]:
    """ISO alpha-2 codes the generator can produce, default markets first."""
    return tuple(_table())


def _locale_for(code: str, fallback: str | None) -> str:
    own = sorted(loc for loc in AVAILABLE_LOCALES if loc.endswith("_" + code))
    preferred = [loc for loc in own if loc.split("_")[0] == code.lower()]
    if preferred:
        return preferred[0]
    if own:
        return own[0]
    return fallback or _FALLBACK_LOCALE


@cache
def country_spec(code: str) -> CountrySpec:
    """Reference data for one ISO alpha-2 country code; ConfigError if the generator does not know it."""
    code = code.upper()
    table = _table()
    if code not in table:
        raise ConfigError(
            f"synthetic.country_mix: unknown country {code!r}; use ISO alpha-2 codes from "
            f"cdp_spark.synthetic.supported_countries() ({len(table)} available)"
        )
    currency, rate, fallback = table[code]
    country = pycountry.countries.get(alpha_2=code)
    name = getattr(country, "common_name", None) or country.name
    tz = _TZ_OVERRIDES.get(code) or pytz.country_timezones[code.lower()][0]
    spellings = _LOCAL_NAMES.get(code, (name, name.lower(), name.upper()))
    return CountrySpec(
        code=code,
        alpha3=country.alpha_3,
        name=name,
        currency=currency,
        rate_to_eur=rate,
        tz=tz,
        locale=_locale_for(code, fallback),
        spellings=(*spellings, country.alpha_3),
        national_id_layout=_NATIONAL_ID_LAYOUT.get(code, _DEFAULT_NATIONAL_ID_LAYOUT),
    )


def resolve_mix(countries: int, country_mix: dict[str, float] | None) -> tuple[list[CountrySpec], list[float]]:
    """The markets and their population shares: ``country_mix`` if given, else the first ``countries``
    supported countries with gently decreasing shares."""
    if country_mix:
        if any(w < 0 for w in country_mix.values()) or sum(country_mix.values()) <= 0:
            raise ConfigError("synthetic.country_mix: weights must be non-negative and sum to more than 0")
        codes = list(country_mix)
        weights = [float(country_mix[c]) for c in codes]
    else:
        available = supported_countries()
        if not 1 <= countries <= len(available):
            raise ConfigError(f"synthetic.countries={countries}: choose between 1 and {len(available)}")
        codes = list(available[:countries])
        weights = [1.0 / (i + 1) ** 0.5 for i in range(countries)]
    total = sum(weights)
    return [country_spec(c) for c in codes], [w / total for w in weights]
