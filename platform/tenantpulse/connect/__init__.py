"""Connect: tenants connecting their sources (OAuth with PKCE, or a pasted key), the token vault,
the refresher that keeps tokens alive, and the append-only connection event log."""
