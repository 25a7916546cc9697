# For every tenant and connected source: one Airbyte source and one connection to the destination
# of its workspace group (Postgres: user_<tenant>.<source>_<stream> tables; S3: Parquet files under
# user_<tenant>/<source>_<stream>/, the embedded default's raw layout). for_each over
# var.connections keyed "<tenant>/<source>": adding a tenant adds its resources and changes no
# other tenant's (a count, or one state applied per tenant with -var, would rewrite them).

locals {
  source_definition_ids = {
    stripe           = "e094cb9a-26de-4645-8761-65c0c425d1de"
    github           = "ef69ef6e-aa7f-4af1-a01d-ef775033524e"
    shopify          = "9da77001-af33-4bcd-be46-6252bf9342b9"
    google_analytics = "3cc2eafd-84aa-4dca-93af-322d9dfeec1a" # source-google-analytics-data-api
  }
  destination_definition_ids = {
    postgres = "25c5221d-dce2-4163-ade9-739ef790f503"
    s3       = "4816b78f-1489-44c1-9060-4b19d5fa9362"
  }
  # try(): only the chosen kind's settings are set. The S3 path is destination-s3's default
  # format, which the connection's namespace and prefix make user_<tenant>/<source>_<stream>/.
  destination_configuration = {
    postgres = try(jsonencode({
      host     = var.destination.host
      port     = var.destination.port
      database = var.destination.database
      schema   = var.destination.schema
      username = var.destination.username
      password = var.destination_password
      ssl_mode = { mode = var.destination.ssl_mode }
    }), null)
    s3 = try(jsonencode({
      s3_bucket_name    = var.s3_destination.bucket_name
      s3_bucket_path    = var.s3_destination.bucket_path
      s3_bucket_region  = var.s3_destination.bucket_region
      s3_endpoint       = var.s3_destination.endpoint
      access_key_id     = var.s3_destination.access_key_id
      secret_access_key = var.destination_password
      s3_path_format    = "$${NAMESPACE}/$${STREAM_NAME}/$${YEAR}_$${MONTH}_$${DAY}_$${EPOCH}_"
      format            = { format_type = "Parquet", compression_codec = "SNAPPY" }
    }), null)
  }

  # Where each connector's spec expects the one credential; JSON strings, because the shapes
  # differ and a conditional or map needs one type.
  credential_configuration = {
    for key, c in var.connections : key => {
      stripe = jsonencode({ client_secret = lookup(var.connection_secrets, key, "") })
      github = jsonencode({ credentials = {
        option_title          = "PAT Credentials"
        personal_access_token = lookup(var.connection_secrets, key, "")
      } })
      shopify = jsonencode({ credentials = {
        auth_method  = "api_password"
        api_password = lookup(var.connection_secrets, key, "")
      } })
      google_analytics = jsonencode({ credentials = {
        auth_type        = "Service"
        credentials_json = lookup(var.connection_secrets, key, "")
      } })
    }[c.source]
  }
}

resource "airbyte_destination" "warehouse" {
  for_each = var.workspaces

  name          = "${var.name_prefix}-warehouse-${each.key}"
  workspace_id  = each.value
  definition_id = local.destination_definition_ids[var.destination_kind]
  configuration = local.destination_configuration[var.destination_kind]

  lifecycle {
    precondition {
      condition     = local.destination_configuration[var.destination_kind] != null
      error_message = "destination_kind = \"${var.destination_kind}\" needs its settings: `destination` for postgres, `s3_destination` for s3."
    }
  }
}

resource "airbyte_source" "tenant" {
  for_each = var.connections

  name          = "${var.name_prefix}-${each.value.tenant_id}-${each.value.source}"
  workspace_id  = var.workspaces[each.value.workspace]
  definition_id = local.source_definition_ids[each.value.source]
  configuration = jsonencode(merge(
    jsondecode(each.value.configuration_json),
    jsondecode(local.credential_configuration[each.key]),
  ))

  lifecycle {
    precondition {
      # The keys are not secret; only the values are.
      condition     = contains(nonsensitive(keys(var.connection_secrets)), each.key)
      error_message = "No credential for ${each.key} in connection_secrets: run `tenantpulse tenants connect ${each.value.tenant_id} ${each.value.source} --replace` and pass -var-file with the secrets file."
    }
  }
}

resource "airbyte_connection" "tenant" {
  for_each = var.connections

  name           = "${var.name_prefix}-${each.value.tenant_id}-${each.value.source}"
  source_id      = airbyte_source.tenant[each.key].source_id
  destination_id = airbyte_destination.warehouse[each.value.workspace].destination_id

  namespace_definition                 = "custom_format"
  namespace_format                     = "user_${each.value.tenant_id}"
  prefix                               = "${each.value.source}_"
  non_breaking_schema_updates_behavior = "propagate_columns"
  status                               = "active"

  configurations = {
    streams = local.streams[each.value.source]
  }

  schedule = {
    schedule_type   = "cron"
    cron_expression = var.cron_expression
  }
}
