"""tenantpulse: tenants' connected sources to health scores, churn risk, insights and actions."""

__version__ = "0.1.0"
