"""Listeners, Kafka style: names, protocols, advertised addresses, and one-line errors."""

from __future__ import annotations

import pytest

from odradek.broker.listeners import parse_listeners
from odradek.config import BrokerConfig, ConfigError


def config(**values: str) -> BrokerConfig:
    return BrokerConfig.build(overrides=[f"{k.replace('_', '.')}={v}" for k, v in values.items()])


def test_no_listeners_config_is_one_plaintext_listener_on_the_given_address():
    (only,) = parse_listeners(config(), ("127.0.0.1", 0))
    assert (only.name, only.protocol, only.host, only.port, only.advertised) == (
        "PLAINTEXT",
        "PLAINTEXT",
        "127.0.0.1",
        0,
        None,
    )
    assert only.loopback and not only.tls and not only.sasl


def test_several_listeners_with_custom_names_and_advertised_addresses():
    c = BrokerConfig.build(
        overrides=[
            "listeners=INTERNAL://127.0.0.1:9092,sasl_ssl://0.0.0.0:9094,EXT://:9095",
            "listener.security.protocol.map=INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL,EXT:SSL",
            "advertised.listeners=SASL_SSL://broker.example:19094",
        ]
    )
    internal, sasl_ssl, ext = parse_listeners(c)
    assert (internal.name, internal.protocol, internal.loopback) == ("INTERNAL", "PLAINTEXT", True)
    assert (sasl_ssl.name, sasl_ssl.protocol, sasl_ssl.tls, sasl_ssl.sasl) == (
        "SASL_SSL",
        "SASL_SSL",
        True,
        True,
    )
    assert sasl_ssl.advertised == ("broker.example", 19094)
    assert not sasl_ssl.loopback
    assert (ext.host, ext.protocol, ext.tls, ext.sasl, ext.loopback) == ("", "SSL", True, False, False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["listeners=PLAINTEXT:/127.0.0.1:9092"], "listeners: expected NAME://HOST:PORT"),
        (["listeners=PLAINTEXT://127.0.0.1:99999"], "listeners: expected NAME://HOST:PORT"),
        (["listeners=PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2"], "each listener name may appear once"),
        (["listeners=FOO://127.0.0.1:1"], "FOO has no security protocol"),
        (["listener.security.protocol.map=PLAINTEXT:TLS"], "listener.security.protocol.map: expected"),
        (["advertised.listeners=SSL://h:1"], "advertised.listeners: SSL is not one of the listeners"),
        (["advertised.listeners=PLAINTEXT://h:0"], "needs a host and a port other than 0"),
    ],
)
def test_bad_listener_configs_are_refused_with_the_key_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse_listeners(BrokerConfig.build(overrides=overrides), ("127.0.0.1", 9092))


def test_security_keys_are_validated_at_build():
    with pytest.raises(ConfigError, match="ssl.client.auth: expected none, requested or required"):
        config(ssl_client_auth="maybe")
    with pytest.raises(ConfigError, match="ssl.keystore.type: only PEM"):
        BrokerConfig.build(overrides=["ssl.keystore.type=JKS"])
    with pytest.raises(ConfigError, match="authorizer.class.name: expected"):
        BrokerConfig.build(overrides=["authorizer.class.name=kafka.security.authorizer.AclAuthorizer"])
    with pytest.raises(ConfigError, match="unknown configuration key 'listener.name.x.sasl.jaas.config'"):
        BrokerConfig.build(overrides=["listener.name.x.sasl.jaas.config=foo"])


def test_per_listener_jaas_config_is_kept_apart_from_the_fixed_keys():
    key = "listener.name.sasl_plaintext.plain.sasl.jaas.config"
    c = BrokerConfig.build(overrides=[f'{key}=PlainLoginModule required user_a="s3cret";'])
    assert c.listener_keys == {key: 'PlainLoginModule required user_a="s3cret";'}
    assert key not in c.values
    assert "s3cret" not in repr(c)
