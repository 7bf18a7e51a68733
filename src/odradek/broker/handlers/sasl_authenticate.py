"""SaslAuthenticate: one SASL token in, the mechanism's answer out (SaslHandshake v1 and later).

A refused login is answered with SASL_AUTHENTICATION_FAILED and Kafka's message, and the connection
is closed after ``connection.failed.authentication.delay.ms``. With ``connections.max.reauth.ms`` the
answer that completes a login carries the session lifetime (v1+, KIP-368).
"""

from __future__ import annotations

import logging
from typing import Any

from ...security.sasl import AuthenticationFailed
from ...security.session import ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED

log = logging.getLogger("odradek.broker")


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    conn = ctx.conn
    session = conn.sasl
    if session is None or session.state == "done":
        message = (
            "Unexpected SaslAuthenticate request"
            if session is None
            else ("SaslAuthenticate request received after successful authentication")
        )
        return {"error_code": ILLEGAL_SASL_STATE, "error_message": message, "auth_bytes": b""}
    try:
        answer, lifetime_ms = session.authenticate(request.auth_bytes)
    except AuthenticationFailed as e:
        # The reason (an unknown user, a wrong proof) is for the log; the client gets Kafka's message.
        log.info("authentication failed for %s on %s: %s", ctx.peer, ctx.listener, e.reason)
        conn.close_after_response(ctx.broker.config["connection.failed.authentication.delay.ms"])
        return {"error_code": SASL_AUTHENTICATION_FAILED, "error_message": str(e), "auth_bytes": b""}
    if session.authenticated:
        assert session.principal is not None
        conn.authenticated(session.principal)
        log.debug("%s authenticated as %s on %s", ctx.peer, session.principal, ctx.listener)
    return {
        "error_code": 0,
        "error_message": "",  # what Kafka 4.4 answers on success
        "auth_bytes": answer,
        "session_lifetime": lifetime_ms,
    }
