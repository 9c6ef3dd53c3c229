"""Identity noise as in life: written variants of e-mails and phones, typos, junk values.

Each function returns the written text and the *entity* the text resolves to after exact
normalisation (-1 for junk or missing), so the ground truth never has to parse strings.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdp_spark.synthetic._fmt import concat
from cdp_spark.synthetic._phones import FORMATS, render
from cdp_spark.synthetic._world import World

JUNK_EMAILS = ("test@test.com", "noemail@noemail.com", "unknown", "none@none.com", "a@a.com")
JUNK_PHONES = ("0000000000", "1234567890", "unknown", "n/a", "+0000000000")

_EMAIL_KINDS = ("canonical", "upper", "capitalised", "padded", "turkish_upper", "turkish_dotless", "typo", "junk")
_PHONE_FORMAT_P = np.array([0.25, 0.2, 0.25, 0.08, 0.1, 0.07, 0.05])

# Transliterations people and legacy systems apply to names (source char, replacement).
TRANSLITERATIONS = (
    ("ü", "ue"), ("ö", "oe"), ("ä", "ae"), ("ß", "ss"), ("ş", "s"), ("ç", "c"), ("ğ", "g"), ("ı", "i"),
    ("İ", "I"), ("Ş", "S"), ("Ç", "C"), ("Ö", "O"), ("Ü", "U"), ("é", "e"), ("è", "e"), ("á", "a"),
    ("ó", "o"), ("ł", "l"), ("ń", "n"), ("ż", "z"), ("ã", "a"), ("ñ", "n"), ("í", "i"),
)


class NoiseLog(Counter):
    """How many records got each kind of noise (reported, and asserted on in tests)."""


class EntityCounter:
    """Allocates fresh entity ids (e.g. for an e-mail with a typo, which matches nothing exactly)."""

    def __init__(self, start: int) -> None:
        self.next = start

    def take(self, n: int) -> np.ndarray:
        ids = self.next + np.arange(n, dtype=np.int64)
        self.next += n
        return ids


def scatter(n: int, chunks: list[tuple[np.ndarray, pa.Array]]) -> pa.Array:
    """Assemble a string array of length ``n`` from (positions, values) chunks; other positions are null."""
    covered = np.zeros(n, dtype=bool)
    positions, arrays = [], []
    for pos, arr in chunks:
        covered[pos] = True
        positions.append(pos)
        arrays.append(arr)
    missing = np.flatnonzero(~covered)
    positions.append(missing)
    arrays.append(pa.nulls(len(missing), pa.string()))
    allpos = np.concatenate(positions)
    values = pa.concat_arrays([a.cast(pa.string()) for a in arrays])
    return values.take(pa.array(np.argsort(allpos, kind="stable")))


def choose(rng: np.random.Generator, n: int, probs: dict[str, float]) -> np.ndarray:
    """Index into ``list(probs)`` per row."""
    p = np.array(list(probs.values()), dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


def emails(world: World, email_id: np.ndarray, rng: np.random.Generator, log: NoiseLog, counter: EntityCounter,
           *, noisy: float = 1.0) -> tuple[pa.Array, np.ndarray]:
    """Write e-mail ``email_id`` (-1 = missing) with variants; returns (text, entity)."""
    n = len(email_id)
    present = email_id >= 0
    base = world.email_text.take(pa.array(np.where(present, email_id, 0)))
    codes = [s.code for s in world.specs]
    is_tr = world.country[world.email_person[np.where(present, email_id, 0)]] == (codes.index("TR") if "TR" in codes else -1)
    probs = np.array([0, 0.04, 0.04, 0.03, 0.0, 0.0, 0.01, 0.012]) * noisy
    u = rng.random(n)
    tr_probs = probs.copy()
    tr_probs[4], tr_probs[5] = 0.05 * noisy, 0.04 * noisy
    cum = np.where(is_tr[:, None], np.cumsum(tr_probs)[None, :], np.cumsum(probs)[None, :])
    kind = np.where(u < cum[:, -1], (u[:, None] >= cum).sum(axis=1), 0).astype(np.int8)
    kind[~present] = 0
    variants = [
        base,
        pc.utf8_upper(base),
        concat(pc.utf8_upper(pc.utf8_slice_codeunits(base, 0, 1)), pc.utf8_slice_codeunits(base, 1)),
        concat(" ", base, "  "),
        pc.utf8_upper(pc.replace_substring(base, "i", "İ")),
        pc.replace_substring(base, "i", "ı"),
        concat(pc.utf8_slice_codeunits(base, 0, 1), pc.utf8_slice_codeunits(base, 2)),
        pa.array(np.array(JUNK_EMAILS, dtype=object)[rng.integers(0, len(JUNK_EMAILS), n)], type=pa.string()),
    ]
    text = variants[0]
    for k in range(1, len(variants)):
        text = pc.if_else(pa.array(kind == k), variants[k], text)
    text = pc.if_else(pa.array(present), text, pa.nulls(n, pa.string()))
    entity = np.where(present, email_id, -1).astype(np.int64)
    typo = np.flatnonzero(kind == 6)
    entity[typo] = counter.take(len(typo))
    entity[kind == 7] = -1
    for k, name in enumerate(_EMAIL_KINDS[1:], start=1):
        log[f"email_{name}"] += int((kind == k).sum())
    return text, entity


def phones(world: World, phone_id: np.ndarray, rng: np.random.Generator, log: NoiseLog,
           *, junk: float = 0.01) -> tuple[pa.Array, np.ndarray]:
    """Write phone ``phone_id`` (-1 = missing) in a random written format; returns (text, entity)."""
    n = len(phone_id)
    present = phone_id >= 0
    fmt = rng.choice(len(FORMATS), size=n, p=_PHONE_FORMAT_P)
    is_junk = present & (rng.random(n) < junk)
    idx = np.flatnonzero(present & ~is_junk)
    chunks = []
    for pos, digits, mob, c in world.phone_digits_of(phone_id[idx]):
        plan = world.phone_plans[c].mobile if mob else world.phone_plans[c].fixed
        rows = idx[pos]
        for f in range(len(FORMATS)):
            sel = fmt[rows] == f
            if sel.any():
                chunks.append((rows[sel], render(plan, digits[sel], f)))
    junk_rows = np.flatnonzero(is_junk)
    chunks.append((junk_rows, pa.array(np.array(JUNK_PHONES, dtype=object)[rng.integers(0, len(JUNK_PHONES), len(junk_rows))], type=pa.string())))
    text = scatter(n, chunks)
    entity = np.where(present & ~is_junk, phone_id, -1).astype(np.int64)
    log["phone_junk"] += len(junk_rows)
    for f, name in enumerate(FORMATS):
        log[f"phone_format_{name}"] += int(((fmt == f) & present & ~is_junk).sum())
    shared = present & ~is_junk & ~world.phone_is_mobile[np.where(present, phone_id, 0)]
    log["phone_household_landline"] += int(shared.sum())
    return text, entity


def transliterate(text: pa.Array) -> pa.Array:
    """Replace diacritics the way legacy systems and hurried typists do (ü→ue, ş→s, ı→i...)."""
    for src, dst in TRANSLITERATIONS:
        text = pc.replace_substring(text, src, dst)
    return text


def typo(text: pa.Array, rng: np.random.Generator, rate: float, log: NoiseLog, field: str) -> pa.Array:
    """Swap, drop or double one character in a ``rate`` share of values."""
    n = len(text)
    hit = rng.random(n) < rate
    kind = rng.integers(0, 3, n)
    length = pc.utf8_length(text).to_numpy(zero_copy_only=False)
    length = np.nan_to_num(length.astype(float), nan=0).astype(np.int64)
    pos = (rng.random(n) * np.maximum(length - 1, 1)).astype(np.int64)
    hit &= length >= 3
    out = text
    for p in np.unique(pos[hit]):
        at = hit & (pos == p)
        head, c1 = pc.utf8_slice_codeunits(text, 0, int(p)), pc.utf8_slice_codeunits(text, int(p), int(p) + 1)
        c2, tail = pc.utf8_slice_codeunits(text, int(p) + 1, int(p) + 2), pc.utf8_slice_codeunits(text, int(p) + 2)
        swapped = concat(head, c2, c1, tail)
        dropped = concat(head, c2, tail)
        doubled = concat(head, c1, c1, c2, tail)
        for k, variant in enumerate((swapped, dropped, doubled)):
            out = pc.if_else(pa.array(at & (kind == k)), variant, out)
    changed = pc.fill_null(pc.not_equal(out, text), False).to_numpy(zero_copy_only=False)
    log[f"typo_{field}"] += int(changed.sum())
    return out


def case_noise(text: pa.Array, rng: np.random.Generator, rate: float, log: NoiseLog, field: str) -> pa.Array:
    """Upper-case, lower-case or pad a ``rate`` share of values."""
    n = len(text)
    kind = np.where(rng.random(n) < rate, rng.integers(1, 4, n), 0)
    out = pc.if_else(pa.array(kind == 1), pc.utf8_upper(text), text)
    out = pc.if_else(pa.array(kind == 2), pc.utf8_lower(text), out)
    out = pc.if_else(pa.array(kind == 3), concat(text, " "), out)
    log[f"case_{field}"] += int((kind > 0).sum())
    return out
