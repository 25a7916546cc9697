"""Raw tables for the fuzz, generated from each stream's columns as tenantpulse knows them
(sources/contracts.py, shared/SOURCES.md): every column, NULLs, nested JSON, unicode and empty
text, an extra column; for a broken tenant also columns of other types (text in numeric columns,
doubles), extreme values that are valid and malformed ones that are not (integers beyond 64 bits,
inf/NaN, 30-digit decimals, years 0001/2999/9999, Stripe times in ms or us, a GA date of '(other)',
values staging cannot cast, a NULL key, a sync time in the future), and a table landing must fail
(a text `_airbyte_extracted_at`, a missing key column).

Deterministic: a table depends only on the seed, the tenant, the stream and the sync, so a tenant's
tables are the same whoever else is generated. `raw_tables` returns one tenant's tables of one
sync; `write_raw_tables` writes them. Each table knows which of its rows landing must quarantine
(`broken`) and whether landing must fail it (`fails`).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from dataclasses import dataclass, field

from rawdata import raw_sync
from tenantpulse.sources.contracts import (
    BIGINT,
    BOOLEAN,
    DECIMAL,
    JSON,
    SCHEDULED,
    SCHEDULED_HORIZON,
    STREAMS,
    STREAMS_BY_NAME,
    VARCHAR,
    CastValue,
    Column,
    StreamContract,
    raw_schema,
)
from tenantpulse.warehouse import Connection, quote_ident

SEED = 15
SYNC_TIMES = {
    1: dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC),
    2: dt.datetime(2026, 11, 2, 6, tzinfo=dt.UTC),
}
FIRST_SYNC_ROWS = 12  # keys 0..11
UPDATED_ROWS = 4  # the second sync brings new versions of keys 0..3
NEW_ROWS = 4  # and keys 12..15
BROKEN_SHARE, EXTREME_SHARE = 0.4, 0.15  # of a broken tenant's rows
EXTRA_COLUMN = "fuzz_extra"  # every tenant's tables have it (Airbyte's propagate_columns)
DOUBLE = "double"  # a raw column type beyond the contract's logical types
TEXTS = ["", "plain", "Ünïcødé ✓", "日本語のテキスト", "emoji 🎉🚀", "O'Brien; drop table x; --"]
TEXTS += ["tab\tand\nnewline", "NULL", " ", "ℌ" * 200, "مرحبا", "a\\b"]


@dataclass(frozen=True)
class FuzzTenant:
    tenant_id: str
    broken: bool


TENANTS = (
    FuzzTenant("calm_a", False),
    FuzzTenant("calm_b", False),
    FuzzTenant("wild_a", True),
    FuzzTenant("wild_b", True),
)
# One table per broken tenant that landing must fail, by the tenant's name.
FAILING_TABLES = {
    ("wild_a", "stripe__refunds"): "text_synced_at",
    ("wild_b", "github__commits"): "no_key_column",
}


@dataclass
class RawTable:
    """One tenant's raw table of one stream: its column types and one sync's rows."""

    contract: StreamContract
    types: dict[str, str]  # column -> logical type (or DOUBLE) of the raw table
    rows: list[dict[str, str | None]] = field(default_factory=list)  # text the warehouse casts
    keys: list[tuple] = field(default_factory=list)  # each row's generated key, row by row
    broken: dict[str, str] = field(default_factory=dict)  # _airbyte_raw_id -> what was broken
    fails: str | None = None  # why landing must fail the table


def raw_tables(tenant: FuzzTenant, sync: int, seed: int = SEED) -> dict[str, RawTable]:
    """Stream name -> `tenant`'s raw table rows of `sync`: 1 is the first sync (keys 0..11), 2 the
    next (new versions of keys 0..3, new keys 12..15)."""
    keys = range(FIRST_SYNC_ROWS) if sync == 1 else [*range(UPDATED_ROWS)]
    if sync == 2:
        keys = [*keys, *range(FIRST_SYNC_ROWS, FIRST_SYNC_ROWS + NEW_ROWS)]
    return {c.name: _table(tenant, c, sync, list(keys), seed) for c in STREAMS}


def write_raw_tables(conn: Connection, tenant_id: str, tables: dict[str, RawTable]) -> None:
    """Append each table's rows to the tenant's raw layer with its types (a table created or
    extended on Postgres, a file on DuckDB), every value cast by the warehouse from text."""
    for table in tables.values():
        columns = ", ".join(f"{quote_ident(c)} {conn.sql_type(t)}" for c, t in table.types.items())
        with raw_sync(conn, tenant_id, table.contract.raw_table, columns) as target:
            if conn.dialect == "postgres":
                schema, name = raw_schema(tenant_id), table.contract.raw_table
                conn.add_missing_columns(schema, name, table.types)
            names = list(table.types)
            row_marks = "(" + ", ".join(
                f"cast(%s as {conn.sql_type(table.types[c])})" for c in names
            )
            values = ", ".join([row_marks + ")"] * len(table.rows))
            params = [row.get(c) for row in table.rows for c in names]
            conn.execute(
                f"insert into {target} ({', '.join(map(quote_ident, names))}) values {values}",
                params,
            )


def _table(tenant: FuzzTenant, contract: StreamContract, sync: int, keys: list[int], seed: int):
    shape = random.Random(f"{seed}/{tenant.tenant_id}/{contract.name}/shape")
    rng = random.Random(f"{seed}/{tenant.tenant_id}/{contract.name}/{sync}")
    table = RawTable(contract, _types(contract, tenant, shape))
    table.fails = FAILING_TABLES.get((tenant.tenant_id, contract.name))
    if table.fails == "text_synced_at":
        table.types["_airbyte_extracted_at"] = VARCHAR
    elif table.fails == "no_key_column":
        for key in contract.primary_key:
            del table.types[key]
    synced = SYNC_TIMES[sync]
    for key in keys:
        row = {
            name: _clean(rng, contract, column, key, synced) for name, column in _columns(contract)
        }
        row["_airbyte_raw_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
        row["_airbyte_extracted_at"] = _stamp(synced)
        row["_airbyte_meta"] = json.dumps({"sync_id": sync, "changes": []})
        row["_airbyte_generation_id"] = "0"
        row[EXTRA_COLUMN] = rng.choice(TEXTS)
        row["fuzz_json"] = json.dumps({"x": [1, {"y": "é"}]})
        if tenant.broken and not table.fails:
            draw = rng.random()
            if draw < BROKEN_SHARE:
                table.broken[row["_airbyte_raw_id"]] = _break(rng, table, row, synced)
            elif draw < BROKEN_SHARE + EXTREME_SHARE:
                _stretch(rng, table, row, synced)
        table.rows.append({c: v for c, v in row.items() if c in table.types})
        table.keys.append(tuple(row[k] for k in contract.primary_key))
    return table


def _columns(contract: StreamContract):
    return [(c.name, c) for c in contract.columns]


def _types(contract: StreamContract, tenant: FuzzTenant, shape: random.Random) -> dict[str, str]:
    """The raw table's column types: the contract's, or for a broken tenant some of them text or
    double (a type change upstream), a few columns missing and more extra ones."""
    types = {c.name: c.type for c in contract.all_columns} | {EXTRA_COLUMN: VARCHAR}
    if not tenant.broken:
        return types
    keys = set(contract.required_columns)
    for column in contract.columns:
        if column.name in keys or column.type == VARCHAR:
            continue
        draw = shape.random()
        if draw < 0.35:
            types[column.name] = VARCHAR
        elif draw < 0.5 and column.type in (BIGINT, DECIMAL):
            types[column.name] = DOUBLE
        elif draw < 0.55:
            del types[column.name]  # landed as NULL
    types["fuzz_json"] = JSON
    return types


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


def _epoch(moment: dt.datetime) -> str:
    return str(int(moment.timestamp()))


# What a clean tenant's rows hold so that staging's tests pass on them: the values of its
# accepted_values tests, no NULL where it tests not_null, and ids that refer to another stream's
# rows (its relationships tests) among the keys of the first sync.
CHOICES = {
    ("stripe__charges", "status"): ["succeeded", "pending", "failed"],
    ("stripe__subscriptions", "status"): ["active", "trialing", "past_due", "canceled", "unpaid"],
    ("stripe__invoices", "status"): ["draft", "open", "paid", "uncollectible", "void"],
    ("stripe__refunds", "status"): ["pending", "succeeded", "failed", "canceled"],
    ("stripe__refunds", "reason"): ["duplicate", "fraudulent", "requested_by_customer"],
    ("github__pull_requests", "state"): ["open", "closed"],
    ("github__issues", "state"): ["open", "closed"],
    ("github__issues", "state_reason"): ["completed", "not_planned", "duplicate", "reopened"],
    ("github__reviews", "state"): ["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED"],
    ("shopify__orders", "financial_status"): ["pending", "paid", "partially_refunded", "voided"],
    ("shopify__orders", "fulfillment_status"): ["fulfilled", "partial", "restocked"],
    ("shopify__customers", "state"): ["disabled", "invited", "enabled", "declined"],
    ("shopify__products", "status"): ["active", "archived", "draft"],
    ("stripe__customers", "is_deleted"): ["false"],  # staging leaves deleted ones out, and
    ("stripe__subscriptions", "is_deleted"): ["false"],  # other streams refer to them
    ("stripe__invoices", "is_deleted"): ["false"],
}
CURRENCIES = ["usd", "eur", "jpy", "kwd"]
NOT_NULL = {
    # The days the daily marts place rows on (a NULL one is a WARN naming the tenant).
    ("stripe__customers", "created"),
    ("stripe__charges", "created"),
    ("stripe__refunds", "created"),
    ("shopify__orders", "created_at"),
    ("github__pull_requests", "created_at"),
    ("github__commits", "created_at"),
    # Money without its currency (a WARN naming the tenant).
    ("stripe__subscriptions", "currency"),
    ("shopify__orders", "currency"),
    ("stripe__charges", "currency"),
    ("stripe__charges", "amount"),
    ("stripe__charges", "status"),
    ("stripe__subscriptions", "customer"),
    ("stripe__subscriptions", "status"),
    ("github__repositories", "full_name"),
    ("github__pull_requests", "repository"),
    ("github__pull_requests", "number"),
    ("github__pull_requests", "state"),
    ("github__issues", "state"),
    ("github__reviews", "pull_request_url"),
    ("github__reviews", "state"),
    ("google_analytics__website_overview", "sessions"),
    ("google_analytics__traffic_sources", "sessions"),
    ("google_analytics__devices", "sessions"),
    ("google_analytics__conversions_report", "conversions"),
}
REFERENCES = {  # (stream, column) -> the stream whose key it holds
    ("stripe__charges", "customer"): "stripe__customers",
    ("stripe__charges", "invoice"): "stripe__invoices",
    ("stripe__subscriptions", "customer"): "stripe__customers",
    ("stripe__invoices", "customer"): "stripe__customers",
    ("stripe__invoices", "subscription"): "stripe__subscriptions",
    ("stripe__refunds", "charge"): "stripe__charges",
    ("shopify__orders", "customer_id"): "shopify__customers",
    ("shopify__customers", "last_order_id"): "shopify__orders",
}
REPOSITORIES = 3  # repository-scoped GitHub rows are in repositories 0..2


def _clean(rng: random.Random, contract, column: Column, key: int, synced: dt.datetime):
    """A value Airbyte could send for `column` of the row with key number `key`."""
    name, spot = column.name, (contract.name, column.name)
    if name in contract.primary_key:
        return _key(contract, column, key)
    if spot in REFERENCES:
        target = STREAMS_BY_NAME[REFERENCES[spot]]
        return _key(target, _column(target, target.primary_key[0]), key % FIRST_SYNC_ROWS)
    if contract.source == "github" and name in ("repository", "full_name", "pull_request_url"):
        return _repository_text(contract, name, key)
    if name == "number":
        return str(key + 1)  # unique within its repository
    if spot not in NOT_NULL and rng.random() < 0.15:
        return None
    if spot in CHOICES:
        return rng.choice(CHOICES[spot])
    if name == "currency":
        return rng.choice(CURRENCIES)
    if column.time:
        ahead = column.time == SCHEDULED and rng.random() < 0.5
        moment = synced + dt.timedelta(days=rng.uniform(0, 300) * (1 if ahead else -1))
        if column.type in (BIGINT, DECIMAL):
            return _epoch(moment)
        return _stamp(moment)
    if column.type == JSON:
        return json.dumps(_document(rng, contract, name, key), ensure_ascii=False)
    if column.type == BIGINT:
        return str(rng.choice([0, 1, 7, 42, -3, 1999, 250_000]))
    if column.type == DECIMAL:
        return rng.choice(["0", "0.5", "19.99", "-4.25", "1234.5678", "0.000000001"])
    if column.type == BOOLEAN:
        return rng.choice(["true", "false"])
    return rng.choice(TEXTS)


def _column(contract: StreamContract, name: str) -> Column:
    return next(c for c in contract.columns if c.name == name)


def _repository_text(contract: StreamContract, name: str, key: int) -> str:
    """A repository's own name, or the repository (and pull request) a row belongs to."""
    if contract.stream == "repositories":
        return f"acme/repo{key}"
    row = key % FIRST_SYNC_ROWS  # a review is of a pull request of the first sync
    repository = f"acme/repo{row % REPOSITORIES}"
    if name == "pull_request_url":
        return f"https://api.github.com/repos/{repository}/pulls/{row + 1}"
    return repository if contract.stream == "reviews" else f"acme/repo{key % REPOSITORIES}"


