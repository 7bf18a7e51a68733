"""TxnOffsetCommit: offsets staged with a transaction, applied by its commit marker, dropped by abort.

v3+ (KIP-447) carries the consumer's group generation and member id, so a zombie whose consumer was
fenced out of the group cannot commit offsets even with a still-valid producer epoch.

As Kafka: WRITE on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition),
READ on the group (else GROUP_AUTHORIZATION_FAILED), and READ on each topic (else TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from typing import Any

from .. import authz
from ..clock import now_ms
from ._common import (
    GROUP_AUTHORIZATION_FAILED,
    NONE,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    after_persist,
    check_offsets,
    log,
    refused,
)


def handle(ctx: Any, request: Any) -> Any:
    broker = ctx.broker
    groups = broker.groups
    whole = NONE
    if not authz.allowed(ctx, WRITE, authz.ResourceType.TRANSACTIONAL_ID, request.transactional_id):
        whole = TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    elif not authz.allowed(ctx, READ, authz.ResourceType.GROUP, request.group_id):
        whole = GROUP_AUTHORIZATION_FAILED
    if whole != NONE:
        _, topics_out = check_offsets(broker, request.topics, whole, 0)
        return {"throttle_time": 0, "topics": topics_out}
    denied = refused(ctx, READ, authz.ResourceType.TOPIC, (t.name for t in request.topics))
    error = broker.txns.coordinator.verify_offsets(
        request.transactional_id, request.producer_id, request.producer_epoch
    )
    if error == NONE and ctx.api_version >= 3:
        error = _validate_member(groups, request)
    if error:
        log.info(
            "TxnOffsetCommit for group %s by %s refused with error %d",
            request.group_id,
            request.transactional_id,
            error,
        )
    staged, topics_out = check_offsets(broker, request.topics, error, now_ms(), denied)
    response = {"throttle_time": 0, "topics": topics_out}
    records = groups.offsets.stage(request.group_id, request.producer_id, staged)
    if not records:
        return response
    return after_persist(groups, records, response)


WRITE = authz.AclOperation.WRITE
READ = authz.AclOperation.READ


def _validate_member(groups: Any, request: Any) -> int:
    if groups.kind(request.group_id) == "consumer" and request.member_id:
        return groups.consumer.validate_offset_commit(
            request.group_id, request.member_id, request.generation_id
        )
    return groups.coordinator.validate_txn_offset_commit(
        request.group_id, request.generation_id, request.member_id, request.group_instance_id
    )
