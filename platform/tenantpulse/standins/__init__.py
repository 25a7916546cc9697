"""Stand-ins for the outside services tenantpulse talks to, for local demos and tests: they are
not the services. `oauth_provider` plays an OAuth 2.0 provider (not GitHub, Shopify or Google),
`airbyte_api` plays Airbyte's API (its syncs run the local source simulator), and `connect_demo`
starts both with the web app and a Dagster daemon (`tenantpulse connect-demo`, docs/connect.md).
All of them listen on 127.0.0.1 only."""
