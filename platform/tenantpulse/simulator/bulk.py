"""Bulk mode: thousands of tenants' syncs from a few generated worlds (docs/simulator.md).

Each tenant is given one of `templates_per_profile` template worlds of its profile
(`ops.simulator_templates`); `run_simulation` then generates each template's sync once per window
and writes it under every tenant of that template with the tenant's own names
(simulator/templates.py). The normal `tenantpulse simulate` continues the same way: a tenant keeps
its template for good, so its next day is its template's next day.
"""

from __future__ import annotations

from tenantpulse.config import SimulatorSettings
from tenantpulse.simulator.demo_tenants import DEMO_TENANTS
from tenantpulse.simulator.profiles import default_profile_for
from tenantpulse.simulator.run import (
    SimulatedSync,
    assign_profiles,
    ensure_simulator_tables,
    run_simulation,
)
from tenantpulse.simulator.world import stable_hash
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.registry import Tenant, add_tenants, list_tenants
from tenantpulse.warehouse import Connection, Warehouse

TEMPLATES_PER_PROFILE = 8
MAX_TEMPLATES_PER_PROFILE = 100


def template_world_id(profile: str, index: int) -> str:
    """The world of a profile's `index`-th template. A world does not depend on which sources
    are connected (each source is generated on its own), so one pool serves every source mix."""
    return validate_tenant_id(f"template_{profile}_{index:02d}")


def assign_templates(
    conn: Connection, tenants: list[Tenant], templates_per_profile: int = TEMPLATES_PER_PROFILE
) -> int:
    """Give each tenant that has no template and was never simulated one of its profile's
    templates (a stable pick from its id); the number given. A tenant already simulated keeps its
    own world: switching worlds would contradict the history it has."""
    if not 1 <= templates_per_profile <= MAX_TEMPLATES_PER_PROFILE:
        raise ValueError(
            f"templates_per_profile must be 1-{MAX_TEMPLATES_PER_PROFILE}, "
            f"got {templates_per_profile!r}"
        )
    ensure_simulator_tables(conn)
    taken = {t for (t,) in conn.fetch_all("select tenant_id from ops.simulator_templates")}
    taken |= {t for (t,) in conn.fetch_all("select distinct tenant_id from ops.simulator_state")}
    profiles = dict(conn.fetch_all("select tenant_id, profile from ops.simulator_profiles"))
    given = 0
    for tenant in tenants:
        if tenant.tenant_id in taken:
            continue
        profile = profiles.get(tenant.tenant_id) or default_profile_for(tenant.tenant_id)
        world_id = template_world_id(profile, stable_hash(tenant.tenant_id) % templates_per_profile)
        conn.execute(
            "insert into ops.simulator_templates (tenant_id, world_id) values (%s, %s)",
            (tenant.tenant_id, world_id),
        )
        given += 1
    return given


def register_bulk_tenants(conn: Connection, count: int, prefix: str = "bulk") -> list[Tenant]:
    """Register `count` tenants `<prefix>_00000`, ... cycling through the demo's six (profile,
    sources) pairs, as the bench does; the registered tenants."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count!r}")
    width = max(5, len(str(count - 1)))
    ids = [validate_tenant_id(f"{prefix}_{i:0{width}d}") for i in range(count)]
    pairs = [(tenant_id, DEMO_TENANTS[i % len(DEMO_TENANTS)]) for i, tenant_id in enumerate(ids)]
    add_tenants(conn, [(tenant_id, tenant_id, demo.sources) for tenant_id, demo in pairs])
    assign_profiles(conn, [(tenant_id, demo.profile) for tenant_id, demo in pairs])
    wanted = set(ids)
    return [t for t in list_tenants(conn) if t.tenant_id in wanted]


def run_bulk_simulation(
    warehouse: Warehouse,
    tenants: list[Tenant],
    settings: SimulatorSettings,
    workers: int = 1,
    templates_per_profile: int = TEMPLATES_PER_PROFILE,
    show_progress: bool = True,
) -> list[SimulatedSync]:
    """One new sync of every tenant and connected source, tenants not yet simulated getting a
    template first: a first sync or a next day, `workers` processes on Postgres."""
    with warehouse.connect() as conn:
        assign_templates(conn, tenants, templates_per_profile)
        conn.commit()
    return run_simulation(warehouse, tenants, settings, show_progress, workers)
