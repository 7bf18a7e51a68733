"""Odradek's benchmark suite: Odradek and Apache Kafka 4.4 side by side. Run ``python -m bench``."""
