"""Shared machinery of the source simulator: the tenant's world clock, seeded randomness, stable
hashes, ids, people, money and JSON text."""

from __future__ import annotations

import calendar
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from tenantpulse.simulator.profiles import Profile
from tenantpulse.sources.contracts import Column

SECONDS_PER_DAY = 86_400
HOUR = 3_600
NEVER = np.iinfo(np.int64).max  # the time of an event that does not happen

# Purpose codes: every random process draws from its own stream, so adding draws to one process
# never shifts another.
P_STRIPE_CUSTOMERS = 11
P_STRIPE_INITIAL = 12
P_STRIPE_SUBSCRIPTION = 13
P_STRIPE_ONEOFF = 14
P_STRIPE_REFUND = 15
P_STRIPE_DELETE = 16
P_STRIPE_PENDING = 17
P_GITHUB_TEAM = 21
P_GITHUB_PRS = 22
P_GITHUB_COMMITS = 23
P_GITHUB_ISSUES = 24
P_GITHUB_REPO_DAY = 25
P_SHOPIFY_STORE = 31
P_SHOPIFY_ORDERS = 32
P_SHOPIFY_RESTOCK = 33
P_SHOPIFY_CUSTOMERS = 34
P_GA_DAY = 41
P_PEOPLE = 51
P_RAW_ID = 61
P_ID = 62

# Minor units per major unit (Stripe amounts are in minor units; jpy has none).
MINOR_UNITS = {"usd": 100, "eur": 100, "gbp": 100, "jpy": 1}
# Roughly what one usd buys in each currency, to keep prices plausible.
PRICE_SCALE = {"usd": 1.0, "eur": 0.9, "gbp": 0.8, "jpy": 150.0}


def stable_hash(text: str) -> int:
    """A 63-bit hash of `text` that is the same in every process (unlike the salted `hash()`)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic is intended)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def hash64(*parts: int | np.ndarray) -> np.ndarray:
    """A uint64 hash per element of the broadcast integer `parts` (a counter-based generator)."""
    arrays = [np.atleast_1d(np.asarray(p)).astype(np.uint64) for p in parts]
    with np.errstate(over="ignore"):
        h = _mix64(arrays[0])
        for part in arrays[1:]:
            h = _mix64(h ^ part)
    return h


@dataclass(frozen=True)
class World:
    """One tenant's world up to the day of `now_t`: everything a source builder needs."""

    tenant_id: str
    profile: Profile
    seed: int
    tenant_key: int
    history_start: date
    start_t: int  # history_start 00:00 UTC, epoch seconds
    last_day: int  # the day index of now_t; days 0..last_day are simulated
    now_t: float  # the sync's clock, epoch seconds
    volume: float

    def rng(self, purpose: int, day: int = 0, *extra: int) -> np.random.Generator:
        """The generator of one process on one day: independent of every other day and of now."""
        return np.random.default_rng([self.seed, self.tenant_key, purpose, day, *extra])

    def uniform(self, purpose: int, keys: np.ndarray, salt: int = 0) -> np.ndarray:
        """A seeded uniform in [0, 1) per entity key, for decisions taken per entity."""
        h = hash64(self.seed, self.tenant_key, purpose, salt, keys)
        return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)

    def day_start(self, day: int) -> int:
        return self.start_t + day * SECONDS_PER_DAY

    def weekday(self, day: int) -> int:
        return (self.history_start.weekday() + day) % 7

    def date_of(self, day: int) -> date:
        return self.history_start + timedelta(days=day)

    def per_day(self, purpose: int, build: Callable[[int, np.random.Generator], dict]) -> dict:
        """Run `build(day, rng)` for every simulated day and concatenate its arrays."""
        parts = [build(day, self.rng(purpose, day)) for day in range(self.last_day + 1)]
        return concat_parts(parts)

    def count(self, expected: float, rng: np.random.Generator) -> int:
        """A Poisson count of events expected `expected` times at volume 1.0."""
        return int(rng.poisson(max(expected, 0.0) * self.volume))

    def steady_count(self, expected: float, rng: np.random.Generator) -> int:
        """`expected` x volume, randomly rounded: demand curves stay visible in daily counts."""
        return int(max(expected, 0.0) * self.volume + rng.random())


def concat_parts(parts: Sequence[dict]) -> dict:
    keys = parts[0].keys() if parts else ()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} is naive: give a tz-aware UTC datetime")
    return moment.timestamp()


def day_start_epoch(day: date) -> int:
    return calendar.timegm(day.timetuple())


