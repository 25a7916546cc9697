"""Keep the `tenants` partitions equal to the active tenants of the registry."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from tenantpulse.config import parse_warehouse_url
from tenantpulse.defs.flow import warehouse_in_use
from tenantpulse.defs.partitions import tenant_partitions
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import WarehouseBusyError


def partition_changes(registered: list[str], existing: list[str]) -> tuple[list[str], list[str]]:
    """(keys to add, keys to delete) that make `existing` partitions equal `registered` tenants."""
    registered_set, existing_set = set(registered), set(existing)
    return (
        [t for t in registered if t not in existing_set],
        [t for t in existing if t not in registered_set],
    )


def sync_tenant_partitions(instance, registered: list[str]) -> tuple[list[str], list[str]]:
    """Apply the changes directly (the demo and CLI, which have no daemon running the sensor)."""
    to_add, to_delete = partition_changes(
        registered, list(instance.get_dynamic_partitions(tenant_partitions.name))
    )
    if to_add:
        instance.add_dynamic_partitions(tenant_partitions.name, to_add)
    for key in to_delete:
        instance.delete_dynamic_partition(tenant_partitions.name, key)
    return to_add, to_delete


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Keeps the `tenants` partitions equal to the active tenants of ops.tenants: adds "
    "a partition for each newly registered tenant, deletes those of removed tenants.",
)
def tenant_partitions_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    """Adds a partition for each newly registered tenant and deletes those of removed tenants."""
    if warehouse_in_use(parse_warehouse_url(warehouse.url).dialect, context.instance):
        return SkipReason("a run is using the DuckDB warehouse; will look after it")
    try:
        with warehouse.open().connect() as conn:
            registered = [t.tenant_id for t in list_tenants(conn)]
    except WarehouseBusyError as busy:
        return SkipReason(f"warehouse busy, will retry: {busy}")
    to_add, to_delete = partition_changes(
        registered, list(context.instance.get_dynamic_partitions(tenant_partitions.name))
    )
    if not to_add and not to_delete:
        return SkipReason(f"{len(registered)} tenants, partitions up to date")
    context.log.info(f"tenants partitions: adding {to_add}, deleting {to_delete}")
    return SensorResult(
        dynamic_partitions_requests=[
            tenant_partitions.build_add_request(to_add),
            tenant_partitions.build_delete_request(to_delete),
        ]
    )
