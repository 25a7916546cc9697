# The environment's non-secret settings (a template: copy, fill in, keep it beside main.tf).
# Credentials never go here: the Airbyte application and warehouse password come from
# TF_VAR_airbyte_client_id, TF_VAR_airbyte_client_secret and TF_VAR_destination_password; the
# tenants' credentials from the secrets file `tenantpulse tenants connect` writes.
airbyte_server_url = "http://localhost:8000/api/public/v1/"

workspaces = {
  default = "00000000-0000-0000-0000-000000000000" # your workspace id (from the Airbyte UI's URL)
}

destination = {
  host     = "warehouse.internal"
  database = "tenantpulse"
  username = "airbyte"
}
