output "connection_ids" {
  description = "Airbyte connection id per \"<tenant>/<source>\" (`terraform output -json connection_ids`)."
  value       = module.tenant_connections.connection_ids
}
