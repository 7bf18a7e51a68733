"""DescribeConfigs: topic (2), broker (4) and KIP-848 group (32) resources, with Kafka's config sources,
synonyms (most specific first, as Kafka orders them), types and flags."""

from __future__ import annotations

from typing import Any

from ...config import (
    DEFAULT_CONFIG,
    DYNAMIC_BROKER_CONFIG,
    DYNAMIC_BROKER_KEYS,
    DYNAMIC_DEFAULT_BROKER_CONFIG,
    GROUP_CONFIG,
    GROUP_KEYS,
    KEYS,
    LIST_CONFIGS,
    SENSITIVE_KEYS,
    STATIC_BROKER_CONFIG,
    TOPIC_CONFIG,
    TOPIC_KEYS,
    TOPIC_ONLY,
    BrokerConfig,
    group_default,
)
from .. import authz
from ._common import (
    AUTHORIZATION_MESSAGES,
    CLUSTER_AUTHORIZATION_FAILED,
    GROUP_AUTHORIZATION_FAILED,
    INVALID_REQUEST,
    NONE,
    TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_OR_PARTITION,
)

TOPIC = 2
BROKER = 4
BROKER_LOGGER = 8
GROUP = 32
DYNAMIC_TOPIC_CONFIG = TOPIC_CONFIG  # the name this module used before config sources moved to config.py
# config_type values
TYPE_UNKNOWN, TYPE_BOOLEAN, TYPE_STRING, TYPE_INT, TYPE_LONG, TYPE_DOUBLE, TYPE_LIST = 0, 1, 2, 3, 5, 6, 7

# Integer topic configs Kafka declares INT; the other integer ones are LONG.
_INT_TOPIC_KEYS = {
    "segment.bytes",
    "max.message.bytes",
    "index.interval.bytes",
    "segment.index.bytes",
    "min.insync.replicas",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "max.decompressed.message.bytes",
}
# Integer broker configs without a topic name that Kafka declares LONG.
_LONG_BROKER_KEYS = {
    "log.retention.check.interval.ms",
    "connections.max.idle.ms",
    "log.flush.interval.ms",
}


def _type_of(name: str, kind: type) -> int:
    """Kafka's config type of a broker or topic config name."""
    key = KEYS.get(name)
    topic_name = key.topic_key if key is not None and key.topic_key else name
    if kind is float:
        return TYPE_DOUBLE
    if kind is bool:
        return TYPE_BOOLEAN
    if kind is int:
        if topic_name in TOPIC_KEYS:
            return TYPE_INT if topic_name in _INT_TOPIC_KEYS else TYPE_LONG
        return TYPE_LONG if name in _LONG_BROKER_KEYS else TYPE_INT
    if topic_name in LIST_CONFIGS or name == "streams.rack.aware.assignment.tags":
        return TYPE_LIST
    return TYPE_STRING


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _broker_synonyms(config: BrokerConfig, name: str) -> list[dict[str, Any]]:
    """The layers of a broker config that hold a value, most specific first."""
    out = []
    if name in config.dynamic_broker:
        out.append(
            {"name": name, "value": _text(config.dynamic_broker[name]), "source": DYNAMIC_BROKER_CONFIG}
        )
    if name in config.dynamic_default:
        out.append(
            {
                "name": name,
                "value": _text(config.dynamic_default[name]),
                "source": DYNAMIC_DEFAULT_BROKER_CONFIG,
            }
        )
    key = KEYS.get(name)
    if key is None:
        return out
    if name in config.explicit or config.static.get(name, key.default) != key.default:
        out.append({"name": name, "value": _text(config.static[name]), "source": STATIC_BROKER_CONFIG})
    out.append({"name": name, "value": _text(key.default), "source": DEFAULT_CONFIG})
    return out


def _entry(
    name: str, value: Any, source: int, kind: type, doc: str | None, *, read_only: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "value": None if value is None else _text(value),
        "read_only": read_only,
        "is_default": source == DEFAULT_CONFIG,
        "config_source": source,
        "is_sensitive": False,
        "config_type": _type_of(name, kind),
        "documentation": doc,
        "synonyms": [],
    }


