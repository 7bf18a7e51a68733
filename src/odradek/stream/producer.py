"""The producer side of each guarantee, with message ids stamped on every record.

``GuaranteedProducer(bootstrap, guarantee)`` picks the design notes' producer configuration for the
guarantee (acks=0; acks=all with idempotence; a transactional producer) and stamps a ``message-id``
header on each record, so that a consumer's dedup store can recognise a record sent twice.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaException, Producer

from .config import Guarantee, client_configs
from .errors import StartupError, StreamError
from .message import MESSAGE_ID_HEADER


class DeliveryError(StreamError):
    """Records that were not acknowledged; ``failed`` holds ``(message_id, error)`` pairs."""

    def __init__(self, failed: list[tuple[str, str]]) -> None:
        first = failed[0]
        super().__init__(f"{len(failed)} record(s) not delivered; first {first[0]}: {first[1]}")
        self.failed = failed


def _encode(v: bytes | str | None) -> bytes | None:
    return v.encode() if isinstance(v, str) else v


class GuaranteedProducer:
    """A confluent-kafka producer configured for one guarantee.

    * at-most-once: acks=0, nothing waited for, nothing retried.
    * at-least-once: acks=all and idempotence; :meth:`flush` raises :class:`DeliveryError` listing what
      was not acknowledged, so the caller can send it again.
    * exactly-once: a transactional producer (``transactional_id`` required and stable per instance, so
      that a restart fences its predecessor); send inside ``with producer.transaction():``.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        guarantee: str | Guarantee = Guarantee.AT_LEAST_ONCE,
        *,
        transactional_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        init_timeout_s: float = 30.0,
    ) -> None:
        self.guarantee = Guarantee.parse(guarantee)
        if self.guarantee is Guarantee.EXACTLY_ONCE and not transactional_id:
            raise ValueError("GuaranteedProducer: exactly-once needs a stable transactional_id per instance")
        _, cfg = client_configs(
            self.guarantee,
            bootstrap_servers=bootstrap_servers,
            group_id="-",
            instance_id=None,
            transactional_id=transactional_id,
            producer_config=config,
        )
        self._producer = Producer(cfg)
        self._failed: list[tuple[str, str]] = []
        self._in_txn = False
        if self.guarantee is Guarantee.EXACTLY_ONCE:
            try:
                self._producer.init_transactions(init_timeout_s)
            except KafkaException as e:
                raise StartupError(
                    f"cannot start a transactional producer on {bootstrap_servers}: {e.args[0].str()}"
                ) from e

    def _delivered(self, mid: str, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failed.append((mid, err.str()))

    def send(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        *,
        headers: Sequence[tuple[str, bytes | str]] | None = None,
        partition: int | None = None,
        message_id: str | None = None,
    ) -> str:
        """Queue one record; returns its message id (``message_id`` or a new UUID)."""
        if self.guarantee is Guarantee.EXACTLY_ONCE and not self._in_txn:
            raise StreamError("exactly-once: send inside `with producer.transaction():`")
        mid = message_id or uuid.uuid4().hex
        hs = [(k, _encode(v)) for k, v in headers or ()]
        hs.append((MESSAGE_ID_HEADER, mid.encode()))
        kw: dict[str, Any] = {"key": _encode(key), "value": _encode(value), "headers": hs}
        if partition is not None:
            kw["partition"] = partition
        if self.guarantee is Guarantee.AT_LEAST_ONCE:
            # A failed record's headers are not reported back, so its id rides with the callback.
            kw["on_delivery"] = functools.partial(self._delivered, mid)
        while True:
            try:
                self._producer.produce(topic, **kw)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)
        return mid

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued is sent (acknowledged, but for acks=0)."""
        left = self._producer.flush(timeout_s)
        failed, self._failed = self._failed, []
        if left:
            failed.append(("?", f"{left} record(s) still queued after {timeout_s:.0f}s"))
        if failed and self.guarantee is not Guarantee.AT_MOST_ONCE:
            raise DeliveryError(failed)

    @contextlib.contextmanager
    def transaction(self, timeout_s: float = 30.0) -> Iterator[GuaranteedProducer]:
        """Everything sent inside is committed together, or aborted if the block raises."""
        if self.guarantee is not Guarantee.EXACTLY_ONCE:
            raise StreamError(f"transaction() needs guarantee='exactly-once', not {self.guarantee.value!r}")
        self._producer.begin_transaction()
        self._in_txn = True
        try:
            yield self
        except BaseException:
            self._in_txn = False
            self._producer.abort_transaction(timeout_s)
            raise
        self._in_txn = False
        self._producer.commit_transaction(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        self._producer.flush(timeout_s)
