"""SASL_HANDSHAKE: placeholder while the security work lands (replaced by its real handler)."""

from __future__ import annotations

from typing import Any

from ._common import CloseConnection


def handle(ctx: Any, request: Any) -> Any:
    raise CloseConnection("SASL_HANDSHAKE is not implemented yet")
