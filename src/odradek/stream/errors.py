"""Errors the library raises, and the per-App policy for records whose processing fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


class StreamError(RuntimeError):
    """Base of the library's errors; ``str()`` is one line a user can act on."""

    exit_code = 1


class StartupError(StreamError):
    """The App cannot start: broker or database unreachable, or missing what the guarantee needs."""

    exit_code = 2


class FencedError(StreamError):
    """Another instance with this instance's transactional id took over: this one must stop."""


class ProcessingError(StreamError):
    """A record failed after every retry and the policy says stop."""

    def __init__(self, message: str, *, topic: str, partition: int, offset: int, attempts: int) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.attempts = attempts


# Headers of a dead letter, besides the original record's own headers, key and value.
DLQ_ERROR = "odradek.error"
DLQ_ERROR_TYPE = "odradek.error.type"
DLQ_TOPIC = "odradek.topic"
DLQ_PARTITION = "odradek.partition"
DLQ_OFFSET = "odradek.offset"
DLQ_ATTEMPTS = "odradek.attempts"
DLQ_PROCESSOR = "odradek.processor"


@dataclass(frozen=True)
class ErrorPolicy:
    """What happens when a processor raises.

    The record is tried ``1 + retries`` times, sleeping ``backoff_ms`` (doubling, at most
    ``backoff_max_ms``) in between. Then, with ``on_failure="stop"`` the App stops with a
    :class:`ProcessingError` and the record is met again after a restart: at-least-once first commits
    what came before it; exactly-once aborts the open transaction, so the records before it are
    processed again (once) after the restart; at-most-once had committed the batch before processing it,
    sends what came before and loses the rest of the batch. With ``"dead-letter"`` the record goes to
    ``dead_letter_topic`` (default ``<source topic>.dead-letter``) with the error, its origin and the
    attempt count in headers, and processing goes on. Under exactly-once the dead letter is written in
    the same transaction as the outputs. Either way a poison record is never dropped silently.
    """

    retries: int = 2
    backoff_ms: int = 100
    backoff_max_ms: int = 2000
    on_failure: Literal["stop", "dead-letter"] = "stop"
    dead_letter_topic: str | None = None

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_ms < 0 or self.backoff_max_ms < 0:
            raise ValueError("ErrorPolicy: retries, backoff_ms and backoff_max_ms must be >= 0")
        if self.on_failure not in ("stop", "dead-letter"):
            raise ValueError(f"ErrorPolicy: on_failure={self.on_failure!r} is not 'stop' or 'dead-letter'")

    def backoff_s(self, attempt: int) -> float:
        """Pause before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        return min(self.backoff_ms * (2 ** (attempt - 1)), self.backoff_max_ms) / 1000.0

    def dead_letter_topic_for(self, source: str) -> str:
        return self.dead_letter_topic or f"{source}.dead-letter"