def add_months(moment: int, months: int) -> int:
    """`moment` + `months` calendar months, the day clamped to the month's end (Stripe's rule)."""
    when = datetime.fromtimestamp(moment, UTC)
    year, month0 = divmod(when.month - 1 + months, 12)
    year += when.year
    day = min(when.day, calendar.monthrange(year, month0 + 1)[1])
    return int(when.replace(year=year, month=month0 + 1, day=day).timestamp())


def in_day(rng: np.random.Generator, day_start: int, n: int) -> np.ndarray:
    """`n` sorted epoch seconds spread over one day."""
    return day_start + np.sort(rng.integers(0, SECONDS_PER_DAY, n))


def working_hours(rng: np.random.Generator, day_start: int, n: int) -> np.ndarray:
    """`n` sorted epoch seconds, most of them between 08:00 and 20:00 UTC."""
    hours = np.clip(rng.normal(13.5, 3.0, n), 0.2, 23.8)
    return day_start + np.sort((hours * HOUR).astype(np.int64))


_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "S1")


def base62_ids(world: World, prefix: str, kind: int, keys: np.ndarray, length: int) -> np.ndarray:
    """Stripe-looking ids (`cus_NffrFeUfNV2Hib`): `prefix` + `length` base-62 characters."""
    keys = np.asarray(keys, dtype=np.int64)
    digits = np.empty((len(keys), length), dtype=np.uint64)
    h = hash64(world.seed, world.tenant_key, P_ID, kind, keys)
    for i in range(length):
        if i % 8 == 0 and i:
            h = hash64(h, i)
        digits[:, i] = h % np.uint64(62)
        h = h // np.uint64(62)
    text = _B62[digits.astype(np.intp)].view(f"S{length}").ravel()
    return np.array([prefix + t.decode() for t in text], dtype=object)


_HEX = np.frombuffer(b"0123456789abcdef", "S1")


def _hex(words: list[np.ndarray]) -> np.ndarray:
    """Each row of big-endian uint64 `words` as lowercase hex bytes, shape (n, 16 * len(words))."""
    stacked = np.stack(words, axis=1).astype(">u8")
    octets = stacked.view(np.uint8).reshape(len(stacked), 8 * len(words))
    nibbles = np.stack([octets >> 4, octets & 15], axis=2).reshape(len(stacked), 16 * len(words))
    return _HEX[nibbles]


