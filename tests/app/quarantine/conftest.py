from tests.app.web_fixtures import *  # noqa: F401,F403  (shared dashboard fixtures)
