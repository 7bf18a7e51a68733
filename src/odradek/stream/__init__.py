"""odradek.stream: stream processing where one setting picks the delivery guarantee, and keeps it.

    from odradek.stream import App

    app = App(bootstrap_servers="127.0.0.1:9092", group_id="billing", guarantee="exactly-once")

    @app.processor(source="orders", sink="receipts")
    def bill(msg):
        return msg.value.upper()

    app.run()

Works on any Kafka-protocol broker (Odradek, or an Apache Kafka cluster) through confluent-kafka.
Install with ``pip install 'odradek[stream]'`` (``[postgres]``, ``[mysql]``, ``[redis]`` for those
backends).
"""

from __future__ import annotations

try:
    import confluent_kafka as _ck  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("odradek.stream needs confluent-kafka: pip install 'odradek[stream]'") from e

from .app import App, TopicSink
from .config import Guarantee, GuaranteeConfigError
from .errors import ErrorPolicy, FencedError, ProcessingError, StartupError, StreamError
from .message import MESSAGE_ID_HEADER, Message, Output
from .producer import DeliveryError, GuaranteedProducer

__all__ = [
    "MESSAGE_ID_HEADER",
    "App",
    "DeliveryError",
    "ErrorPolicy",
    "FencedError",
    "Guarantee",
    "GuaranteeConfigError",
    "GuaranteedProducer",
    "Message",
    "Output",
    "ProcessingError",
    "StartupError",
    "StreamError",
    "TopicSink",
]


def __getattr__(name: str):
    # The SQL and dedup components import SQLAlchemy / drivers only when used.
    from . import dedup, sql

    for mod in (sql, dedup):
        if hasattr(mod, name):
            return getattr(mod, name)
    raise AttributeError(f"module 'odradek.stream' has no attribute {name!r}")
