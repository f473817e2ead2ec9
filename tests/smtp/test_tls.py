"""STARTTLS with the generated self-signed certificate."""

from __future__ import annotations

import os
import smtplib
import ssl
import subprocess
import sys

from cryptography import x509

from harness.databases import ROOT
from mailferry.models import Message
from smtp.certs import ensure_self_signed
from tests.smtp.test_server_accept import BODY, QUEUED_REPLY


def test_ensure_self_signed_writes_once_for_the_hostname(tmp_path):
    cert, key = str(tmp_path / "tls" / "cert.pem"), str(tmp_path / "tls" / "key.pem")
    assert ensure_self_signed(cert, key, "mx.mailferry.test") is True
    first = open(cert, "rb").read()
    assert ensure_self_signed(cert, key, "mx.mailferry.test") is False
    assert open(cert, "rb").read() == first
    loaded = x509.load_pem_x509_certificate(first)
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mx.mailferry.test"]
    assert os.stat(key).st_mode & 0o077 == 0


def test_certs_command_line(tmp_path):
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    run = subprocess.run([sys.executable, "-m", "smtp.certs", cert, key, "localhost"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert os.path.exists(cert) and os.path.exists(key)
    usage = subprocess.run([sys.executable, "-m", "smtp.certs"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_starttls_with_the_generated_certificate(world, start_server, tmp_path, db):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    ensure_self_signed(cert, key, "mx.mailferry.test")
    address = start_server(SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key)
    context = ssl.create_default_context(cafile=cert)  # trust exactly our certificate
    context.check_hostname = False  # we dial 127.0.0.1; the chain is still verified
    with smtplib.SMTP(*address, timeout=10) as client:
        client.ehlo("c.example.org")
        assert client.has_extn("starttls")
        code, _ = client.starttls(context=context)
        assert code == 220
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        peer = x509.load_der_x509_certificate(client.sock.getpeercert(binary_form=True))
        assert peer.subject.rfc4514_string() == "CN=mx.mailferry.test"
        client.ehlo("c.example.org")
        assert not client.has_extn("starttls")
        client.mail("s@example.org")
        client.rcpt("john@alias.test")
        code, reply = client.data(BODY)
    assert code == 250
    message_id = QUEUED_REPLY.match(reply).group(1).decode()
    with db.session() as s:
        assert s.get(Message, message_id).used_tls is True


def test_mail_before_ehlo_after_starttls_is_refused(world, start_server, tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    ensure_self_signed(cert, key, "mx.mailferry.test")
    address = start_server(SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key)
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False
    with smtplib.SMTP(*address, timeout=10) as client:
        client.ehlo("c.example.org")
        client.starttls(context=context)
        code, _ = client.docmd("MAIL", "FROM:<s@example.org>")
        assert code == 503  # RFC 3207: the session state is reset after TLS starts


def test_failed_tls_handshake_closes_that_session_only(world, start_server, tmp_path):
    from tests.smtp.conftest import RawClient

    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    ensure_self_signed(cert, key, "mx.mailferry.test")
    address = start_server(SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key)
    client = RawClient(address)
    try:
        client.cmd("EHLO c.example.org")
        assert client.cmd("STARTTLS").startswith("220")
        client.send(b"this is not a TLS ClientHello\r\n" * 4)
        assert client.closed()
    finally:
        client.close()
    other = RawClient(address)
    try:
        assert other.greeting.startswith("220 mx.mailferry.test")
        assert "STARTTLS" in other.cmd("EHLO c.example.org")
    finally:
        other.close()
