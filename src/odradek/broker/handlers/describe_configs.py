"""DescribeConfigs: topic (2) and broker (4) resources, with Kafka's config sources and types."""

from __future__ import annotations

from typing import Any

from ...config import KEYS, TOPIC_KEYS
from ._common import INVALID_REQUEST, NONE, UNKNOWN_TOPIC_OR_PARTITION

TOPIC = 2
BROKER = 4
# config_source values
DYNAMIC_TOPIC_CONFIG = 1
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
# config_type values
TYPE_BOOLEAN, TYPE_STRING, TYPE_INT, TYPE_LONG, TYPE_DOUBLE, TYPE_LIST = 1, 2, 3, 5, 6, 7

_LONG_KEYS = {
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "flush.messages",
    "file.delete.delay.ms",
    "segment.jitter.ms",
    "retention.ms",
    "retention.bytes",
    "segment.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "log.retention.ms",
    "log.retention.bytes",
    "log.roll.ms",
    "log.retention.check.interval.ms",
    "log.flush.interval.ms",
    "connections.max.idle.ms",
    "socket.request.max.bytes",
}


def _type_of(name: str, kind: type) -> int:
    if kind is float:
        return TYPE_DOUBLE
    if kind is bool:
        return TYPE_BOOLEAN
    if kind is int:
        return TYPE_LONG if name in _LONG_KEYS else TYPE_INT
    if name.endswith("cleanup.policy"):
        return TYPE_LIST
    return TYPE_STRING


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def topic_config_entries(
    state: Any,
    overrides: dict[str, Any],
    *,
    include_docs: bool,
    keys: set[str] | None = None,
    synonyms: bool = False,
) -> list[dict[str, Any]]:
    out = []
    broker_values = state.config.values
    for name, key in sorted(TOPIC_KEYS.items()):
        if keys is not None and name not in keys:
            continue
        overridden = name in overrides
        value = overrides[name] if overridden else broker_values[key.name]
        broker_set = broker_values[key.name] != key.default
        source = (
            DYNAMIC_TOPIC_CONFIG if overridden else (STATIC_BROKER_CONFIG if broker_set else DEFAULT_CONFIG)
        )
        entry: dict[str, Any] = {
            "name": name,
            "value": _text(value),
            "read_only": False,
            "is_default": source == DEFAULT_CONFIG,
            "config_source": source,
            "is_sensitive": False,
            "config_type": _type_of(name, key.kind),
            "documentation": key.doc if include_docs else None,
            "synonyms": [],
        }
        if synonyms:
            syn = []
            if overridden:
                syn.append({"name": name, "value": _text(value), "source": DYNAMIC_TOPIC_CONFIG})
            if broker_set:
                syn.append(
                    {
                        "name": key.name,
                        "value": _text(broker_values[key.name]),
                        "source": STATIC_BROKER_CONFIG,
                    }
                )
            syn.append({"name": key.name, "value": _text(key.default), "source": DEFAULT_CONFIG})
            entry["synonyms"] = syn
        out.append(entry)
    return out


def _broker_entries(
    state: Any, keys: set[str] | None, include_docs: bool, synonyms: bool
) -> list[dict[str, Any]]:
    out = []
    for name, key in sorted(KEYS.items()):
        if keys is not None and name not in keys:
            continue
        value = state.config.values[name]
        source = STATIC_BROKER_CONFIG if value != key.default else DEFAULT_CONFIG
        entry = {
            "name": name,
            "value": _text(value),
            "read_only": True,
            "is_default": source == DEFAULT_CONFIG,
            "config_source": source,
            "is_sensitive": False,
            "config_type": _type_of(name, key.kind),
            "documentation": key.doc if include_docs else None,
            "synonyms": [],
        }
        if synonyms:
            entry["synonyms"] = [{"name": name, "value": _text(value), "source": source}]
        out.append(entry)
    return out


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    state = ctx.broker.state
    include_docs = bool(getattr(request, "include_documentation", False))
    synonyms = bool(getattr(request, "include_synonyms", False))
    results = []
    for r in request.resources:
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
            if r.resource_name not in ("", str(ctx.broker.node_id)):
                out["error_code"] = INVALID_REQUEST
                out["error_message"] = (
                    f"Unexpected broker id, expected {ctx.broker.node_id} but received {r.resource_name}"
                )
                continue
            out["configs"] = _broker_entries(state, keys, include_docs, synonyms)
        else:
            out["error_code"] = INVALID_REQUEST
            out["error_message"] = f"Unsupported resource type {r.resource_type}"
    return {"throttle_time": 0, "results": results}
