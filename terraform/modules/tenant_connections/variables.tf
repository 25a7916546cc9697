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

variable "destination" {
  description = "The Postgres warehouse Airbyte writes user_<tenant> schemas into (destination-postgres settings, no password)."
  type = object({
    host     = string
    port     = optional(number, 5432)
    database = string
    username = string
    schema   = optional(string, "public")
    ssl_mode = optional(string, "require")
  })
}

variable "destination_password" {
  description = "The warehouse user's password."
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
