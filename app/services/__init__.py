"""Domain logic used by the CLI, the dashboard views and the API; no request objects in here."""
