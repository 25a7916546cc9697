# The streams each connection syncs and how: shared/SOURCES.md and
# platform/tenantpulse/sources/contracts.py (tests/test_terraform.py keeps the three equal).
# Every stream has a primary key and a cursor, so each is incremental with deduplication.
locals {
  streams = {
    stripe = [
      { name = "customers", sync_mode = "incremental_deduped_history", cursor_field = ["updated"], primary_key = [["id"]] },
      { name = "charges", sync_mode = "incremental_deduped_history", cursor_field = ["updated"], primary_key = [["id"]] },
      { name = "subscriptions", sync_mode = "incremental_deduped_history", cursor_field = ["updated"], primary_key = [["id"]] },
      { name = "invoices", sync_mode = "incremental_deduped_history", cursor_field = ["updated"], primary_key = [["id"]] },
      { name = "refunds", sync_mode = "incremental_deduped_history", cursor_field = ["updated"], primary_key = [["id"]] },
    ]
    github = [
      { name = "repositories", sync_mode = "incremental_deduped_history", cursor_field = ["updated_at"], primary_key = [["id"]] },
      { name = "pull_requests", sync_mode = "incremental_deduped_history", cursor_field = ["updated_at"], primary_key = [["id"]] },
      { name = "commits", sync_mode = "incremental_deduped_history", cursor_field = ["created_at"], primary_key = [["sha"]] },
      { name = "issues", sync_mode = "incremental_deduped_history", cursor_field = ["updated_at"], primary_key = [["id"]] },
      { name = "reviews", sync_mode = "incremental_deduped_history", cursor_field = ["updated_at"], primary_key = [["id"]] },
    ]
    shopify = [
      { name = "orders", sync_mode = "incremental_deduped_history", cursor_field = ["updated_at"], primary_key = [["id"]] },
      { name = "customers", sync_mode = "incremental_deduped_history", cursor_field = ["updated_at"], primary_key = [["id"]] },
      { name = "products", sync_mode = "incremental_deduped_history", cursor_field = ["updated_at"], primary_key = [["id"]] },
    ]
    google_analytics = [
      { name = "website_overview", sync_mode = "incremental_deduped_history", cursor_field = ["date"], primary_key = [["property_id"], ["date"]] },
      { name = "traffic_sources", sync_mode = "incremental_deduped_history", cursor_field = ["date"], primary_key = [["property_id"], ["date"], ["sessionSource"], ["sessionMedium"]] },
      { name = "devices", sync_mode = "incremental_deduped_history", cursor_field = ["date"], primary_key = [["property_id"], ["date"], ["deviceCategory"], ["operatingSystem"], ["browser"]] },
      { name = "conversions_report", sync_mode = "incremental_deduped_history", cursor_field = ["date"], primary_key = [["property_id"], ["date"], ["eventName"]] },
    ]
  }
}
