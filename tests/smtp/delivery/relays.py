"""Loopback SMTP relays for tests: aiosmtpd with a certificate from a throwaway CA (trusted by the worker
through SMTP_RELAY_CA_FILE), STARTTLS or implicit TLS, AUTH required, counting connections."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import warnings
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.smtp.delivery.sink import SinkHandler
from tests.smtp.delivery.tls import context_for

USER, PASSWORD = "relay-user@relay.test", "s3cret-relay-passw0rd"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class RelayCA:
    """A CA certificate (the file for SMTP_RELAY_CA_FILE) and server contexts signed by it."""

    def __init__(self, directory: str):
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(_name("Mailferry Test CA")).issuer_name(_name("Mailferry Test CA"))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.ca_file = os.path.join(directory, "relay-ca.pem")
        with open(self.ca_file, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))

    def server_context(self, ip: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_name(ip)).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        return context_for(self.directory, ip, cert, key)


@dataclass(frozen=True)
class RelayLogin:
    mechanism: str
    user: str


class RelayHandler(SinkHandler):
    def __init__(self, user: str, password: str):
        super().__init__()
        self.user, self.password = user.encode(), password.encode()
        self.logins: list[RelayLogin] = []
        self.failed_logins = 0

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (self.user, self.password)
        if ok:
            self.logins.append(RelayLogin(mechanism, auth_data.login.decode()))
        else:
            self.failed_logins += 1
        return AuthResult(success=ok, handled=False)


class CountingController(Controller):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections = 0

    def factory(self):
        self.connections += 1
        with warnings.catch_warnings():  # "AUTH without TLS": on the implicit TLS relay it is TLS all along
            warnings.simplefilter("ignore", UserWarning)
            return super().factory()


class RelayServer:
    """mode "starttls" (587-style: STARTTLS required before AUTH) or "ssl" (465-style implicit TLS)."""

    def __init__(self, ca: RelayCA, ip: str, port: int, *, mode: str = "starttls", mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
                 user: str = USER, password: str = PASSWORD):
        self.ip, self.port, self.mode = ip, port, mode
        self.handler = RelayHandler(user, password)
        context = ca.server_context(ip)
        excluded = [m for m in ("PLAIN", "LOGIN") if m not in mechanisms]
        common = dict(authenticator=self.handler.authenticate, auth_required=True, auth_exclude_mechanism=excluded,
                      server_hostname=f"relay-{ip}", ready_timeout=10)
        if mode == "ssl":  # TLS from the first byte: aiosmtpd's require-TLS-for-AUTH only knows STARTTLS
            self.controller = CountingController(self.handler, hostname=ip, port=port, ssl_context=context,
                                                 auth_require_tls=False, **common)
        else:
            self.controller = CountingController(self.handler, hostname=ip, port=port, tls_context=context,
                                                 require_starttls=True, auth_require_tls=True, **common)

    @property
    def messages(self):
        return self.handler.messages

    @property
    def connections(self) -> int:
        return self.controller.connections

    def start(self) -> "RelayServer":
        self.controller.start()
        self.controller.connections = 0  # the controller's own readiness probe is not a client
        return self

    def stop(self) -> None:
        self.controller.stop()

    def config(self, name: str, **overrides) -> dict:
        entry = {"name": name, "host": self.ip, "port": self.port, "user": USER, "password": PASSWORD,
                 "use_tls": self.mode == "starttls", "use_ssl": self.mode == "ssl", "from_policy": "keep"}
        return {**entry, **overrides}


def relays_env(*entries: dict) -> dict[str, str]:
    """Settings for relays given only as SMTP_RELAYS (SMTP_HOST left empty)."""
    return {"SMTP_RELAYS": json.dumps(list(entries))}


def primary_env(relay: RelayServer, **overrides) -> dict[str, str]:
    """The relay as the primary one (SMTP_HOST ...)."""
    env = {"SMTP_HOST": relay.ip, "SMTP_PORT": str(relay.port), "SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD,
           "SMTP_USE_TLS": str(relay.mode == "starttls").lower(), "SMTP_USE_SSL": str(relay.mode == "ssl").lower()}
    return {**env, **{k: str(v) for k, v in overrides.items()}}
