"""The latent world: people, households, identifiers they own, and their behaviour over time.

Everything here is numeric (numpy arrays indexed by person, e-mail, phone, device, account...);
strings are produced only when sources are written. Time is in UTC epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdp_spark.synthetic._countries import CountrySpec
from cdp_spark.synthetic._fmt import concat
from cdp_spark.synthetic._phones import PhonePlan, draw_numbers
from cdp_spark.synthetic._pools import Pools

DAY = 86_400

# BG/NBD-like population: purchase rate per day ~ Gamma(r, 1/alpha), dropout after each repeat
# purchase ~ Beta(a, b); spend level (EUR per order) ~ Gamma(shape, scale).
LAMBDA_SHAPE, LAMBDA_SCALE = 0.8, 0.015
DROPOUT_A, DROPOUT_B = 1.0, 4.0
SPEND_SHAPE, SPEND_SCALE = 3.0, 20.0
CHANNELS = ("web", "app", "store")


def rng_for(seed: int, part: int) -> np.random.Generator:
    """An independent random stream per generator part, so parts do not shift each other."""
    return np.random.default_rng([seed, part])


def group_rank(keys: np.ndarray) -> np.ndarray:
    """0-based occurrence rank of each element among equal keys, in input order."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    pos = np.arange(len(keys))
    rank_sorted = pos - np.maximum.accumulate(np.where(first, pos, 0))
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = rank_sorted
    return rank


