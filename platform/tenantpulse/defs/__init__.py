"""Dagster wiring only: each module turns one stage of the flow into assets, checks or sensors."""
