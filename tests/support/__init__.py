"""Test-support package for the Odradek suite.

Import it as ``support`` (``tests/`` is on ``sys.path`` when pytest runs; ``tests/conftest.py``
makes sure of it):

    from support.odradek import OdradekBroker
    from support.kafka import KafkaBroker, run_kafka_tool
    from support.node import run_node
    from support.deps import missing_dependency

Nothing in here imports third-party packages at module level except where noted, so
``python -m support.kafka fetch`` works from ``scripts/test`` before pytest runs.
"""
