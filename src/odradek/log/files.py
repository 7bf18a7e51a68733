"""Durable writes of small whole files: written aside, fsynced, renamed over, the directory fsynced."""

from __future__ import annotations

import os
from pathlib import Path

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def write_synced(path: Path, data: bytes | bytearray, *, mode: int = 0o644) -> None:
    """Write ``path`` with exactly ``data`` (truncating it) and fsync it. ``mode`` applies to an existing
    file too (a leftover may have had other bits), so secrets can be kept owner-only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, mode)
    try:
        if mode != 0o644:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (created, renamed or removed files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: Path, data: bytes | bytearray, *, sync_dir: bool = True, mode: int = 0o644) -> None:
    """Atomically give ``path`` the content ``data``: a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    write_synced(tmp, data, mode=mode)
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)
