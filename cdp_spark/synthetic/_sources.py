"""One builder per landing source: rows to write, the file each row goes to, and the truth edges.

A builder returns a :class:`SourceData`: the output table in contract column order, a file name
per row, and for the ground truth the unique records with their person and identifier keys
(``(kind, person, entity)`` packed into an int64 key; entity -1 means junk/missing: no key).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdp_spark.synthetic._fmt import OffsetTable, concat, dates, dec_ids, hex_ids, splitmix64
from cdp_spark.synthetic._noise import EntityCounter, NoiseLog, case_noise, choose, emails, phones, transliterate, typo
from cdp_spark.synthetic._world import DAY, World, group_rank, rng_for

KIND_CUSTOMER, KIND_EMAIL, KIND_PHONE, KIND_DEVICE, KIND_COOKIE, KIND_LOYALTY, KIND_NATIONAL_ID = range(1, 8)
_ENTITY_BITS = 28


def identity_key(kind: int, person: np.ndarray, entity: np.ndarray) -> np.ndarray:
    """Pack (kind, person, entity) into one int64 (-1 where entity is -1)."""
    key = (np.int64(kind) << np.int64(56)) | (person.astype(np.int64) << np.int64(_ENTITY_BITS)) | entity.astype(np.int64)
    return np.where(entity >= 0, key, -1)


@dataclass
class SourceData:
    """Rows of one landing source and the truth about them."""

    name: str
    fmt: str  # csv | jsonl | parquet
    table: pa.Table
    file_name: pa.Array  # per row, relative to landing/<name>/
    record_id: pa.Array | None = None  # unique records that carry an identifier
    record_person: np.ndarray | None = None
    keys: list[np.ndarray] = field(default_factory=list)  # per identifier column, key per record (-1 none)


@dataclass
class Context:
    world: World
    seed: int
    days: int
    offsets: OffsetTable
    fx_days: np.ndarray  # day numbers covered by the FX table
    fx_rates: np.ndarray  # (currency, day) rate_to_eur
    currency_of_country: np.ndarray
    currencies: list[str]
    log: NoiseLog
    email_entities: EntityCounter
    other_entities: EntityCounter

    def cc(self, country: np.ndarray) -> pa.Array:
        return pa.array([s.code for s in self.world.specs], type=pa.string()).take(pa.array(country))

    def quarter(self, ts: np.ndarray) -> np.ndarray:
        return 1 + np.clip((ts - self.world.t_start) * 4 // (self.days * DAY), 0, 3)

    def local_amount(self, eur: np.ndarray, ts: np.ndarray, country: np.ndarray) -> np.ndarray:
        day = np.clip(ts // DAY - self.fx_days[0], 0, len(self.fx_days) - 1)
        cur = self.currency_of_country[country]
        local = eur / self.fx_rates[cur, day]
        decimals = np.where(np.isin(np.array(self.currencies)[cur], ("JPY", "KRW", "CLP", "VND", "IDR", "PYG", "UGX", "RWF", "XOF", "XAF")), 0, 2)
        return np.where(decimals == 0, np.round(local), np.round(local, 2))


def _country_written(ctx: Context, country: np.ndarray, rng: np.random.Generator, rate: float) -> pa.Array:
    """ISO alpha-2 mostly; a local spelling, English name or alpha-3 for a ``rate`` share."""
    codes = ctx.cc(country)
    variant = rng.random(len(country)) < rate
    spell = np.empty(len(country), dtype=object)
    for c, spec in enumerate(ctx.world.specs):
        sel = np.flatnonzero(country == c)
        spell[sel] = np.array(spec.spellings, dtype=object)[rng.integers(0, len(spec.spellings), len(sel))]
    ctx.log["country_spelling_variant"] += int(variant.sum())
    return pc.if_else(pa.array(variant), pa.array(spell, type=pa.string()), codes)


def customer_ids(world: World) -> pa.Array:
    """CRM customer ids, numbered in order of account creation."""
    rank = np.empty(len(world.account_person), dtype=np.int64)
    rank[np.lexsort((np.arange(len(rank)), world.account_created))] = np.arange(len(rank))
    return dec_ids("C", 100_000 + rank, 9)


def loyalty_ids(world: World, seed: int) -> pa.Array:
    return dec_ids("LY", (np.arange(len(world.account_person)) * 7919 + seed) % 10**10, 10)


def device_ids(world: World, device: np.ndarray, seed: int) -> pa.Array:
    return hex_ids("dev-", device, seed * 31 + 4)


# --------------------------------------------------------------------------------------- CRM

def crm(ctx: Context) -> SourceData:
    w, rng = ctx.world, rng_for(ctx.seed, 20)
    n_acc = len(w.account_person)
    cust = customer_ids(w)
    loyalty = loyalty_ids(w, ctx.seed)
    # versions: the account as created, plus an update for 15% (new e-mail, phone and/or address)
    updated = np.flatnonzero(rng.random(n_acc) < 0.15)
    upd_from = np.maximum(w.account_created[updated], w.t_start)
    upd_ts = upd_from + (rng.random(len(updated)) * (w.t_end - upd_from)).astype(np.int64)
    acc = np.r_[np.arange(n_acc), updated]
    is_update = np.r_[np.zeros(n_acc, bool), np.ones(len(updated), bool)]
    person = w.account_person[acc]
    updated_at = np.r_[w.account_created + (rng.random(n_acc) * 120).astype(np.int64), upd_ts]
    created_at = w.account_created[acc]
    ctx.log["crm_update"] += len(updated)
    ctx.log["crm_duplicate_account"] += int(n_acc - (w.primary_account >= 0).sum())

    change = rng.random((len(acc), 3)) < np.array([0.5, 0.4, 0.4])
    change &= is_update[:, None]
    email_k = w.account_email_k[acc] + change[:, 0]
    email_id = np.where(email_k < w.email_count[person], w.email_start[person] + email_k, w.email_start[person])
    email_id = np.where(rng.random(len(acc)) < 0.02, -1, email_id)
    phone_choice = np.where(rng.random(len(acc)) < 0.1, w.landline[person], w.mobile[person])
    phone_choice = np.where(change[:, 1] & (w.landline[person] >= 0), w.landline[person], phone_choice)
    phone_id = np.where(rng.random(len(acc)) < 0.08, -1, phone_choice)
    email_text, email_ent = emails(w, email_id, rng, ctx.log, ctx.email_entities)
    phone_text, phone_ent = phones(w, phone_id, rng, ctx.log)
    addr = w.address(person, moved=change[:, 2], rng=rng)
    ctx.log["address_moved"] += int(change[:, 2].sum())

    first = w.first_name(person)
    last = w.last_name(person)
    translit = rng.random(len(acc)) < 0.05
    first = pc.if_else(pa.array(translit), transliterate(first), first)
    last = pc.if_else(pa.array(translit), transliterate(last), last)
    ctx.log["name_transliterated"] += int(translit.sum())
    first = case_noise(first, rng, 0.04, ctx.log, "first_name")
    last = case_noise(last, rng, 0.04, ctx.log, "last_name")
    dob = pc.if_else(pa.array(rng.random(len(acc)) < 0.05), pa.nulls(len(acc), pa.string()), dates(w.dob_day[person]))
    gender_vals = np.array(["F", "M", "f", "m", "female", "male", "U", ""], dtype=object)
    g = w.gender[person] + 2 * choose(rng, len(acc), {"plain": 0.85, "lower": 0.05, "word": 0.05, "unknown": 0.05})
    gender = pa.array(gender_vals[np.minimum(g, 7)], type=pa.string())
    cc = w.country[person]
    table = pa.table({
        "customer_id": cust.take(pa.array(acc)),
        "first_name": first,
        "last_name": last,
        "email": email_text,
        "phone": phone_text,
        "date_of_birth": dob,
        "gender": gender,
        "street": concat(addr["street"], " ", addr["house_number"]),
        "city": addr["city"],
        "postcode": addr["postcode"],
        "country": _country_written(ctx, cc, rng, 0.12),
        "loyalty_id": pc.if_else(pa.array(w.account_has_loyalty[acc]), loyalty.take(pa.array(acc)), pa.nulls(len(acc), pa.string())),
        "created_at": ctx.offsets.local_iso(created_at, cc),
        "updated_at": ctx.offsets.local_iso(updated_at, cc),
    })
    file_name = concat("crm_", ctx.cc(cc), "_", pc.cast(pa.array(ctx.quarter(updated_at)), pa.string()), ".csv")

    # truth: one record per account; keys from every version
    loyalty_key = identity_key(KIND_LOYALTY, w.account_person, np.where(w.account_has_loyalty, np.arange(n_acc), -1))
    keys = [identity_key(KIND_CUSTOMER, w.account_person, np.arange(n_acc)), loyalty_key]
    for ent, kind in ((email_ent, KIND_EMAIL), (phone_ent, KIND_PHONE)):
        k0 = identity_key(kind, person[:n_acc], ent[:n_acc])
        k1 = np.full(n_acc, -1, dtype=np.int64)
        k1[updated] = identity_key(kind, person[n_acc:], ent[n_acc:])
        keys += [k0, k1]
    return SourceData("crm_customers", "csv", table, file_name, cust, w.account_person.copy(), keys)


# ------------------------------------------------------------------------------------ legacy

def legacy(ctx: Context) -> SourceData:
    w, rng = ctx.world, rng_for(ctx.seed, 21)
    base = np.flatnonzero(rng.random(w.n) < 0.10)
    dups = base[rng.random(len(base)) < 0.03]
    person = np.sort(np.r_[base, dups])
    n = len(person)
    ctx.log["legacy_duplicate"] += len(dups)
    given = w.first_name(person)
    family = w.last_name(person)
    translit = rng.random(n) < 0.15
    given = pc.if_else(pa.array(translit), transliterate(given), given)
    family = pc.if_else(pa.array(translit), transliterate(family), family)
    ctx.log["legacy_transliterated"] += int(translit.sum())
    given = typo(given, rng, 0.05, ctx.log, "legacy_given_name")
    family = typo(family, rng, 0.05, ctx.log, "legacy_family_name")
    dob = w.dob_day[person]
    d = dob.astype("datetime64[D]")
    month = (d.astype("datetime64[M]").astype(np.int64) % 12) + 1
    day = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    swap = (rng.random(n) < 0.05) & (day <= 12) & (day != month)
    ctx.log["legacy_date_swap"] += int(swap.sum())
    m2, d2 = np.where(swap, day, month), np.where(swap, month, day)
    birth = concat(pc.cast(pa.array(year), pa.string()), "-", pc.utf8_lpad(pc.cast(pa.array(m2), pa.string()), width=2, padding="0"),
                   "-", pc.utf8_lpad(pc.cast(pa.array(d2), pa.string()), width=2, padding="0"))
    nat = w.national_id.take(pa.array(person))
    nat_typo = typo(nat, rng, 0.02, ctx.log, "legacy_national_id")
    nat_changed = pc.fill_null(pc.not_equal(nat_typo, nat), False).to_numpy(zero_copy_only=False)
    moved = rng.random(n) < 0.2
    addr = w.address(person, moved=moved, rng=rng)
    street = typo(addr["street"], rng, 0.04, ctx.log, "legacy_street")
    city = typo(addr["city"], rng, 0.03, ctx.log, "legacy_city")
    legacy_id = dec_ids("L", rng.permutation(n) + 1, 8)
    cc = w.country[person]
    table = pa.table({
        "legacy_id": legacy_id,
        "given_name": given,
        "family_name": family,
        "birth_date": birth,
        "national_id": nat_typo,
        "street_name": street,
        "house_number": addr["house_number"],
        "postal_code": addr["postcode"],
        "city": city,
        "country": _country_written(ctx, cc, rng, 0.3),
    })
    file_name = concat("legacy_", pc.cast(pa.array(1 + np.arange(n) // 250_000), pa.string()), ".csv")
    entity = np.where(nat_changed, ctx.other_entities.take(n), person)
    keys = [identity_key(KIND_NATIONAL_ID, person, entity)]
    return SourceData("legacy_customers", "csv", table, file_name, legacy_id, person, keys)


# ------------------------------------------------------------------------- sessions & events

@dataclass
class Sessions:
    person: np.ndarray
    start: np.ndarray
    is_app: np.ndarray
    purchase: np.ndarray  # purchase index or -1


def sessions(ctx: Context) -> Sessions:
    """Browse sessions while active plus one session per web/app purchase."""
    w, rng = ctx.world, rng_for(ctx.seed, 22)
    lo = np.maximum(w.acquired_ts - 7 * DAY, w.t_start)
    hi = np.minimum(w.death_ts + 30 * DAY, w.t_end)
    span = np.maximum(hi - lo, 0)
    count = rng.poisson((1.0 * w.lambda_ + 0.006) * span / DAY)
    person = np.repeat(np.arange(w.n), count)
    start = lo[person] + (rng.random(len(person)) * span[person]).astype(np.int64)
    app_share = w.channel_pref[:, 1] / (w.channel_pref[:, 0] + w.channel_pref[:, 1])
    is_app = (rng.random(len(person)) < app_share[person]) & (w.device1[person] >= 0)
    buy = np.flatnonzero(w.purchase_channel < 2)
    buy_person = w.purchase_person[buy]
    buy_app = (w.purchase_channel[buy] == 1) & (w.device1[buy_person] >= 0)
    buy_start = w.purchase_ts[buy] - rng.integers(60, 1200, len(buy))
    return Sessions(
        person=np.r_[person, buy_person],
        start=np.r_[start, buy_start],
        is_app=np.r_[is_app, buy_app],
        purchase=np.r_[np.full(len(person), -1), buy],
    )


def _expand(parts: list[np.ndarray], rng: np.random.Generator, start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events per session from per-session counts of each event type (in order).

    Returns (session index, event type index, event ts) per event."""
    counts = np.stack(parts, axis=1)
    total = counts.sum(axis=1)
    sess = np.repeat(np.arange(len(total)), total)
    first = np.r_[0, np.cumsum(total)[:-1]]
    pos = np.arange(len(sess)) - first[sess]
    bounds = np.cumsum(counts, axis=1)[sess]
    etype = (pos[:, None] >= bounds).sum(axis=1)
    gaps = rng.integers(5, 180, len(sess))
    gaps[pos == 0] = 0
    csum = np.cumsum(gaps)
    ts = start[sess] + csum - csum[first[sess]]
    return sess, etype, ts


