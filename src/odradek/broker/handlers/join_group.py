"""JoinGroup: the join barrier of the classic protocol (replies once every member has rejoined)."""

from __future__ import annotations

from typing import Any

from ...coordinator.groups import INCONSISTENT_GROUP_PROTOCOL, JoinRequest, JoinResult
from .. import authz
from ._common import GROUP_AUTHORIZATION_FAILED


def handle(ctx: Any, request: Any) -> Any:
    groups = ctx.broker.groups
    if not authz.allowed(ctx, authz.AclOperation.READ, authz.ResourceType.GROUP, request.group_id):
        return _respond_now(JoinResult(GROUP_AUTHORIZATION_FAILED))  # READ on the group, as in Kafka
    modern = groups.consumer.groups.get(request.group_id)
    if modern is not None:
        if modern.members:  # a KIP-848 group in use cannot take classic members
            return _respond_now(JoinResult(INCONSISTENT_GROUP_PROTOCOL, member_id=request.member_id))
        groups.consumer.groups.pop(request.group_id)  # an Empty consumer group converts
        groups.consumer_changed([request.group_id])
    rebalance_ms = (
        int(request.rebalance_timeout.total_seconds() * 1000) if hasattr(request, "rebalance_timeout") else -1
    )
    session_ms = int(request.session_timeout.total_seconds() * 1000)
    req = JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        client_id=ctx.header.client_id or "",
        client_host="/" + ctx.peer.rpartition(":")[0],
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=rebalance_ms if rebalance_ms >= 0 else session_ms,
        protocol_type=request.protocol_type,
        protocols=tuple((p.name, p.metadata) for p in request.protocols),
        require_known_member_id=ctx.api_version >= 4,
        reason=getattr(request, "reason", None),
    )
    return _respond(groups.call(groups.coordinator.join, req))


async def _respond(pending: Any) -> dict[str, Any]:
    return _respond_now(await pending)


def _respond_now(r: JoinResult) -> dict[str, Any]:
    return {
        "throttle_time": 0,
        "error_code": r.error_code,
        "generation_id": r.generation_id,
        "protocol_type": r.protocol_type,
        "protocol_name": r.protocol_name,
        "leader": r.leader,
        "skip_assignment": r.skip_assignment,
        "member_id": r.member_id,
        "members": [{"member_id": m, "group_instance_id": i, "metadata": md} for m, i, md in r.members],
    }
