"""CreateAcls (v1-v3): add ACLs, as Kafka's broker and controller do.

Without an authorizer every creation answers SECURITY_DISABLED; the caller needs ALTER on the cluster.
Each creation is checked on its own (INVALID_REQUEST with Kafka's message); an ACL that exists already is
a success. A code 0 (UNKNOWN) anywhere fails Kafka's request parsing, which closes the connection; an
ANY / MATCH value, or more than 10000 new ACLs, fails the whole request with UNKNOWN_SERVER_ERROR, as in
Kafka.
"""

from __future__ import annotations

from typing import Any

from ...security.acls import UNKNOWN_SERVER_ERROR, AclBinding, TooManyAcls, unconstructible
from .. import authz
from ._common import (
    CLUSTER_AUTHORIZATION_FAILED,
    INVALID_REQUEST,
    NONE,
    SECURITY_DISABLED,
    CloseConnection,
    log,
)


def _has_unknown(c: Any) -> bool:
    return 0 in (c.resource_type, c.resource_pattern_type, c.operation, c.permission_type)


def _answer(count: int, code: int, message: str | None) -> dict[str, Any]:
    return {
        "throttle_time": 0,
        "results": [{"error_code": code, "error_message": message} for _ in range(count)],
    }


async def handle(ctx: Any, request: Any) -> dict[str, Any]:
    creations = request.creations
    if any(_has_unknown(c) for c in creations):
        raise CloseConnection("CreateAcls: a creation holds an UNKNOWN (0) code, which Kafka cannot parse")
    authorizer = ctx.broker.authorizer
    if authorizer is None:
        return _answer(len(creations), SECURITY_DISABLED, "No Authorizer is configured.")
    if not authz.allowed(ctx, authz.AclOperation.ALTER, authz.ResourceType.CLUSTER, authz.CLUSTER_NAME):
        return _answer(len(creations), CLUSTER_AUTHORIZATION_FAILED, "Request needs ALTER permission.")
    bindings = [
        AclBinding.from_codes(
            c.resource_type,
            c.resource_name,
            c.resource_pattern_type,
            c.principal,
            c.host,
            c.operation,
            c.permission_type,
        )
        for c in creations
    ]
    if any(unconstructible(b) for b in bindings):
        return _answer(len(creations), UNKNOWN_SERVER_ERROR, None)
    try:
        problems = await authorizer.create_async(bindings)
    except TooManyAcls as e:  # Kafka's controller fails the whole operation, every creation with it
        log.warning("CreateAcls from %s refused: %s", ctx.principal, e)
        return _answer(len(creations), UNKNOWN_SERVER_ERROR, None)
    return {
        "throttle_time": 0,
        "results": [
            {"error_code": NONE, "error_message": ""}
            if problem is None
            else {"error_code": INVALID_REQUEST, "error_message": problem}
            for problem in problems
        ],
    }
