"""Exactly-once tests (idempotence, transactions, consume-transform-produce) against Odradek and Kafka 4.4.

Helpers live next to the tests (``eoskit.py``; this folder is put on ``sys.path``), the fault proxy in
``odradek.verify.proxy``; processes the tests SIGKILL (``txn_hold.py``, ``copier.py``) run as separate
Python programs.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
