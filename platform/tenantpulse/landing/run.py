"""Landing several streams for many tenants on one connection: which tenants each stream is for,
which of their raw tables changed (`changed_units`: only those are read), each stream's outcomes as
it finishes, and what failed. The `land` asset (defs/landing.py) and the bench's direct path call
it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from tenantpulse.landing.changed_units import find_changed_units, save_landed_units
from tenantpulse.landing.merge import FAILED, TenantLanding, land_stream
from tenantpulse.sources.contracts import StreamContract
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import Connection

FAILURES_NAMED = 10  # tenant streams named in a failure's message; the metadata has them all


class InactiveTenantsError(ValueError):
    """Tenants were named that are not active (removed, or never registered)."""


@dataclass(frozen=True)
class StreamLanding:
    """What landing one stream did, tenant by tenant."""

    contract: StreamContract
    outcomes: list[TenantLanding]

    @property
    def rows_read(self) -> int:
        return sum(o.rows_read for o in self.outcomes)

    @property
    def rows_changed(self) -> int:
        """Rows merged into the landing table or quarantined."""
        return sum(o.rows_landed + o.rows_quarantined for o in self.outcomes)

    @property
    def failures(self) -> dict[str, str]:
        """`<tenant>/<stream>` -> error, for each tenant that could not be landed."""
        return {
            f"{o.tenant_id}/{self.contract.name}": o.error or ""
            for o in self.outcomes
            if o.status == FAILED
        }


def tenants_by_stream(
    active: Mapping[str, Iterable[str]],
    contracts: Iterable[StreamContract],
    chosen: list[str] | None = None,
) -> dict[str, list[str]]:
    """Stream name -> the tenants to land it for: the `chosen` ones (all of them, a tenant without
    the source has no raw table and is reported so), else every active tenant with the source.
    `active`: tenant id -> its sources."""
    inactive = sorted(set(chosen or []) - set(active))
    if inactive:
        raise InactiveTenantsError(f"not active tenants: {', '.join(inactive)}")
    return {
        c.name: list(chosen) if chosen else [t for t, s in active.items() if c.source in s]
        for c in contracts
    }


def land_streams(
    conn: Connection,
    contracts: list[StreamContract],
    tenant_ids: list[str] | None = None,
    on_stream: Callable[[StreamContract, int], None] | None = None,
    read_all: bool = False,
) -> Iterator[StreamLanding]:
    """Land each of `contracts` for `tenant_ids` (default: every active tenant with the source),
    yielding each stream's outcomes when it is landed; land_stream commits as it goes.

    Only the raw tables that may have changed since they were landed are read (changed_units; on
    Postgres, from the write counters read before any row); the others are reported up to date
    (their watermark not looked up). `read_all` reads every table. `on_stream(contract, tenants)`
    is called before each stream with the number of tenants it is landed for."""
    active = {t.tenant_id: t.sources for t in list_tenants(conn)}
    chosen = [validate_tenant_id(t) for t in tenant_ids or []]
    planned = tenants_by_stream(active, contracts, chosen)
    changed = find_changed_units(conn, contracts, planned, read_all)
    for contract in contracts:
        if on_stream is not None:
            on_stream(contract, len(planned[contract.name]))
        outcomes = land_stream(conn, contract, changed.to_read[contract.name])
        save_landed_units(conn, changed, contract, outcomes)
        read = {o.tenant_id: o for o in outcomes}
        yield StreamLanding(
            contract, [read.get(t) or TenantLanding(t) for t in planned[contract.name]]
        )


def failure_summary(failures: dict[str, str]) -> str:
    """One line naming the tenant streams that failed (the first FAILURES_NAMED)."""
    named = list(failures.items())[:FAILURES_NAMED]
    return f"{len(failures)} tenant stream(s) could not be landed: " + "; ".join(
        f"{name}: {error}" for name, error in named
    )
