"""Producer ids that are never handed out twice, across restarts.

Ids come from blocks: before the first id of a block is given out, the block's end is written and
fsynced. After a crash the next block starts past anything that could have been used.
"""

from __future__ import annotations

from pathlib import Path

from ..log.files import replace_durably

BLOCK_SIZE = 1000
STATE_FILE = "__odradek/producer-id-block"


class ProducerIdManager:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATE_FILE
        self._next = 0
        self._block_end = 0

    def open(self) -> None:
        try:
            self._next = self._block_end = int(self.path.read_text().strip() or 0)
        except FileNotFoundError:
            self._next = self._block_end = 0

    def allocate(self) -> int:
        if self._next >= self._block_end:
            self._reserve(self._block_end + BLOCK_SIZE)
        pid = self._next
        self._next += 1
        return pid

    def _reserve(self, end: int) -> None:
        replace_durably(self.path, f"{end}\n".encode())
        self._block_end = end
