"""SASL servers: PLAIN (RFC 4616) and SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677).

Interface the broker uses (placeholder until the implementation lands):

* ``new_server(mechanism, *, plain_users, scram_store) -> SaslServer``
* ``SaslServer.evaluate(token: bytes) -> bytes``: the next challenge (b"" when none); raises
  ``AuthenticationFailed`` whose message is what the client is told
* ``SaslServer.complete`` / ``SaslServer.principal`` ("User:<name>" once complete)
* ``plain_users_from_jaas(text) -> dict[str, str]``: the ``user_<name>="<password>"`` options of a JAAS line
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class AuthenticationFailed(Exception):
    """The client's credentials were refused; ``str(e)`` is the message the client receives."""


class SaslServer:
    mechanism: str
    complete: bool
    principal: str | None

    def evaluate(self, token: bytes) -> bytes:
        raise NotImplementedError


def new_server(mechanism: str, *, plain_users: Mapping[str, str], scram_store: Any) -> SaslServer:
    raise NotImplementedError


def plain_users_from_jaas(text: str) -> dict[str, str]:
    raise NotImplementedError
