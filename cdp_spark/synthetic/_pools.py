"""Per-locale value pools built once with Faker; rows then sample them with numpy."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np
from anyascii import anyascii
from faker import Faker

_POOL_SIZE = 400
_GLOBAL_DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com")


@dataclass(frozen=True)
class Pools:
    """Names and places of one locale; ``*_ascii`` hold the e-mail-safe spelling of the same entries."""

    first_female: np.ndarray
    first_female_ascii: np.ndarray
    first_male: np.ndarray
    first_male_ascii: np.ndarray
    last: np.ndarray
    last_ascii: np.ndarray
    street: np.ndarray
    city: np.ndarray
    postcode: np.ndarray
    domains: np.ndarray


def _email_safe(values: list[str]) -> np.ndarray:
    return np.array([re.sub(r"[^a-z0-9]", "", anyascii(v).lower()) or "user" for v in values], dtype=object)


def _call(fake: Faker, fallback: Faker, method: str) -> str:
    try:
        return str(getattr(fake, method)())
    except (AttributeError, TypeError, ValueError):
        return str(getattr(fallback, method)())


def _canonical_order(fake: Faker) -> None:
    """Sort the providers' element lists: some locales build them from sets (it_IT cities), whose
    order depends on PYTHONHASHSEED, which would make the pools differ between processes."""
    for provider in fake.providers:
        for name, value in vars(type(provider)).items():
            if isinstance(value, (list, tuple)) and len(value) > 1 and all(isinstance(v, str) for v in value):
                setattr(provider, name, type(value)(sorted(value)))


def build_pools(locale: str, seed: int) -> Pools:
    """Draw a fixed-size pool of names, streets, cities and e-mail domains for ``locale``.

    The Faker instances are seeded from ``seed`` and the locale name, so pools are reproducible.
    Japanese names come with their romanised reading for e-mail addresses.
    """
    local_seed = (seed * 1_000_003 + zlib.crc32(locale.encode())) % (2**32)
    fake = Faker(locale)
    fake.seed_instance(local_seed)
    fallback = Faker("en_US")
    fallback.seed_instance(local_seed)
    _canonical_order(fake)
    _canonical_order(fallback)

    def names(kind: str) -> tuple[np.ndarray, np.ndarray]:
        if locale == "ja_JP":
            pairs = [getattr(fake, f"{kind}_pair")() for _ in range(_POOL_SIZE)]
            return np.array([p[0] for p in pairs], dtype=object), _email_safe([p[2] for p in pairs])
        values = [_call(fake, fallback, kind) for _ in range(_POOL_SIZE)]
        return np.array(values, dtype=object), _email_safe(values)

    first_female, first_female_ascii = names("first_name_female")
    first_male, first_male_ascii = names("first_name_male")
    last, last_ascii = names("last_name")
    places = [(_call(fake, fallback, "city"), _call(fake, fallback, "postcode")) for _ in range(_POOL_SIZE // 2)]
    domains = sorted({_call(fake, fallback, "free_email_domain") for _ in range(30)})
    return Pools(
        first_female=first_female,
        first_female_ascii=first_female_ascii,
        first_male=first_male,
        first_male_ascii=first_male_ascii,
        last=last,
        last_ascii=last_ascii,
        street=np.array([_call(fake, fallback, "street_name") for _ in range(_POOL_SIZE)], dtype=object),
        city=np.array([p[0] for p in places], dtype=object),
        postcode=np.array([p[1] for p in places], dtype=object),
        domains=np.array(list(_GLOBAL_DOMAINS) + domains, dtype=object),
    )
