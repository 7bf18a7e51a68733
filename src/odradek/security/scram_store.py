"""SCRAM credentials, durable in the data directory (placeholder until the implementation lands).

Interface: ``ScramStore(data_dir)``, ``open()``, ``close()``, ``get(user, mechanism) -> ScramCredential | None``.
"""

from __future__ import annotations

from pathlib import Path


class ScramStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get(self, user: str, mechanism: str):  # noqa: ANN201
        return None
