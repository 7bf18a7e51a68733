"""ConsumerGroupHeartbeat (KIP-848): join, stay, reconcile and leave, all through one call.

With an authorizer, as Kafka: READ on the group (else GROUP_AUTHORIZATION_FAILED), DESCRIBE on every
subscribed topic named (else TOPIC_AUTHORIZATION_FAILED for the heartbeat), and a regular expression
matches only topics the principal may describe."""

from __future__ import annotations

import uuid
from typing import Any

from ...coordinator.consumer_groups import HeartbeatRequest
from .. import authz
from ._common import GROUP_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED, log, refused

GROUP_ID_NOT_FOUND = 69


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    groups = broker.groups
    checked = broker.authorizer is not None
    if checked:
        if not authz.allowed(ctx, authz.AclOperation.READ, authz.ResourceType.GROUP, request.group_id):
            return _error(GROUP_AUTHORIZATION_FAILED, None, epoch=0)
        names = request.subscribed_topic_names or ()
        if refused(ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.TOPIC, names):
            return _error(TOPIC_AUTHORIZATION_FAILED, None, epoch=0)
    classic = groups.coordinator.group(request.group_id)
    if classic is not None:
        if classic.members:
            return _error(GROUP_ID_NOT_FOUND, f"Group {request.group_id} is not a consumer group.")
        groups.coordinator.groups.pop(request.group_id, None)  # an Empty classic group converts
        groups.group_deleted(request.group_id)
    member_id = request.member_id
    if not member_id and ctx.api_version == 0 and request.member_epoch == 0:
        member_id = str(uuid.uuid4())  # v0: the coordinator names new members
    owned = None
    if request.topic_partitions is not None:
        owned = {t.topic_id: frozenset(t.partitions) for t in request.topic_partitions}
    rebalance = request.rebalance_timeout
    rebalance_ms = int(rebalance.total_seconds() * 1000) if hasattr(rebalance, "total_seconds") else rebalance
    req = HeartbeatRequest(
        group_id=request.group_id,
        member_id=member_id,
        member_epoch=request.member_epoch,
        instance_id=request.instance_id,
        rack_id=request.rack_id,
        rebalance_timeout_ms=rebalance_ms,
        subscribed_topic_names=tuple(request.subscribed_topic_names)
        if request.subscribed_topic_names is not None
        else None,
        subscribed_topic_regex=getattr(request, "subscribed_topic_regex", None),
        server_assignor=request.server_assignor,
        owned=owned,
        client_id=ctx.header.client_id or "",
        client_host="/" + ctx.peer.rpartition(":")[0],
    )
    state = broker.state

    def resolve(name: str) -> tuple[uuid.UUID, int] | None:
        topic = state.topics.get(name)
        return (topic.topic_id, len(topic.partitions)) if topic is not None else None

    def topics() -> list[str]:
        if not checked:
            return list(state.topics)
        hidden = refused(ctx, authz.AclOperation.DESCRIBE, authz.ResourceType.TOPIC, state.topics)
        return [name for name in state.topics if name not in hidden]

    r = groups.consumer_heartbeat(req, resolve, topics)
    if r.error_code:
        log.info(
            "consumer group %s: heartbeat from %s refused (error %d): %s",
            request.group_id,
            member_id,
            r.error_code,
            r.error_message,
        )
    return {
        "throttle_time": 0,
        "error_code": r.error_code,
        "error_message": r.error_message,
        "member_id": r.member_id,
        "member_epoch": r.member_epoch,
        "heartbeat_interval": r.heartbeat_interval_ms,
        "assignment": None
        if r.assignment is None
        else {
            "topic_partitions": [{"topic_id": t, "partitions": sorted(p)} for t, p in r.assignment.items()]
        },
    }


def _error(code: int, message: str | None, epoch: int = -1) -> dict[str, Any]:
    """A refusal; Kafka's authorization refusals leave the epoch at its default (0)."""
    return {
        "throttle_time": 0,
        "error_code": code,
        "error_message": message,
        "member_id": None,
        "member_epoch": epoch,
        "heartbeat_interval": 0,
        "assignment": None,
    }
