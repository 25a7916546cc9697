"""Pure analysis of tenants' daily metrics: patterns, health, churn and recommendations."""
