output "connection_ids" {
  description = "Airbyte connection id per \"<tenant>/<source>\": what Dagster syncs for a tenant."
  value       = { for key, c in airbyte_connection.tenant : key => c.connection_id }
}

output "source_ids" {
  description = "Airbyte source id per \"<tenant>/<source>\"."
  value       = { for key, s in airbyte_source.tenant : key => s.source_id }
}

output "destination_ids" {
  description = "Airbyte destination id per workspace group."
  value       = { for name, d in airbyte_destination.warehouse : name => d.destination_id }
}
