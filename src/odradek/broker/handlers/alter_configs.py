"""AlterConfigs: the legacy whole-set form. Each resource's overrides become exactly the configs given
(what is not named goes back to its default), as Kafka does; validation is IncrementalAlterConfigs'."""

from __future__ import annotations

from typing import Any

from .incremental_alter_configs import alter


async def handle(ctx: Any, request: Any) -> dict[str, Any]:
    responses = await alter(ctx, request.resources, bool(request.validate_only), incremental=False)
    return {"throttle_time": 0, "responses": responses}
