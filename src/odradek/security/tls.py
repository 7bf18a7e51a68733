"""TLS server contexts from Kafka's PEM configuration names (Python's ``ssl`` module does the TLS).

Keystore: ``ssl.keystore.certificate.chain`` + ``ssl.keystore.key`` (PEM text), or
``ssl.keystore.location`` (a PEM file holding the key and the chain). Truststore (the CAs client
certificates must chain to): ``ssl.truststore.certificates`` (PEM text) or ``ssl.truststore.location``.
``ssl.client.auth``: none, requested (a certificate is checked if sent) or required.
"""

from __future__ import annotations

import os
import ssl
import tempfile

from ..config import BrokerConfig, ConfigError

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def _load_chain(context: ssl.SSLContext, config: BrokerConfig) -> None:
    password = config["ssl.key.password"] or None
    location, chain, key = (
        config["ssl.keystore.location"],
        config["ssl.keystore.certificate.chain"],
        config["ssl.keystore.key"],
    )
    try:
        if location:
            context.load_cert_chain(location, password=password)
            return
        if not (chain.strip() and key.strip()):
            raise ConfigError(
                "a TLS listener needs ssl.keystore.location, or ssl.keystore.certificate.chain and "
                "ssl.keystore.key"
            )
        # ssl.SSLContext reads a certificate chain only from a file: the PEM text goes to a private
        # temporary file (mode 0600) that is removed as soon as it is loaded.
        fd, path = tempfile.mkstemp(prefix="odradek-keystore-", suffix=".pem")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(key.strip() + "\n" + chain.strip() + "\n")
            context.load_cert_chain(path, password=password)
        finally:
            os.unlink(path)
    except ssl.SSLError as e:
        raise ConfigError(
            f"ssl.keystore: cannot load the broker's key and certificate chain ({e.reason})"
        ) from None
    except OSError as e:
        raise ConfigError(f"ssl.keystore.location: cannot read {location}: {e.strerror}") from None


def _load_trust(context: ssl.SSLContext, config: BrokerConfig) -> None:
    location, certificates = config["ssl.truststore.location"], config["ssl.truststore.certificates"]
    try:
        if location:
            context.load_verify_locations(cafile=location)
        elif certificates.strip():
            context.load_verify_locations(cadata=certificates)
        else:
            raise ConfigError(
                "ssl.client.auth needs the CAs to check client certificates with: "
                "ssl.truststore.location or ssl.truststore.certificates"
            )
    except ssl.SSLError as e:
        raise ConfigError(f"ssl.truststore: cannot load the CA certificates ({e.reason})") from None
    except OSError as e:
        raise ConfigError(f"ssl.truststore.location: cannot read {location}: {e.strerror}") from None


def server_context(config: BrokerConfig, client_auth: str) -> ssl.SSLContext:
    """The context of one TLS listener; ConfigError (one line) for anything unusable."""
    versions = []
    for name in (v.strip() for v in config["ssl.enabled.protocols"].split(",")):
        if name and name not in _VERSIONS:
            raise ConfigError(f"ssl.enabled.protocols: expected TLSv1.2 and/or TLSv1.3, got {name!r}")
        if name:
            versions.append(_VERSIONS[name])
    if not versions:
        raise ConfigError("ssl.enabled.protocols: at least one of TLSv1.2, TLSv1.3")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = min(versions)
    context.maximum_version = max(versions)
    _load_chain(context, config)
    context.verify_mode = CLIENT_AUTH[client_auth]
    if client_auth != "none":
        _load_trust(context, config)
    return context
