"""Producer ids that are never handed out twice, across restarts.

Ids come from blocks: before the first id of a block is given out, the block's end is written and
fsynced. After a crash the next block starts past anything that could have been used.
"""

from __future__ import annotations

import os
from pathlib import Path

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
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, f"{end}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self._block_end = end
