"""DescribeCluster: one broker, which is also the controller."""

from __future__ import annotations

from typing import Any

from .. import authz
from ._common import INVALID_REQUEST, NONE, cluster_operations

AUTHORIZED_OPERATIONS_OMITTED = authz.OMITTED  # kept for the handlers that import it from here


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    b = ctx.broker
    endpoint_type = getattr(request, "endpoint_type", 1)
    if endpoint_type != 1:  # only brokers are exposed; Kafka refuses controller endpoints the same way
        return {
            "error_code": INVALID_REQUEST,
            "error_message": "The request was sent to an endpoint of "
            "type BROKER, but we wanted an endpoint of type CONTROLLER",
            "endpoint_type": endpoint_type,
            "cluster_id": b.cluster_id,
            "controller_id": -1,
            "brokers": [],
        }
    return {
        "throttle_time": 0,
        "error_code": NONE,
        "error_message": None,
        "endpoint_type": 1,
        "cluster_id": b.cluster_id,
        "controller_id": b.node_id,
        "brokers": [{"broker_id": b.node_id, "host": ctx.host, "port": ctx.port, "rack": None}],
        # Open to every principal, as in Kafka; only the bitfield depends on who asks.
        "cluster_authorized_operations": cluster_operations(
            ctx, bool(getattr(request, "include_cluster_authorized_operations", False))
        ),
    }
