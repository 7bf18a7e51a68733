"""Odradek: a Kafka-wire-compatible broker built around delivery guarantees."""

__version__ = "0.1.0"
