"""Test certificates for the TLS tests, made with the ``cryptography`` package.

:func:`make_certs` writes, into one directory, everything both brokers and every client need:

* ``ca``: the test CA both brokers trust (``ca.pem``);
* ``server``: 127.0.0.1 / localhost (SAN IP + DNS), signed by the CA; ``server.pem`` holds its
  unencrypted PKCS#8 key followed by the chain, the single-file PEM keystore Kafka and Odradek read;
* ``client``: ``CN=alice-cert,OU=test,O=odradek`` signed by the CA (the SSL principal
  ``User:CN=alice-cert,OU=test,O=odradek``);
* ``expired_client``: the same subject, signed by the CA, expired yesterday;
* ``other_ca`` with ``untrusted_client`` and ``untrusted_server``: a second CA nobody trusts.

The subject's RDNs are written O, OU, CN so that the RFC 2253 string Kafka derives (most specific first)
reads ``CN=alice-cert,OU=test,O=odradek``. Keys are EC P-256: quick to make, accepted by Java, OpenSSL
and Python's ``ssl``. Only the standard library is imported at module level.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

CLIENT_DN = "CN=alice-cert,OU=test,O=odradek"
CLIENT_PRINCIPAL = f"User:{CLIENT_DN}"


@dataclass(frozen=True)
class Pem:
    """One certificate with its key: the files (``cert``, ``key``, ``bundle`` = key + cert + CA chain)
    and their texts."""

    cert: Path
    key: Path
    bundle: Path

    @property
    def cert_text(self) -> str:
        return self.cert.read_text()

    @property
    def key_text(self) -> str:
        return self.key.read_text()

    @property
    def chain_text(self) -> str:
        """Leaf then issuer(s): what ``ssl.keystore.certificate.chain`` takes."""
        text = self.bundle.read_text()
        return text[text.index("-----BEGIN CERTIFICATE-----") :]


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Pem
    server: Pem
    client: Pem
    expired_client: Pem
    other_ca: Pem
    untrusted_client: Pem
    untrusted_server: Pem

    @property
    def ca_file(self) -> Path:
        return self.ca.cert

    @property
    def ca_text(self) -> str:
        return self.ca.cert_text


def make_certs(directory: Path) -> Certs:
    """Write a fresh set of test certificates into ``directory`` (created if needed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)

    def name(cn: str, ou: str | None = None) -> x509.Name:
        rdns = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "odradek")]
        if ou:
            rdns.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
        rdns.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        return x509.Name(rdns)

    def write(stem: str, key, cert: x509.Certificate, chain: list[x509.Certificate]) -> Pem:
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        paths = Pem(directory / f"{stem}.crt", directory / f"{stem}.key", directory / f"{stem}.pem")
        paths.cert.write_bytes(cert_pem)
        paths.key.write_bytes(key_pem)
        paths.key.chmod(0o600)
        paths.bundle.write_bytes(key_pem + cert_pem + chain_pem)
        return paths

    def issue(
        subject: x509.Name,
        issuer: tuple[x509.Name, object] | None,
        *,
        ca: bool = False,
        server: bool = False,
        not_before: datetime.datetime = now - day,
        not_after: datetime.datetime = now + 3650 * day,
    ) -> tuple[object, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        issuer_name, issuer_key = issuer if issuer else (subject, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if ca:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
            builder = builder.add_extension(usage, critical=True)
        else:
            usage = x509.KeyUsage(True, False, True, False, True, False, False, False, False)
            eku = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = builder.add_extension(usage, critical=True).add_extension(
                x509.ExtendedKeyUsage([eku]), critical=False
            )
        if server:
            sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if issuer:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
            builder = builder.add_extension(aki, critical=False)
        return key, builder.sign(issuer_key if issuer else key, hashes.SHA256())

    ca_key, ca_cert = issue(name("odradek test CA", "test"), None, ca=True)
    ca = write("ca", ca_key, ca_cert, [])
    signer = (ca_cert.subject, ca_key)
    server = write("server", *issue(name("localhost", "test"), signer, server=True), [ca_cert])
    client = write("client", *issue(name("alice-cert", "test"), signer), [ca_cert])
    expired = write(
        "expired-client",
        *issue(name("alice-cert", "test"), signer, not_before=now - 30 * day, not_after=now - day),
        [ca_cert],
    )
    other_key, other_cert = issue(name("another test CA", "elsewhere"), None, ca=True)
    other = write("other-ca", other_key, other_cert, [])
    other_signer = (other_cert.subject, other_key)
    untrusted_client = write(
        "untrusted-client", *issue(name("alice-cert", "test"), other_signer), [other_cert]
    )
    untrusted_server = write(
        "untrusted-server", *issue(name("localhost", "test"), other_signer, server=True), [other_cert]
    )
    return Certs(directory, ca, server, client, expired, other, untrusted_client, untrusted_server)
