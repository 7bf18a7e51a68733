"""AlterUserScramCredentials (KIP-554): add, replace and delete users' SCRAM credentials.

Needs ALTER on the cluster; refused, every user named in the request gets CLUSTER_AUTHORIZATION_FAILED
(one result per distinct user, sorted, as Kafka's error response has them; Kafka's message also dumps
its internal request object, which is left out here). Otherwise the store applies
Kafka's semantics (:func:`odradek.security.scram_store.plan_alter`) and answers once the change is on disk.
The client sends a salted password; only StoredKey and ServerKey derived from it are kept.
"""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import CLUSTER_AUTHORIZATION_FAILED, log

REFUSED = "Request needs ALTER permission on the cluster."


async def handle(ctx: Any, request: Any) -> dict[str, Any]:
    if not authz.allowed(ctx, authz.AclOperation.ALTER, authz.ResourceType.CLUSTER, authz.CLUSTER_NAME):
        users = sorted({d.name for d in request.deletions} | {u.name for u in request.upsertions})
        results = [
            {
                "user": u,
                "error_code": CLUSTER_AUTHORIZATION_FAILED,
                "error_message": REFUSED,
            }
            for u in users
        ]
        return {"throttle_time": 0, "results": results}
    results = await ctx.broker.scram.alter_async(request.deletions, request.upsertions)
    for r in results:
        # Names and outcomes only: the request's salts and salted passwords are never logged.
        log.info(
            "SCRAM credentials of user %r altered by %s: %s",
            r["user"],
            getattr(ctx, "principal", "User:ANONYMOUS"),
            r["error_message"] or "ok",
        )
    return {"throttle_time": 0, "results": results}
