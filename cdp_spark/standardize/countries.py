"""Country names and codes to ISO 3166-1 alpha-2, with a lookup built once on the driver."""

from __future__ import annotations

import gettext
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdp_spark.standardize._text import nfkc, strip_edges

log = logging.getLogger(__name__)

# Languages whose country names are accepted besides English: the markets we serve and their
# neighbours. Each adds ~250 names to the map; keep the list short.
_LANGUAGES = ("de", "fr", "es", "it", "nl", "pl", "pt", "pt_BR", "tr", "ja", "sv", "da", "nb_NO", "fi", "cs", "ru", "el", "zh_CN", "ko")

# Spellings people type that ISO and its translations do not list.
_ALIASES = {
    "GB": ("UK", "U.K.", "Great Britain", "Britain", "England", "Scotland", "Wales", "Northern Ireland", "United Kingdom"),
    "US": ("USA", "U.S.A.", "U.S.", "America", "United States"),
    "NL": ("Holland", "The Netherlands"),
    "TR": ("Turkey", "Türkiye Cumhuriyeti"),
    "DE": ("Germany", "Deutschland", "BRD"),
    "JP": ("日本国", "Nippon", "Nihon"),
    "CZ": ("Czech Republic", "Czechia"),
    "CI": ("Ivory Coast",),
    "RU": ("Russia",),
    "MK": ("Macedonia", "North Macedonia"),
    "SZ": ("Swaziland",),
    "MM": ("Burma",),
    "CV": ("Cape Verde",),
    "TL": ("East Timor",),
    "VA": ("Vatican", "Vatican City"),
    "PS": ("Palestine",),
    "KR": ("Korea, Republic of", "Republic of Korea"),
    "AE": ("UAE", "Emirates"),
    "GR": ("EL",),  # the EU's code for Greece
}

# Full stops and apostrophes vanish ("U.K." -> "uk", "d'Ivoire" -> "divoire"); other punctuation
# and symbols separate words.
_DROP = r"[.'’`]"
_SEPARATE = r"[\p{P}\p{S}\p{Z}\s]+"
_ASCII_SPACE = " \t\n\x0b\f\r"  # Java's \s


def _key(text: str) -> str:
    """Python twin of :func:`_key_col` (same steps, same order)."""
    text = unicodedata.normalize("NFKC", text).translate(str.maketrans("İı", "ii")).lower()
    text = re.sub(_DROP, "", text)
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZ" or ch in _ASCII_SPACE else ch for ch in text)
    return re.sub(r"^the ", "", " ".join(text.split()))


def _key_col(col: Column) -> Column:
    text = F.lower(F.translate(strip_edges(nfkc(col.cast("string"))), "İı", "ii"))
    text = F.regexp_replace(text, _DROP, "")
    text = F.trim(F.regexp_replace(text, _SEPARATE, " "))
    return F.regexp_replace(text, "^the ", "")


def _ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.translate(str.maketrans({"ß": "ss", "ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th"}))


def _names(country: object) -> Iterator[str]:
    for attr in ("name", "official_name", "common_name"):
        value = getattr(country, attr, None)
        if value:
            yield value


def _tiers() -> list[list[tuple[str, str]]]:
    """Names by priority: a name claimed by a higher tier is never overridden by a lower one."""
    import pycountry

    countries = list(pycountry.countries)
    english = [(name, c.alpha_2) for c in countries for name in _names(c)]
    local: list[tuple[str, str]] = []
    for lang in _LANGUAGES:
        translation = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang])
        local.extend((translation.gettext(name), c.alpha_2) for c in countries for name in _names(c))
    aliases = [(alias, code) for code, names in _ALIASES.items() for alias in names]
    # Accent-free spellings people type on a plain keyboard ("Turkiye", "Espana", "Osterreich").
    folded = [(_ascii_fold(name), code) for name, code in aliases + english + local]
    folded = [(name, code) for name, code in folded if name.isascii()]
    return [
        [(c.alpha_2, c.alpha_2) for c in countries],
        [(c.alpha_3, c.alpha_2) for c in countries],
        aliases,
        english,
        local,
        folded,
    ]


def _build(tiers: Iterable[list[tuple[str, str]]]) -> dict[str, str]:
    lookup: dict[str, str] = {}
    ambiguous = 0
    for tier in tiers:
        found: dict[str, str] = {}
        clashes: set[str] = set()
        for name, code in tier:
            key = _key(name)
            if not key or key in lookup:
                continue
            if found.setdefault(key, code) != code:
                clashes.add(key)
        for key in clashes:
            del found[key]
        ambiguous += len(clashes)
        lookup.update(found)
    log.debug("country lookup: %d keys, %d ambiguous names dropped", len(lookup), ambiguous)
    return lookup


@lru_cache(maxsize=1)
def country_lookup() -> dict[str, str]:
    """The normalized-name → alpha-2 dictionary (built once per driver process)."""
    return _build(_tiers())


def _lookup_literal() -> Column:
    # One JSON string literal parsed by from_json: the optimizer folds it into a single map
    # constant, instead of a CreateMap expression with thousands of children.
    return F.from_json(F.lit(json.dumps(country_lookup(), ensure_ascii=False)), "map<string,string>")


def country_code(col: Column) -> Column:
    """ISO 3166-1 alpha-2 code for a country code or name, null when unknown or ambiguous.

    Accepts alpha-2 (``de``), alpha-3 (``DEU``), English names (``Germany``, ``Türkiye``/``Turkey``),
    names in the languages of ``_LANGUAGES`` (``Deutschland``, ``España``, ``Brasil``, ``日本``,
    ``Nederland``, ``Polska``, ``Italia``), common aliases (``UK`` → ``GB``, ``USA``, ``Holland``)
    and accent-free spellings (``Turkiye``). Matching ignores case, Unicode width (NFKC), full
    stops, apostrophes, other punctuation and a leading "the". A name two countries share in the
    same tier is dropped rather than guessed. The lookup is a map constant built once on the
    driver; rows are resolved by a map lookup in the JVM.
    """
    return F.try_element_at(_lookup_literal(), _key_col(col))
