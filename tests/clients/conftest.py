"""Fixtures for the real-client tests (confluent-kafka, kafka-python, aiokafka, kafkajs).

The client adapters live in ``kclients.py`` next to this file; this folder is put on ``sys.path`` so
test modules can ``import kclients`` under any pytest import mode (there is no ``__init__.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kclients  # noqa: E402


@pytest.fixture(params=sorted(kclients.LIBRARIES))
def library(request: pytest.FixtureRequest) -> kclients.Library:
    """One Python client library (producer, consumer and admin of the same library)."""
    return kclients.LIBRARIES[request.param]
