"""IncrementalAlterConfigs (KIP-339): SET / DELETE / APPEND / SUBTRACT on topic, broker and group configs.

The change to each resource is computed as text by ``config.apply_incremental`` (pure), validated as
CreateTopics validates (topics), as Kafka validates dynamic broker configs (brokers) or against the
broker's group.* bounds (groups), then applied live and made durable before the answer. AlterConfigs
shares this module: it replaces a resource's whole set instead. With an authorizer each resource needs
ALTER_CONFIGS on its topic, group, or (brokers) the cluster, as in Kafka.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ...config import (
    DELETE,
    GROUP_KEYS,
    KEYS,
    LIST_CONFIGS,
    ConfigError,
    ConfigRequestError,
    NotDynamic,
    UnknownOperation,
    apply_incremental,
    dynamic_broker_value,
    group_config_value,
    group_default,
    topic_config,
)
from .. import authz
from ._common import (
    AUTHORIZATION_MESSAGES,
    CLUSTER_AUTHORIZATION_FAILED,
    INVALID_REQUEST,
    NONE,
    UNKNOWN_TOPIC_OR_PARTITION,
    log,
)
from .describe_configs import BROKER, GROUP, TOPIC, _text, broker_name_problem, config_refusal

INVALID_CONFIG = 40

# (name, operation, value) as the request gives them; AlterConfigs passes SET for every entry.
Ops = list[tuple[str, int, str | None]]


class Refused(Exception):
    def __init__(self, error_code: int, message: str | None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def _changed(
    current: dict[str, Any], ops: Ops, incremental: bool, is_list: Any, effective: Any
) -> dict[str, str]:
    """The resource's new overrides as text, or Refused with Kafka's code."""
    text = {n: _text(v) for n, v in current.items()}
    try:
        if incremental:
            return apply_incremental(text, ops, is_list=is_list, effective=effective)
        return apply_incremental({}, ops, is_list=is_list, effective=effective)  # AlterConfigs: all SETs
    except ConfigRequestError as e:
        raise Refused(INVALID_REQUEST, str(e)) from None
    except UnknownOperation as e:
        # Kafka 4.4 answers UNKNOWN_SERVER_ERROR here only because its controller fails on the byte (a
        # NullPointerException that costs it its leadership); the request is malformed, so say so.
        raise Refused(INVALID_REQUEST, str(e)) from None
    except ConfigError as e:
        raise Refused(INVALID_CONFIG, str(e)) from None


def _topic(ctx: Any, name: str, ops: Ops, incremental: bool, validate_only: bool) -> None:
    state = ctx.broker.state
    topic = state.topics.get(name)
    if topic is None:
        raise Refused(UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
    new = _changed(
        topic.configs,
        ops,
        incremental,
        lambda n: n in LIST_CONFIGS,
        lambda n: _text(topic.effective.get(n, "")),
    )
    parsed = {}
    for key, value in new.items():
        try:
            parsed[key] = topic_config(key, value)
        except ConfigError as e:
            raise Refused(INVALID_CONFIG, str(e)) from None
    if not validate_only and parsed != topic.configs:
        state.set_topic_configs(topic, parsed)


async def _broker(ctx: Any, name: str, ops: Ops, incremental: bool, validate_only: bool) -> None:
    problem = broker_name_problem(name, ctx.broker.node_id, describe=False)
    if problem is not None:
        raise Refused(INVALID_REQUEST, problem)
    state = ctx.broker.state
    config = state.config
    layer = config.dynamic_broker if name else config.dynamic_default
    if any(n == "min.insync.replicas" for n, _, _ in ops):
        raise Refused(
            INVALID_CONFIG, "Broker-level min.insync.replicas cannot be altered while ELR is enabled."
        )

    def is_list(n: str) -> bool:
        key = KEYS.get(n)
        return key is not None and key.topic_key in LIST_CONFIGS

    new = _changed(layer, ops, incremental, is_list, lambda n: _text(config.values.get(n, "")))
    # Deleting a value a static key cannot have is a no-op Kafka accepts; setting one is refused.
    fixed = [n for n in sorted({n for n, op, _ in ops if op != DELETE}) if _not_dynamic(n)]
    if fixed:
        raise Refused(INVALID_REQUEST, f"Cannot update these configs dynamically: [{', '.join(fixed)}]")
    parsed = {}
    for key, value in new.items():
        try:
            parsed[key] = dynamic_broker_value(key, value)
        except ConfigError as e:
            raise Refused(INVALID_REQUEST, str(e)) from None
    if validate_only or parsed == layer:
        return
    if name:
        await state.set_broker_configs(parsed, dict(config.dynamic_default))
    else:
        await state.set_broker_configs(dict(config.dynamic_broker), parsed)


def _not_dynamic(name: str) -> bool:
    key = KEYS.get(name)
    try:
        dynamic_broker_value(name, key.default if key is not None else "")
    except NotDynamic:
        return True
    except ConfigError:
        return False
    return False


async def _group(ctx: Any, name: str, ops: Ops, incremental: bool, validate_only: bool) -> None:
    if not name:
        raise Refused(INVALID_REQUEST, "Default group resources are not allowed.")
    groups = ctx.broker.groups
    config = ctx.broker.state.config
    current = groups.group_configs.get(name, {})
    new = _changed(
        current,
        ops,
        incremental,
        lambda n: n == "streams.rack.aware.assignment.tags",
        lambda n: _text(group_default(n, config)) if n in GROUP_KEYS else "",
    )
    parsed = {}
    for key, value in new.items():
        try:
            parsed[key] = group_config_value(key, value, config)
        except ConfigError as e:
            raise Refused(INVALID_CONFIG, str(e)) from None
    if not validate_only and parsed != current:
        await groups.set_group_config(name, parsed)


async def alter(ctx: Any, resources: Iterable[Any], validate_only: bool, *, incremental: bool) -> list[dict]:
    """One answer per resource, each applied (unless validate_only) or refused on its own."""
    resources = list(resources)
    counts = Counter((r.resource_type, r.resource_name) for r in resources)
    out = []
    for r in resources:
        if incremental:
            ops = [(c.name, c.config_operation, c.value) for c in r.configs]
        else:
            ops = [(c.name, 0, c.value) for c in r.configs]
        code, message = NONE, None
        try:
            if counts[(r.resource_type, r.resource_name)] > 1:
                raise Refused(INVALID_REQUEST, "Each resource must appear at most once.")
            refusal = config_refusal(ctx, authz.AclOperation.ALTER_CONFIGS, r.resource_type, r.resource_name)
            if refusal != NONE:
                # Kafka 4.4's words, which for the cluster's (broker) resources are none.
                raise Refused(
                    refusal,
                    AUTHORIZATION_MESSAGES.get(refusal) if refusal != CLUSTER_AUTHORIZATION_FAILED else None,
                )
            if r.resource_type == TOPIC:
                _topic(ctx, r.resource_name, ops, incremental, validate_only)
            elif r.resource_type == BROKER:
                await _broker(ctx, r.resource_name, ops, incremental, validate_only)
            elif r.resource_type == GROUP:
                await _group(ctx, r.resource_name, ops, incremental, validate_only)
            else:
                raise Refused(INVALID_REQUEST, f"Unknown resource type {r.resource_type}")
        except Refused as e:
            code, message = e.error_code, e.message
            log.info("alter configs of %s %r refused: %s", r.resource_type, r.resource_name, message)
        out.append(
            {
                "error_code": code,
                "error_message": message,
                "resource_type": r.resource_type,
                "resource_name": r.resource_name,
            }
        )
    return out


async def handle(ctx: Any, request: Any) -> dict[str, Any]:
    responses = await alter(ctx, request.resources, bool(request.validate_only), incremental=True)
    return {"throttle_time": 0, "responses": responses}
