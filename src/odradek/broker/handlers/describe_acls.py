"""DescribeAcls (v1-v3): the ACLs one filter matches, grouped by resource pattern, as Kafka answers.

Without an authorizer: SECURITY_DISABLED; the caller needs DESCRIBE on the cluster. Unknown codes in the
filter match nothing (code 0 fails Kafka's request parsing, which closes the connection).
"""

from __future__ import annotations

from typing import Any

from ...security.acls import AclBinding, AclFilter
from .. import authz
from ._common import CLUSTER_AUTHORIZATION_FAILED, NONE, SECURITY_DISABLED, CloseConnection


def _error(code: int, message: str) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": code, "error_message": message, "resources": []}


def resources(acls: list[AclBinding]) -> list[dict[str, Any]]:
    """One entry per (type, name, pattern type), its ACLs in the order they were created."""
    grouped: dict[tuple[int, str, int], list[dict[str, Any]]] = {}
    for acl in acls:
        grouped.setdefault((acl.resource_type, acl.resource_name, acl.pattern_type), []).append(
            {
                "principal": acl.principal,
                "host": acl.host,
                "operation": acl.operation,
                "permission_type": acl.permission,
            }
        )
    return [
        {"resource_type": rtype, "resource_name": name, "pattern_type": ptype, "acls": entries}
        for (rtype, name, ptype), entries in grouped.items()
    ]


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    r = request
    if 0 in (r.resource_type_filter, r.pattern_type_filter, r.operation, r.permission_type):
        raise CloseConnection("DescribeAcls: the filter holds an UNKNOWN (0) code, which Kafka cannot parse")
    authorizer = ctx.broker.authorizer
    if authorizer is None:
        return _error(SECURITY_DISABLED, "No Authorizer is configured on the broker")
    if not authz.allowed(ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.CLUSTER, authz.CLUSTER_NAME):
        return _error(CLUSTER_AUTHORIZATION_FAILED, "Request needs DESCRIBE permission.")
    acl_filter = AclFilter.from_codes(
        r.resource_type_filter,
        r.resource_name_filter,
        r.pattern_type_filter,
        r.principal_filter,
        r.host_filter,
        r.operation,
        r.permission_type,
    )
    return {
        "throttle_time": 0,
        "error_code": NONE,
        "error_message": "",
        "resources": resources(authorizer.describe(acl_filter)),
    }
