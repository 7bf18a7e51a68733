"""Listeners, Kafka style: ``listeners``, ``listener.security.protocol.map`` and ``advertised.listeners``.

Pure: configuration text in, a list of :class:`Listener` out, with one-line errors naming the key.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..config import BrokerConfig, ConfigError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True, slots=True)
class Listener:
    name: str  # upper case, as Kafka normalises it
    protocol: str  # one of PROTOCOLS
    host: str  # where to bind ("" or 0.0.0.0: every address)
    port: int
    advertised: tuple[str, int] | None = None  # what Metadata names; None: the address connected to

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def loopback(self) -> bool:
        if self.host in ("localhost",):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name or an empty host (every address)


def _endpoints(key: str, value: str) -> list[tuple[str, str, int]]:
    out = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, sep, address = item.partition("://")
        host, colon, port = address.rpartition(":")
        if not sep or not colon or not _NAME_RE.match(name) or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"{key}: expected NAME://HOST:PORT[,...], got {item!r}")
        out.append((name.upper(), host.strip("[]"), int(port)))
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: each listener name may appear once, got {value!r}")
    return out


def protocol_map(config: BrokerConfig) -> dict[str, str]:
    out = {}
    for item in (part.strip() for part in config["listener.security.protocol.map"].split(",")):
        if not item:
            continue
        name, sep, protocol = item.partition(":")
        if not sep or protocol.strip().upper() not in PROTOCOLS:
            raise ConfigError(
                f"listener.security.protocol.map: expected NAME:PROTOCOL with PROTOCOL one of "
                f"{', '.join(PROTOCOLS)}, got {item!r}"
            )
        out[name.strip().upper()] = protocol.strip().upper()
    return out


def parse_listeners(config: BrokerConfig, default: tuple[str, int] | None = None) -> list[Listener]:
    """The listeners to open. ``listeners`` empty: one PLAINTEXT listener on ``default``."""
    protocols = protocol_map(config)
    text = config["listeners"]
    if text.strip():
        endpoints = _endpoints("listeners", text)
    else:
        host, port = default or ("127.0.0.1", 9092)
        endpoints = [("PLAINTEXT", host, port)]
    if not endpoints:
        raise ConfigError("listeners: at least one listener is needed")
    advertised: dict[str, tuple[str, int]] = {}
    if config["advertised.listeners"].strip():
        for name, host, port in _endpoints("advertised.listeners", config["advertised.listeners"]):
            if name not in {n for n, _, _ in endpoints}:
                raise ConfigError(f"advertised.listeners: {name} is not one of the listeners")
            if not host or port == 0:
                raise ConfigError(f"advertised.listeners: {name} needs a host and a port other than 0")
            advertised[name] = (host, port)
    out = []
    for name, host, port in endpoints:
        protocol = protocols.get(name)
        if protocol is None:
            raise ConfigError(
                f"listeners: {name} has no security protocol (add it to listener.security.protocol.map)"
            )
        out.append(Listener(name, protocol, host, port, advertised.get(name)))
    return out
