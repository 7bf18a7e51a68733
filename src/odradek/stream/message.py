"""What a processor sees (:class:`Message`) and may return (:class:`Output`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MESSAGE_ID_HEADER = "message-id"


class Message:
    """One consumed record, read from the client's message without copying until asked."""

    __slots__ = ("_m",)

    def __init__(self, raw: Any) -> None:
        self._m = raw

    @property
    def key(self) -> bytes | None:
        return self._m.key()

    @property
    def value(self) -> bytes | None:
        return self._m.value()

    @property
    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._m.headers() or []

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or None."""
        found = None
        for k, v in self._m.headers() or ():
            if k == name:
                found = v
        return found

    @property
    def topic(self) -> str:
        return self._m.topic()

    @property
    def partition(self) -> int:
        return self._m.partition()

    @property
    def offset(self) -> int:
        return self._m.offset()

    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch (CreateTime or LogAppendTime, as the topic stores it)."""
        return self._m.timestamp()[1]

    @property
    def message_id(self) -> str:
        """The ``message-id`` header, or ``topic/partition/offset`` when there is none."""
        h = self.header(MESSAGE_ID_HEADER)
        if h is not None:
            return h.decode("utf-8", "replace")
        return f"{self._m.topic()}/{self._m.partition()}/{self._m.offset()}"

    def __repr__(self) -> str:
        return f"Message({self.topic}/{self.partition}@{self.offset})"


class _SameKey:
    def __repr__(self) -> str:
        return "SAME_KEY"


SAME_KEY: Any = _SameKey()


@dataclass(frozen=True, slots=True)
class Output:
    """One record to send to the processor's sink topic (or to ``topic``).

    ``key`` defaults to the input's key, which keeps each key's outputs in the input's order.
    """

    value: bytes | str | None
    key: bytes | str | None = SAME_KEY
    headers: Sequence[tuple[str, bytes | str]] | None = None
    topic: str | None = None
    partition: int | None = None
