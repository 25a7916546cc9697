"""The local source simulator: simulated tenants' Stripe, GitHub, Shopify and Google Analytics
syncs for the demo, the bench and the tests (docs/simulator.md). In the package, only the CLI
imports it."""

from tenantpulse.simulator.demo_tenants import DEMO_TENANTS, DemoTenant
from tenantpulse.simulator.generator import SyncWindow, generate_sync
from tenantpulse.simulator.profiles import PROFILES, default_profile_for, planted_anomaly_dates

__all__ = [
    "DEMO_TENANTS",
    "PROFILES",
    "DemoTenant",
    "SyncWindow",
    "default_profile_for",
    "generate_sync",
    "planted_anomaly_dates",
]
