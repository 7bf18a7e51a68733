"""Broker configuration: Kafka's key names, Kafka's defaults where they make sense for one node.

Every tunable lives here so that operators find the names they already know. Values come from, in order:
defaults below, a properties or TOML file (``--config``), then ``--set key=value`` overrides.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The authorizer names Kafka 4 accepts for its ACL authorizer; any of them turns ACLs on here.
AUTHORIZER_CLASSES: tuple[str, ...] = ("org.apache.kafka.metadata.authorizer.StandardAuthorizer",)


class ConfigError(ValueError):
    """A configuration value the broker cannot use; the message names the key and what was expected."""


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    kind: type  # int, bool, str, float
    default: Any
    doc: str
    topic_key: str | None = None  # the per-topic override name, where Kafka has one


_KEYS: tuple[Key, ...] = (
    Key("node.id", int, 1, "Broker id reported in Metadata."),
    Key("cluster.id", str, "odradek-cluster", "Cluster id reported in Metadata and DescribeCluster."),
    Key("num.partitions", int, 1, "Partitions of an auto-created topic."),
    Key("event.loop", str, "asyncio", "Odradek only: asyncio, or uvloop (pip install 'odradek[uvloop]')."),
    Key(
        "advertised.listeners",
        str,
        "",
        "PLAINTEXT://HOST:PORT clients are told to use (Metadata, FindCoordinator); empty: the address "
        "each connection came in on.",
    ),
    Key("auto.create.topics.enable", bool, True, "Create a topic on first Metadata or Produce for it."),
    Key("default.replication.factor", int, 1, "Only 1 is possible on one node."),
    Key("message.max.bytes", int, 1048588, "Largest record batch accepted.", "max.message.bytes"),
    Key("socket.request.max.bytes", int, 104857600, "Largest request frame; larger closes the connection."),
    Key("queued.max.requests", int, 500, "Requests in flight per connection before reading pauses."),
    Key("log.segment.bytes", int, 1073741824, "Segment size before rolling.", "segment.bytes"),
    Key("log.roll.ms", int, 604800000, "Segment age before rolling.", "segment.ms"),
    Key(
        "log.retention.ms",
        int,
        604800000,
        "Delete segments older than this; -1 keeps forever.",
        "retention.ms",
    ),
    Key(
        "log.retention.bytes",
        int,
        -1,
        "Delete old segments past this partition size; -1 = no limit.",
        "retention.bytes",
    ),
    Key("log.retention.check.interval.ms", int, 300000, "How often retention runs."),
    Key("log.index.interval.bytes", int, 4096, "Bytes between sparse index entries.", "index.interval.bytes"),
    Key(
        "log.index.size.max.bytes",
        int,
        10485760,
        "Offset index size limit per segment.",
        "segment.index.bytes",
    ),
    Key(
        "log.message.timestamp.type",
        str,
        "CreateTime",
        "CreateTime or LogAppendTime.",
        "message.timestamp.type",
    ),
    Key(
        "log.message.timestamp.before.max.ms",
        int,
        9223372036854775807,
        "Reject a batch whose timestamp is further in the past.",
        "message.timestamp.before.max.ms",
    ),
    Key(
        "log.message.timestamp.after.max.ms",
        int,
        3600000,
        "Reject a batch whose timestamp is further in the future.",
        "message.timestamp.after.max.ms",
    ),
    Key(
        "log.cleanup.policy",
        str,
        "delete",
        "delete or compact (compaction keys are validated).",
        "cleanup.policy",
    ),
    Key(
        "log.flush.interval.ms",
        int,
        1000,
        "Background fsync of acks<all data at most this late.",
        "flush.ms",
    ),
    # Accepted and reported so that topic scripts written for Kafka work; noted where they change nothing.
    Key(
        "compression.type",
        str,
        "producer",
        "producer keeps each batch as the producer compressed it; uncompressed, gzip, snappy, lz4 or zstd "
        "recompresses on append every batch in another codec (docs/compression.md).",
        "compression.type",
    ),
    Key(
        "compression.gzip.level",
        int,
        -1,
        "gzip level when the broker recompresses: 1 to 9, or -1 for the codec's default (6).",
        "compression.gzip.level",
    ),
    Key(
        "compression.lz4.level",
        int,
        9,
        "lz4 level when the broker recompresses: 1 to 17.",
        "compression.lz4.level",
    ),
    Key(
        "compression.zstd.level",
        int,
        3,
        "zstd level when the broker recompresses: -131072 to 22.",
        "compression.zstd.level",
    ),
    Key("min.insync.replicas", int, 1, "One node: always 1 in sync; recorded only.", "min.insync.replicas"),
    Key(
        "log.cleaner.delete.retention.ms",
        int,
        86400000,
        "How long a compacted topic keeps tombstones and finished transactions' markers after the cleaner "
        "first kept them.",
        "delete.retention.ms",
    ),
    Key(
        "log.cleaner.min.compaction.lag.ms",
        int,
        0,
        "Records younger than this are not compacted.",
        "min.compaction.lag.ms",
    ),
    Key(
        "log.cleaner.max.compaction.lag.ms",
        int,
        9223372036854775807,
        "Records older than this are compacted whatever the dirty ratio.",
        "max.compaction.lag.ms",
    ),
    Key(
        "log.cleaner.min.cleanable.ratio",
        float,
        0.5,
        "Compact when the uncompacted part reaches this share of the log.",
        "min.cleanable.dirty.ratio",
    ),
    Key("log.cleaner.enable", bool, True, "Run the log cleaner (compacts cleanup.policy=compact topics)."),
    Key("log.cleaner.backoff.ms", int, 15000, "The log cleaner's pause when no log needs cleaning."),
    Key(
        "log.cleaner.dedupe.buffer.size",
        int,
        134217728,
        "Bounds the cleaner's key map (24 bytes a key, load factor 0.9); a pass ends where it is full.",
    ),
    Key(
        "log.flush.interval.messages",
        int,
        9223372036854775807,
        "acks=all is always fsynced; acks<all within log.flush.interval.ms (recorded).",
        "flush.messages",
    ),
    Key(
        "log.segment.delete.delay.ms",
        int,
        60000,
        "Segments are deleted at once (recorded).",
        "file.delete.delay.ms",
    ),
    Key("log.roll.jitter.ms", int, 0, "Roll jitter (recorded).", "segment.jitter.ms"),
    Key("log.preallocate", bool, False, "Preallocation (recorded).", "preallocate"),
    Key(
        "unclean.leader.election.enable",
        bool,
        False,
        "One node: no elections (recorded).",
        "unclean.leader.election.enable",
    ),
    Key("fetch.max.bytes", int, 57671680, "Upper bound on a Fetch response's record bytes."),
    Key("replica.fetch.wait.max.ms", int, 500, "Cap on a consumer's Fetch max_wait_ms."),
    Key(
        "max.incremental.fetch.session.cache.slots",
        int,
        1000,
        "Incremental fetch sessions (KIP-227) kept, in 8 shards of slots // 8; 0 turns sessions off.",
    ),
    Key("connections.max.idle.ms", int, 600000, "Close connections idle this long."),
    Key("group.min.session.timeout.ms", int, 6000, "Smallest session timeout a group member may ask for."),
    Key("group.max.session.timeout.ms", int, 1800000, "Largest session timeout a group member may ask for."),
    Key("group.max.size", int, 2147483647, "Members a classic group may hold."),
    Key(
        "group.initial.rebalance.delay.ms",
        int,
        0,
        "Wait for more members before the first rebalance of an empty classic group (Kafka: 3000; 0 here so "
        "that tests need not wait 3 s per new group). With 0, members joining a new group a moment apart do "
        "not share its first generation: with cooperative-sticky, the first one gets every partition and "
        "hands some over in a second rebalance (two assignment callbacks where Kafka's 3000 gives one). Set "
        "3000 for Kafka's behaviour.",
    ),
    Key("group.consumer.session.timeout.ms", int, 45000, "KIP-848 member session timeout (broker-side)."),
    Key("group.consumer.heartbeat.interval.ms", int, 5000, "KIP-848 heartbeat interval given to members."),
    Key("group.consumer.max.size", int, 2147483647, "Members a KIP-848 consumer group may hold."),
    Key("transaction.max.timeout.ms", int, 900000, "Largest transaction timeout a producer may ask for."),
    Key("transactional.id.expiration.ms", int, 604800000, "Forget transactional ids idle this long."),
    Key("producer.id.expiration.ms", int, 86400000, "Forget an idle producer's sequence state this late."),
    Key("offsets.retention.minutes", int, 10080, "Keep an empty group's committed offsets this long."),
    Key("offsets.retention.check.interval.ms", int, 600000, "How often expired offsets are removed."),
    Key("offset.metadata.max.bytes", int, 4096, "Largest metadata string with a committed offset."),
    Key("max.connections", int, 1000, "Open client connections before new ones are refused."),
    # --- security (docs/security.md): listeners, TLS, SASL, ACLs, with Kafka's names -----------------
    Key(
        "listeners",
        str,
        "",
        "NAME://HOST:PORT,... (e.g. PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9094); empty: one "
        "PLAINTEXT listener on serve --listen.",
    ),
    Key(
        "listener.security.protocol.map",
        str,
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "Listener name to security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).",
    ),
    Key("ssl.keystore.type", str, "PEM", "PEM (the only keystore type Odradek reads)."),
    Key("ssl.keystore.location", str, "", "File with the broker's certificate chain and private key (PEM)."),
    Key("ssl.keystore.certificate.chain", str, "", "The broker's certificate chain, PEM text."),
    Key("ssl.keystore.key", str, "", "The broker's private key, PEM text (PKCS#8, optionally encrypted)."),
    Key("ssl.keystore.password", str, "", "Unused for PEM keystores (accepted for Kafka's sake)."),
    Key("ssl.key.password", str, "", "Password of an encrypted private key."),
    Key("ssl.truststore.type", str, "PEM", "PEM (the only truststore type Odradek reads)."),
    Key("ssl.truststore.location", str, "", "File of the CAs client certificates must chain to."),
    Key("ssl.truststore.certificates", str, "", "The CAs client certificates must chain to, PEM text."),
    Key("ssl.truststore.password", str, "", "Unused for PEM truststores (accepted for Kafka's sake)."),
    Key("ssl.client.auth", str, "none", "none, requested or required: client certificates."),
    Key("ssl.enabled.protocols", str, "TLSv1.2,TLSv1.3", "TLS versions accepted."),
    Key(
        "ssl.principal.mapping.rules",
        str,
        "DEFAULT",
        "Client certificate DN to principal name: RULE:pattern/replacement/[LU],...,DEFAULT.",
    ),
    Key(
        "ssl.handshake.timeout.ms",
        int,
        10000,
        "Odradek only: a TLS client that has not finished its handshake this long after connecting is "
        "dropped.",
    ),
    Key(
        "sasl.enabled.mechanisms",
        str,
        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "SASL mechanisms offered on SASL listeners (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).",
    ),
    Key("sasl.server.max.receive.size", int, 524288, "Largest request accepted before authentication."),
    Key(
        "connections.max.reauth.ms",
        int,
        0,
        "KIP-368: a SASL session's lifetime, after which the client must re-authenticate; 0: unbounded.",
    ),
    Key(
        "connection.failed.authentication.delay.ms",
        int,
        100,
        "How long a connection that failed authentication is held before it is closed.",
    ),
    Key(
        "authorizer.class.name",
        str,
        "",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer enables ACLs; empty: everyone may do "
        "everything.",
    ),
    Key("super.users", str, "", "Principals that pass every ACL check: User:admin;User:ops."),
    Key(
        "allow.everyone.if.no.acl.found",
        bool,
        False,
        "With ACLs on, a resource no ACL matches is open to everyone (true) or to super users only.",
    ),
    Key(
        "metrics.listen",
        str,
        "",
        "Odradek only: HOST:PORT (or :PORT, loopback) of the Prometheus endpoint; empty: off. Needs "
        "pip install 'odradek[metrics]'.",
    ),
    # Tiered storage is not offered; these are reported so that tools listing a topic's configs see Kafka's.
    Key(
        "log.local.retention.ms",
        int,
        -2,
        "Tiered storage only (-2: retention.ms); recorded.",
        "local.retention.ms",
    ),
    Key(
        "log.local.retention.bytes",
        int,
        -2,
        "Tiered storage only (-2: retention.bytes); recorded.",
        "local.retention.bytes",
    ),
    Key("log.remote.copy.lag.ms", int, 0, "Tiered storage only; recorded.", "remote.copy.lag.ms"),
    Key("log.remote.copy.lag.bytes", int, -1, "Tiered storage only; recorded.", "remote.copy.lag.bytes"),
    Key(
        "max.decompressed.message.bytes",
        int,
        2147483639,
        "Largest decompressed size of a batch (recorded).",
        "max.decompressed.message.bytes",
    ),
    Key(
        "group.consumer.min.session.timeout.ms",
        int,
        45000,
        "Smallest consumer.session.timeout.ms a KIP-848 group config may set.",
    ),
    Key(
        "group.consumer.max.session.timeout.ms",
        int,
        60000,
        "Largest consumer.session.timeout.ms a KIP-848 group config may set.",
    ),
    Key(
        "group.consumer.min.heartbeat.interval.ms",
        int,
        5000,
        "Smallest consumer.heartbeat.interval.ms a KIP-848 group config may set.",
    ),
    Key(
        "group.consumer.max.heartbeat.interval.ms",
        int,
        15000,
        "Largest consumer.heartbeat.interval.ms a KIP-848 group config may set.",
    ),
    Key(
        "group.consumer.assignment.interval.ms",
        int,
        1000,
        "Default of a group's consumer.assignment.interval.ms (recorded: assignment is immediate).",
    ),
)

KEYS: Mapping[str, Key] = {k.name: k for k in _KEYS}

# Kafka's PASSWORD-typed keys: DescribeConfigs answers them with no value and is_sensitive=true, and they
# are never logged.
SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "ssl.keystore.key",
        "ssl.keystore.certificate.chain",
        "ssl.keystore.password",
        "ssl.key.password",
        "ssl.truststore.certificates",
        "ssl.truststore.password",
    }
)

# Per-listener, per-mechanism settings, Kafka style: listener.name.<listener>.<mechanism>.sasl.jaas.config
# (PLAIN users as user_<name>="<password>"). Kept beside the fixed keys, in ``BrokerConfig.listener_keys``.
LISTENER_KEY_RE = re.compile(r"^listener\.name\.([a-z0-9_]+)\.([a-z0-9-]+)\.sasl\.jaas\.config$")

# Topic configs Kafka lists that have no broker-wide synonym: their defaults are Kafka's own.
TOPIC_ONLY_KEYS: tuple[Key, ...] = (
    Key(
        "remote.storage.enable",
        bool,
        False,
        "Tiered storage is not offered: only false.",
        "remote.storage.enable",
    ),
    Key("remote.log.copy.disable", bool, False, "Tiered storage only (recorded).", "remote.log.copy.disable"),
    Key(
        "remote.log.delete.on.disable",
        bool,
        False,
        "Tiered storage only (recorded).",
        "remote.log.delete.on.disable",
    ),
    Key(
        "leader.replication.throttled.replicas",
        str,
        "",
        "Replication throttling: one node has no followers (recorded).",
        "leader.replication.throttled.replicas",
    ),
    Key(
        "follower.replication.throttled.replicas",
        str,
        "",
        "Replication throttling: one node has no followers (recorded).",
        "follower.replication.throttled.replicas",
    ),
    Key(
        "errors.deadletterqueue.group.enable",
        bool,
        False,
        "Share groups' dead-letter queue (recorded).",
        "errors.deadletterqueue.group.enable",
    ),
)
TOPIC_ONLY: frozenset[str] = frozenset(k.name for k in TOPIC_ONLY_KEYS)
TOPIC_KEYS: Mapping[str, Key] = {
    **{k.topic_key: k for k in _KEYS if k.topic_key},
    **{k.name: k for k in TOPIC_ONLY_KEYS},
}
# Topic configs whose value is a comma-separated list (IncrementalAlterConfigs APPEND / SUBTRACT).
LIST_CONFIGS: frozenset[str] = frozenset(
    {"cleanup.policy", "leader.replication.throttled.replicas", "follower.replication.throttled.replicas"}
)

# Broker configs Kafka lets IncrementalAlterConfigs / AlterConfigs change on a running broker (per broker
# or cluster-wide): the log defaults of topic configs plus these. Every other known key is refused with
# "Cannot update these configs dynamically"; names the broker does not know are stored as Kafka stores them.
DYNAMIC_BROKER_KEYS: frozenset[str] = frozenset(
    {k.name for k in _KEYS if k.topic_key and k.name != "min.insync.replicas"}
    | {
        "producer.id.expiration.ms",
        "max.connections",
        "log.cleaner.threads",
        "log.cleaner.backoff.ms",
        "log.cleaner.dedupe.buffer.size",
        "log.cleaner.io.buffer.size",
        "log.cleaner.io.buffer.load.factor",
        "log.cleaner.io.max.bytes.per.second",
    }
)

# Kafka broker configs Odradek does not have that Kafka only reads at start-up: changing one on a running
# broker is refused as Kafka refuses it, not stored as an unknown name.
KAFKA_STATIC_KEYS: frozenset[str] = frozenset(
    {
        "broker.id",
        "controller.listener.names",
        "controller.quorum.voters",
        "delete.topic.enable",
        "group.coordinator.rebalance.protocols",
        "inter.broker.listener.name",
        "listeners",
        "log.dir",
        "log.dirs",
        "log.flush.scheduler.interval.ms",
        "log.retention.hours",
        "log.retention.minutes",
        "log.roll.hours",
        "log.roll.jitter.hours",
        "metadata.log.dir",
        "offsets.topic.replication.factor",
        "process.roles",
        "transaction.state.log.replication.factor",
    }
)

# Kafka's ConfigSource values (DescribeConfigs v1+).
TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
GROUP_CONFIG = 8


@dataclass(frozen=True, slots=True)
class GroupKey:
    """A KIP-848 group config: its broker-wide default (``synonym``) and the range a group may set."""

    name: str
    kind: type
    synonym: str
    default: Any
    doc: str
    low: str | int | None = None  # a broker key naming the bound, or the bound itself
    high: str | int | None = None
    choices: tuple[str, ...] = ()


GROUP_KEYS: Mapping[str, GroupKey] = {
    g.name: g
    for g in (
        GroupKey(
            "consumer.session.timeout.ms",
            int,
            "group.consumer.session.timeout.ms",
            45000,
            "Session timeout of this group's members (used by the coordinator).",
            "group.consumer.min.session.timeout.ms",
            "group.consumer.max.session.timeout.ms",
        ),
        GroupKey(
            "consumer.heartbeat.interval.ms",
            int,
            "group.consumer.heartbeat.interval.ms",
            5000,
            "Heartbeat interval given to this group's members (used by the coordinator).",
            "group.consumer.min.heartbeat.interval.ms",
            "group.consumer.max.heartbeat.interval.ms",
        ),
        GroupKey(
            "consumer.assignment.interval.ms",
            int,
            "group.consumer.assignment.interval.ms",
            1000,
            "Recorded: the assignment is computed at once.",
            0,
        ),
        # Share and streams groups are not offered; their group configs are recorded as Kafka lists them.
        GroupKey(
            "share.session.timeout.ms",
            int,
            "group.share.session.timeout.ms",
            45000,
            "Recorded.",
            45000,
            60000,
        ),
        GroupKey(
            "share.heartbeat.interval.ms",
            int,
            "group.share.heartbeat.interval.ms",
            5000,
            "Recorded.",
            5000,
            15000,
        ),
        GroupKey(
            "share.record.lock.duration.ms",
            int,
            "group.share.record.lock.duration.ms",
            30000,
            "Recorded.",
            15000,
            60000,
        ),
        GroupKey(
            "share.delivery.count.limit", int, "group.share.delivery.count.limit", 5, "Recorded.", 2, 10
        ),
        GroupKey(
            "share.partition.max.record.locks",
            int,
            "group.share.partition.max.record.locks",
            2000,
            "Recorded.",
            100,
            10000,
        ),
        GroupKey(
            "share.assignment.interval.ms", int, "group.share.assignment.interval.ms", 1000, "Recorded.", 0
        ),
        GroupKey(
            "share.auto.offset.reset",
            str,
            "share.auto.offset.reset",
            "latest",
            "Recorded.",
            choices=("latest", "earliest"),
        ),
        GroupKey(
            "share.isolation.level",
            str,
            "share.isolation.level",
            "read_uncommitted",
            "Recorded.",
            choices=("read_committed", "read_uncommitted"),
        ),
        GroupKey("share.renew.acknowledge.enable", bool, "share.renew.acknowledge.enable", True, "Recorded."),
        GroupKey(
            "streams.session.timeout.ms",
            int,
            "group.streams.session.timeout.ms",
            45000,
            "Recorded.",
            45000,
            60000,
        ),
        GroupKey(
            "streams.heartbeat.interval.ms",
            int,
            "group.streams.heartbeat.interval.ms",
            5000,
            "Recorded.",
            5000,
            15000,
        ),
        GroupKey(
            "streams.num.standby.replicas", int, "group.streams.num.standby.replicas", 0, "Recorded.", 0, 2
        ),
        GroupKey(
            "streams.initial.rebalance.delay.ms",
            int,
            "group.streams.initial.rebalance.delay.ms",
            3000,
            "Recorded.",
            0,
        ),
        GroupKey(
            "streams.assignment.interval.ms",
            int,
            "group.streams.assignment.interval.ms",
            1000,
            "Recorded.",
            0,
        ),
        GroupKey("streams.assignor.name", str, "group.streams.assignors", "sticky", "Recorded."),
        GroupKey(
            "streams.rack.aware.assignment.tags",
            str,
            "group.streams.rack.aware.assignment.tags",
            "",
            "Recorded.",
        ),
        GroupKey(
            "errors.deadletterqueue.topic.name", str, "errors.deadletterqueue.topic.name", "", "Recorded."
        ),
        GroupKey(
            "errors.deadletterqueue.copy.record.enable",
            bool,
            "errors.deadletterqueue.copy.record.enable",
            False,
            "Recorded.",
        ),
    )
}


# Lower bounds of broker settings (a 0 or negative value would silently disable a limit or break topics).
BROKER_AT_LEAST: Mapping[str, int] = {
    "num.partitions": 1,
    "message.max.bytes": 0,
    "socket.request.max.bytes": 1,
    "queued.max.requests": 1,
    "log.segment.bytes": 1024,
    "log.cleaner.backoff.ms": 0,
    "log.cleaner.dedupe.buffer.size": 24,
    "log.roll.ms": 1,
    "log.retention.ms": -1,
    "log.retention.bytes": -1,
    "log.retention.check.interval.ms": 1,
    "log.index.interval.bytes": 0,
    "log.index.size.max.bytes": 4,
    "log.flush.interval.ms": 1,
    "fetch.max.bytes": 0,
    "max.incremental.fetch.session.cache.slots": 0,
    "connections.max.idle.ms": 1,
    "max.connections": 1,
    "group.min.session.timeout.ms": 1,
    "group.max.session.timeout.ms": 1,
    "group.max.size": 1,
    "group.initial.rebalance.delay.ms": 0,
    "group.consumer.session.timeout.ms": 1,
    "group.consumer.heartbeat.interval.ms": 1,
    "group.consumer.max.size": 1,
    "offsets.retention.minutes": 1,
    "offsets.retention.check.interval.ms": 1,
    "offset.metadata.max.bytes": 0,
    "transaction.max.timeout.ms": 1,
    "transactional.id.expiration.ms": 1,
    "producer.id.expiration.ms": 1,
    "node.id": 0,
}

# Kafka's bounds and allowed values for per-topic configs (checked on CreateTopics).
TOPIC_AT_LEAST: Mapping[str, float] = {
    "retention.ms": -1,
    "segment.bytes": 1048576,
    "segment.ms": 1,
    "max.message.bytes": 0,
    "index.interval.bytes": 0,
    "segment.index.bytes": 4,
    "message.timestamp.before.max.ms": 0,
    "message.timestamp.after.max.ms": 0,
    "delete.retention.ms": 0,
    "min.insync.replicas": 1,
    "min.compaction.lag.ms": 0,
    "max.compaction.lag.ms": 1,
    "min.cleanable.dirty.ratio": 0,
    "flush.messages": 1,
    "file.delete.delay.ms": 0,
    "segment.jitter.ms": 0,
    "compression.lz4.level": 1,
    "compression.zstd.level": -131072,
}
TOPIC_AT_MOST: Mapping[str, int] = {"compression.lz4.level": 17, "compression.zstd.level": 22}
TOPIC_CHOICES: Mapping[str, tuple[str, ...]] = {
    "message.timestamp.type": ("CreateTime", "LogAppendTime"),
    "compression.type": ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
}


def parse_value(key: Key, raw: Any) -> Any:
    if isinstance(raw, key.kind) and not (key.kind is int and isinstance(raw, bool)):
        return raw
    text = str(raw).strip()
    if key.kind is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key.name}: expected a number, got {text!r}") from None
    if key.kind is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"{key.name}: expected true or false, got {text!r}")
    if key.kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key.name}: expected an integer, got {text!r}") from None
    return text


@dataclass(frozen=True)
class BrokerConfig:
    """The live configuration: ``values`` are what the broker uses now.

    Layers, as Kafka resolves them: a dynamic per-broker value (IncrementalAlterConfigs on BROKER with the
    node id), else a dynamic cluster-wide default (BROKER with an empty name), else the static value (file
    or ``--set``), else the default. ``apply_dynamic`` recomputes ``values`` in place, so every holder of
    this object sees a change at once.
    """

    values: Mapping[str, Any]
    explicit: frozenset[str] = frozenset()  # keys the file or --set gave
    static: dict[str, Any] = field(default_factory=dict)
    dynamic_broker: dict[str, Any] = field(default_factory=dict)
    dynamic_default: dict[str, Any] = field(default_factory=dict)
    # listener.name.<listener>.<mechanism>.sasl.jaas.config values (sensitive: never shown or logged)
    listener_keys: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.values, dict):
            object.__setattr__(self, "values", dict(self.values))
        if not self.static:
            self.static.update(self.values)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def apply_dynamic(self, per_broker: Mapping[str, Any], cluster_default: Mapping[str, Any]) -> None:
        """Install new dynamic layers (values already validated by ``dynamic_broker_value``)."""
        self.dynamic_broker.clear()
        self.dynamic_broker.update(per_broker)
        self.dynamic_default.clear()
        self.dynamic_default.update(cluster_default)
        values = self.values
        assert isinstance(values, dict)
        for name, static in self.static.items():
            values[name] = per_broker.get(name, cluster_default.get(name, static))

    def source(self, name: str) -> int:
        """Kafka's ConfigSource of the value the broker uses for ``name``."""
        if name in self.dynamic_broker:
            return DYNAMIC_BROKER_CONFIG
        if name in self.dynamic_default:
            return DYNAMIC_DEFAULT_BROKER_CONFIG
        key = KEYS.get(name)
        if name in self.explicit or (key is not None and self.static.get(name, key.default) != key.default):
            return STATIC_BROKER_CONFIG
        return DEFAULT_CONFIG

    @classmethod
    def build(cls, file: Path | None = None, overrides: Iterable[str] = ()) -> BrokerConfig:
        values = {k.name: k.default for k in _KEYS}
        raw: dict[str, Any] = {}
        if file is not None:
            raw.update(read_config_file(file))
        for item in overrides:
            name, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--set expects key=value, got {item!r}")
            raw[name.strip()] = value
        listener_keys: dict[str, str] = {}
        for name, value in raw.items():
            key = KEYS.get(name)
            if key is None:
                if LISTENER_KEY_RE.match(name):
                    listener_keys[name] = str(value)
                    continue
                raise ConfigError(f"unknown configuration key {name!r}")
            values[name] = parse_value(key, value)
        for name, low in BROKER_AT_LEAST.items():
            if values[name] < low:
                raise ConfigError(f"{name}: must be at least {low}, got {values[name]}")
        for name in ("compression.type", "compression.gzip.level", "compression.lz4.level"):
            topic_config(name, values[name])  # broker defaults of topic configs obey the topic bounds
        topic_config("compression.zstd.level", values["compression.zstd.level"])
        if values["event.loop"] not in ("asyncio", "uvloop"):
            raise ConfigError(f"event.loop: expected asyncio or uvloop, got {values['event.loop']!r}")
        if values["log.message.timestamp.type"] not in ("CreateTime", "LogAppendTime"):
            raise ConfigError("log.message.timestamp.type: expected CreateTime or LogAppendTime")
        if values["log.cleanup.policy"] not in ("delete", "compact", "compact,delete", "delete,compact"):
            raise ConfigError("log.cleanup.policy: expected delete, compact or compact,delete")
        if values["ssl.client.auth"] not in ("none", "requested", "required"):
            raise ConfigError(
                f"ssl.client.auth: expected none, requested or required, got {values['ssl.client.auth']!r}"
            )
        for name in ("ssl.keystore.type", "ssl.truststore.type"):
            if values[name].upper() != "PEM":
                raise ConfigError(f"{name}: only PEM is supported, got {values[name]!r}")
        if values["authorizer.class.name"] not in ("", *AUTHORIZER_CLASSES):
            raise ConfigError(
                f"authorizer.class.name: expected {AUTHORIZER_CLASSES[0]} or empty, "
                f"got {values['authorizer.class.name']!r}"
            )
        return cls(values, explicit=frozenset(raw), listener_keys=listener_keys)

    def topic_defaults(self) -> dict[str, Any]:
        """Broker-level values seen through their per-topic names (and Kafka's defaults of the rest)."""
        out = {k.topic_key: self.values[k.name] for k in _KEYS if k.topic_key}
        out.update((k.name, k.default) for k in TOPIC_ONLY_KEYS)
        return out


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: {e}") from None
        return _flatten(data)
    out: dict[str, Any] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        name, sep, value = line.partition("=")
        if not sep:
            name, sep, value = line.partition(":")
        if not sep:
            raise ConfigError(f"{path}:{lineno}: expected key=value, got {line!r}")
        out[name.strip()] = value.strip()
    return out


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """TOML tables nest Kafka's dotted names: [log] retention.ms = 1 is log.retention.ms."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        full = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, full + "."))
        else:
            out[full] = value
    return out


def topic_config(key_name: str, raw: Any) -> Any:
    """Validate one per-topic override (CreateTopics configs) with Kafka's bounds and choices."""
    key = TOPIC_KEYS.get(key_name)
    if key is None:
        raise ConfigError(f"Unknown topic config name: {key_name}")
    invalid = f"Invalid value {raw} for configuration {key_name}"
    try:
        value = parse_value(key, raw)
    except ConfigError:
        kafka_type = {int: "LONG", float: "DOUBLE", bool: "BOOLEAN"}.get(key.kind, "STRING")
        raise ConfigError(f"{invalid}: Not a number of type {kafka_type}") from None
    low = TOPIC_AT_LEAST.get(key_name)
    if low is not None and value < low:
        raise ConfigError(f"{invalid}: Value must be at least {low if low % 1 else int(low)}")
    high = TOPIC_AT_MOST.get(key_name)
    if high is not None and value > high:
        raise ConfigError(f"{invalid}: Value must be no more than {high}")
    if key_name == "compression.gzip.level" and value != -1 and not 1 <= value <= 9:
        raise ConfigError(f"{invalid}: Value must be between 1 and 9 or equal to -1")
    choices = TOPIC_CHOICES.get(key_name)
    if choices is not None and value not in choices:
        raise ConfigError(f"{invalid}: String must be one of: {', '.join(choices)}")
    if key_name == "cleanup.policy":
        parts = [p.strip() for p in str(value).split(",")] if str(value).strip() else []
        if any(p not in ("compact", "delete") for p in parts):
            raise ConfigError(f"{invalid}: String must be one of: compact, delete")
        value = ",".join(parts)  # empty (Kafka 4: neither delete nor compact) is allowed
    if key_name == "remote.storage.enable" and value:
        raise ConfigError(
            "Tiered Storage functionality is disabled in the broker. "
            "Topic cannot be configured with remote log storage."
        )
    return value


