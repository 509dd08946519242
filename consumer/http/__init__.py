"""The one HTTP server: Afosto webhooks, health, readiness and metrics (DESIGN §5)."""
