"""RedisStore over TLS (``rediss://``) against a real redis-server with a throwaway CA."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sessionkit.errors import StoreUnavailable
from sessionkit.ids import digest, new_id
from sessionkit.stores.base import RecordMeta, Write
from sessionkit.stores.redis import RedisStore
from sessionkit.testing import FakeClock
from tests import servers
from tests.stores.test_redis import unique_prefix


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
    signer: ec.EllipticCurvePrivateKey, *, ca: bool,
) -> x509.Certificate:  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # Python 3.13 verifies strictly (VERIFY_X509_STRICT): key identifiers are required
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False,
        )  # fmt: skip
        builder = builder.add_extension(usage, critical=True)
    else:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


def _write_pki(directory: Path) -> dict[str, Path]:
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _certificate("sessionkit test CA", ca_key, None, ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, ca.subject, ca_key, ca=False)
    paths = {"ca": directory / "ca.pem", "cert": directory / "server.pem",
             "key": directory / "server.key"}  # fmt: skip
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    return paths


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    pki = _write_pki(tmp_path_factory.mktemp("redis-tls"))
    tls_port = servers.free_port()
    server = servers.redis_server(
        None, "--tls-port", str(tls_port), "--tls-cert-file", str(pki["cert"]),
        "--tls-key-file", str(pki["key"]), "--tls-ca-cert-file", str(pki["ca"]),
        "--tls-auth-clients", "no", name="redis-tls",
    )  # fmt: skip
    yield tls_port, pki["ca"]
    server.close()


def test_round_trip_over_tls(tls_redis: tuple[int, Path], clock: FakeClock) -> None:
    port, ca = tls_redis
    store = RedisStore.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}",
                                prefix=unique_prefix(), clock=clock)  # fmt: skip
    key = digest(new_id())
    meta = RecordMeta(created=int(clock.now), last_seen=int(clock.now), user="tls")
    assert store.save(Write(key, {"a": "1"}, frozenset(), meta, 60.0, create=True))
    record = store.load(key)
    assert record is not None and dict(record.items) == {"a": "1"}

    async def main() -> None:
        assert await store.atouch(key, int(clock.now) + 1, 60.0)
        assert [i.user for i in await store.auser_sessions("tls")] == ["tls"]
        await store.aclose()

    asyncio.run(main())


def test_an_unknown_certificate_authority_is_refused(
    tls_redis: tuple[int, Path], clock: FakeClock
) -> None:
    port, _ = tls_redis
    store = RedisStore.from_url(f"rediss://127.0.0.1:{port}/0?socket_connect_timeout=2",
                                clock=clock)  # fmt: skip
    with pytest.raises(StoreUnavailable, match="certificate verify failed"):
        store.load(digest(new_id()))
    store.close()