def dynamic_broker_value(name: str, raw: Any) -> Any:
    """Validate a dynamic broker config value (ConfigError: Kafka answers INVALID_REQUEST).

    Raises NotDynamic for a known key Kafka does not change on a running broker."""
    key = KEYS.get(name)
    if name in KAFKA_STATIC_KEYS:
        raise NotDynamic(name)
    if key is None:
        return raw  # a name the broker does not know: Kafka stores it (and never shows its value)
    if name not in DYNAMIC_BROKER_KEYS:
        raise NotDynamic(name)
    try:
        value = parse_value(key, raw)
    except ConfigError:
        kafka_type = {int: "LONG", float: "DOUBLE", bool: "BOOLEAN"}.get(key.kind, "STRING")
        raise ConfigError(
            f"Invalid value {raw} for configuration {name}: Not a number of type {kafka_type}"
        ) from None
    low = BROKER_AT_LEAST.get(name)
    if low is not None and value < low:
        raise ConfigError(f"Invalid value {raw} for configuration {name}: Value must be at least {low}")
    if key.topic_key:
        try:
            value = topic_config(key.topic_key, value)
        except ConfigError as e:
            raise ConfigError(
                str(e).replace(f"configuration {key.topic_key}", f"configuration {name}")
            ) from None
    return value


