"""DescribeUserScramCredentials (KIP-554): which SCRAM mechanisms, with how many iterations, each user has.

Needs DESCRIBE on the cluster; refused, the whole request gets CLUSTER_AUTHORIZATION_FAILED at the top
level and no results, as Kafka answers. The per-user semantics (every user for a null or empty list,
RESOURCE_NOT_FOUND, DUPLICATE_RESOURCE) live in :mod:`odradek.security.scram_store`.
"""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import CLUSTER_AUTHORIZATION_FAILED, NONE


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    if not authz.allowed(ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.CLUSTER, authz.CLUSTER_NAME):
        return {
            "throttle_time": 0,
            "error_code": CLUSTER_AUTHORIZATION_FAILED,
            "error_message": "Cluster authorization failed.",
            "results": [],
        }
    users = None if request.users is None else [u.name for u in request.users]
    return {
        "throttle_time": 0,
        "error_code": NONE,
        "error_message": None,
        "results": ctx.broker.scram.describe(users),
    }
