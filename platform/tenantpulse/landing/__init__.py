"""The landing layer: each tenant's new raw rows merged into one multi-tenant table per stream."""