def _key(contract: StreamContract, column: Column, key: int) -> str:
    if column.name == "date":  # Google Analytics: one day per key, re-reported by later syncs
        return (SYNC_TIMES[1].date() - dt.timedelta(days=key)).strftime("%Y%m%d")
    if column.name == "property_id":
        return "properties/123456"
    if column.type == BIGINT:
        return str(1000 + key)
    if contract.source == "google_analytics":  # a dimension
        return ["(not set)", "google", "Mobile 📱", "cpc"][key % 4]
    if column.name == "sha":
        return f"{key:040x}"
    return f"{contract.stream[:3]}_{key}"


def _rule(contract: StreamContract, column: str) -> list[CastValue]:
    return [r for r in contract.casts if r.column == column]


def _document(rng: random.Random, contract: StreamContract, column: str, key: int):
    """A nested JSON value; for a column staging reads inside, the shape it reads."""
    if column == "items":
        price = {"unit_amount": 2900, "currency": "usd", "recurring": {"interval": "month"}}
        price["recurring"]["interval_count"] = 1
        return {"object": "list", "data": [{"price": price, "quantity": rng.randint(1, 9)}]}
    if column == "plan":
        return {"amount": 2900, "amount_decimal": "2900.5", "interval": "year", "interval_count": 1}
    if column == "customer":  # Shopify: the same customer as customer_id
        return {"id": 1000 + key % FIRST_SYNC_ROWS, "email": "ÅSA@example.com "}
    if column == "refunds":
        amount = rng.choice(["12.50", 3, "0.01"])
        return [{"transactions": [{"amount": amount, "kind": "refund", "status": "success"}]}]
    return rng.choice(
        [
            {},
            [],
            {"plan": "pro", "nested": {"list": [1, "two", None, {"deep": ["é", 2.5]}]}},
            {"ключ": "значение", "emoji": "🎉", "empty": ""},
            ["a", ["b", ["c", ["d"]]]],
        ]
    )


