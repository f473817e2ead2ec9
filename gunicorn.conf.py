"""gunicorn reads this file from the working directory (`gunicorn wsgi:app` in the image, `make run`).

Without it a bad setting (a weak SECRET_KEY, say) only stops each worker as it boots: the master starts
another one forever and the dashboard never comes up, nor does the process exit. Checking the settings in the
master first makes gunicorn exit with code 2 and the one configuration-error line, like every entry point.
"""

from mailferry.logs import setup_logging
from mailferry.settings import settings_or_exit


def on_starting(server) -> None:
    settings_or_exit()


def post_worker_init(worker) -> None:
    """The dashboard's own log lines in LOG_FORMAT like every process (gunicorn's access log keeps its own)."""
    settings = settings_or_exit()
    setup_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