def hex_strings(world: World, kind: int, keys: np.ndarray, length: int) -> np.ndarray:
    """Hex strings (commit shas) of `length` characters, one per key."""
    keys = np.asarray(keys, dtype=np.int64)
    words = []
    h = hash64(world.seed, world.tenant_key, P_ID, kind, keys)
    for i in range((length + 15) // 16):
        h = hash64(h, i)
        words.append(h)
    text = np.ascontiguousarray(_hex(words)[:, :length]).view(f"S{length}").ravel()
    return text.astype(str).astype(object)


def raw_ids(world: World, stream_code: int, keys: np.ndarray, sync_number: int) -> np.ndarray:
    """Deterministic `_airbyte_raw_id` UUIDs (version-4 layout) per (stream, key, sync)."""
    keys = np.asarray(keys, dtype=np.int64)
    high = hash64(world.seed, world.tenant_key, P_RAW_ID, stream_code, keys, sync_number)
    digits = _hex([high, hash64(high, 1)])
    digits[:, 12] = b"4"  # version 4
    digits[:, 16] = _HEX[8 + (high & np.uint64(3)).astype(np.intp)]  # RFC 4122 variant
    dash = np.full((len(keys), 1), b"-", dtype="S1")
    parts = [digits[:, :8], dash, digits[:, 8:12], dash, digits[:, 12:16], dash]
    parts += [digits[:, 16:20], dash, digits[:, 20:]]
    text = np.ascontiguousarray(np.concatenate(parts, axis=1)).view("S36").ravel()
    return text.astype(str).astype(object)


def dumps(value: object) -> str:
    """JSON text as Airbyte's destination stores it here: compact, sorted keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def iso(seconds: np.ndarray) -> np.ndarray:
    """ISO-8601 UTC strings (`2026-01-05T12:34:56Z`) of epoch seconds."""
    text = np.datetime_as_string(np.asarray(seconds, dtype="int64").astype("datetime64[s]"))
    return np.char.add(text, "Z").astype(object)


def choice_index(u: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Index into `weights` per uniform draw in `u` (an inverse-CDF pick)."""
    cdf = np.cumsum(np.asarray(weights, dtype=float))
    return np.minimum(np.searchsorted(cdf / cdf[-1], u, side="right"), len(cdf) - 1)


FIRST_NAMES = np.array(
    "jane john maria li sofia ahmed emma noah olivia liam ava mateo yuki hana lucas mia chloe "
    "ethan amara david sara omar elena ivan priya raj nina oscar lea tom".split(),
    dtype=object,
)
LAST_NAMES = np.array(
    "doe smith garcia chen rossi khan muller martin silva tanaka kim nguyen brown wilson lopez "
    "novak costa dubois jensen okafor patel sato moreau fischer walsh".split(),
    dtype=object,
)
EMAIL_DOMAINS = np.array(
    "gmail.com outlook.com yahoo.com icloud.com proton.me fastmail.com example.com".split(),
    dtype=object,
)


def people(world: World, namespace: int, index: np.ndarray) -> tuple[np.ndarray, ...]:
    """(first, last, email) of person `index` in `namespace`: a pure function of the index, so
    another source can name the same person without rebuilding this one's world."""
    index = np.asarray(index, dtype=np.int64)
    h = hash64(world.seed, world.tenant_key, P_PEOPLE, namespace, index)
    first = FIRST_NAMES[(h % np.uint64(len(FIRST_NAMES))).astype(np.intp)]
    last = LAST_NAMES[((h >> np.uint64(16)) % np.uint64(len(LAST_NAMES))).astype(np.intp)]
    domain = EMAIL_DOMAINS[((h >> np.uint64(32)) % np.uint64(len(EMAIL_DOMAINS))).astype(np.intp)]
    if namespace == 0:
        local = [f"{f}.{la}{i}" for f, la, i in zip(first, last, index, strict=True)]
    else:
        local = [f"{f[0]}{la}{i}" for f, la, i in zip(first, last, index, strict=True)]
    email = np.array([f"{lo}@{d}" for lo, d in zip(local, domain, strict=True)], dtype=object)
    return first, last, email


def untidy_emails(emails: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The same addresses as another system might store them: other case, stray whitespace."""
    out = []
    for email, draw in zip(emails, u, strict=True):
        local, _, domain = email.partition("@")
        if draw < 0.4:
            out.append(f"  {local.title()}@{domain.title()}")
        elif draw < 0.7:
            out.append(f"{email.upper()} ")
        else:
            out.append(f" {local.title()}@{domain}\t")
    return np.array(out, dtype=object)


@dataclass(frozen=True)
class Rows:
    """One stream's rows for a sync: an entity key per row (for raw ids) and the column values."""

    keys: np.ndarray
    columns: dict[str, object]
    extra_columns: tuple[Column, ...] = ()  # columns beyond the contract (schema drift)


def emit(
    versions: pd.DataFrame,
    render: Callable[[pd.DataFrame], dict[str, object]],
    world: World,
    after_t: float | None,
    extra_columns: tuple[Column, ...] = (),
) -> Rows:
    latest = latest_versions(versions, world.now_t, after_t)
    return Rows(latest["_key"].to_numpy(np.int64), render(latest), extra_columns)


def event_versions(
    events: Sequence[tuple[np.ndarray, np.ndarray, dict[str, object]]],
) -> pd.DataFrame:
    """Version rows from events, each `(which, times, state)`: `which` a boolean mask over the
    entities (keys are the mask's positions; `times` and array `state` values are indexed by it)
    or an array of keys (`times` and array values aligned with it); scalars broadcast."""
    frames = []
    for which, times, state in events:
        which = np.asarray(which)
        pick = which if which.dtype == bool else slice(None)
        keys = np.flatnonzero(which) if which.dtype == bool else which
        columns = {"_key": keys.astype(np.int64), "_t": np.asarray(times)[pick]}
        for name, value in state.items():
            array = np.asarray(value)
            columns[name] = array[pick] if array.ndim else np.full(len(keys), value)
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)


def latest_versions(versions: pd.DataFrame, now_t: float, after_t: float | None) -> pd.DataFrame:
    """Each entity's latest version at `now_t`, for entities with a change in (after_t, now_t].

    `versions` has one row per (entity `_key`, change time `_t`) with the entity's full state
    after that change; rows are in generation order, which breaks ties between equal times."""
    visible = versions[versions["_t"] <= now_t]
    ordered = visible.sort_values(["_key", "_t"], kind="stable")
    latest = ordered.drop_duplicates("_key", keep="last")
    if after_t is not None:
        latest = latest[latest["_t"] > after_t]
    return latest.sort_values(["_t", "_key"], kind="stable").reset_index(drop=True)
