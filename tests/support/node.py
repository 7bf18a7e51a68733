"""Node.js client helpers (kafkajs), driven from Python tests.

Scripts live in ``tests/node``; their dependencies are pinned in ``tests/node/package-lock.json``
and installed with ``npm ci`` (by ``scripts/test``, or on first use here).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .deps import MissingDependency

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
_STAMP = NODE_DIR / "node_modules" / ".odradek-lock-sha256"


def _lock_digest() -> str:
    return hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()


def node_modules_ready() -> bool:
    return (NODE_DIR / "node_modules" / "kafkajs").is_dir() and (
        _STAMP.is_file() and _STAMP.read_text().strip() == _lock_digest()
    )


def ensure_node_modules() -> Path:
    """Return ``tests/node`` with its node_modules installed (``npm ci`` when stale or missing).

    Raises :class:`MissingDependency` when ``node`` or (for a needed install) ``npm`` is absent.
    """
    if shutil.which("node") is None:
        raise MissingDependency("`node` not found on PATH: needed for the kafkajs client tests")
    if node_modules_ready():
        return NODE_DIR
    npm = shutil.which("npm")
    if npm is None:
        raise MissingDependency("tests/node/node_modules is not installed and `npm` is not on PATH")
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"npm ci failed in {NODE_DIR} (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    _STAMP.write_text(_lock_digest() + "\n")
    return NODE_DIR


def run_node(
    script: str | os.PathLike[str],
    *args: object,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    check: bool = True,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``node SCRIPT ARGS...`` (a relative SCRIPT is taken from ``tests/node``) and capture output.

    ``env`` is added to the inherited environment. ``check=True`` raises ``RuntimeError`` carrying
    stdout and stderr when the script exits non-zero.
    """
    node = shutil.which("node")
    if node is None:
        raise MissingDependency("`node` not found on PATH")
    path = Path(script)
    if not path.is_absolute():
        path = NODE_DIR / path
    full_env = dict(os.environ)
    full_env.setdefault("KAFKAJS_NO_PARTITIONER_WARNING", "1")
    full_env.update(env or {})
    proc = subprocess.run(
        [node, str(path), *map(str, args)],
        cwd=cwd or NODE_DIR,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"node {path.name} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def json_lines(text: str) -> list[Any]:
    """Every line of ``text`` that parses as JSON (other lines are skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
