"""The storage engine: Kafka-layout segments, sparse indexes, recovery, retention, group-commit flush."""

from odradek.log.partition import AppendResult, LogConfig, OffsetOutOfRange, PartitionLog
from odradek.log.segment import CorruptLogError

__all__ = ["AppendResult", "CorruptLogError", "LogConfig", "OffsetOutOfRange", "PartitionLog"]