def _with_leaf(document, path: tuple, value):
    """`document` with the first value at `path` ("*" = element 0) replaced by `value`."""
    node = document
    for step in path[:-1]:
        node = node[0 if step == "*" else step]
    node[0 if path[-1] == "*" else path[-1]] = value
    return document


def _break(rng: random.Random, table: RawTable, row: dict, synced: dt.datetime) -> str:
    """Make the row one landing must quarantine; say how."""
    contract = table.contract
    choices = []
    for name, column in _columns(contract):
        if name in table.types and (name not in contract.primary_key or column.time):
            for value in _malformed(contract, column, table.types[name], synced, row.get(name)):
                choices.append((name, value))
    choices += [
        (contract.primary_key[-1], None),
        ("_airbyte_extracted_at", "2999-01-01 00:00:00+00"),
    ]
    name, value = rng.choice(choices)
    row[name] = value
    return f"{name}: {value!r}"


def _stretch(rng: random.Random, table: RawTable, row: dict, synced: dt.datetime) -> None:
    """Give the row an extreme value landing must still land."""
    contract = table.contract
    choices = []
    for name, column in _columns(contract):
        if name in table.types and name not in contract.primary_key:
            for value in _extreme(contract, column, table.types[name], synced, row.get(name)):
                choices.append((name, value))
    if choices:
        name, value = rng.choice(choices)
        row[name] = value


