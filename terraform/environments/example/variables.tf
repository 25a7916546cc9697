variable "airbyte_server_url" {
  description = "The Airbyte API, e.g. http://localhost:8000/api/public/v1/ for a self-managed Airbyte."
  type        = string
}

variable "airbyte_client_id" {
  description = "Client id of an Airbyte application (Settings > Applications). Set TF_VAR_airbyte_client_id."
  type        = string
  sensitive   = true
}

variable "airbyte_client_secret" {
  description = "Client secret of that application. Set TF_VAR_airbyte_client_secret."
  type        = string
  sensitive   = true
}

variable "connections" {
  description = "Written by `tenantpulse tenants connect` into tenants.auto.tfvars.json."
  type = map(object({
    tenant_id          = string
    source             = string
    workspace          = optional(string, "default")
    configuration_json = string
  }))
  default = {}
}

variable "connection_secrets" {
  description = "Written by `tenantpulse tenants connect` into tenant_secrets.tfvars.json (0600, outside git)."
  type        = map(string)
  sensitive   = true
  default     = {}
}

variable "workspaces" {
  description = "Airbyte workspace id per workspace group; \"default\" at least."
  type        = map(string)
}

variable "destination_kind" {
  description = "\"postgres\" (tables) or \"s3\" (Parquet files in an S3-compatible bucket)."
  type        = string
  default     = "postgres"
}

variable "destination" {
  description = "The Postgres warehouse (no password), with destination_kind = \"postgres\"."
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
  description = "The bucket (no secret key), with destination_kind = \"s3\"."
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
  description = "The warehouse user's password, or the bucket's secret access key. Set TF_VAR_destination_password."
  type        = string
  sensitive   = true
}

variable "cron_expression" {
  description = "When each connection syncs (Airbyte Quartz cron)."
  type        = string
  default     = "0 0 2 * * ?"
}
