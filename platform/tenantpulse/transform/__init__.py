"""The dbt project's link to the platform: its location, its environment, and running it."""
