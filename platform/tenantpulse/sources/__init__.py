"""Stream contracts (what Airbyte writes per tenant) and the local source simulator."""
