"""The demo's tenants: who they are, which sources each connects and which simulated business
(profile) each one is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoTenant:
    tenant_id: str
    name: str
    sources: tuple[str, ...]
    profile: str


_ALL_SOURCES = ("stripe", "github", "shopify", "google_analytics")

DEMO_TENANTS: tuple[DemoTenant, ...] = (
    DemoTenant("acme_growth", "Acme Growth", _ALL_SOURCES, "steady_growth"),
    DemoTenant("globex_churn", "Globex", _ALL_SOURCES, "churning"),
    DemoTenant("initech_weekly", "Initech", _ALL_SOURCES, "seasonal"),
    DemoTenant(
        "umbrella_spikes", "Umbrella", ("stripe", "shopify", "google_analytics"), "anomalous"
    ),
    DemoTenant("hooli_eng", "Hooli", ("stripe", "github"), "slowing_team"),
    DemoTenant("piper_lite", "Pied Piper", ("stripe",), "steady_growth"),
)
