terraform {
  # 1.9: variable validations may refer to other variables.
  required_version = ">= 1.9"

  required_providers {
    airbyte = {
      source = "airbytehq/airbyte"
      # v1: the generic airbyte_source / airbyte_destination with a JSON configuration
      # (the typed airbyte_source_stripe & co. are removed in 1.1).
      version = ">= 1.0, < 2.0"
    }
  }
}
