"""The `tenants` dynamic partitions, one key per registered tenant id."""

from dagster import DynamicPartitionsDefinition

tenant_partitions = DynamicPartitionsDefinition(name="tenants")
