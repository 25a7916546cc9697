"""Tenants: id validation, the registry table `ops.tenants`, onboarding."""