def topic_config_entries(
    state: Any,
    overrides: dict[str, Any],
    *,
    include_docs: bool,
    keys: set[str] | None = None,
    synonyms: bool = False,
) -> list[dict[str, Any]]:
    config: BrokerConfig = state.config
    out = []
    for name, key in sorted(TOPIC_KEYS.items()):
        if keys is not None and name not in keys:
            continue
        overridden = name in overrides
        topic_only = name in TOPIC_ONLY
        if overridden:
            value, source = overrides[name], TOPIC_CONFIG
        elif topic_only:
            value, source = key.default, DEFAULT_CONFIG
        else:
            value, source = config.values[key.name], config.source(key.name)
        entry = _entry(name, value, source, key.kind, key.doc if include_docs else None)
        if synonyms:
            syn = [{"name": name, "value": _text(value), "source": TOPIC_CONFIG}] if overridden else []
            if not topic_only:
                syn += _broker_synonyms(config, key.name)
            entry["synonyms"] = syn
        out.append(entry)
    return out


def _broker_entries(
    config: BrokerConfig, keys: set[str] | None, include_docs: bool, synonyms: bool, cluster_default: bool
) -> list[dict[str, Any]]:
    if cluster_default:
        names = sorted(config.dynamic_default)
    else:
        names = sorted({*KEYS, *config.dynamic_broker, *config.dynamic_default})
    out = []
    for name in names:
        if keys is not None and name not in keys:
            continue
        key = KEYS.get(name)
        if key is None:  # a name the broker does not know: Kafka treats it as sensitive and hides it
            source = (
                DYNAMIC_BROKER_CONFIG
                if name in config.dynamic_broker and not cluster_default
                else (DYNAMIC_DEFAULT_BROKER_CONFIG)
            )
            entry = _entry(name, None, source, str, None, read_only=True)
            entry.update(is_sensitive=True, config_type=TYPE_UNKNOWN)
            if synonyms:
                entry["synonyms"] = [
                    {"name": s["name"], "value": None, "source": s["source"]}
                    for s in _broker_synonyms(config, name)
                    if not cluster_default or s["source"] == DYNAMIC_DEFAULT_BROKER_CONFIG
                ]
            out.append(entry)
            continue
        if cluster_default:
            value, source = config.dynamic_default[name], DYNAMIC_DEFAULT_BROKER_CONFIG
        else:
            value, source = config.values[name], config.source(name)
        entry = _entry(
            name,
            value,
            source,
            key.kind,
            key.doc if include_docs else None,
            read_only=name not in DYNAMIC_BROKER_KEYS,
        )
        sensitive = name in SENSITIVE_KEYS
        if sensitive:  # as Kafka answers its PASSWORD configs: no value, anywhere
            entry.update(value=None, is_sensitive=True)
        if synonyms:
            syn = _broker_synonyms(config, name)
            if cluster_default:
                syn = [s for s in syn if s["source"] != DYNAMIC_BROKER_CONFIG]
            if sensitive:
                syn = [{**s, "value": None} for s in syn]
            entry["synonyms"] = syn
        out.append(entry)
    return out


def group_config_entries(
    config: BrokerConfig, overrides: dict[str, Any], keys: set[str] | None, include_docs: bool, synonyms: bool
) -> list[dict[str, Any]]:
    out = []
    for name, g in GROUP_KEYS.items():
        if keys is not None and name not in keys:
            continue
        default = group_default(name, config)
        default_source = config.source(g.synonym) if g.synonym in KEYS else DEFAULT_CONFIG
        overridden = name in overrides
        value, source = (overrides[name], GROUP_CONFIG) if overridden else (default, default_source)
        entry = _entry(name, value, source, g.kind, g.doc if include_docs else None)
        if synonyms:
            syn = [{"name": name, "value": _text(value), "source": GROUP_CONFIG}] if overridden else []
            if g.synonym in KEYS:
                syn += _broker_synonyms(config, g.synonym)
            else:
                syn.append({"name": g.synonym, "value": _text(g.default), "source": DEFAULT_CONFIG})
            entry["synonyms"] = syn
        out.append(entry)
    return out


