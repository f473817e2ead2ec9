import pytest

from tests.app.web_fixtures import *  # noqa: F401,F403  (shared dashboard fixtures)


@pytest.fixture
def web_settings(app_settings, redis_url):
    """The production default for this feature: destinations must be confirmed."""
    return app_settings.replace(REDIS_URL=redis_url, REQUIRE_VERIFIED_DESTINATIONS=True)
