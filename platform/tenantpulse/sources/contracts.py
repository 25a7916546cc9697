"""The shape Airbyte writes for each stream (shared/SOURCES.md), as data.

The simulator writes exactly these columns, the landing layer validates against them, and the raw
and landing assets are generated from them. Column types are logical; each warehouse maps them to
its own type names (`warehouse.sql_type`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# Logical column types and the Airbyte types they stand for (Destinations V2, Postgres).
BIGINT = "bigint"  # integer
DECIMAL = "decimal"  # number -> DECIMAL(38,9)
VARCHAR = "varchar"  # string
TIMESTAMPTZ = "timestamptz"  # string, format date-time
DATE = "date"
BOOLEAN = "boolean"
JSON = "json"  # object, array, union -> JSONB
LOGICAL_TYPES = (BIGINT, DECIMAL, VARCHAR, TIMESTAMPTZ, DATE, BOOLEAN, JSON)

SOURCES = ("stripe", "github", "shopify", "google_analytics")

# Airbyte sync modes (airbyte_connection `configurations.streams[].sync_mode`).
INCREMENTAL_DEDUPED_HISTORY = "incremental_deduped_history"


# A column holding a moment (`Column.time`): landing quarantines one before its source began
# (SOURCE_FLOORS) or after the sync that delivered it (SYNC_TOLERANCE), or, for a time the source
# schedules ahead (a billing period's end, a trial's end, a due date), after SCHEDULED_HORIZON.
# A time is stored as its type says: timestamptz or date; bigint or decimal Unix epoch seconds
# (Stripe); varchar 'YYYYMMDD' or 'YYYY-MM-DD' (Google Analytics' `date`).
PAST, SCHEDULED = "past", "scheduled"
SOURCE_FLOORS = {
    "stripe": dt.date(2010, 1, 1),  # Stripe's private beta
    "github": dt.date(2007, 10, 1),  # GitHub's first repositories
    "shopify": dt.date(2006, 1, 1),  # Shopify's launch (June 2006)
    "google_analytics": dt.date(2005, 1, 1),  # Google Analytics' launch (November 2005)
}
SYNC_TOLERANCE = dt.timedelta(days=1)  # clock skew, and a report date in a timezone ahead of UTC
SCHEDULED_HORIZON = dt.timedelta(days=3 * 365)  # Stripe: trials up to 2 years, periods up to 1

# Staging casts some values and sums others; landing quarantines a row whose value would make
# that fail (CastValue). Money in minor units and quantities stay below MAX_UNITS (12 digits, as
# Stripe's longest amounts), so staging's unit amount x quantity fits its numeric(38,4).
MAX_UNITS = 10**12


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    time: str | None = None  # PAST or SCHEDULED when the column holds a moment


@dataclass(frozen=True)
class CastValue:
    """A value staging casts to `type` (BIGINT or DECIMAL): the column itself (`path` empty), or
    the values at `path` inside its JSON (keys, list indexes, "*" for every element); with
    `extract`, the regex group 1 of the text (staging's trailing_integer)."""

    column: str
    type: str
    path: tuple[str | int, ...] = ()
    below: int | None = None  # absolute values must stay below this
    extract: str | None = None

    @property
    def label(self) -> str:
        steps = "".join(f"[{p}]" if isinstance(p, int) or p == "*" else f".{p}" for p in self.path)
        return self.column + steps


# Every raw table has these besides the stream's own columns.
AIRBYTE_COLUMNS: tuple[Column, ...] = (
    Column("_airbyte_raw_id", VARCHAR),
    Column("_airbyte_extracted_at", TIMESTAMPTZ),
    Column("_airbyte_meta", JSON),
    Column("_airbyte_generation_id", BIGINT),
)
AIRBYTE_COLUMN_NAMES = tuple(c.name for c in AIRBYTE_COLUMNS)


@dataclass(frozen=True)
class StreamContract:
    source: str
    stream: str
    primary_key: tuple[str, ...]
    cursor: str
    columns: tuple[Column, ...]  # the stream's own columns, primary key included
    casts: tuple[CastValue, ...] = ()
    # Every stream has a primary key and a cursor, so Airbyte reads only what changed and keeps
    # the latest version per key; landing dedupes again, so an append mode would also work.
    sync_mode: str = INCREMENTAL_DEDUPED_HISTORY

    @property
    def name(self) -> str:
        """`<source>__<stream>`: the landing table's name and the stream's id everywhere."""
        return f"{self.source}__{self.stream}"

    @property
    def raw_table(self) -> str:
        """The table Airbyte writes in the tenant's schema: `<source>_<stream>` (prefix + stream)."""
        return f"{self.source}_{self.stream}"

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return self.columns + AIRBYTE_COLUMNS

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def floor(self) -> dt.date:
        """No moment of this stream can be earlier: its source did not exist."""
        return SOURCE_FLOORS[self.source]

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Without these a raw row cannot be landed: its key, and Airbyte's id and sync time."""
        return (*self.primary_key, "_airbyte_raw_id", "_airbyte_extracted_at")


def raw_schema(tenant_id: str) -> str:
    """The schema Airbyte writes a tenant's streams into (namespace_format = "user_<tenant_id>")."""
    return f"user_{tenant_id}"


def _cols(spec: str) -> tuple[Column, ...]:
    """Parse 'name:type name:type:time ...' so each contract reads as one line per column group.
    A timestamptz or date column is a PAST time unless it says otherwise."""
    columns = []
    for item in spec.split():
        name, kind, *time = item.split(":")
        columns.append(Column(name, kind, time[0] if time else _MOMENTS.get(kind)))
    return tuple(columns)


_MOMENTS = {TIMESTAMPTZ: PAST, DATE: PAST}
_STRIPE_UNITS = (  # a subscription's unit amount, quantity and interval count (monthly_amount)
    CastValue("items", DECIMAL, ("data", 0, "price", "unit_amount"), MAX_UNITS),
    CastValue("items", DECIMAL, ("data", 0, "price", "unit_amount_decimal"), MAX_UNITS),
    CastValue("plan", DECIMAL, ("amount",), MAX_UNITS),
    CastValue("plan", DECIMAL, ("amount_decimal",), MAX_UNITS),
    CastValue("items", BIGINT, ("data", 0, "quantity"), MAX_UNITS),
    CastValue("quantity", BIGINT, (), MAX_UNITS),
    CastValue("items", BIGINT, ("data", 0, "price", "recurring", "interval_count"), MAX_UNITS),
    CastValue("plan", BIGINT, ("interval_count",), MAX_UNITS),
)


_STRIPE = (
    StreamContract(
        "stripe",
        "customers",
        ("id",),
        "updated",
        _cols(
            "id:varchar created:bigint:past updated:bigint:past email:varchar name:varchar currency:varchar "
            "balance:bigint delinquent:boolean address:json metadata:json is_deleted:boolean "
            "livemode:boolean"
        ),
    ),
    StreamContract(
        "stripe",
        "charges",
        ("id",),
        "updated",
        _cols(
            "id:varchar amount:bigint amount_captured:bigint amount_refunded:bigint currency:varchar "
            "status:varchar paid:boolean refunded:boolean captured:boolean disputed:boolean "
            "customer:varchar invoice:varchar created:bigint:past updated:bigint:past "
            "failure_code:varchar "
            "metadata:json"
        ),
    ),
    StreamContract(
        "stripe",
        "subscriptions",
        ("id",),
        "updated",
        _cols(
            "id:varchar customer:varchar status:varchar currency:varchar created:bigint:past "
            "updated:bigint:past start_date:bigint:past current_period_start:bigint:past "
            "current_period_end:decimal:scheduled canceled_at:decimal:past "
            "cancel_at_period_end:boolean ended_at:decimal:past trial_start:decimal:past "
            "trial_end:decimal:scheduled items:json plan:json quantity:bigint is_deleted:boolean"
        ),
        _STRIPE_UNITS,
    ),
    StreamContract(
        "stripe",
        "invoices",
        ("id",),
        "updated",
        _cols(
            "id:varchar customer:varchar subscription:varchar status:varchar currency:varchar "
            "amount_due:bigint amount_paid:bigint amount_remaining:bigint subtotal:bigint "
            "total:bigint paid:boolean created:bigint:past updated:bigint:past "
            "due_date:bigint:scheduled period_start:bigint:past period_end:bigint:scheduled "
            "billing_reason:varchar is_deleted:boolean"
        ),
    ),
    StreamContract(
        "stripe",
        "refunds",
        ("id",),
        "updated",
        _cols(
            "id:varchar amount:bigint currency:varchar status:varchar reason:varchar "
            "charge:varchar created:bigint:past updated:bigint:past"
        ),
    ),
)

_GITHUB = (
    StreamContract(
        "github",
        "repositories",
        ("id",),
        "updated_at",
        _cols(
            "id:bigint name:varchar full_name:varchar owner:json private:boolean fork:boolean "
            "archived:boolean default_branch:varchar language:varchar stargazers_count:bigint "
            "forks_count:bigint open_issues_count:bigint created_at:timestamptz "
            "updated_at:timestamptz pushed_at:timestamptz"
        ),
    ),
    StreamContract(
        "github",
        "pull_requests",
        ("id",),
        "updated_at",
        _cols(
            "id:bigint number:bigint repository:varchar state:varchar title:varchar draft:boolean "
            "user:json created_at:timestamptz updated_at:timestamptz closed_at:timestamptz "
            "merged_at:timestamptz merge_commit_sha:varchar labels:json requested_reviewers:json"
        ),
    ),
    StreamContract(
        "github",
        "commits",
        ("sha",),
        "created_at",
        _cols(
            "sha:varchar repository:varchar branch:varchar created_at:timestamptz commit:json "
            "author:json"
        ),
    ),
    StreamContract(
        "github",
        "issues",
        ("id",),
        "updated_at",
        _cols(
            "id:bigint number:bigint repository:varchar state:varchar state_reason:varchar "
            "title:varchar user:json labels:json comments:bigint created_at:timestamptz "
            "updated_at:timestamptz closed_at:timestamptz pull_request:json"
        ),
    ),
    StreamContract(
        "github",
        "reviews",
        ("id",),
        "updated_at",
        _cols(
            "id:bigint repository:varchar state:varchar user:json pull_request_url:varchar "
            "submitted_at:timestamptz created_at:timestamptz updated_at:timestamptz"
        ),
        (CastValue("pull_request_url", BIGINT, extract="([0-9]+)$"),),
    ),
)

_SHOPIFY = (
    StreamContract(
        "shopify",
        "orders",
        ("id",),
        "updated_at",
        _cols(
            "id:bigint name:varchar order_number:bigint email:varchar currency:varchar "
            "total_price:decimal subtotal_price:decimal total_tax:decimal total_discounts:decimal "
            "financial_status:varchar fulfillment_status:varchar cancelled_at:timestamptz "
            "cancel_reason:varchar created_at:timestamptz processed_at:timestamptz "
            "updated_at:timestamptz customer:json customer_id:bigint line_items:json refunds:json "
            "test:boolean source_name:varchar shop_url:varchar"
        ),
        (
            CastValue("customer", BIGINT, ("id",)),
            CastValue("refunds", DECIMAL, ("*", "transactions", "*", "amount")),
        ),
    ),
    StreamContract(
        "shopify",
        "customers",
        ("id",),
        "updated_at",
        _cols(
            "id:bigint email:varchar first_name:varchar last_name:varchar state:varchar "
            "currency:varchar orders_count:bigint total_spent:decimal last_order_id:bigint "
            "verified_email:boolean created_at:timestamptz updated_at:timestamptz shop_url:varchar"
        ),
    ),
    StreamContract(
        "shopify",
        "products",
        ("id",),
        "updated_at",
        _cols(
            "id:bigint title:varchar status:varchar product_type:varchar vendor:varchar "
            "created_at:timestamptz updated_at:timestamptz variants:json shop_url:varchar"
        ),
    ),
)

_GA_METRICS = (
    "totalUsers:bigint newUsers:bigint sessions:bigint sessionsPerUser:decimal "
    "averageSessionDuration:decimal screenPageViews:bigint screenPageViewsPerSession:decimal "
    "bounceRate:decimal"
)

# GA reports have no cursor column of their own: the connector reads by `date`.
_GOOGLE_ANALYTICS = (
    StreamContract(
        "google_analytics",
        "website_overview",
        ("property_id", "date"),
        "date",
        _cols(f"property_id:varchar date:varchar:past {_GA_METRICS}"),
    ),
    StreamContract(
        "google_analytics",
        "traffic_sources",
        ("property_id", "date", "sessionSource", "sessionMedium"),
        "date",
        _cols(
            f"property_id:varchar date:varchar:past sessionSource:varchar sessionMedium:varchar {_GA_METRICS}"
        ),
    ),
    StreamContract(
        "google_analytics",
        "devices",
        ("property_id", "date", "deviceCategory", "operatingSystem", "browser"),
        "date",
        _cols(
            "property_id:varchar date:varchar:past deviceCategory:varchar operatingSystem:varchar "
            f"browser:varchar {_GA_METRICS}"
        ),
    ),
    StreamContract(
        "google_analytics",
        "conversions_report",
        ("property_id", "date", "eventName"),
        "date",
        _cols(
            "property_id:varchar date:varchar:past eventName:varchar conversions:bigint "
            "totalUsers:bigint totalRevenue:decimal"
        ),
    ),
)

STREAMS: tuple[StreamContract, ...] = _STRIPE + _GITHUB + _SHOPIFY + _GOOGLE_ANALYTICS
STREAMS_BY_NAME = {s.name: s for s in STREAMS}


def streams_for(source: str) -> tuple[StreamContract, ...]:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; known sources: {', '.join(SOURCES)}")
    return tuple(s for s in STREAMS if s.source == source)
