variable "connections" {
  description = <<-EOT
    One entry per tenant and connected source, keyed "<tenant_id>/<source>", as written by
    `tenantpulse tenants connect` (tenants.auto.tfvars.json). configuration_json holds the
    connector's non-secret settings; the credential comes from connection_secrets.
  EOT
  type = map(object({
    tenant_id          = string
    source             = string
    workspace          = optional(string, "default")
    configuration_json = string
  }))

  validation {
    condition     = alltrue([for key, c in var.connections : key == "${c.tenant_id}/${c.source}"])
    error_message = "Each key of connections must be \"<tenant_id>/<source>\" of its own entry."
  }
  validation {
    condition     = alltrue([for c in values(var.connections) : can(regex("^[a-z0-9][a-z0-9_]{0,47}$", c.tenant_id))])
    error_message = "A tenant_id is 1-48 lowercase letters, digits and underscores."
  }
  validation {
    condition     = alltrue([for c in values(var.connections) : contains(["stripe", "github", "shopify", "google_analytics"], c.source)])
    error_message = "A source is one of stripe, github, shopify, google_analytics."
  }
  validation {
    condition     = alltrue([for c in values(var.connections) : contains(keys(var.workspaces), c.workspace)])
    error_message = "Every connection's workspace must be a key of var.workspaces."
  }
}

variable "connection_secrets" {
  description = "The credential of each connection, keyed like connections (tenant_secrets.tfvars.json, outside git)."
  type        = map(string)
  sensitive   = true
}

variable "workspaces" {
  description = <<-EOT
    Airbyte workspace id per workspace group ("default" and any others a connection names). A
    destination is created in each. Workspaces of one organisation share its connection limit:
    see terraform/README.md.
  EOT
  type        = map(string)
}

variable "destination_kind" {
  description = <<-EOT
    Where Airbyte writes each tenant's streams: "postgres" (destination-postgres: the tables
    user_<tenant>.<source>_<stream>, settings in `destination`) or "s3" (destination-s3, any
    S3-compatible store: Parquet files user_<tenant>/<source>_<stream>/<date>_<epoch>_<part>.parquet,
    the layout of the embedded default's TENANTPULSE_RAW_PATH, settings in `s3_destination`).
  EOT
  type        = string
  default     = "postgres"
  validation {
    condition     = contains(["postgres", "s3"], var.destination_kind)
    error_message = "destination_kind must be \"postgres\" or \"s3\"."
  }
}

variable "destination" {
  description = "The Postgres warehouse Airbyte writes user_<tenant> schemas into (destination-postgres settings, no password); with destination_kind = \"postgres\"."
  type = object({
    host     = string
    port     = optional(number, 5432)
    database = string
    username = string
    schema   = optional(string, "public")
    ssl_mode = optional(string, "require")
  })
  default = null
}

variable "s3_destination" {
  description = "The bucket Airbyte writes Parquet files into (destination-s3 settings, no secret key); with destination_kind = \"s3\". `endpoint`: an S3-compatible server's URL (MinIO, R2), empty for AWS."
  type = object({
    bucket_name   = string
    bucket_path   = string
    bucket_region = optional(string, "")
    endpoint      = optional(string, "")
    access_key_id = string
  })
  default = null
}

variable "destination_password" {
  description = "The warehouse user's password (postgres), or the bucket's secret access key (s3)."
  type        = string
  sensitive   = true
}

variable "cron_expression" {
  description = "When each connection syncs: Airbyte's Quartz cron (seconds first). Default: every day at 02:00."
  type        = string
  default     = "0 0 2 * * ?"
}

variable "name_prefix" {
  description = "Prefix of the Airbyte source, destination and connection names."
  type        = string
  default     = "tenantpulse"
}
