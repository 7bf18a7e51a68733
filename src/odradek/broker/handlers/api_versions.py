"""ApiVersions: the advertised table, straight from protocol.apis."""

from __future__ import annotations

from typing import Any

from ...protocol.apis import SUPPORTED


def handle(ctx: Any, request: Any) -> dict[str, Any]:
    return {
        "error_code": 0,
        "api_keys": [
            {"api_key": r.key, "min_version": r.min_version, "max_version": r.max_version}
            for r in SUPPORTED.values()
        ],
        "throttle_time": 0,
        "supported_features": [],
        "finalized_features_epoch": -1,
        "finalized_features": [],
        "zk_migration_ready": False,
    }
