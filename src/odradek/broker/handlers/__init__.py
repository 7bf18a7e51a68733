"""One module per Kafka API. Each exposes ``handle(ctx, request)``; this table is the dispatcher's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...protocol.apis import ApiKey
from . import (
    api_versions,
    create_partitions,
    create_topics,
    delete_topics,
    describe_cluster,
    describe_configs,
    fetch,
    list_offsets,
    metadata,
    produce,
)
from ._common import CloseConnection

HANDLERS: dict[int, Callable[[Any, Any], Any]] = {
    ApiKey.PRODUCE: produce.handle,
    ApiKey.FETCH: fetch.handle,
    ApiKey.LIST_OFFSETS: list_offsets.handle,
    ApiKey.METADATA: metadata.handle,
    ApiKey.API_VERSIONS: api_versions.handle,
    ApiKey.CREATE_TOPICS: create_topics.handle,
    ApiKey.DELETE_TOPICS: delete_topics.handle,
    ApiKey.DESCRIBE_CONFIGS: describe_configs.handle,
    ApiKey.CREATE_PARTITIONS: create_partitions.handle,
    ApiKey.DESCRIBE_CLUSTER: describe_cluster.handle,
}

__all__ = ["HANDLERS", "CloseConnection"]
