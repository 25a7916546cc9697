"""The tenant-facing web app (Starlette on uvicorn): sign-in, each tenant's dashboard and API.
See web/app.py for where route modules plug in, and docs/web.md."""