class NotDynamic(ConfigError):
    """A known broker config that Kafka only reads at start-up."""


def group_config_value(name: str, raw: Any, broker: BrokerConfig) -> Any:
    """Validate one KIP-848 group config against its range (bounds from the broker's group.* limits)."""
    g = GROUP_KEYS.get(name)
    if g is None:
        raise ConfigError(f"Unknown group config name: {name}")
    value = parse_value(Key(name, g.kind, g.default, g.doc), raw)
    low = broker.values.get(g.low, 0) if isinstance(g.low, str) else g.low
    high = broker.values.get(g.high, 0) if isinstance(g.high, str) else g.high
    if low is not None and high is not None and not low <= value <= high:
        raise ConfigError(f"{name} must be in the range {low} to {high} inclusive.")
    if low is not None and high is None and value < low:
        raise ConfigError(f"Invalid value {raw} for configuration {name}: Value must be at least {low}")
    if g.choices and value not in g.choices:
        raise ConfigError(
            f"Invalid value {raw} for configuration {name}: String must be one of: {', '.join(g.choices)}"
        )
    return value


def group_default(name: str, broker: BrokerConfig) -> Any:
    g = GROUP_KEYS[name]
    return broker.values.get(g.synonym, g.default)


# IncrementalAlterConfigs operations (KIP-339).
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


