"""SaslHandshake: the client names its SASL mechanism; the answer lists those enabled.

On a SASL listener the connection's session (security/session.py) decides; a refused mechanism is
answered with UNSUPPORTED_SASL_MECHANISM and the connection is closed, as Kafka does. On a listener
without SASL Kafka answers ILLEGAL_SASL_STATE.
"""

from __future__ import annotations

from typing import Any

from ...security.session import ILLEGAL_SASL_STATE


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    session = ctx.conn.sasl
    if session is None:
        return {"error_code": ILLEGAL_SASL_STATE, "mechanisms": []}
    code, mechanisms = session.handshake(request.mechanism, ctx.api_version)
    if code:
        ctx.conn.close_after_response()
    return {"error_code": code, "mechanisms": mechanisms}
