# One environment = one Airbyte deployment = one Terraform state holding every tenant's
# connections. Copy this folder per environment (staging, production); never keep a state per
# tenant. Run from this folder:
#   terraform init
#   terraform plan  -var-file="$TENANTPULSE_HOME/terraform/tenants.auto.tfvars.json" \
#                   -var-file="$TENANTPULSE_HOME/terraform/tenant_secrets.tfvars.json" -out=tenants.plan
#   terraform apply tenants.plan
# (see terraform/README.md for the remaining variables and the state backend).

terraform {
  required_version = ">= 1.9"

  required_providers {
    airbyte = {
      source  = "airbytehq/airbyte"
      version = ">= 1.0, < 2.0"
    }
  }

  # The state holds the tenants' credentials (inside each source's configuration): keep it in an
  # encrypted, access-controlled backend, one key per environment, e.g.
  # backend "s3" {
  #   bucket       = "<your-state-bucket>"
  #   key          = "tenantpulse/example/airbyte.tfstate"
  #   region       = "<region>"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "airbyte" {
  server_url    = var.airbyte_server_url
  client_id     = var.airbyte_client_id
  client_secret = var.airbyte_client_secret
}

module "tenant_connections" {
  source = "../../modules/tenant_connections"

  connections          = var.connections
  connection_secrets   = var.connection_secrets
  workspaces           = var.workspaces
  destination_kind     = var.destination_kind
  destination          = var.destination
  s3_destination       = var.s3_destination
  destination_password = var.destination_password
  cron_expression      = var.cron_expression
}
