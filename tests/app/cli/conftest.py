import json

import pytest

from app import create_app
from harness.settings import make_settings
from tests.app.conftest import HOSTNAME, SERVER_IP


@pytest.fixture
def cli_app(db_url, redis_url, dns_server):
    app = create_app(make_settings(DATABASE_URL=db_url, REDIS_URL=redis_url, DNS_NAMESERVERS=dns_server.nameservers,
                                   DNS_TIMEOUT=1, SMTP_PUBLIC_IPS=SERVER_IP, SMTP_HOSTNAME=HOSTNAME))
    yield app
    app.extensions["mailferry.db"].dispose()


class Cli:
    def __init__(self, app):
        self.runner = app.test_cli_runner()

    def __call__(self, *args: str, code: int = 0):
        result = self.runner.invoke(args=list(args))
        assert result.exit_code == code, (args, result.exit_code, result.output, result.exception)
        return result

    def json(self, *args: str, code: int = 0):
        return json.loads(self(*args, "--json", code=code).stdout)


@pytest.fixture
def cli(cli_app):
    return Cli(cli_app)
