"""DescribeUserScramCredentials (KIP-554): which SCRAM mechanisms, with how many iterations, each user has.

Needs DESCRIBE on the cluster. Refused, the answer is Kafka 4.4's: CLUSTER_AUTHORIZATION_FAILED at the
top, and one result per name asked for carrying the same code and no user name. (For a null list of
users Kafka 4.4 never answers at all, failing on the null; Odradek answers as for an empty list.) The
per-user semantics (every user for a null or empty list, RESOURCE_NOT_FOUND, DUPLICATE_RESOURCE) live in
:mod:`odradek.security.scram_store`.
"""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import CLUSTER_AUTHORIZATION_FAILED, NONE


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    users = None if request.users is None else [u.name for u in request.users]
    if not authz.allowed(ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.CLUSTER, authz.CLUSTER_NAME):
        refused = {"user": "", "error_code": CLUSTER_AUTHORIZATION_FAILED, "error_message": None}
        return {
            "throttle_time": 0,
            "error_code": CLUSTER_AUTHORIZATION_FAILED,
            "error_message": None,
            "results": [{**refused, "credential_infos": []} for _ in users or ()],
        }
    return {
        "throttle_time": 0,
        "error_code": NONE,
        "error_message": "",  # what Kafka 4.4 sends when all is well (its schema's default)
        "results": ctx.broker.scram.describe(users),
    }
