"""Valid phone numbers per country and their written variants, rendered from digit matrices.

For each country a mobile and a fixed-line number plan is derived from ``phonenumbers``' example
number: its leading digits are kept and the last ``k`` digits drawn, with ``k`` the largest value
for which every sampled number is valid. Written variants (E.164, international, national, dashed,
digits only, parenthesised, ``00`` prefix) are templates derived from the example's formatting and
checked to parse back to the same E.164 number with the country as the default region.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import phonenumbers as pn
import pyarrow as pa
import pyarrow.compute as pc

FORMATS = ("e164", "international", "national", "dashed", "digits", "parenthesised", "idd00")

# (literal text, -1) or ("", digit index) per output character
Template = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class NumberPlan:
    """One number type of one country: fixed leading NSN digits, ``k`` free digits, format templates."""

    prefix: str
    free_digits: int
    templates: tuple[Template | None, ...]  # indexed like FORMATS; None when the variant does not round-trip

    @property
    def length(self) -> int:
        return len(self.prefix) + self.free_digits


@dataclass(frozen=True)
class PhonePlan:
    country_code: int
    mobile: NumberPlan
    fixed: NumberPlan


def _template(formatted: str, nsn: str) -> Template:
    """Map the characters of ``formatted`` to NSN digit positions, matching digits from the end."""
    out: list[tuple[str, int]] = []
    j = len(nsn) - 1
    for ch in reversed(formatted):
        if j >= 0 and ch == nsn[j]:
            out.append(("", j))
            j -= 1
        else:
            out.append((ch, -1))
    if j >= 0:
        raise ValueError(f"cannot align {formatted!r} with {nsn!r}")
    return tuple(reversed(out))


def _render_one(template: Template, nsn: str) -> str:
    return "".join(lit if pos < 0 else nsn[pos] for lit, pos in template)


def _variants(num: pn.PhoneNumber, nsn: str) -> list[Template | None]:
    cc = str(num.country_code)
    intl = pn.format_number(num, pn.PhoneNumberFormat.INTERNATIONAL)
    national = pn.format_number(num, pn.PhoneNumberFormat.NATIONAL)
    first_space = national.find(" ")
    texts = {
        "e164": f"+{cc}{nsn}",
        "international": intl,
        "national": national,
        "dashed": national.replace(" ", "-"),
        "digits": "".join(c for c in national if c.isdigit()),
        "parenthesised": national if "(" in national or first_space < 0 else f"({national[:first_space]}){national[first_space:]}",
        "idd00": "00" + intl[1:] if intl.startswith("+") else intl,
    }
    out: list[Template | None] = []
    for name in FORMATS:
        try:
            out.append(_template(texts[name], nsn))
        except ValueError:
            out.append(None)
    return out


def _round_trips(template: Template, nsn: str, region: str, e164: str) -> bool:
    try:
        parsed = pn.parse(_render_one(template, nsn), region)
    except pn.NumberParseException:
        return False
    return pn.format_number(parsed, pn.PhoneNumberFormat.E164) == e164


def _number_plan(region: str, kind: int, rnd: random.Random) -> NumberPlan:
    example = pn.example_number_for_type(region, kind) or pn.example_number(region)
    if example is None:
        raise ValueError(f"phonenumbers has no example number for {region}")
    nsn = pn.national_significant_number(example)
    cc = example.country_code
    for k in (7, 6, 5, 4, 3, 2):
        if k >= len(nsn):
            continue
        prefix = nsn[: len(nsn) - k]
        samples = [prefix + "".join(rnd.choice("0123456789") for _ in range(k)) for _ in range(60)]
        if all(pn.is_valid_number(pn.parse(f"+{cc}{s}")) for s in samples):
            break
    else:
        prefix, k, samples = nsn, 0, [nsn]
    templates = _variants(example, nsn)
    checked: list[Template | None] = []
    for tpl in templates:
        ok = tpl is not None and all(_round_trips(tpl, s, region, f"+{cc}{s}") for s in samples[:10])
        checked.append(tpl if ok else None)
    return NumberPlan(prefix=prefix, free_digits=k, templates=tuple(checked))


def phone_plan(region: str, seed: int) -> PhonePlan:
    """Mobile and fixed-line number plans for an ISO alpha-2 region (deterministic for a seed)."""
    rnd = random.Random(f"{seed}-{region}")
    mobile = _number_plan(region, pn.PhoneNumberType.MOBILE, rnd)
    fixed = _number_plan(region, pn.PhoneNumberType.FIXED_LINE, rnd)
    return PhonePlan(country_code=pn.country_code_for_region(region), mobile=mobile, fixed=fixed)


def draw_numbers(plan: NumberPlan, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct national significant numbers as an (n, length) digit matrix (fewer if the plan is small)."""
    space = 10**plan.free_digits
    n = min(n, space)
    free = rng.choice(space, size=n, replace=False) if n else np.zeros(0, dtype=np.int64)
    digits = np.zeros((n, plan.length), dtype=np.uint8)
    for i, ch in enumerate(plan.prefix):
        digits[:, i] = int(ch)
    for j in range(plan.free_digits):
        digits[:, plan.length - 1 - j] = (free // 10**j) % 10
    return digits


def render(plan: NumberPlan, digits: np.ndarray, fmt: int) -> pa.Array:
    """Write every row of ``digits`` in variant ``FORMATS[fmt]`` (falls back to E.164 if it does not round-trip)."""
    template = plan.templates[fmt] or plan.templates[0]
    if template is None:
        raise ValueError("E.164 template missing")
    cols = []
    for lit, pos in template:
        if pos < 0:
            cols.append(np.full((digits.shape[0], len(lit.encode())), list(lit.encode()), dtype=np.uint8))
        else:
            cols.append((digits[:, pos : pos + 1] + ord("0")).astype(np.uint8))
    chars = np.ascontiguousarray(np.concatenate(cols, axis=1)) if cols else np.zeros((digits.shape[0], 0), np.uint8)
    width = chars.shape[1]
    return pc.cast(pa.array(chars.view(f"S{width}").ravel(), type=pa.binary()), pa.string())
