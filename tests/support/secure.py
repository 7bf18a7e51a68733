"""One description of "a secured broker", applied alike to Apache Kafka 4.4 and to Odradek.

Both kinds get the same four loopback listeners, each on a free port:

* ``PLAINTEXT``: the admin back door (principal ``User:ANONYMOUS``, a super user); tests create topics,
  SCRAM users and ACLs through it;
* ``SSL``: ``ssl.client.auth=required``; the principal is the client certificate's DN,
  ``User:CN=alice-cert,OU=test,O=odradek``;
* ``SASL_PLAINTEXT`` and ``SASL_SSL``: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. Kafka applies the
  broker-wide ``ssl.client.auth`` to SSL listeners only (KIP-684), so SASL_SSL clients bring no certificate.

The keystore and truststore are PEM files (``ssl.keystore.type=PEM`` + ``ssl.keystore.location`` holding
the key and the chain, ``ssl.truststore.type=PEM`` + ``ssl.truststore.location``): a form both read.
PLAIN users come from ``listener.name.<listener>.plain.sasl.jaas.config``; SCRAM users are created after
start with AdminClient.alter_user_scram_credentials over PLAINTEXT (:meth:`SecuredBroker.create_scram_users`).
ACLs: StandardAuthorizer, ``super.users=User:admin;User:ANONYMOUS``, ``allow.everyone.if.no.acl.found=false``.

:class:`SecuredBroker` hands out each Python client's configuration for a (listener, mechanism, user) and
grants ACLs (AdminClient.create_acls over PLAINTEXT, waiting until DescribeAcls shows them).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .certs import CLIENT_PRINCIPAL, Certs, Pem
from .kafka import KafkaBroker
from .net import LOOPBACK, free_ports
from .odradek import OdradekBroker

LISTENERS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
USERS: dict[str, str] = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
SUPER_USERS = "User:admin;User:ANONYMOUS"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
SCRAM_ITERATIONS = 8192
SSL_PRINCIPAL = CLIENT_PRINCIPAL
TIMEOUT_S = 30.0

_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


def plain_jaas(users: Mapping[str, str] = USERS) -> str:
    """The JAAS line of the PLAIN users (no username/password: inter-broker traffic is PLAINTEXT)."""
    options = " ".join(f'user_{name}="{password}"' for name, password in users.items())
    return f"{_PLAIN_MODULE} required {options};"


def security_settings(ports: Mapping[str, int], certs: Certs) -> dict[str, str]:
    """The configuration both kinds share (Kafka names), for listeners on ``ports``."""
    endpoints = ",".join(f"{name}://{LOOPBACK}:{ports[name]}" for name in LISTENERS)
    settings = {
        "listeners": endpoints,
        "advertised.listeners": endpoints,
        "listener.security.protocol.map": ",".join(f"{name}:{name}" for name in LISTENERS),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs.server.bundle),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs.ca.cert),
        "ssl.client.auth": "required",
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "authorizer.class.name": AUTHORIZER,
        "super.users": SUPER_USERS,
        "allow.everyone.if.no.acl.found": "false",
    }
    for listener in ("sasl_plaintext", "sasl_ssl"):
        settings[f"listener.name.{listener}.plain.sasl.jaas.config"] = plain_jaas()
        for mechanism in ("scram-sha-256", "scram-sha-512"):
            settings[f"listener.name.{listener}.{mechanism}.sasl.jaas.config"] = f"{_SCRAM_MODULE} required;"
    return settings


def kafka_settings(ports: Mapping[str, int], controller_port: int, certs: Certs) -> dict[str, str]:
    """Kafka's: the shared settings plus its own controller listener (PLAINTEXT, ANONYMOUS)."""
    settings = security_settings(ports, certs)
    settings["listeners"] += f",CONTROLLER://{LOOPBACK}:{controller_port}"
    settings["listener.security.protocol.map"] += ",CONTROLLER:PLAINTEXT"
    settings["inter.broker.listener.name"] = "PLAINTEXT"
    settings["controller.listener.names"] = "CONTROLLER"
    return settings


#: OdradekBroker leaves ``--listen`` out when its settings hold ``listeners``: nothing more is needed.
SecuredOdradek = OdradekBroker


def start_secured_kafka(work_dir: Path, certs: Certs) -> SecuredBroker:
    """A secured single-node Kafka in ``work_dir`` (ready once PLAINTEXT answers Metadata)."""
    *listener_ports, controller_port = free_ports(len(LISTENERS) + 1)
    ports = dict(zip(LISTENERS, listener_ports, strict=True))
    process = KafkaBroker(work_dir, settings=kafka_settings(ports, controller_port, certs))
    process.port, process.controller_port = ports["PLAINTEXT"], controller_port
    process.start()
    return SecuredBroker("kafka", process, ports, certs)