def broker_name_problem(name: str, node_id: int, *, describe: bool) -> str | None:
    """Kafka's complaint about a BROKER resource name, or None for the node id or '' (cluster default)."""
    if name == "":
        return None
    if not name.lstrip("-").isdigit():
        return f"Node id must be an integer, but it is: {name}"
    if int(name) != node_id:
        expected = f"{node_id} or empty string" if describe else f"{node_id}"
        return f"Unexpected broker id, expected {expected}, but received {name}"
    return None


def config_refusal(ctx: Any, operation: authz.AclOperation, resource_type: int, name: str) -> int:
    """Kafka's check of a config resource: ``operation`` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on the topic,
    the group, or the cluster for BROKER and BROKER_LOGGER resources; the error code, or NONE."""
    if ctx.broker.authorizer is None:
        return NONE
    if resource_type == TOPIC:
        return (
            NONE
            if authz.allowed(ctx, operation, authz.ResourceType.TOPIC, name)
            else TOPIC_AUTHORIZATION_FAILED
        )
    if resource_type == GROUP:
        return (
            NONE
            if authz.allowed(ctx, operation, authz.ResourceType.GROUP, name)
            else GROUP_AUTHORIZATION_FAILED
        )
    if resource_type in (BROKER, BROKER_LOGGER):
        cluster = authz.ResourceType.CLUSTER
        return (
            NONE
            if authz.allowed(ctx, operation, cluster, authz.CLUSTER_NAME)
            else CLUSTER_AUTHORIZATION_FAILED
        )
    return NONE  # an unknown type: refused as unsupported where it is handled


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    state = ctx.broker.state
    include_docs = bool(getattr(request, "include_documentation", False))
    synonyms = bool(getattr(request, "include_synonyms", False))
    results = []
    refusals = []  # as Kafka, the refused resources come after the described ones
    for r in request.resources:
        code = config_refusal(ctx, authz.AclOperation.DESCRIBE_CONFIGS, r.resource_type, r.resource_name)
        if code != NONE:
            refusals.append(
                {
                    "error_code": code,
                    "error_message": AUTHORIZATION_MESSAGES[code],
                    "resource_type": r.resource_type,
                    "resource_name": r.resource_name,
                    "configs": [],
                }
            )
            continue
        keys = set(r.configuration_keys) if r.configuration_keys is not None else None
        out: dict[str, Any] = {
            "error_code": NONE,
            "error_message": None,
            "resource_type": r.resource_type,
            "resource_name": r.resource_name,
            "configs": [],
        }
        results.append(out)
        if r.resource_type == TOPIC:
            topic = state.topics.get(r.resource_name)
            if topic is None:
                out["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                out["error_message"] = f"Topic {r.resource_name} does not exist"
                continue
            out["configs"] = topic_config_entries(
                state, topic.configs, include_docs=include_docs, keys=keys, synonyms=synonyms
            )
        elif r.resource_type == BROKER:
            problem = broker_name_problem(r.resource_name, ctx.broker.node_id, describe=True)
            if problem is not None:
                out["error_code"] = INVALID_REQUEST
                out["error_message"] = problem
                continue
            out["configs"] = _broker_entries(
                state.config, keys, include_docs, synonyms, r.resource_name == ""
            )
        elif r.resource_type == GROUP:
            overrides = ctx.broker.groups.group_configs.get(r.resource_name, {})
            out["configs"] = group_config_entries(state.config, overrides, keys, include_docs, synonyms)
        else:
            out["error_code"] = INVALID_REQUEST
            out["error_message"] = f"Unsupported resource type {r.resource_type}"
    return {"throttle_time": 0, "results": results + refusals}
