"""The missing-dependency rule, implemented once.

Tests that need an external tool (java, mvn, node, npm) or the Apache Kafka jars call
:func:`missing_dependency` (or the ``require_*`` helpers) when it is absent. Locally the test
SKIPS with one loud line naming what is missing; when ``CI=true`` it FAILS instead, because a
CI run must never pass by skipping the differential tests.
"""

from __future__ import annotations

import os
import shutil

__all__ = [
    "MissingDependency",
    "in_ci",
    "missing_dependency",
    "require_executable",
]


class MissingDependency(RuntimeError):
    """Raised by support code (outside pytest's control flow) when something external is absent."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def missing_dependency(what: str, hint: str = ""):
    """Skip (locally) or fail (CI=true) the current test because ``what`` is missing. Never returns."""
    import pytest  # imported here so support modules stay importable outside pytest

    text = f"MISSING DEPENDENCY: {what}"
    if hint:
        text += f" ({hint})"
    if in_ci():
        pytest.fail(text + " [CI=true: missing dependencies fail instead of skipping]", pytrace=False)
    pytest.skip(text)


def require_executable(name: str, hint: str = "") -> str:
    """Return the absolute path of executable ``name`` or apply the missing-dependency rule."""
    path = shutil.which(name)
    if path is None:
        missing_dependency(f"`{name}` not found on PATH", hint or "run scripts/test, or install it")
    return path
