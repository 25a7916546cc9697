"""Airbyte mode: which connections are whose, syncs through dagster-airbyte's client, job polling."""