class ConfigRequestError(ConfigError):
    """A config change refused as a malformed request (Kafka: INVALID_REQUEST), not as a bad value."""


def apply_incremental(
    current: Mapping[str, str],
    ops: Iterable[tuple[str, int, str | None]],
    *,
    is_list: Callable[[str], bool],
    effective: Callable[[str], str],
) -> dict[str, str]:
    """The overrides after KIP-339 operations, as text; pure. ``current`` holds the resource's own
    overrides, ``effective(name)`` the value in force when it has none (the base APPEND and SUBTRACT
    start from). Duplicate names and null SET values are ConfigRequestError; APPEND / SUBTRACT on a
    non-list config and unknown operations are ConfigError (callers map them to Kafka's codes)."""
    ops = list(ops)
    names = [name for name, _, _ in ops]
    if len(set(names)) != len(names):
        raise ConfigRequestError("Error due to duplicate config keys")
    out = dict(current)
    for name, op, value in ops:
        if value is None and op in (SET, APPEND, SUBTRACT):
            raise ConfigRequestError(f"Null value not supported for : {name}")
        if op == SET:
            out[name] = value
        elif op == DELETE:
            out.pop(name, None)
        elif op in (APPEND, SUBTRACT):
            verb = "APPEND" if op == APPEND else "SUBTRACT"
            if not is_list(name):
                raise ConfigError(f"Can't {verb} to key {name} because its type is not LIST.")
            base = out[name] if name in out else effective(name)
            items = [i.strip() for i in base.split(",") if i.strip()]
            given = [i.strip() for i in (value or "").split(",") if i.strip()]
            if op == APPEND:
                for i in given:
                    if i not in items:
                        items.append(i)
            else:
                items = [i for i in items if i not in given]
            out[name] = ",".join(items)
        else:
            raise UnknownOperation(f"Unknown config operation {op} for {name}")
    return out


class UnknownOperation(ConfigError):
    """An operation byte outside SET / DELETE / APPEND / SUBTRACT (answered INVALID_REQUEST)."""
