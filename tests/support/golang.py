"""The franz-go client for the interoperability tests: ``tests/go``, built once into the cache.

Its dependencies are pinned by ``tests/go/go.sum`` and come from the Go module proxy on the first build
(``scripts/test`` downloads them up front). The binary is cached under ``~/.cache/odradek`` by a digest
of the sources, so a changed ``main.go`` or ``go.sum`` builds anew.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .deps import MissingDependency
from .kafka import cache_dir

GO_DIR = Path(__file__).resolve().parents[1] / "go"
SOURCES = ("go.mod", "go.sum", "main.go")


def _digest() -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update((GO_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def ensure_franz() -> Path:
    """The built franz-go test client; MissingDependency when ``go`` is not installed."""
    binary = cache_dir() / f"franz-{_digest()}"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise MissingDependency("`go` not found on PATH: needed for the franz-go client tests")
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    proc = subprocess.run(
        [go, "build", "-o", str(binary) + ".tmp", "."],
        cwd=GO_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        raise RuntimeError(f"go build failed in {GO_DIR} (exit {proc.returncode}):\n{output}")
    os.replace(str(binary) + ".tmp", binary)
    return binary


def run_franz(binary: Path, *args: str, timeout: float = 180) -> dict[str, Any]:
    """Run one mode of the client; its stdout is one JSON object."""
    proc = subprocess.run(
        [str(binary), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"franz {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)
