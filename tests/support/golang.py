"""The franz-go client for the interoperability tests: ``tests/go``, built once into the cache.

Its dependencies are pinned by ``tests/go/go.sum`` and come from the Go module proxy on the first build
(``scripts/test`` downloads them up front). Each main package's binary is cached under
``~/.cache/odradek`` by a digest of its sources, so a changed ``main.go`` or ``go.sum`` builds anew.
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
MODULE_FILES = ("go.mod", "go.sum")
# The main packages of the module: the interoperability client (".") and the security client.
PACKAGES = {".": ("main.go",), "./security": ("security/main.go",)}


def _digest(package: str) -> str:
    h = hashlib.sha256()
    for name in (*MODULE_FILES, *PACKAGES[package]):
        h.update(name.encode() + b"\0" + (GO_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def ensure_franz(package: str = ".") -> Path:
    """A built franz-go test client (a main package of tests/go); MissingDependency when ``go`` is not
    installed."""
    name = "franz" if package == "." else f"franz-{package.strip('./').replace('/', '-')}"
    binary = cache_dir() / f"{name}-{_digest(package)}"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise MissingDependency("`go` not found on PATH: needed for the franz-go client tests")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(f"{binary.name}.tmp-{os.getpid()}")
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    proc = subprocess.run(
        [go, "build", "-o", str(tmp), package],
        cwd=GO_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        raise RuntimeError(f"go build {package} failed in {GO_DIR} (exit {proc.returncode}):\n{output}")
    os.replace(tmp, binary)
    return binary


def run_franz(binary: Path, *args: str, timeout: float = 180) -> dict[str, Any]:
    """Run one mode of the client; its stdout is one JSON object."""
    proc = subprocess.run(
        [str(binary), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"franz {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)