@dataclass
class World:
    """People and everything they own; arrays are indexed by the id named in their prefix."""

    specs: list[CountrySpec]
    pools: list[Pools]
    phone_plans: list[PhonePlan]
    t_start: int
    t_end: int
    # people
    country: np.ndarray
    gender: np.ndarray  # 0 female, 1 male
    first_idx: np.ndarray
    last_idx: np.ndarray
    dob_day: np.ndarray  # days since epoch
    street_idx: np.ndarray
    house_no: np.ndarray
    place_idx: np.ndarray
    household: np.ndarray
    household_size: np.ndarray
    # latent behaviour
    lambda_: np.ndarray  # purchases per day while alive
    p_dropout: np.ndarray
    spend_scale: np.ndarray  # mean order value, EUR
    channel_pref: np.ndarray  # (n, 3) web/app/store
    responsiveness: np.ndarray  # probability of opening a campaign e-mail
    login_prob: np.ndarray  # probability of logging in on a web visit
    acquired_ts: np.ndarray
    death_ts: np.ndarray  # time of the dropout (t_end + 1 if still alive at t_end)
    # e-mails: person's k-th address is email_text[email_start[p] + k]
    email_person: np.ndarray
    email_text: pa.Array
    email_start: np.ndarray
    email_count: np.ndarray
    # phones: entity table with owner person and digits; mobile per person, landline per household
    phone_person: np.ndarray  # owner (household head for landlines)
    phone_country: np.ndarray
    phone_is_mobile: np.ndarray
    phone_digits: list[np.ndarray]  # per phone, digits as a row; stored per country block
    phone_row: np.ndarray  # row of the phone in its country's digit block
    mobile: np.ndarray  # per person phone id or -1
    landline: np.ndarray  # per person (household) phone id or -1
    # devices: per person up to two own devices (second replaces the first at device_switch_ts),
    # and a family tablet shared by the household (-1 if none)
    device_count: int
    device1: np.ndarray
    device2: np.ndarray
    device_switch_ts: np.ndarray
    family_device: np.ndarray
    # CRM accounts
    account_person: np.ndarray
    account_created: np.ndarray
    account_email_k: np.ndarray  # which of the person's e-mails the account uses
    account_has_loyalty: np.ndarray
    primary_account: np.ndarray  # per person account id or -1
    # purchases (BG/NBD simulation)
    purchase_person: np.ndarray
    purchase_ts: np.ndarray
    purchase_channel: np.ndarray  # index into CHANNELS
    national_id: pa.Array  # per person

    @property
    def n(self) -> int:
        return len(self.country)

    def alive_at_end(self) -> np.ndarray:
        return self.death_ts > self.t_end

    def first_name(self, person: np.ndarray) -> pa.Array:
        out = np.empty(len(person), dtype=object)
        for c, pool in enumerate(self.pools):
            for g, values in ((0, pool.first_female), (1, pool.first_male)):
                sel = (self.country[person] == c) & (self.gender[person] == g)
                out[sel] = values[self.first_idx[person[sel]]]
        return pa.array(out, type=pa.string())

    def last_name(self, person: np.ndarray) -> pa.Array:
        out = np.empty(len(person), dtype=object)
        for c, pool in enumerate(self.pools):
            sel = self.country[person] == c
            out[sel] = pool.last[self.last_idx[person[sel]]]
        return pa.array(out, type=pa.string())

    def address(self, person: np.ndarray, moved: np.ndarray | None = None, rng: np.random.Generator | None = None) -> dict[str, pa.Array]:
        """street, house number, city, postcode of each person (a new random address where ``moved``)."""
        street_idx, house_no, place_idx = self.street_idx[person].copy(), self.house_no[person].copy(), self.place_idx[person].copy()
        if moved is not None and rng is not None:
            street_idx[moved] = rng.integers(0, 1 << 30, moved.sum())
            house_no[moved] = rng.integers(1, 200, moved.sum())
            place_idx[moved] = rng.integers(0, 1 << 30, moved.sum())
        street = np.empty(len(person), dtype=object)
        city = np.empty(len(person), dtype=object)
        postcode = np.empty(len(person), dtype=object)
        for c, pool in enumerate(self.pools):
            sel = self.country[person] == c
            if sel.any():
                street[sel] = pool.street[street_idx[sel] % len(pool.street)]
                city[sel] = pool.city[place_idx[sel] % len(pool.city)]
                postcode[sel] = pool.postcode[place_idx[sel] % len(pool.postcode)]
        return {
            "street": pa.array(street, type=pa.string()),
            "house_number": pc.cast(pa.array(house_no), pa.string()),
            "city": pa.array(city, type=pa.string()),
            "postcode": pa.array(postcode, type=pa.string()),
        }

    def phone_digits_of(self, phone: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, bool, int]]:
        """Group phone ids by (country, type): (positions in ``phone``, digit rows, is_mobile, country)."""
        out = []
        for c in range(len(self.specs)):
            for mob in (True, False):
                sel = np.flatnonzero((self.phone_country[phone] == c) & (self.phone_is_mobile[phone] == mob))
                if len(sel):
                    block = self.phone_digits[2 * c + (0 if mob else 1)]
                    out.append((sel, block[self.phone_row[phone[sel]]], mob, c))
        return out


