"""What each guarantee needs from the clients, in one place.

``client_configs`` turns a guarantee and the user's pass-through settings into the consumer's and the
producer's librdkafka configuration. The library's own settings come first, the user's override them, and
a user setting that would break the guarantee is refused with :class:`GuaranteeConfigError`, one line
naming the setting and the guarantee.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Guarantee(enum.Enum):
    AT_MOST_ONCE = "at-most-once"
    AT_LEAST_ONCE = "at-least-once"
    EXACTLY_ONCE = "exactly-once"

    @classmethod
    def parse(cls, value: str | Guarantee) -> Guarantee:
        if isinstance(value, Guarantee):
            return value
        for g in cls:
            if g.value == value:
                return g
        names = ", ".join(repr(g.value) for g in cls)
        raise GuaranteeConfigError(f"guarantee={value!r} is not one of {names}")


class GuaranteeConfigError(ValueError):
    """A setting contradicts the chosen guarantee, or is not a setting at all."""


# Library defaults. Session and heartbeat timeouts are shorter than librdkafka's (45 s / 3 s) so that a
# crashed, unnamed member's partitions move within about ten seconds; named instances (static
# membership) get theirs back at once on restart anyway.
_CONSUMER_BASE: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 10000,
    "heartbeat.interval.ms": 1000,
    "enable.partition.eof": False,
}

_CONSUMER: dict[Guarantee, dict[str, Any]] = {
    Guarantee.AT_MOST_ONCE: {"isolation.level": "read_committed"},
    Guarantee.AT_LEAST_ONCE: {"isolation.level": "read_committed"},
    Guarantee.EXACTLY_ONCE: {"isolation.level": "read_committed"},
}

_PRODUCER: dict[Guarantee, dict[str, Any]] = {
    Guarantee.AT_MOST_ONCE: {"acks": 0, "enable.idempotence": False, "linger.ms": 5},
    Guarantee.AT_LEAST_ONCE: {
        "acks": "all",
        "enable.idempotence": True,
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": 5,
    },
    # transaction.timeout.ms: 10 s, as Kafka Streams sets under exactly-once, so that an orphaned
    # transaction of an unnamed instance holds read_committed readers back at most that long.
    # metadata.recovery.strategy=none: librdkafka 2.16 re-bootstraps when every broker was down at once
    # (a one-node cluster restarting), and its transactional producer then hangs in
    # send_offsets_to_transaction, past its timeout, for good (seen on Odradek and on Kafka 4.4 by
    # tests/stream/test_stream_crash.py).
    Guarantee.EXACTLY_ONCE: {
        "acks": "all",
        "enable.idempotence": True,
        "max.in.flight.requests.per.connection": 5,
        "transaction.timeout.ms": 10000,
        "metadata.recovery.strategy": "none",
        "linger.ms": 5,
    },
}


@dataclass(frozen=True)
class _Rule:
    key: str
    bad: frozenset[str]
    why: str


def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower()


_ACKS_NOT_ALL = frozenset({"0", "1"})
# Settings the user may not give, per side and guarantee: the values that break the promise.
_CONSUMER_RULES: dict[Guarantee, list[_Rule]] = {
    Guarantee.AT_MOST_ONCE: [
        _Rule(
            "enable.auto.commit",
            frozenset({"true"}),
            "auto-commit commits after polling, so a crash between two commits redelivers what was processed",
        ),
    ],
    Guarantee.AT_LEAST_ONCE: [
        _Rule(
            "enable.auto.commit",
            frozenset({"true"}),
            "auto-commit can commit a position before its outputs are acknowledged, so a crash loses them",
        ),
    ],
    Guarantee.EXACTLY_ONCE: [
        _Rule("enable.auto.commit", frozenset({"true"}), "positions are committed inside the transaction"),
        _Rule("isolation.level", frozenset({"read_uncommitted"}), "a reader must not see aborted records"),
    ],
}
_PRODUCER_RULES: dict[Guarantee, list[_Rule]] = {
    Guarantee.AT_MOST_ONCE: [
        _Rule("transactional.id", frozenset(), "transactions belong to exactly-once"),
    ],
    Guarantee.AT_LEAST_ONCE: [
        _Rule("acks", _ACKS_NOT_ALL, "an output acknowledged by the leader alone can be lost on a cluster"),
        _Rule("transactional.id", frozenset(), "transactions belong to exactly-once"),
    ],
    Guarantee.EXACTLY_ONCE: [
        _Rule("acks", _ACKS_NOT_ALL, "transactions need acks=all"),
        _Rule("enable.idempotence", frozenset({"false"}), "transactions need the idempotent producer"),
        _Rule(
            "transactional.id",
            frozenset(),
            "the library names the transactional id per instance "
            "(App(instance_id=...)) so a restart fences its predecessor",
        ),
    ],
}
# Set by the library from App's own arguments; giving them twice is refused on every guarantee.
_OWNED_CONSUMER = {
    "group.id": "group_id",
    "bootstrap.servers": "bootstrap_servers",
    "group.instance.id": "instance_id",
}
_OWNED_PRODUCER = {"bootstrap.servers": "bootstrap_servers"}


def _check(
    side: str, g: Guarantee, user: Mapping[str, Any], rules: list[_Rule], owned: Mapping[str, str]
) -> None:
    for key, arg in owned.items():
        if key in user:
            raise GuaranteeConfigError(f"{side} setting {key!r} is set by App({arg}=...); remove it")
    for rule in rules:
        if rule.key in user:
            value = _norm(user[rule.key])
            if not rule.bad or value in rule.bad:
                shown = f"{rule.key}={user[rule.key]}"
                raise GuaranteeConfigError(f"{side} setting {shown} breaks guarantee={g.value!r}: {rule.why}")


def client_configs(
    guarantee: Guarantee,
    *,
    bootstrap_servers: str,
    group_id: str,
    instance_id: str | None,
    transactional_id: str | None,
    consumer_config: Mapping[str, Any] | None = None,
    producer_config: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The consumer's and the producer's configuration for ``guarantee`` (refusing what breaks it)."""
    user_c = dict(consumer_config or {})
    user_p = dict(producer_config or {})
    _check("consumer", guarantee, user_c, _CONSUMER_RULES[guarantee], _OWNED_CONSUMER)
    _check("producer", guarantee, user_p, _PRODUCER_RULES[guarantee], _OWNED_PRODUCER)
    consumer = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        **_CONSUMER_BASE,
        **_CONSUMER[guarantee],
        **user_c,
    }
    if instance_id is not None:
        consumer["group.instance.id"] = instance_id
    producer = {"bootstrap.servers": bootstrap_servers, **_PRODUCER[guarantee], **user_p}
    if guarantee is Guarantee.EXACTLY_ONCE and transactional_id is not None:
        producer["transactional.id"] = transactional_id
    if guarantee is Guarantee.AT_MOST_ONCE and _norm(producer.get("acks")) in {"all", "-1"}:
        producer.setdefault("enable.idempotence", False)
    return consumer, producer


def dead_letter_producer_config(bootstrap_servers: str, user: Mapping[str, Any] | None) -> dict[str, Any]:
    """Dead letters are never dropped: acks=all and idempotence whatever the guarantee."""
    cfg = {**_PRODUCER[Guarantee.AT_LEAST_ONCE], **dict(user or {})}
    cfg.pop("transactional.id", None)
    cfg.update({"bootstrap.servers": bootstrap_servers, "acks": "all", "enable.idempotence": True})
    return cfg