def _malformed(contract, column: Column, raw_type: str, synced, current) -> list[str]:
    """Values of the raw type that landing must quarantine in this column."""
    rules = _rule(contract, column.name)
    if rules:
        return _uncastable(rules, current)
    floor = dt.datetime.combine(contract.floor, dt.time(), dt.UTC)
    late = synced + (SCHEDULED_HORIZON if column.time == SCHEDULED else dt.timedelta(0))
    late += dt.timedelta(days=2)
    if column.time and column.type in (BIGINT, DECIMAL):
        seconds = int(synced.timestamp())
        epochs = [seconds * 1000, seconds * 1_000_000, 0, -1, 32_503_680_000, int(late.timestamp())]
        epochs.append(int((floor - dt.timedelta(seconds=1)).timestamp()))
        if raw_type == VARCHAR:
            return ["yesterday", "1e3", *map(str, epochs)]
        if raw_type == DOUBLE:
            return ["inf", "NaN", *map(str, epochs)]
        return list(map(str, epochs))
    if column.time and column.type == VARCHAR:  # a GA date
        return ["(other)", "20241332", "29991231", "00010101", "", "today", "2024/01/31"]
    if column.time:
        stamps = ["0001-01-01 00:00:00+00", "2999-12-31 00:00:00+00", "9999-12-31 23:59:59+00"]
        stamps += ["1970-01-01 00:00:00+00", _stamp(late), _stamp(floor - dt.timedelta(seconds=1))]
        if raw_type == VARCHAR:
            return ["not a time", "2026-13-01 00:00:00+00", "", *stamps]
        return ["infinity", "-infinity", *stamps]
    if column.type == BIGINT:
        if raw_type == VARCHAR:
            return ["99999999999999999999", str(2**63), "1e20", "12.50 USD", "3.5", "", "NaN"]
        if raw_type == DOUBLE:
            return ["1e20", "NaN", "inf", "-inf", "0.5", str(2.0**63)]
        return []
    if column.type == DECIMAL:
        if raw_type == VARCHAR:
            return ["inf", "-Infinity", "NaN", "1e30", "1" * 30, "abc", "1,5", ""]
        if raw_type == DOUBLE:
            return ["inf", "NaN", "1e30", "-1e29"]
        return []
    if column.type == BOOLEAN and raw_type == VARCHAR:
        return ["maybe", "2", "", "TRUE!"]
    if column.type == JSON and raw_type == VARCHAR:
        return ["{oops", '{"a": NaN}', '{"a": "\\u0000"}', "[1, 2", "", '{"a": "\\ud800"}']
    return []