@dataclass
class EventOutput:
    source: SourceData
    order_session: np.ndarray  # sessions with a purchase, in order of their orders
    order_ts: np.ndarray
    order_logged_in: np.ndarray
    order_device: np.ndarray


def _deliveries(ctx: Context, ts: np.ndarray, rng: np.random.Generator, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows to write (late ones in a later day's file, 0.8% delivered twice): (row index, file day)."""
    n = len(ts)
    day = ts // DAY
    late = rng.random(n) < 0.03
    day = day + np.where(late, rng.integers(1, 4, n), 0)
    dup = np.flatnonzero(rng.random(n) < 0.008)
    ctx.log[f"{source}_late"] += int(late.sum())
    ctx.log[f"{source}_duplicate_delivery"] += len(dup)
    rows = np.r_[np.arange(n), dup]
    file_day = np.r_[day, day[dup] + rng.integers(0, 2, len(dup))]
    order = np.lexsort((rows, file_day))
    return rows[order], file_day[order]


def _day_files(prefix: str, file_day: np.ndarray) -> pa.Array:
    ymd = pc.strftime(pa.array(file_day.astype("datetime64[D]").astype("datetime64[s]")), format="%Y%m%d")
    return concat(prefix, ymd, ".jsonl")


def web_events(ctx: Context, s: Sessions) -> EventOutput:
    w, rng = ctx.world, rng_for(ctx.seed, 23)
    idx = np.flatnonzero(~s.is_app)
    person, start, purchase = s.person[idx], s.start[idx], s.purchase[idx] >= 0
    n = len(idx)
    account = w.primary_account[person]
    logged = (account >= 0) & (rng.random(n) < np.where(purchase, 0.85, w.login_prob[person]))
    parts = [logged.astype(np.int64), rng.geometric(0.4, n), (purchase | (rng.random(n) < 0.25)).astype(np.int64), purchase.astype(np.int64)]
    sess, etype, ts = _expand(parts, rng, start)
    types = pa.array(["login", "page_view", "add_to_cart", "checkout"], type=pa.string())
    # cookies: 1-3 browsers per person, each cookie lives 15-150 days
    streams = rng.choice([1, 2, 3], size=w.n, p=[0.6, 0.3, 0.1])
    life = rng.integers(15, 150, w.n) * DAY
    phase = (rng.random(w.n) * life).astype(np.int64)
    sp = person[sess]
    stream_of_session = (rng.random(n) * streams[person]).astype(np.int64)
    epoch = (ts + phase[sp]) // life[sp]
    cookie_key = (sp.astype(np.int64) << 24) | (stream_of_session[sess] << 20) | epoch
    uniq, cookie = np.unique(cookie_key, return_inverse=True)
    cookies_per_person = np.bincount((uniq >> 24).astype(np.int64), minlength=w.n)
    ctx.log["cookie_churn_person"] += int((cookies_per_person > 1).sum())
    ev = np.arange(len(sess))
    event_id = hex_ids("we-", ev, ctx.seed * 31 + 1)
    cust_ids = customer_ids(w)
    has_cust = logged[sess]
    customer = pc.if_else(pa.array(has_cust), cust_ids.take(pa.array(np.where(has_cust, account[sess], 0))), pa.nulls(len(sess), pa.string()))
    cc = w.country[sp]
    sku = pc.cast(pa.array(rng.integers(1000, 99999, len(sess))), pa.string())
    base_url = concat("https://shop.example.com/", pc.utf8_lower(ctx.cc(cc)))
    path = pc.if_else(pa.array(etype == 1), concat("/p/", sku), types.take(pa.array(etype)))
    url = pc.if_else(pa.array(etype == 1), concat(base_url, path), concat(base_url, "/", path))
    table = pa.table({
        "event_id": event_id,
        "cookie_id": hex_ids("ck-", cookie, ctx.seed * 31 + 2),
        "customer_id": customer,
        "event_type": types.take(pa.array(etype)),
        "event_ts": ctx.offsets.local_iso(ts, cc),
        "url": url,
        "country": ctx.cc(cc),
    })
    keys = [identity_key(KIND_COOKIE, sp, cookie), identity_key(KIND_CUSTOMER, sp, np.where(has_cust, account[sess], -1))]
    rows, file_day = _deliveries(ctx, ts, rng, "web")
    src = SourceData("web_events", "jsonl", table.take(pa.array(rows)), _day_files("web_", file_day), event_id, sp, keys)
    checkout = np.flatnonzero(etype == 3)
    return EventOutput(src, idx[sess[checkout]], ts[checkout], logged[sess[checkout]], np.full(len(checkout), -1))


def app_events(ctx: Context, s: Sessions) -> EventOutput:
    w, rng = ctx.world, rng_for(ctx.seed, 24)
    idx = np.flatnonzero(s.is_app)
    idx = idx[np.argsort(s.start[idx], kind="stable")]
    person, start, purchase = s.person[idx], s.start[idx], s.purchase[idx] >= 0
    n = len(idx)
    device = np.where((w.device2[person] >= 0) & (start > w.device_switch_ts[person]), w.device2[person], w.device1[person])
    family = (w.family_device[person] >= 0) & (rng.random(n) < 0.3)
    device = np.where(family, w.family_device[person], device)
    ctx.log["app_session_on_shared_device"] += int(family.sum())
    account = w.primary_account[person]
    pair = (device.astype(np.int64) << 28) | person
    pair_u = _unit(pair, ctx.seed * 31 + 8)  # one draw per (device, person), no groupby
    pair_logged = (account >= 0) & (pair_u < 0.85)
    first_of_pair = group_rank(pair) == 0
    login = pair_logged & first_of_pair
    parts = [np.ones(n, dtype=np.int64), login.astype(np.int64), (purchase | (rng.random(n) < 0.3)).astype(np.int64), purchase.astype(np.int64)]
    sess, etype, ts = _expand(parts, rng, start)
    types = pa.array(["app_open", "login", "add_to_cart", "purchase"], type=pa.string())
    sp = person[sess]
    has_cust = pair_logged[sess] & ~(first_of_pair[sess] & (etype == 0))
    cust_ids = customer_ids(w)
    customer = pc.if_else(pa.array(has_cust), cust_ids.take(pa.array(np.where(has_cust, account[sess], 0))), pa.nulls(len(sess), pa.string()))
    platform = np.where(_unit(device[sess], ctx.seed * 31 + 9) < 0.45, "ios", "android")
    event_id = hex_ids("ae-", np.arange(len(sess)), ctx.seed * 31 + 3)
    cc = w.country[sp]
    table = pa.table({
        "event_id": event_id,
        "device_id": device_ids(w, device[sess], ctx.seed),
        "customer_id": customer,
        "event_type": types.take(pa.array(etype)),
        "event_ts": ctx.offsets.local_iso(ts, cc),
        "platform": pa.array(platform, type=pa.string()),
        "country": ctx.cc(cc),
    })
    keys = [identity_key(KIND_DEVICE, sp, device[sess]), identity_key(KIND_CUSTOMER, sp, np.where(has_cust, account[sess], -1))]
    rows, file_day = _deliveries(ctx, ts, rng, "app")
    src = SourceData("app_events", "jsonl", table.take(pa.array(rows)), _day_files("app_", file_day), event_id, sp, keys)
    buy = np.flatnonzero(etype == 3)
    return EventOutput(src, idx[sess[buy]], ts[buy], pair_logged[sess[buy]], device[sess[buy]])


def _unit(values: np.ndarray, salt: int) -> np.ndarray:
    """A uniform [0, 1) draw that is a fixed function of each value (same value, same draw)."""
    mixed = splitmix64(values.astype(np.uint64) ^ np.uint64(salt))
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


# ---------------------------------------------------------------------------------- orders

def orders(ctx: Context, s: Sessions, web: EventOutput, app: EventOutput) -> SourceData:
    w, rng = ctx.world, rng_for(ctx.seed, 26)
    sess = np.r_[web.order_session, app.order_session]
    ts = np.r_[web.order_ts, app.order_ts]
    logged = np.r_[web.order_logged_in, app.order_logged_in]
    device = np.r_[web.order_device, app.order_device]
    purchase = s.purchase[sess]
    order = np.argsort(ts, kind="stable")
    sess, ts, logged, device, purchase = sess[order], ts[order], logged[order], device[order], purchase[order]
    person = w.purchase_person[purchase]
    n = len(person)
    account = np.where(logged, w.primary_account[person], -1)
    ctx.log["guest_checkout"] += int((account < 0).sum())
    k = np.where(account >= 0, w.account_email_k[np.maximum(account, 0)], (rng.random(n) * w.email_count[person]).astype(np.int64))
    email_id = w.email_start[person] + np.minimum(k, w.email_count[person] - 1)
    email_text, email_ent = emails(w, email_id, rng, ctx.log, ctx.email_entities)
    phone_pick = np.where(rng.random(n) < 0.85, w.mobile[person], w.landline[person])
    phone_id = np.where(rng.random(n) < 0.6, phone_pick, -1)
    phone_text, phone_ent = phones(w, phone_id, rng, ctx.log)
    cc = w.country[person]
    eur = rng.gamma(4.0, w.spend_scale[person] / 4.0)
    order_id = dec_ids("O", 10_000_000 + np.arange(n), 9)
    status = np.array(["completed", "cancelled", "returned"], dtype=object)[choose(rng, n, {"c": 0.92, "x": 0.04, "r": 0.04})]
    table = pa.table({
        "order_id": order_id,
        "customer_id": pc.if_else(pa.array(account >= 0), customer_ids(w).take(pa.array(np.maximum(account, 0))), pa.nulls(n, pa.string())),
        "email": email_text,
        "phone": phone_text,
        "device_id": pc.if_else(pa.array(device >= 0), device_ids(w, np.maximum(device, 0), ctx.seed), pa.nulls(n, pa.string())),
        "order_ts": ctx.offsets.local_iso(ts, cc),
        "currency": pa.array(np.array(ctx.currencies, dtype=object)[ctx.currency_of_country[cc]], type=pa.string()),
        "amount": pa.array(ctx.local_amount(eur, ts, cc)),
        "items": pa.array(1 + rng.poisson(1.0, n)),
        "country": ctx.cc(cc),
        "status": pa.array(status, type=pa.string()),
    })
    keys = [identity_key(KIND_CUSTOMER, person, account), identity_key(KIND_EMAIL, person, email_ent),
            identity_key(KIND_PHONE, person, phone_ent), identity_key(KIND_DEVICE, person, device)]
    rows, file_day = _deliveries(ctx, ts, rng, "orders")
    return SourceData("orders", "jsonl", table.take(pa.array(rows)), _day_files("orders_", file_day), order_id, person, keys)


# ------------------------------------------------------------------------------------- POS

def pos(ctx: Context) -> SourceData:
    w, rng = ctx.world, rng_for(ctx.seed, 27)
    buy = np.flatnonzero(w.purchase_channel == 2)
    person, ts = w.purchase_person[buy], w.purchase_ts[buy]
    n = len(buy)
    cc = w.country[person]
    acc = w.primary_account[person]
    card = (acc >= 0) & w.account_has_loyalty[np.maximum(acc, 0)] & (rng.random(n) < 0.85)
    ctx.log["pos_anonymous"] += int((~card).sum())
    per_country = np.bincount(w.country, minlength=len(w.specs))
    stores = np.maximum(3, per_country // 3000)
    home = rng.integers(0, 1 << 30, w.n) % stores[w.country]
    store = np.where(rng.random(n) < 0.8, home[person], rng.integers(0, 1 << 30, n) % stores[cc])
    eur = rng.gamma(4.0, w.spend_scale[person] / 4.0)
    txn_id = hex_ids("T", np.arange(n), ctx.seed * 31 + 5, width=12)
    table = pa.table({
        "transaction_id": txn_id,
        "loyalty_id": pc.if_else(pa.array(card), loyalty_ids(w, ctx.seed).take(pa.array(np.maximum(acc, 0))), pa.nulls(n, pa.string())),
        "store_id": concat("S-", ctx.cc(cc), "-", pc.utf8_lpad(pc.cast(pa.array(store + 1), pa.string()), width=4, padding="0")),
        "country": ctx.cc(cc),
        "txn_ts": ctx.offsets.wall_clock(ts, cc),
        "currency": pa.array(np.array(ctx.currencies, dtype=object)[ctx.currency_of_country[cc]], type=pa.string()),
        "amount": pa.array(ctx.local_amount(eur, ts, cc)),
    })
    file_name = concat("pos_", ctx.cc(cc), "_", pc.cast(pa.array(ctx.quarter(ts)), pa.string()), ".parquet")
    keys = [identity_key(KIND_LOYALTY, person, np.where(card, acc, -1))]
    return SourceData("pos_transactions", "parquet", table, file_name, txn_id.filter(pa.array(card)), person[card], [k[card] for k in keys])


# -------------------------------------------------------------------------------- consents

_PURPOSES = {"marketing_email": 0.6, "sms": 0.3, "ads": 0.4, "analytics": 0.7, "profiling": 0.35}


@dataclass
class MarketingOptIns:
    person: np.ndarray
    email_id: np.ndarray
    granted: np.ndarray
    revoked: np.ndarray  # t_end + 1 if never


def consents(ctx: Context) -> tuple[SourceData, MarketingOptIns]:
    w, rng = ctx.world, rng_for(ctx.seed, 28)
    n_acc = len(w.account_person)
    purposes = list(_PURPOSES)
    grants = rng.random((n_acc, len(purposes))) < np.array(list(_PURPOSES.values()))
    acc, purpose = np.nonzero(grants)
    granted_ts = w.account_created[acc] + rng.integers(5, 120, len(acc))
    revoke = rng.random(len(acc)) < 0.08
    revoke_ts = np.maximum(granted_ts, w.t_start) + (rng.random(len(acc)) * (w.t_end - np.maximum(granted_ts, w.t_start))).astype(np.int64)
    ctx.log["consent_revoked"] += int(revoke.sum())
    # newsletter sign-ups without an account
    guests = np.flatnonzero((w.primary_account < 0) & (rng.random(w.n) < 0.3))
    g_ts = w.acquired_ts[guests] + rng.integers(0, 3600, len(guests))
    person = np.r_[w.account_person[acc], w.account_person[acc[revoke]], guests]
    account = np.r_[acc, acc[revoke], np.full(len(guests), -1)]
    purpose_all = np.r_[purpose, purpose[revoke], np.zeros(len(guests), dtype=np.int64)]
    status = np.r_[np.zeros(len(acc), np.int8), np.ones(int(revoke.sum()), np.int8), np.zeros(len(guests), np.int8)]
    ts = np.r_[granted_ts, revoke_ts[revoke], g_ts]
    email_id = np.where(account >= 0, w.email_start[person] + w.account_email_k[np.maximum(account, 0)], w.email_start[person])
    email_text, email_ent = emails(w, email_id, rng, ctx.log, ctx.email_entities, noisy=0.5)
    n = len(person)
    consent_id = hex_ids("CS", np.arange(n), ctx.seed * 31 + 6, width=12)
    cc = w.country[person]
    table = pa.table({
        "consent_id": consent_id,
        "customer_id": pc.if_else(pa.array(account >= 0), customer_ids(w).take(pa.array(np.maximum(account, 0))), pa.nulls(n, pa.string())),
        "email": email_text,
        "purpose": pa.array(np.array(purposes, dtype=object)[purpose_all], type=pa.string()),
        "status": pa.array(np.array(["granted", "revoked"], dtype=object)[status], type=pa.string()),
        "event_ts": ctx.offsets.local_iso(ts, cc),
        "country": ctx.cc(cc),
    })
    file_name = concat("consents_", pc.cast(pa.array(ctx.quarter(ts)), pa.string()), ".csv")
    keys = [identity_key(KIND_CUSTOMER, person, account), identity_key(KIND_EMAIL, person, email_ent)]
    mk = np.flatnonzero((purpose_all == 0) & (status == 0))
    revoked_at = np.full(n, w.t_end + 1, dtype=np.int64)
    rev_rows = len(acc) + np.arange(int(revoke.sum()))
    revoked_at[np.flatnonzero(revoke)] = ts[rev_rows]
    optins = MarketingOptIns(person[mk], email_id[mk], ts[mk], revoked_at[mk])
    return SourceData("consents", "csv", table, file_name, consent_id, person, keys), optins


# ------------------------------------------------------------------------------- marketing

def marketing(ctx: Context, optins: MarketingOptIns) -> SourceData:
    w, rng = ctx.world, rng_for(ctx.seed, 29)
    rows_person, rows_email, rows_type, rows_ts, rows_campaign = [], [], [], [], []
    for k in range(ctx.days // 30 + 1):
        send_ts = w.t_start + k * 30 * DAY + 3 * DAY + 9 * 3600
        if send_ts >= w.t_end:
            break
        eligible = (optins.granted <= send_ts) & (optins.revoked > send_ts) & (rng.random(len(optins.person)) < 0.35)
        sel = np.flatnonzero(eligible)
        p = optins.person[sel]
        sent = send_ts + rng.integers(0, 3600, len(sel))
        opened = rng.random(len(sel)) < w.responsiveness[p]
        open_ts = sent + rng.exponential(6 * 3600, len(sel)).astype(np.int64)
        clicked = opened & (rng.random(len(sel)) < 0.3)
        click_ts = open_ts + rng.exponential(300, len(sel)).astype(np.int64)
        unsub = opened & (rng.random(len(sel)) < 0.02)
        for mask, etype, ets in ((np.ones(len(sel), bool), 0, sent), (opened, 1, open_ts), (clicked, 2, click_ts), (unsub, 3, open_ts + 60)):
            rows_person.append(p[mask])
            rows_email.append(optins.email_id[sel][mask])
            rows_type.append(np.full(int(mask.sum()), etype, dtype=np.int8))
            rows_ts.append(ets[mask])
            rows_campaign.append(np.full(int(mask.sum()), k + 1))
    person, email_id, etype = np.concatenate(rows_person), np.concatenate(rows_email), np.concatenate(rows_type)
    ts, campaign = np.concatenate(rows_ts), np.concatenate(rows_campaign)
    order = np.lexsort((person, ts))
    person, email_id, etype, ts, campaign = person[order], email_id[order], etype[order], ts[order], campaign[order]
    n = len(person)
    email_text, email_ent = emails(w, email_id, rng, ctx.log, ctx.email_entities, noisy=0.3)
    response_id = hex_ids("MR", np.arange(n), ctx.seed * 31 + 7, width=12)
    cc = w.country[person]
    table = pa.table({
        "response_id": response_id,
        "email": email_text,
        "campaign_id": concat("CMP-", ctx.cc(cc), "-", pc.utf8_lpad(pc.cast(pa.array(campaign), pa.string()), width=3, padding="0")),
        "event_type": pa.array(np.array(["sent", "open", "click", "unsubscribe"], dtype=object)[etype], type=pa.string()),
        "event_ts": ctx.offsets.local_iso(ts, cc),
        "country": ctx.cc(cc),
    })
    month = 1 + np.clip((ts - w.t_start) // (30 * DAY), 0, None)
    file_name = concat("marketing_", pc.cast(pa.array(month), pa.string()), ".csv")
    keys = [identity_key(KIND_EMAIL, person, email_ent)]
    return SourceData("marketing_responses", "csv", table, file_name, response_id, person, keys)


# --------------------------------------------------------------------------------- support

def support(ctx: Context) -> SourceData:
    w, rng = ctx.world, rng_for(ctx.seed, 30)
    lo = w.acquired_ts
    hi = np.minimum(w.death_ts + 60 * DAY, w.t_end)
    span = np.maximum(hi - lo, 0)
    count = rng.poisson(0.25 * span / (365 * DAY) + 0.02)
    person = np.repeat(np.arange(w.n), count)
    n = len(person)
    ts = lo[person] + (rng.random(n) * span[person]).astype(np.int64)
    order = np.lexsort((person, ts))
    person, ts = person[order], ts[order]
    account = np.where(rng.random(n) < 0.7, w.primary_account[person], -1)
    email_id = np.where(rng.random(n) < 0.75, w.email_start[person], -1)
    phone_id = np.where(rng.random(n) < 0.45, w.mobile[person], -1)
    email_text, email_ent = emails(w, email_id, rng, ctx.log, ctx.email_entities)
    phone_text, phone_ent = phones(w, phone_id, rng, ctx.log)
    ticket_id = dec_ids("TK", 1 + np.arange(n), 8)
    cc = w.country[person]
    channel = np.array(["email", "phone", "chat", "store"], dtype=object)[choose(rng, n, {"e": 0.4, "p": 0.3, "c": 0.25, "s": 0.05})]
    topic = np.array(["delivery", "refund", "account", "product", "payment", "other"], dtype=object)[rng.integers(0, 6, n)]
    table = pa.table({
        "ticket_id": ticket_id,
        "customer_id": pc.if_else(pa.array(account >= 0), customer_ids(w).take(pa.array(np.maximum(account, 0))), pa.nulls(n, pa.string())),
        "email": email_text,
        "phone": phone_text,
        "created_ts": ctx.offsets.local_iso(ts, cc),
        "channel": pa.array(channel, type=pa.string()),
        "topic": pa.array(topic, type=pa.string()),
        "country": ctx.cc(cc),
    })
    file_name = concat("support_", pc.cast(pa.array(ctx.quarter(ts)), pa.string()), ".jsonl")
    keys = [identity_key(KIND_CUSTOMER, person, account), identity_key(KIND_EMAIL, person, email_ent),
            identity_key(KIND_PHONE, person, phone_ent)]
    has_any = (account >= 0) | (email_id >= 0) | (phone_id >= 0)
    return SourceData("support_tickets", "jsonl", table, file_name, ticket_id.filter(pa.array(has_any)), person[has_any], [k[has_any] for k in keys])


# -------------------------------------------------------------------------------------- FX

def fx_table(ctx: Context) -> SourceData:
    cur = np.repeat(np.arange(len(ctx.currencies)), len(ctx.fx_days))
    day = np.tile(ctx.fx_days, len(ctx.currencies))
    table = pa.table({
        "date": dates(day),
        "currency": pa.array(np.array(ctx.currencies, dtype=object)[cur], type=pa.string()),
        "rate_to_eur": pa.array(np.round(ctx.fx_rates.ravel(), 8)),
    })
    return SourceData("fx_rates", "csv", table, pa.array(["fx_rates.csv"] * len(cur), type=pa.string()))


def fx_rates(currencies: list[str], base: list[float], days: np.ndarray, seed: int) -> np.ndarray:
    """Daily rates to EUR: a geometric random walk around the base rate (TRY and ARS depreciate)."""
    rng = rng_for(seed, 31)
    drift = np.array([-0.0009 if c in ("TRY", "ARS") else 0.0 for c in currencies])
    steps = rng.normal(0, 0.004, (len(currencies), len(days))) + drift[:, None]
    steps[np.array(currencies) == "EUR"] = 0.0
    return np.array(base)[:, None] * np.exp(np.cumsum(steps, axis=1) - steps[:, :1])

