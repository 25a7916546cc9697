"""Stream contracts (what Airbyte writes per tenant), raw tables as Airbyte creates them, and the
sync history; the local source simulator is `tenantpulse.simulator`."""