def _uncastable(rules: list[CastValue], current) -> list[str]:
    """Values that make one of staging's casts of this column fail."""
    out = []
    for rule in rules:
        if rule.extract:
            out.append("https://api.github.com/repos/acme/api/pulls/" + "9" * 25)
        elif not rule.path:  # a bigint column with a bound
            out.append(str(rule.below))
        elif current is not None:
            bad = ["guest", 3.5, 2**63, True] if rule.type == BIGINT else ["abc", "NaN", 1e40, True]
            bad += [rule.below] if rule.below else []
            out += [json.dumps(_with_leaf(json.loads(current), rule.path, b)) for b in bad]
    return out


def _extreme(contract, column: Column, raw_type: str, synced, current) -> list[str]:
    """Unusual values of the raw type that landing must land in this column."""
    rules = _rule(contract, column.name)
    if rules:
        fine = []
        for rule in rules:
            if rule.extract:
                fine.append("https://api.github.com/repos/acme/api/pulls/" + "9" * 18)
            elif not rule.path:
                fine.append(str(rule.below - 1))
            elif current is not None:
                good = "42" if rule.type == BIGINT else "2900.5"
                fine.append(json.dumps(_with_leaf(json.loads(current), rule.path, good)))
        return fine
    floor = dt.datetime.combine(contract.floor, dt.time(), dt.UTC)
    if column.time and column.type in (BIGINT, DECIMAL):
        horizon = SCHEDULED_HORIZON if column.time == SCHEDULED else dt.timedelta(days=1)
        return [_epoch(floor), _epoch(synced + horizon)]
    if column.time and column.type == VARCHAR:
        return [(synced.date() + dt.timedelta(days=1)).strftime("%Y%m%d")]
    if column.time:
        fine = [_stamp(floor), _stamp(synced + dt.timedelta(hours=23))]
        return fine + (["2026-10-01T10:00:00.123456Z"] if raw_type == VARCHAR else [])
    if column.type == BIGINT:
        if raw_type == BIGINT:
            return [str(2**63 - 1), str(-(2**63)), "0"]
        return ["1e3", " 42 "] if raw_type == VARCHAR else ["1e15"]
    if column.type == DECIMAL:
        if raw_type == DECIMAL:
            return ["0.000000001", "-12345678901234567.5", "99999999999999.99"]
        return ["1e3", "1e28"] if raw_type in (VARCHAR, DOUBLE) else []
    if column.type == BOOLEAN and raw_type == VARCHAR:
        return ["yes", "F", " true "]
    if column.type == JSON:
        deep = json.dumps(json.loads("[" * 60 + "]" * 60))
        return [deep, '"just text"', "null", '{"é": ["✓", {"deep": [1, 2.5, null]}]}']
    if column.type == VARCHAR:
        return ["", "x" * 5000, "😀" * 50, "\\u0000 as text", "line\r\nbreak"]
    return []
