"""One connection's SASL life, as a state machine without I/O.

Kafka's order on a SASL listener: ApiVersions (optional, any number), SaslHandshake naming a mechanism,
then the mechanism's tokens, wrapped in SaslAuthenticate requests (SaslHandshake v1) or as bare
size-prefixed frames (SaslHandshake v0), until the mechanism completes. Nothing else is served before
that: any other request closes the connection, as Kafka's authenticator does. With
``connections.max.reauth.ms`` a session has a lifetime (KIP-368): the client re-authenticates with the
same principal and mechanism on the open connection before it ends, and a request after it closes the
connection.

The connection asks :meth:`SaslSession.admits` before each request and feeds the handshake and tokens in;
the session answers with what to send, or raises :class:`SessionClosed` with the reason to close.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..protocol.apis import ApiKey
from .sasl import AuthenticationFailed, SaslServer, generic_failure, new_server

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = (
    ApiKey.API_VERSIONS,
    ApiKey.SASL_HANDSHAKE,
    ApiKey.SASL_AUTHENTICATE,
)

UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
SASL_AUTHENTICATION_FAILED = 58

ANONYMOUS = "User:ANONYMOUS"


class SessionClosed(Exception):
    """The connection must be closed; ``str(e)`` says why (for the broker's log)."""


class SaslSession:
    """States: ``handshake`` (ApiVersions or SaslHandshake expected), ``authenticate`` (SaslAuthenticate
    expected), ``raw`` (a bare token expected, after SaslHandshake v0), ``done`` (authenticated)."""

    def __init__(
        self,
        mechanisms: tuple[str, ...],
        plain_users: Mapping[str, str],
        scram_store: Any,
        max_reauth_ms: int,
        clock_ms: Callable[[], int],
    ) -> None:
        self.mechanisms = mechanisms
        self.plain_users = plain_users
        self.scram_store = scram_store
        self.max_reauth_ms = max_reauth_ms
        self.clock_ms = clock_ms
        self.state = "handshake"
        self.principal: str | None = None  # set once authenticated (kept through re-authentication)
        self.mechanism: str | None = None
        self.expires_at_ms: int | None = None  # KIP-368: the session's end, when bounded
        self._server: SaslServer | None = None
        self._reauthenticating = False

    @property
    def authenticated(self) -> bool:
        return self.principal is not None and not self._reauthenticating

    @property
    def expects_raw_token(self) -> bool:
        return self.state == "raw"

    def admits(self, api_key: int) -> None:
        """Raise SessionClosed unless a request of ``api_key`` may be handled now."""
        if self.state == "done":
            if self.expires_at_ms is not None and self.clock_ms() >= self.expires_at_ms:
                if api_key != SASL_HANDSHAKE:
                    raise SessionClosed("the SASL session expired (connections.max.reauth.ms)")
            return
        if self.state == "handshake":
            if api_key in (API_VERSIONS, SASL_HANDSHAKE):
                return
            raise SessionClosed(f"unexpected request (api key {api_key}) during SASL handshake")
        if self.state == "authenticate":
            # A second SaslHandshake is answered (ILLEGAL_SASL_STATE, then closed), as Kafka does.
            if api_key in (SASL_AUTHENTICATE, SASL_HANDSHAKE):
                return
            raise SessionClosed(f"unexpected request (api key {api_key}) during SASL authentication")
        raise SessionClosed("a Kafka request where a SASL token was expected")

    def handshake(self, mechanism: str, version: int) -> tuple[int, list[str]]:
        """SaslHandshake: (error code, enabled mechanisms). A refused mechanism closes the connection
        after the answer (``closes_after_handshake``)."""
        if self.state == "done":
            # Re-authentication (KIP-368): a v1 handshake with the mechanism of the first login.
            if version < 1 or mechanism != self.mechanism:
                self.state = "failed"
                return ILLEGAL_SASL_STATE, list(self.mechanisms)
            self._reauthenticating = True
        elif self.state != "handshake":
            self.state = "failed"
            return ILLEGAL_SASL_STATE, list(self.mechanisms)
        if mechanism not in self.mechanisms:
            self.state = "failed"
            return UNSUPPORTED_SASL_MECHANISM, list(self.mechanisms)
        self.mechanism = mechanism
        self._server = new_server(
            mechanism,
            plain_users=self.plain_users,
            scram_store=self.scram_store,
            reauthentication=self._reauthenticating,
        )
        self.state = "authenticate" if version >= 1 else "raw"
        return 0, list(self.mechanisms)

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    def authenticate(self, token: bytes) -> tuple[bytes, int]:
        """One token in; (the mechanism's answer, the session lifetime in ms or 0). Raises
        AuthenticationFailed (answered with SASL_AUTHENTICATION_FAILED, then the connection closes)."""
        if self._server is None or self.state not in ("authenticate", "raw"):
            self.state = "failed"
            raise AuthenticationFailed("Unexpected SaslAuthenticate request")
        try:
            answer = self._server.evaluate(token)
        except AuthenticationFailed:
            self.state = "failed"
            raise
        except Exception as e:  # a malformed token is a failed login, never a broker error
            self.state = "failed"
            message = generic_failure(self.mechanism or "", self._reauthenticating)
            raise AuthenticationFailed(message, f"malformed token: {type(e).__name__}") from e
        if not self._server.complete:
            return answer, 0
        principal = self._server.principal
        if self._reauthenticating and principal != self.principal:
            self.state = "failed"
            raise AuthenticationFailed(
                f"Cannot change principals during re-authentication from {self.principal}: {principal}"
            )
        self.principal = principal
        self._reauthenticating = False
        self._server = None
        self.state = "done"
        lifetime = 0
        if self.max_reauth_ms > 0:
            lifetime = self.max_reauth_ms
            self.expires_at_ms = self.clock_ms() + lifetime
        return answer, lifetime
