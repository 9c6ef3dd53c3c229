"""Email standardization: one pass of Spark built-ins (NFKC through ICU4J in the JVM)."""

from __future__ import annotations

from collections.abc import Collection

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdp_spark.standardize._text import let, nfkc, strip_edges

GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
DEFAULT_JUNK_LOCAL_PARTS = (
    "test", "testing", "noreply", "no-reply", "donotreply", "do-not-reply", "none", "null",
    "nomail", "noemail", "no-email", "unknown", "asdf", "xxx", "na",
)
DEFAULT_JUNK_DOMAINS = (
    # RFC 2606/6761 reserved names and the usual placeholders typed into forms.
    "example.com", "example.org", "example.net", "test.com", "test.test", "localhost", "invalid",
    "mailinator.com",
)

# RFC 5322 dot-atom, widened to Unicode letters and digits (RFC 6531, internationalised mail).
_LOCAL_RE = r"^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+(\.[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+)*$"
# At least two labels, no leading/trailing hyphen, alphabetic (or punycode) top-level label.
_DOMAIN_RE = r"^([\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)+(\p{L}{2,63}|xn--[a-z0-9-]{1,59})$"


def standardize_email(
    col: Column,
    *,
    gmail_rule: bool = True,
    strip_plus_tags: bool = False,
    junk_local_parts: Collection[str] = DEFAULT_JUNK_LOCAL_PARTS,
    junk_domains: Collection[str] = DEFAULT_JUNK_DOMAINS,
) -> Column:
    """Standardize an email address to a ``struct<value: string, reason: string>``.

    Steps: Unicode NFKC (full-width ``ＡＢＣ＠ｅｘａｍｐｌｅ．ｃｏｍ`` becomes ASCII), trim of every
    Unicode space, Turkish-safe lowercasing, syntax validation, then the optional mailbox rules.

    Turkish casing: ``İ``, ``I`` and ``ı`` all become ``i`` *before* lowercasing. Java's root-locale
    ``lower("İ")`` yields ``i`` + U+0307 (combining dot), which would never equal a typed ``i``, and
    ``ı`` in an address is almost always a Turkish keyboard or autocorrect artefact of ``i``. So
    ``İLKER@x.com``, ``ilker@x.com`` and ``ılker@x.com`` all give ``ilker@x.com``. A stray U+0307
    after ``i`` is removed for the same reason.

    German ß: addresses are lowercased, not case-folded, so ``groß@x.de`` stays distinct from
    ``GROSS@x.de`` (→ ``gross@x.de``): in internationalised mail and IDNA2008 they are different
    mailboxes and domains; folding ß to ss would merge two people.

    ``gmail_rule``: for gmail.com/googlemail.com drop dots and ``+tag`` from the local part and
    use gmail.com (Google delivers all of them to one mailbox). ``strip_plus_tags``: drop ``+tag``
    for every domain (off by default: some providers treat ``+`` as a literal character).

    ``value`` is null whenever ``reason`` is set. Reasons: ``missing`` (null or blank), ``missing @``,
    ``multiple @``, ``invalid local part``, ``invalid domain``, ``junk`` (placeholder local part or
    domain from ``junk_local_parts``/``junk_domains``, compared after normalization).
    """
    text = strip_edges(nfkc(col))
    text = F.regexp_replace(F.lower(F.translate(text, "İIı", "iii")), "i\u0307", "i")
    junk_local = tuple(v.lower() for v in junk_local_parts)
    junk_domain = tuple(v.lower() for v in junk_domains)
    return let(text, lambda t: _checked_email(t, gmail_rule, strip_plus_tags, junk_local, junk_domain))


def _checked_email(
    text: Column, gmail_rule: bool, strip_plus_tags: bool, junk_local: tuple[str, ...], junk_domain: tuple[str, ...]
) -> Column:
    at_count = F.size(F.split(text, "@")) - 1
    local = F.substring_index(text, "@", 1)
    domain = F.substring_index(text, "@", -1)
    is_junk = F.lit(False)
    if junk_local:
        is_junk = is_junk | local.isin(*junk_local)
    if junk_domain:
        is_junk = is_junk | domain.isin(*junk_domain)

    reason = (
        F.when(text.isNull() | (text == ""), F.lit("missing"))
        .when(at_count == 0, F.lit("missing @"))
        .when(at_count > 1, F.lit("multiple @"))
        .when((F.length(local) > 64) | ~local.rlike(_LOCAL_RE), F.lit("invalid local part"))
        .when((F.length(domain) > 253) | ~domain.rlike(_DOMAIN_RE), F.lit("invalid domain"))
        .when(is_junk, F.lit("junk"))
    )

    if strip_plus_tags:
        local = F.substring_index(local, "+", 1)
    if gmail_rule:
        is_gmail = domain.isin(*GMAIL_DOMAINS)
        local = F.when(is_gmail, F.regexp_replace(F.substring_index(local, "+", 1), r"\.", "")).otherwise(local)
        domain = F.when(is_gmail, F.lit("gmail.com")).otherwise(domain)
    # A local part made only of a tag or dots ("+news@gmail.com") is empty after the rules.
    reason = F.coalesce(reason, F.when(local == "", F.lit("invalid local part")))
    value = F.when(reason.isNull(), F.concat(local, F.lit("@"), domain))
    return F.struct(value.alias("value"), reason.alias("reason"))
