"""RSA keys for the ARC tests, published on the loopback DNS, and dkimpy's dnsfunc for the receiver side."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailferry.dkim_keys import SigningKey
from mailferry.dns_lookup import txt_records


def new_key(domain: str, selector: str = "s1") -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return SigningKey(domain=domain, selector=selector, algorithm="rsa", private_pem=pem)


def publish(dns_server, key: SigningKey) -> None:
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    dns_server.set(f"{key.selector}._domainkey.{key.domain}", "TXT",
                   f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}")


class Dns:
    """dkimpy's dnsfunc for the receiver side of the test: the same loopback DNS server."""

    def __init__(self, resolver):
        self.resolver = resolver

    def __call__(self, name: bytes, timeout: float = 5) -> bytes:
        texts = txt_records(self.resolver, name.decode())
        return texts[0].encode() if texts else b""
