"""FindCoordinator: this broker coordinates every group and transactional id (v0-v3 one key, v4 batched).

As Kafka, each key needs DESCRIBE on its group (else GROUP_AUTHORIZATION_FAILED) or transactional id
(else TRANSACTIONAL_ID_AUTHORIZATION_FAILED), and a refused key is answered with no node."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import (
    AUTHORIZATION_MESSAGES,
    GROUP_AUTHORIZATION_FAILED,
    INVALID_REQUEST,
    NONE,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
)

GROUP = 0
TRANSACTION = 1
DESCRIBE = authz.AclOperation.DESCRIBE


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    b = ctx.broker

    def entry(key: str, key_type: int) -> dict[str, Any]:
        if key_type not in (GROUP, TRANSACTION):
            return _no_node(key, INVALID_REQUEST, f"Unknown key type {key_type}")
        if b.authorizer is not None:
            if key_type == GROUP and not authz.allowed(ctx, DESCRIBE, authz.ResourceType.GROUP, key):
                return _no_node(key, GROUP_AUTHORIZATION_FAILED)
            if key_type == TRANSACTION and not authz.allowed(
                ctx, DESCRIBE, authz.ResourceType.TRANSACTIONAL_ID, key
            ):
                return _no_node(key, TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        return {
            "key": key,
            "node_id": b.node_id,
            "host": ctx.host,
            "port": ctx.port,
            "error_code": NONE,
            "error_message": None,
        }

    key_type = getattr(request, "key_type", GROUP)
    if hasattr(request, "coordinator_keys"):
        coordinators = [entry(k, key_type) for k in request.coordinator_keys]
        for c in coordinators:  # v4: Kafka 4.4 words an authorization refusal with an empty message
            if c["error_code"] in (GROUP_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED):
                c["error_message"] = ""
        return {"throttle_time": 0, "coordinators": coordinators}
    e = entry(request.key, key_type)
    return {"throttle_time": 0, **{k: v for k, v in e.items() if k != "key"}}


def _no_node(key: str, code: int, message: str | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "node_id": -1,
        "host": "",
        "port": -1,
        "error_code": code,
        "error_message": message if message is not None else AUTHORIZATION_MESSAGES[code],
    }
