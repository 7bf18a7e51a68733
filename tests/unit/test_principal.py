"""Client-certificate principals: the subject DN in RFC 2253 order, and ssl.principal.mapping.rules."""

from __future__ import annotations

import datetime
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from odradek.config import ConfigError
from odradek.security.principal import NoMatchingRule, PrincipalMapper, subject_dn


def der_with_subject(*attributes: tuple[x509.ObjectIdentifier, str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_subject_dn_is_most_specific_first_with_escapes():
    der = der_with_subject(
        (NameOID.COUNTRY_NAME, "DE"),
        (NameOID.ORGANIZATION_NAME, "Odradek, Inc"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "ops"),
        (NameOID.COMMON_NAME, "alice"),
    )
    assert subject_dn(der) == "CN=alice,OU=ops,O=Odradek\\, Inc,C=DE"


def test_default_rule_keeps_the_dn():
    assert PrincipalMapper("DEFAULT").name("CN=alice,OU=ops") == "CN=alice,OU=ops"
    assert PrincipalMapper("").name("CN=alice,OU=ops") == "CN=alice,OU=ops"


def test_rules_are_tried_in_order_with_groups_and_case():
    mapper = PrincipalMapper(
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L,RULE:^CN=([a-z]+),OU=(.*)$/$1@$2/U,DEFAULT"
    )
    assert mapper.name("CN=Kafka-Svc,OU=ServiceUsers,O=X") == "kafka-svc"
    assert mapper.name("CN=bob,OU=eng") == "BOB@ENG"
    assert mapper.name("O=nobody") == "O=nobody"  # DEFAULT


def test_no_matching_rule_refuses_the_client():
    mapper = PrincipalMapper("RULE:^CN=(.*),OU=ops$/$1/")
    assert mapper.name("CN=alice,OU=ops") == "alice"
    with pytest.raises(NoMatchingRule):
        mapper.name("CN=mallory,OU=other")


@pytest.mark.parametrize("rules", ["RULE:^CN=(.*$/$1/", "RULE:nope", "DEFAULT,garbage"])
def test_bad_rules_are_a_config_error(rules):
    with pytest.raises(ConfigError, match="ssl.principal.mapping.rules"):
        PrincipalMapper(rules)


def test_client_certificates_without_the_cryptography_package_are_refused_at_start(monkeypatch):
    from odradek.security.principal import require_cryptography

    require_cryptography()  # installed with the test extras: no error
    monkeypatch.setitem(sys.modules, "cryptography", None)  # as if `pip install odradek` alone
    with pytest.raises(ConfigError, match=r"pip install 'odradek\[security\]'"):
        require_cryptography()