def _households(country: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive persons of one country form households of 1-4 (persons are sorted by country)."""
    n = len(country)
    sizes = rng.choice([1, 2, 3, 4], size=n, p=[0.55, 0.25, 0.12, 0.08])
    ends = np.cumsum(sizes)
    # households never cross a country boundary: restart at each boundary
    hh = np.searchsorted(ends, np.arange(n), side="right")
    boundary = np.r_[True, country[1:] != country[:-1]]
    hh = hh * 1_000 + np.cumsum(boundary)  # split at country boundaries, then renumber densely
    _, household = np.unique(hh, return_inverse=True)
    size = np.bincount(household)[household]
    return household.astype(np.int64), size


def _emails(world_first: pa.Array, world_last: pa.Array, dob_year: np.ndarray, person: np.ndarray,
            domains: pa.Array, rng: np.random.Generator) -> pa.Array:
    """Unique e-mail addresses built from ascii names; collisions get a number appended."""
    f, l = world_first.take(pa.array(person)), world_last.take(pa.array(person))
    pattern = rng.choice(7, size=len(person), p=[0.3, 0.15, 0.1, 0.1, 0.15, 0.1, 0.1])
    yy = pc.utf8_lpad(pc.cast(pa.array(dob_year[person] % 100), pa.string()), width=2, padding="0")
    num = pc.cast(pa.array(rng.integers(1, 999, len(person))), pa.string())
    initial = pc.utf8_slice_codeunits(f, 0, 1)
    candidates = [
        concat(f, ".", l), concat(f, l), concat(initial, ".", l), concat(f, "_", l),
        concat(f, ".", l, yy), concat(f, num), concat(l, ".", f),
    ]
    local = candidates[0]
    for k in range(1, 7):
        local = pc.if_else(pa.array(pattern == k), candidates[k], local)
    gmail = pc.is_in(domains, value_set=pa.array(["gmail.com", "googlemail.com"]))
    for _ in range(20):
        text = concat(local, "@", domains)
        # unique also under the gmail rule (dots ignored, googlemail = gmail): one mailbox, one person
        mailbox = pc.if_else(gmail, concat(pc.replace_substring(local, ".", ""), "@gmail.com"), text)
        rank = group_rank(pc.dictionary_encode(mailbox).indices.to_numpy(zero_copy_only=False))
        dup = rank > 0
        if not dup.any():
            return text
        extra = pc.cast(pa.array(rng.integers(1, 9999, len(person))), pa.string())
        local = pc.if_else(pa.array(dup), concat(local, extra), local)
    raise RuntimeError("could not make e-mail addresses unique")


def _simulate_purchases(acquired: np.ndarray, lam: np.ndarray, p: np.ndarray, t_end: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD: the acquisition is a purchase; then Poisson(lambda) purchases, dropout with prob p after each."""
    n = len(acquired)
    persons = [np.arange(n)]
    times = [acquired.astype(np.float64)]
    death = np.full(n, float(t_end + 1))
    active = np.arange(n)
    t = acquired.astype(np.float64)
    while len(active):
        t = t + rng.exponential(1.0 / lam[active]) * DAY
        within = t <= t_end
        active, t = active[within], t[within]
        persons.append(active)
        times.append(t)
        dies = rng.random(len(active)) < p[active]
        death[active[dies]] = t[dies]
        active, t = active[~dies], t[~dies]
    person = np.concatenate(persons)
    ts = np.concatenate(times).astype(np.int64)
    order = np.lexsort((ts, person))
    return person[order], ts[order], death.astype(np.int64)


def build_world(specs: list[CountrySpec], weights: list[float], pools: list[Pools], phone_plans: list[PhonePlan],
                n: int, seed: int, t_start: int, days: int) -> World:
    """Draw ``n`` people and everything they own and do, deterministically from ``seed``."""
    t_end = t_start + days * DAY
    rng = rng_for(seed, 1)
    counts = rng.multinomial(n, weights)
    country = np.repeat(np.arange(len(specs)), counts).astype(np.int16)
    gender = (rng.random(n) < 0.49).astype(np.int8)
    first_idx = rng.integers(0, 1 << 30, n) % len(pools[0].first_female)
    last_idx = rng.integers(0, 1 << 30, n) % len(pools[0].last)
    age_days = rng.integers(18 * 365, 85 * 365, n)
    dob_day = (t_start // DAY - age_days).astype(np.int64)
    household, household_size = _households(country, rng)
    head = np.searchsorted(household, household)  # first member of each household (sorted)
    street_idx = rng.integers(0, 1 << 30, n)[head]
    house_no = rng.integers(1, 200, n)[head]
    place_idx = rng.integers(0, 1 << 30, n)[head]
    shares_name = (rng.random(n) < 0.8) | (head == np.arange(n))
    last_idx = np.where(shares_name, last_idx[head], last_idx)

    # latent behaviour
    rng_b = rng_for(seed, 2)
    lam = np.minimum(rng_b.gamma(LAMBDA_SHAPE, LAMBDA_SCALE, n), 0.3) + 1e-5
    p_dropout = rng_b.beta(DROPOUT_A, DROPOUT_B, n)
    spend_scale = rng_b.gamma(SPEND_SHAPE, SPEND_SCALE, n)
    channel_pref = rng_b.dirichlet([2.0, 1.2, 1.5], n)
    responsiveness = rng_b.beta(1.5, 6.0, n)
    login_prob = rng_b.beta(2.0, 2.0, n)
    acquired = t_start + (rng_b.random(n) * 0.85 * days * DAY).astype(np.int64)
    purchase_person, purchase_ts, death_ts = _simulate_purchases(acquired, lam, p_dropout, t_end, rng_b)
    purchase_channel = (rng_b.random(len(purchase_person))[:, None] > np.cumsum(channel_pref, axis=1)[purchase_person]).sum(axis=1)
    purchase_channel = np.minimum(purchase_channel, 2)

    # e-mails
    rng_e = rng_for(seed, 3)
    email_count = rng_e.choice([1, 2, 3], size=n, p=[0.72, 0.23, 0.05])
    email_start = np.r_[0, np.cumsum(email_count)[:-1]]
    email_person = np.repeat(np.arange(n), email_count)
    first_ascii = _ascii_names(pools, country, gender, first_idx, first=True)
    last_ascii = _ascii_names(pools, country, gender, last_idx, first=False)
    dom = np.empty(len(email_person), dtype=object)
    for c, pool in enumerate(pools):
        sel = country[email_person] == c
        dom[sel] = pool.domains[rng_e.integers(0, len(pool.domains), sel.sum())]
    email_text = _emails(first_ascii, last_ascii, 1970 + dob_day // 365, email_person, pa.array(dom, type=pa.string()), rng_e)

    # phones: one mobile per person (92%), one landline for 35% of multi-person households
    rng_p = rng_for(seed, 4)
    has_mobile = rng_p.random(n) < 0.92
    has_landline_hh = (rng_p.random(n) < 0.35)[head] & (household_size > 1)
    mobile = np.full(n, -1, dtype=np.int64)
    landline = np.full(n, -1, dtype=np.int64)
    phone_person, phone_country, phone_is_mobile, phone_row, blocks = [], [], [], [], []
    next_id = 0
    for c, plan in enumerate(phone_plans):
        for is_mob, owners in ((True, np.flatnonzero(has_mobile & (country == c))),
                               (False, np.flatnonzero(has_landline_hh & (country == c) & (head == np.arange(n))))):
            digits = draw_numbers(plan.mobile if is_mob else plan.fixed, len(owners), rng_p)
            owners = owners[: len(digits)]
            ids = next_id + np.arange(len(owners))
            next_id += len(owners)
            phone_person.append(owners)
            phone_country.append(np.full(len(owners), c, dtype=np.int16))
            phone_is_mobile.append(np.full(len(owners), is_mob))
            phone_row.append(np.arange(len(owners)))
            blocks.append(digits)
            if is_mob:
                mobile[owners] = ids
            else:
                hh_phone = np.full(household.max() + 1, -1, dtype=np.int64)
                hh_phone[household[owners]] = ids
                sel = country == c
                landline[sel] = hh_phone[household[sel]]

    # devices
    rng_d = rng_for(seed, 5)
    uses_app = rng_d.random(n) < (0.35 + 0.6 * channel_pref[:, 1])
    device1 = np.where(uses_app, np.arange(n), -1)
    has_second = uses_app & (rng_d.random(n) < 0.2)
    device2 = np.where(has_second, n + np.cumsum(has_second) - 1, -1)
    device_switch_ts = t_start + (rng_d.random(n) * days * DAY).astype(np.int64)
    n_dev = n + int(has_second.sum())
    has_tablet = ((rng_d.random(n) < 0.3)[head]) & (household_size > 1)
    tablet_of_hh = np.full(household.max() + 1, -1, dtype=np.int64)
    heads_with_tablet = np.flatnonzero(has_tablet & (head == np.arange(n)))
    tablet_of_hh[household[heads_with_tablet]] = n_dev + np.arange(len(heads_with_tablet))
    family_device = np.where(uses_app, tablet_of_hh[household], -1)
    device_count = n_dev + len(heads_with_tablet)

    # CRM accounts: 85% have one, 4% of those a duplicate second account
    rng_a = rng_for(seed, 6)
    has_account = rng_a.random(n) < 0.85
    holders = np.flatnonzero(has_account)
    dup_holders = holders[rng_a.random(len(holders)) < 0.04]
    early = rng_a.random(len(holders)) < 0.3
    created = np.where(early, t_start - (rng_a.random(len(holders)) * 730 * DAY).astype(np.int64),
                       acquired[holders] - (rng_a.random(len(holders)) * DAY).astype(np.int64))
    dup_created = created[np.searchsorted(holders, dup_holders)] + (
        rng_a.random(len(dup_holders)) * (t_end - np.maximum(created[np.searchsorted(holders, dup_holders)], t_start))).astype(np.int64)
    account_person = np.r_[holders, dup_holders]
    account_created = np.r_[created, dup_created]
    account_email_k = np.r_[np.zeros(len(holders), dtype=np.int64), np.minimum(1, email_count[dup_holders] - 1)]
    account_has_loyalty = rng_a.random(len(account_person)) < (0.15 + 0.7 * channel_pref[account_person, 2])
    primary_account = np.full(n, -1, dtype=np.int64)
    primary_account[holders] = np.arange(len(holders))

    # national ids (legacy file)
    national_id = _national_ids(specs, country, rng_for(seed, 7))

    return World(
        specs=specs, pools=pools, phone_plans=phone_plans, t_start=t_start, t_end=t_end,
        country=country, gender=gender, first_idx=first_idx, last_idx=last_idx, dob_day=dob_day,
        street_idx=street_idx, house_no=house_no, place_idx=place_idx, household=household,
        household_size=household_size, lambda_=lam, p_dropout=p_dropout, spend_scale=spend_scale,
        channel_pref=channel_pref, responsiveness=responsiveness, login_prob=login_prob,
        acquired_ts=acquired, death_ts=death_ts, email_person=email_person, email_text=email_text,
        email_start=email_start, email_count=email_count,
        phone_person=np.concatenate(phone_person), phone_country=np.concatenate(phone_country),
        phone_is_mobile=np.concatenate(phone_is_mobile), phone_digits=blocks,
        phone_row=np.concatenate(phone_row), mobile=mobile, landline=landline,
        device_count=device_count, device1=device1, device2=device2, device_switch_ts=device_switch_ts,
        family_device=family_device, account_person=account_person, account_created=account_created,
        account_email_k=account_email_k, account_has_loyalty=account_has_loyalty,
        primary_account=primary_account, purchase_person=purchase_person, purchase_ts=purchase_ts,
        purchase_channel=purchase_channel, national_id=national_id,
    )


def _ascii_names(pools: list[Pools], country: np.ndarray, gender: np.ndarray, idx: np.ndarray, *, first: bool) -> pa.Array:
    out = np.empty(len(country), dtype=object)
    for c, pool in enumerate(pools):
        if first:
            for g, values in ((0, pool.first_female_ascii), (1, pool.first_male_ascii)):
                sel = (country == c) & (gender == g)
                out[sel] = values[idx[sel]]
        else:
            sel = country == c
            out[sel] = pool.last_ascii[idx[sel]]
    return pa.array(out, type=pa.string())


def _national_ids(specs: list[CountrySpec], country: np.ndarray, rng: np.random.Generator) -> pa.Array:
    out = np.empty(len(country), dtype=object)
    letters = np.frombuffer(b"ABCDEFGHJKLMNPRSTVWXYZ", dtype=np.uint8)
    for c, spec in enumerate(specs):
        sel = np.flatnonzero(country == c)
        layout = spec.national_id_layout.encode()
        chars = np.empty((len(sel), len(layout)), dtype=np.uint8)
        for j, ch in enumerate(layout):
            if ch == ord("9"):
                chars[:, j] = rng.integers(0, 10, len(sel)) + ord("0")
            elif ch == ord("A"):
                chars[:, j] = letters[rng.integers(0, len(letters), len(sel))]
            else:
                chars[:, j] = ch
        out[sel] = chars.view(f"S{len(layout)}").ravel().astype(str)
    return pa.array(out, type=pa.string())

