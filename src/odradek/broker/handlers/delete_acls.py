"""DeleteAcls (v1-v3): remove the ACLs each filter matches and say, per filter, which ones they were.

Without an authorizer every filter answers SECURITY_DISABLED; the caller needs ALTER on the cluster. A
filter with unknown codes is refused (INVALID_REQUEST, Kafka's message); every filter is matched against
the ACLs as they were before the request, so an ACL two filters match is listed by both.
"""

from __future__ import annotations

from typing import Any

from ...security.acls import AclFilter
from .. import authz
from ._common import CLUSTER_AUTHORIZATION_FAILED, INVALID_REQUEST, NONE, SECURITY_DISABLED, CloseConnection


def _has_unknown(f: Any) -> bool:
    return 0 in (f.resource_type_filter, f.pattern_type_filter, f.operation, f.permission_type)


def _answer(count: int, code: int, message: str) -> dict[str, Any]:
    return {
        "throttle_time": 0,
        "filter_results": [
            {"error_code": code, "error_message": message, "matching_acls": []} for _ in range(count)
        ],
    }


async def handle(ctx: Any, request: Any) -> dict[str, Any]:
    filters = request.filters
    if any(_has_unknown(f) for f in filters):
        raise CloseConnection("DeleteAcls: a filter holds an UNKNOWN (0) code, which Kafka cannot parse")
    authorizer = ctx.broker.authorizer
    if authorizer is None:
        return _answer(len(filters), SECURITY_DISABLED, "No Authorizer is configured.")
    if not authz.allowed(ctx, authz.AclOperation.ALTER, authz.ResourceType.CLUSTER, authz.CLUSTER_NAME):
        return _answer(len(filters), CLUSTER_AUTHORIZATION_FAILED, "Request needs ALTER permission.")
    results = await authorizer.delete_async(
        AclFilter.from_codes(
            f.resource_type_filter,
            f.resource_name_filter,
            f.pattern_type_filter,
            f.principal_filter,
            f.host_filter,
            f.operation,
            f.permission_type,
        )
        for f in filters
    )
    out = []
    for problem, matched in results:
        if problem is not None:
            out.append({"error_code": INVALID_REQUEST, "error_message": problem, "matching_acls": []})
            continue
        out.append(
            {
                "error_code": NONE,
                "error_message": None,
                "matching_acls": [
                    {
                        "error_code": NONE,
                        "error_message": None,
                        "resource_type": acl.resource_type,
                        "resource_name": acl.resource_name,
                        "pattern_type": acl.pattern_type,
                        "principal": acl.principal,
                        "host": acl.host,
                        "operation": acl.operation,
                        "permission_type": acl.permission,
                    }
                    for acl in matched
                ],
            }
        )
    return {"throttle_time": 0, "filter_results": out}