def start_secured_odradek(data_dir: Path, certs: Certs) -> SecuredBroker:
    """A secured Odradek on ``data_dir`` (ready once it prints its ready line), configured by a properties
    file beside it."""
    ports = dict(zip(LISTENERS, free_ports(len(LISTENERS)), strict=True))
    settings = security_settings(ports, certs)
    # Through a properties file, as Kafka gets its server.properties: the JAAS lines hold passwords, which
    # --set would put on the command line (and into the harness's log of it).
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    properties = data_dir.parent / f"{data_dir.name}.properties"
    properties.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    properties.chmod(0o600)
    process = OdradekBroker(
        data_dir, settings={"listeners": settings["listeners"]}, extra_args=["--config", str(properties)]
    )
    process.start()
    return SecuredBroker("odradek", process, ports, certs)


@dataclass
class SecuredBroker:
    """A started secured broker of either kind, with what a test needs to talk to it."""

    kind: str  # "odradek" or "kafka"
    process: OdradekBroker | KafkaBroker
    ports: dict[str, int]
    certs: Certs
    scram_error: str | None = None  # why create_scram_users failed, when it did
    _admin: Any = field(default=None, repr=False)

    @property
    def is_kafka(self) -> bool:
        return self.kind == "kafka"

    @property
    def is_odradek(self) -> bool:
        return self.kind == "odradek"

    @property
    def addresses(self) -> dict[str, str]:
        return {name: f"{LOOPBACK}:{port}" for name, port in self.ports.items()}

    def bootstrap(self, listener: str = "PLAINTEXT") -> str:
        return f"{LOOPBACK}:{self.ports[listener]}"

    def stop(self) -> int | None:
        return self.process.stop()

    def require_scram(self) -> None:
        """Fail (never skip) a SCRAM test on a broker whose SCRAM users could not be created."""
        if self.scram_error:
            import pytest

            pytest.fail(self.scram_error, pytrace=False)

    # -- client configurations -------------------------------------------------------------------
    @staticmethod
    def _check(listener: str, mechanism: str | None) -> None:
        if listener not in LISTENERS:
            raise ValueError(f"listener {listener!r}: expected one of {LISTENERS}")
        if (mechanism is not None) != listener.startswith("SASL_"):
            raise ValueError(f"listener {listener} {'needs' if mechanism is None else 'takes no'} mechanism")

    def _client_pem(self, listener: str, cert: str | None) -> Pem | None:
        """The certificate a client presents: the trusted client's on SSL unless told otherwise."""
        if cert is None:
            cert = "client" if listener == "SSL" else "none"
        return None if cert == "none" else getattr(self.certs, cert)

    def _ca(self, ca: str) -> Path:
        return getattr(self.certs, ca).cert

    def confluent_config(
        self,
        listener: str,
        mechanism: str | None = None,
        user: str | None = None,
        *,
        password: str | None = None,
        cert: str | None = None,
        ca: str = "ca",
        **extra: Any,
    ) -> dict[str, Any]:
        """confluent-kafka (librdkafka) settings. ``cert``: a :class:`Certs` field name or "none";
        ``ca``: the CA the client trusts ("ca" or "other_ca")."""
        self._check(listener, mechanism)
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap(listener),
            "security.protocol": listener,
            "log_level": 0,
        }
        if listener in ("SSL", "SASL_SSL"):
            conf["ssl.ca.location"] = str(self._ca(ca))
            pem = self._client_pem(listener, cert)
            if pem is not None:
                conf["ssl.certificate.location"] = str(pem.cert)
                conf["ssl.key.location"] = str(pem.key)
        if mechanism is not None:
            assert user is not None, "a SASL client needs a user"
            conf["sasl.mechanisms"] = mechanism
            conf["sasl.username"] = user
            conf["sasl.password"] = USERS.get(user, "") if password is None else password
        conf.update(extra)
        return conf

    def ssl_context(self, listener: str, *, cert: str | None = None, ca: str = "ca") -> ssl.SSLContext:
        """A client context trusting ``ca`` and presenting ``cert`` (the client cert on SSL by default)."""
        ctx = ssl.create_default_context(cafile=str(self._ca(ca)))
        pem = self._client_pem(listener, cert)
        if pem is not None:
            ctx.load_cert_chain(str(pem.cert), str(pem.key))
        return ctx

    def python_config(
        self,
        listener: str,
        mechanism: str | None = None,
        user: str | None = None,
        *,
        password: str | None = None,
        cert: str | None = None,
        ca: str = "ca",
    ) -> dict[str, Any]:
        """kafka-python and aiokafka keyword arguments (both use the same names)."""
        self._check(listener, mechanism)
        kw: dict[str, Any] = {"bootstrap_servers": self.bootstrap(listener), "security_protocol": listener}
        if listener in ("SSL", "SASL_SSL"):
            kw["ssl_context"] = self.ssl_context(listener, cert=cert, ca=ca)
        if mechanism is not None:
            assert user is not None, "a SASL client needs a user"
            kw["sasl_mechanism"] = mechanism
            kw["sasl_plain_username"] = user
            kw["sasl_plain_password"] = USERS.get(user, "") if password is None else password
        return kw

    kafka_python_config = python_config
    aiokafka_config = python_config

    @staticmethod
    def principal(listener: str, user: str | None = None) -> str:
        """The principal a client of ``listener`` (as ``user``) is."""
        if listener == "PLAINTEXT":
            return "User:ANONYMOUS"
        if listener == "SSL":
            return SSL_PRINCIPAL
        assert user is not None
        return f"User:{user}"

    # -- administration over PLAINTEXT -----------------------------------------------------------
    def admin(self):
        """A confluent-kafka AdminClient on the PLAINTEXT back door (a super user)."""
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient({"bootstrap.servers": self.bootstrap(), "log_level": 0})
        return self._admin

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        from .kit import create_topic

        create_topic(self.bootstrap(), topic, partitions)

    def create_scram_users(self, users: Mapping[str, str] = USERS) -> None:
        """Every user for SCRAM-SHA-256 and SCRAM-SHA-512, then wait until a SCRAM login works."""
        from confluent_kafka.admin import (
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        # One request per mechanism: a request may not alter one user twice (DUPLICATE_RESOURCE, 92).
        for mech in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
            upserts = [
                UserScramCredentialUpsertion(
                    name, ScramCredentialInfo(mech, SCRAM_ITERATIONS), password.encode()
                )
                for name, password in users.items()
            ]
            for future in self.admin().alter_user_scram_credentials(upserts).values():
                future.result(TIMEOUT_S)
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            for name in users:
                self.wait_login("SASL_PLAINTEXT", mechanism, name, password=users[name])

    def wait_login(self, listener: str, mechanism: str | None, user: str | None, **kw: Any) -> None:
        """Poll until a client of ``listener`` authenticates (SCRAM users reach Kafka's broker through
        its metadata log, a moment after the controller accepted them)."""
        from confluent_kafka.admin import AdminClient

        conf = self.confluent_config(listener, mechanism, user, **kw)
        deadline = time.monotonic() + TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            client = AdminClient(conf)
            try:
                client.list_topics(timeout=5)
                return
            except Exception as e:  # authentication failures surface as KafkaException
                last = e
            time.sleep(0.2)
        raise AssertionError(f"{self.kind}: {mechanism} login of {user} on {listener} never worked: {last}")

    def grant(
        self,
        principal: str,
        resource_type: str,
        name: str,
        operations: Iterable[str],
        *,
        pattern: str = "LITERAL",
        permission: str = "ALLOW",
        host: str = "*",
    ) -> list[Any]:
        """Create ACLs (names as in confluent_kafka.admin: resource_type "TOPIC", operations "READ" ...)
        and wait until DescribeAcls lists them. Returns the bindings."""
        from confluent_kafka.admin import (
            AclBinding,
            AclBindingFilter,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
        )

        rtype, ptype = ResourceType[resource_type], ResourcePatternType[pattern]
        perm = AclPermissionType[permission]
        bindings = [
            AclBinding(rtype, name, ptype, principal, host, AclOperation[op], perm) for op in operations
        ]
        for future in self.admin().create_acls(bindings).values():
            future.result(TIMEOUT_S)
        query = AclBindingFilter(rtype, name, ptype, principal, host, AclOperation.ANY, AclPermissionType.ANY)
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            listed = set(self.admin().describe_acls(query).result(TIMEOUT_S))
            if all(b in listed for b in bindings):
                return bindings
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.kind}: ACLs {bindings} not listed after {TIMEOUT_S}s: {listed}")
            time.sleep(0.1)

    def grant_produce_consume(self, principal: str, topic: str, group: str | None = None) -> None:
        """What a producer and a (group) consumer of ``topic`` need: WRITE, READ, DESCRIBE on the topic;
        READ, DESCRIBE on the group."""
        self.grant(principal, "TOPIC", topic, ("WRITE", "READ", "DESCRIBE"))
        if group is not None:
            self.grant(principal, "GROUP", group, ("READ", "DESCRIBE"))
