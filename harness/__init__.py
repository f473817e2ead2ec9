"""Real components on loopback, shared by tests/ and bench/: SQLite and PostgreSQL databases with the schema,
a private Redis, rspamd, a DNS server, free ports, and settings built without reading the environment."""
