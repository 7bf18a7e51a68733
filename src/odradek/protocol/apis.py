"""The advertised API-version table: the one source of truth for what the broker speaks.

A version is listed only when a handler implements it. ApiVersions answers from this table, the
dispatcher refuses anything outside it, and tests check each range against real clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ApiKey(IntEnum):
    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DESCRIBE_CONFIGS = 32
    CREATE_PARTITIONS = 37
    DESCRIBE_CLUSTER = 60
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    DELETE_GROUPS = 42
    OFFSET_DELETE = 47
    INIT_PRODUCER_ID = 22
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_PRODUCERS = 61
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66
    CONSUMER_GROUP_HEARTBEAT = 68
    CONSUMER_GROUP_DESCRIBE = 69
    DELETE_RECORDS = 21
    OFFSET_FOR_LEADER_EPOCH = 23
    ALTER_CONFIGS = 33
    DESCRIBE_LOG_DIRS = 35
    ELECT_LEADERS = 43
    INCREMENTAL_ALTER_CONFIGS = 44
    SASL_HANDSHAKE = 17
    SASL_AUTHENTICATE = 36
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51


@dataclass(frozen=True, slots=True)
class ApiRange:
    key: ApiKey
    min_version: int
    max_version: int
    # Versions at or below this are advertised for old clients' sake but answered with an error
    # (Produce v0-v2: librdkafka needs v0 listed to enable compression; Kafka 4 refuses v0-v2 the same way).
    refused_below: int = -1


SUPPORTED: dict[int, ApiRange] = {
    r.key: r
    for r in (
        ApiRange(ApiKey.PRODUCE, 0, 11, refused_below=3),
        ApiRange(ApiKey.FETCH, 4, 12),
        ApiRange(ApiKey.LIST_OFFSETS, 1, 7),
        ApiRange(ApiKey.METADATA, 0, 12),
        ApiRange(ApiKey.API_VERSIONS, 0, 3),
        ApiRange(ApiKey.CREATE_TOPICS, 2, 7),
        ApiRange(ApiKey.DELETE_TOPICS, 1, 6),
        ApiRange(ApiKey.DESCRIBE_CONFIGS, 1, 4),
        ApiRange(ApiKey.CREATE_PARTITIONS, 0, 3),
        ApiRange(ApiKey.DESCRIBE_CLUSTER, 0, 1),
        ApiRange(ApiKey.OFFSET_COMMIT, 2, 9),
        ApiRange(ApiKey.OFFSET_FETCH, 1, 9),
        ApiRange(ApiKey.FIND_COORDINATOR, 0, 4),
        ApiRange(ApiKey.JOIN_GROUP, 0, 9),
        ApiRange(ApiKey.HEARTBEAT, 0, 4),
        ApiRange(ApiKey.LEAVE_GROUP, 0, 5),
        ApiRange(ApiKey.SYNC_GROUP, 0, 5),
        ApiRange(ApiKey.DESCRIBE_GROUPS, 0, 5),
        ApiRange(ApiKey.LIST_GROUPS, 0, 5),
        ApiRange(ApiKey.DELETE_GROUPS, 0, 2),
        ApiRange(ApiKey.OFFSET_DELETE, 0, 0),
        ApiRange(ApiKey.INIT_PRODUCER_ID, 0, 5),
        ApiRange(ApiKey.ADD_PARTITIONS_TO_TXN, 0, 3),
        ApiRange(ApiKey.ADD_OFFSETS_TO_TXN, 0, 4),
        ApiRange(ApiKey.END_TXN, 0, 4),
        ApiRange(ApiKey.TXN_OFFSET_COMMIT, 0, 4),
        ApiRange(ApiKey.DESCRIBE_PRODUCERS, 0, 0),
        ApiRange(ApiKey.DESCRIBE_TRANSACTIONS, 0, 0),
        ApiRange(ApiKey.LIST_TRANSACTIONS, 0, 1),
        ApiRange(ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, 1),
        ApiRange(ApiKey.CONSUMER_GROUP_DESCRIBE, 0, 1),
        ApiRange(ApiKey.DELETE_RECORDS, 0, 2),
        ApiRange(ApiKey.OFFSET_FOR_LEADER_EPOCH, 2, 4),
        ApiRange(ApiKey.ALTER_CONFIGS, 0, 2),
        ApiRange(ApiKey.DESCRIBE_LOG_DIRS, 1, 5),
        ApiRange(ApiKey.ELECT_LEADERS, 0, 2),
        ApiRange(ApiKey.INCREMENTAL_ALTER_CONFIGS, 0, 1),
        ApiRange(ApiKey.SASL_HANDSHAKE, 0, 1),
        ApiRange(ApiKey.SASL_AUTHENTICATE, 0, 2),
        ApiRange(ApiKey.DESCRIBE_ACLS, 1, 3),
        ApiRange(ApiKey.CREATE_ACLS, 1, 3),
        ApiRange(ApiKey.DELETE_ACLS, 1, 3),
        ApiRange(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, 0),
        ApiRange(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, 0),
    )
}


def is_supported(api_key: int, api_version: int) -> bool:
    r = SUPPORTED.get(api_key)
    return r is not None and r.min_version <= api_version <= r.max_version
