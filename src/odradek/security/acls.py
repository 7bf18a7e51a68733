"""ACLs with StandardAuthorizer's semantics (placeholder until the implementation lands).

Interface: ``Authorizer(data_dir, super_users, allow_if_no_acl)``, ``open()``, ``close()``,
``authorize(principal, host, operation, resource_type, name) -> bool``,
``authorize_any(principal, host, operation, resource_type) -> bool``.
"""

from __future__ import annotations

from pathlib import Path

from ..broker.authz import AclOperation, ResourceType


class Authorizer:
    def __init__(self, data_dir: Path, super_users: str, allow_if_no_acl: bool) -> None:
        self.data_dir = data_dir
        self.super_users = {p.strip() for p in super_users.split(";") if p.strip()}
        self.allow_if_no_acl = allow_if_no_acl

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def authorize(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType, name: str
    ) -> bool:
        return principal in self.super_users

    def authorize_any(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        return principal in self.super_users
