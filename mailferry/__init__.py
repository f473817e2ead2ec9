"""Code shared by the dashboard (app/), the SMTP server (smtp/) and the worker: settings, database, models, queue."""
