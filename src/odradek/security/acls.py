"""ACLs with the semantics of Kafka's StandardAuthorizer, kept durably in the data directory.

Pure except for its one file, ``<data-dir>/__odradek/acls.json`` (the ``__`` directory cannot be a topic's),
replaced atomically on every change. The rules, checked against Apache Kafka 4.4:

* a super user (``super.users``, ``User:a;User:b``) may do everything;
* the ACLs of a resource are the LITERAL ones with its exact name, the LITERAL ``*`` and the PREFIXED ones
  whose prefix starts its name; one matches a request when its principal is the request's or ``User:*``,
  its host is ``*``, the client's address or a CIDR range holding it, and its operation is the request's
  or ALL;
* any matching DENY wins; else any matching ALLOW grants, where an ALLOW of READ, WRITE, DELETE or ALTER
  also grants DESCRIBE and an ALLOW of ALTER_CONFIGS grants DESCRIBE_CONFIGS (a DENY implies nothing);
* with no ACL at all on the resource (of any principal, host or operation) the answer is
  ``allow.everyone.if.no.acl.found``; with some, but none that allows, it is no.

Checks are answered from indexes (literal names in a dict, prefixes by length) and a bounded cache that
every change clears, so a per-partition check on the Produce / Fetch path is a dict lookup.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from ..broker.authz import CLUSTER_NAME, AclOperation, ResourceType
from ..broker.state import DataDirError
from ..log.files import replace_durably

log = logging.getLogger("odradek.acls")

ACLS_FILE = "__odradek/acls.json"
FILE_VERSION = 1
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"
# Kafka's controller refuses more than this many records in one user operation (create or delete).
MAX_ACLS_PER_REQUEST = 10000
# Decisions kept between ACL changes; past this the cache starts again (a bound, not an LRU).
CACHE_ENTRIES_MAX = 65536

INVALID_REQUEST = 42
UNKNOWN_SERVER_ERROR = -1


class PatternType(IntEnum):
    """Kafka's PatternType codes; ANY and MATCH exist in filters only."""

    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Permission(IntEnum):
    """Kafka's AclPermissionType codes; ANY exists in filters only."""

    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


def _enum(cls: Any, code: int) -> Any:
    """A wire code as the enum member Kafka's fromCode gives: an unknown code is UNKNOWN."""
    try:
        return cls(code)
    except ValueError:
        return cls.UNKNOWN


_IMPLIES_DESCRIBE = frozenset(
    {AclOperation.DESCRIBE, AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE, AclOperation.ALTER}
)
_IMPLIES_CONFIGS = frozenset({AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS})


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One ACL: who (principal, host) may or may not (permission) do what (operation) on what (resource)."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: Permission

    @classmethod
    def from_codes(
        cls,
        resource_type: int,
        resource_name: str,
        pattern_type: int,
        principal: str,
        host: str,
        operation: int,
        permission: int,
    ) -> AclBinding:
        """From wire codes, unknown ones becoming UNKNOWN (refused later by :func:`binding_problem`)."""
        return cls(
            _enum(ResourceType, resource_type),
            resource_name,
            _enum(PatternType, pattern_type),
            principal,
            host,
            _enum(AclOperation, operation),
            _enum(Permission, permission),
        )

    def __str__(self) -> str:
        return (
            f"(resource={self.resource_type.name}:{self.pattern_type.name}:{self.resource_name}, "
            f"principal={self.principal}, host={self.host}, operation={self.operation.name}, "
            f"permission={self.permission.name})"
        )

    def to_json(self) -> dict[str, str]:
        return {
            "resource_type": self.resource_type.name,
            "resource_name": self.resource_name,
            "pattern_type": self.pattern_type.name,
            "principal": self.principal,
            "host": self.host,
            "operation": self.operation.name,
            "permission": self.permission.name,
        }

    @classmethod
    def from_json(cls, item: Any) -> AclBinding:
        """Raises ValueError (with what is wrong) for anything but an entry :meth:`to_json` writes."""
        if not isinstance(item, dict):
            raise ValueError(f"expected an object, got {type(item).__name__}")
        try:
            binding = cls(
                ResourceType[item["resource_type"]],
                _text(item, "resource_name"),
                PatternType[item["pattern_type"]],
                _text(item, "principal"),
                _text(item, "host"),
                AclOperation[item["operation"]],
                Permission[item["permission"]],
            )
        except KeyError as e:
            raise ValueError(f"missing or unknown value {e}") from None
        problem = binding_problem(binding)
        if problem is not None:
            raise ValueError(problem)
        return binding


def _text(item: dict[str, Any], key: str) -> str:
    value = item[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Kafka's AclBindingFilter: ANY codes and None texts match everything; MATCH pattern types match the
    ACLs that would apply to the named resource (its LITERAL name, LITERAL ``*``, PREFIXED prefixes)."""

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission: Permission = Permission.ANY

    @classmethod
    def from_codes(
        cls,
        resource_type: int,
        resource_name: str | None,
        pattern_type: int,
        principal: str | None,
        host: str | None,
        operation: int,
        permission: int,
    ) -> AclFilter:
        return cls(
            _enum(ResourceType, resource_type),
            resource_name,
            _enum(PatternType, pattern_type),
            principal,
            host,
            _enum(AclOperation, operation),
            _enum(Permission, permission),
        )

    def problem(self) -> str | None:
        """Why Kafka's DeleteAcls refuses the filter (INVALID_REQUEST); DescribeAcls just matches nothing."""
        if self.resource_type == ResourceType.UNKNOWN or self.pattern_type == PatternType.UNKNOWN:
            return "Unknown patternFilter."
        if self.operation == AclOperation.UNKNOWN or self.permission == Permission.UNKNOWN:
            return "Unknown entryFilter."
        return None

    def matches(self, acl: AclBinding) -> bool:
        if self.resource_type != ResourceType.ANY and self.resource_type != acl.resource_type:
            return False
        if (
            self.pattern_type not in (PatternType.ANY, PatternType.MATCH)
            and self.pattern_type != acl.pattern_type
        ):
            return False
        if self.resource_name is not None:
            if self.pattern_type in (PatternType.ANY, acl.pattern_type):
                if self.resource_name != acl.resource_name:
                    return False
            elif acl.pattern_type == PatternType.LITERAL:  # MATCH
                if acl.resource_name not in (self.resource_name, WILDCARD):
                    return False
            elif not self.resource_name.startswith(acl.resource_name):  # MATCH on a PREFIXED ACL
                return False
        if self.principal is not None and self.principal != acl.principal:
            return False
        if self.host is not None and self.host != acl.host:
            return False
        if self.operation != AclOperation.ANY and self.operation != acl.operation:
            return False
        return self.permission == Permission.ANY or self.permission == acl.permission


def unconstructible(binding: AclBinding) -> bool:
    """ANY / MATCH in an ACL to create: Kafka's own ACL classes refuse to hold them, so the whole CreateAcls
    request fails (UNKNOWN_SERVER_ERROR for every creation, nothing created), not just that creation."""
    return (
        binding.resource_type == ResourceType.ANY
        or binding.pattern_type in (PatternType.ANY, PatternType.MATCH)
        or binding.operation == AclOperation.ANY
        or binding.permission == Permission.ANY
    )


def binding_problem(binding: AclBinding) -> str | None:
    """Why Kafka refuses to create this ACL (INVALID_REQUEST), in the order Kafka checks, or None."""
    b = binding
    if b.resource_type == ResourceType.CLUSTER and b.resource_name != CLUSTER_NAME:
        return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
    if not b.resource_name:
        return "Invalid empty resource name"
    if b.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        return f"Invalid resourceType {b.resource_type.name}"
    if b.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        return f"Invalid patternType {b.pattern_type.name}"
    if b.operation in (AclOperation.UNKNOWN, AclOperation.ANY):
        return f"Invalid operation {b.operation.name}"
    if b.permission not in (Permission.DENY, Permission.ALLOW):
        return f"Invalid permissionType {b.permission.name}"
    if ":" not in b.principal:
        return (
            f"Could not parse principal from `{b.principal}` (no colon is present separating the "
            "principal type from the principal name)"
        )
    if not b.host:
        return "Host pattern cannot be null or empty"
    if b.host != WILDCARD and "/" in b.host and _network(b.host) is None:
        return f"Invalid CIDR notation '{b.host}': Could not parse [{b.host}]"
    return None


def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A host pattern ``address/bits`` as a network (host bits allowed, as Kafka allows), else None."""
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def _in_network(host: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:
        return False


class TooManyAcls(Exception):
    """More new ACLs in one request than Kafka's controller takes in one operation: the request fails."""


class AclStoreError(DataDirError):
    """The ACL file cannot be read back: the broker must not start with a guess at its ACLs (a DataDirError,
    so ``odradek serve`` reports it in one line as it does other unusable data directories)."""


class Authorizer:
    """The broker's ACLs (``broker.authorizer`` when ``authorizer.class.name`` is set).

    ``authorize`` / ``authorize_any`` answer the checks; ``create`` / ``delete`` (and their ``_async``
    forms, which write off the event loop) change the ACLs durably; ``describe`` lists them.
    """

    def __init__(self, data_dir: Path, super_users: str, allow_if_no_acl: bool) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / ACLS_FILE
        self.super_users = frozenset(p.strip() for p in super_users.split(";") if p.strip())
        self.allow_if_no_acl = bool(allow_if_no_acl)
        self._acls: dict[AclBinding, None] = {}  # an insertion-ordered set
        self._literal: dict[tuple[ResourceType, str], list[AclBinding]] = {}
        self._prefixed: dict[ResourceType, dict[str, list[AclBinding]]] = {}
        self._prefix_lengths: dict[ResourceType, list[int]] = {}
        self._by_type: dict[ResourceType, list[AclBinding]] = {}
        self._networks: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        self._cache: dict[tuple[str, str, int, int, str | None], bool] = {}
        self._write_lock: asyncio.Lock | None = None

    # --- life cycle -------------------------------------------------------------------------------

    def open(self) -> None:
        """Load the stored ACLs (none if the file does not exist yet)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._install([])
            return
        self._install(self._decode(raw))
        log.info("loaded %d ACLs from %s", len(self._acls), self.path)

    def close(self) -> None:
        self._cache.clear()

    def _decode(self, raw: bytes) -> list[AclBinding]:
        what = "restore it from a backup, or move it away to start with no ACLs at all"
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AclStoreError(f"{self.path} is not valid JSON ({e}); {what}") from None
        if (
            not isinstance(doc, dict)
            or doc.get("version") != FILE_VERSION
            or not isinstance(doc.get("acls"), list)
        ):
            raise AclStoreError(
                f"{self.path}: expected an object with version {FILE_VERSION} and a list of acls; {what}"
            )
        out: list[AclBinding] = []
        for i, item in enumerate(doc["acls"]):
            try:
                out.append(AclBinding.from_json(item))
            except ValueError as e:
                raise AclStoreError(f"{self.path}: ACL #{i} is invalid: {e}; {what}") from None
        return out

    def _encode(self, acls: Iterable[AclBinding]) -> bytes:
        doc = {"version": FILE_VERSION, "acls": [a.to_json() for a in acls]}
        return json.dumps(doc, indent=1).encode()

    def _write(self, acls: list[AclBinding]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_durably(self.path, self._encode(acls))

    def _install(self, acls: list[AclBinding]) -> None:
        """Make ``acls`` the live set: rebuild the indexes, forget every cached decision."""
        self._acls = dict.fromkeys(acls)
        literal: dict[tuple[ResourceType, str], list[AclBinding]] = {}
        prefixed: dict[ResourceType, dict[str, list[AclBinding]]] = {}
        by_type: dict[ResourceType, list[AclBinding]] = {}
        networks: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        for acl in self._acls:
            if acl.pattern_type == PatternType.LITERAL:
                literal.setdefault((acl.resource_type, acl.resource_name), []).append(acl)
            else:
                prefixed.setdefault(acl.resource_type, {}).setdefault(acl.resource_name, []).append(acl)
            by_type.setdefault(acl.resource_type, []).append(acl)
            if "/" in acl.host:
                network = _network(acl.host)
                if network is not None:
                    networks[acl.host] = network
        self._literal = literal
        self._prefixed = prefixed
        self._prefix_lengths = {t: sorted({len(p) for p in names}) for t, names in prefixed.items()}
        self._by_type = by_type
        self._networks = networks
        self._cache = {}

    # --- checks ------------------------------------------------------------------------------------

    def authorize(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType, name: str
    ) -> bool:
        """May ``principal`` connecting from ``host`` do ``operation`` on the resource (a LITERAL name)?"""
        if principal in self.super_users:
            return True
        key = (principal, host, operation, resource_type, name)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(principal, host, operation, resource_type, name)
            if len(self._cache) >= CACHE_ENTRIES_MAX:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def _resource_acls(self, resource_type: ResourceType, name: str) -> Iterator[AclBinding]:
        yield from self._literal.get((resource_type, name), ())
        if name != WILDCARD:
            yield from self._literal.get((resource_type, WILDCARD), ())
        prefixes = self._prefixed.get(resource_type)
        if prefixes:
            for length in self._prefix_lengths[resource_type]:
                if length > len(name):
                    break
                yield from prefixes.get(name[:length], ())

    def _decide(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType, name: str
    ) -> bool:
        found = allowed = False
        for acl in self._resource_acls(resource_type, name):
            found = True
            if not self._applies(acl, principal, host):
                continue
            if acl.permission == Permission.DENY:
                if acl.operation == AclOperation.ALL or acl.operation == operation:
                    return False
            elif not allowed:
                allowed = (
                    acl.operation == AclOperation.ALL
                    or acl.operation == operation
                    or (operation == AclOperation.DESCRIBE and acl.operation in _IMPLIES_DESCRIBE)
                    or (operation == AclOperation.DESCRIBE_CONFIGS and acl.operation in _IMPLIES_CONFIGS)
                )
        if allowed:
            return True
        return not found and self.allow_if_no_acl

    def _applies(self, acl: AclBinding, principal: str, host: str) -> bool:
        """Is the ACL about this principal (or everyone) at this address?"""
        if acl.principal != principal and acl.principal != WILDCARD_PRINCIPAL:
            return False
        if acl.host == WILDCARD or acl.host == host:
            return True
        network = self._networks.get(acl.host)
        return network is not None and _in_network(host, network)

    def authorize_any(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        """Kafka's authorizeByResourceType: may the principal do ``operation`` on some resource of the type
        (idempotent produce: WRITE on any topic)? An ALLOW counts unless a DENY covers everything it names.
        """
        if operation in (AclOperation.ANY, AclOperation.UNKNOWN):
            raise ValueError(f"authorize_any needs a concrete operation, got {operation.name}")
        if resource_type in (ResourceType.ANY, ResourceType.UNKNOWN):
            raise ValueError(f"authorize_any needs a concrete resource type, got {resource_type.name}")
        # Kafka first checks one made-up name, so super users (and allow.everyone.if.no.acl.found with
        # nothing matching it, or a wildcard ALLOW) pass however the DENY ACLs read.
        if self.authorize(principal, host, operation, resource_type, "hardcode"):
            return True
        key = (principal, host, operation, resource_type, None)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide_any(principal, host, operation, resource_type)
            if len(self._cache) >= CACHE_ENTRIES_MAX:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def _decide_any(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        deny_literal: set[str] = set()
        deny_prefixed: set[str] = set()
        allow: list[tuple[PatternType, str]] = []
        wildcard_allow = False
        for acl in self._by_type.get(resource_type, ()):
            if not self._applies(acl, principal, host):
                continue
            if acl.operation != operation and acl.operation != AclOperation.ALL:  # no implications here
                continue
            literal = acl.pattern_type == PatternType.LITERAL
            if acl.permission == Permission.DENY:
                if literal and acl.resource_name == WILDCARD:
                    return False
                (deny_literal if literal else deny_prefixed).add(acl.resource_name)
            elif literal and acl.resource_name == WILDCARD:
                wildcard_allow = True
            else:
                allow.append((acl.pattern_type, acl.resource_name))
        if wildcard_allow:
            return True
        for pattern_type, name in allow:
            if pattern_type == PatternType.LITERAL and name in deny_literal:
                continue
            if any(name[:n] in deny_prefixed for n in range(1, len(name) + 1)):
                continue
            return True
        return False

    # --- administration (CreateAcls, DescribeAcls, DeleteAcls) -------------------------------------

    def describe(self, acl_filter: AclFilter) -> list[AclBinding]:
        """The ACLs the filter matches, oldest first."""
        return [acl for acl in self._acls if acl_filter.matches(acl)]

    def __len__(self) -> int:
        return len(self._acls)

    def _plan_create(self, bindings: list[AclBinding]) -> tuple[list[str | None], list[AclBinding]]:
        results: list[str | None] = []
        added: dict[AclBinding, None] = {}
        for binding in bindings:
            problem = binding_problem(binding)
            results.append(problem)
            if problem is None and binding not in self._acls:
                added[binding] = None  # creating an ACL that exists is a success that changes nothing
        if len(added) > MAX_ACLS_PER_REQUEST:
            raise TooManyAcls(
                f"Cannot create more than {MAX_ACLS_PER_REQUEST} acls in a single create operation."
            )
        return results, list(added)

    def _plan_delete(
        self, filters: list[AclFilter]
    ) -> tuple[list[tuple[str | None, list[AclBinding]]], dict[AclBinding, None]]:
        """Each filter's result against the ACLs as they were before the request (so one ACL matching two
        filters is reported by both), and the ACLs to remove."""
        results: list[tuple[str | None, list[AclBinding]]] = []
        removed: dict[AclBinding, None] = {}
        for acl_filter in filters:
            problem = acl_filter.problem()
            if problem is not None:
                results.append((problem, []))
                continue
            matched = self.describe(acl_filter)
            if len(matched) > MAX_ACLS_PER_REQUEST:
                results.append(
                    (f"Cannot remove more than {MAX_ACLS_PER_REQUEST} acls in a single delete operation.", [])
                )
                continue
            results.append((None, matched))
            removed.update(dict.fromkeys(matched))
        return results, removed

    def create(self, bindings: Iterable[AclBinding]) -> list[str | None]:
        """Add ACLs, durable on return. Per binding: None (created, or already there) or why it is refused.
        Raises TooManyAcls (and adds nothing) past MAX_ACLS_PER_REQUEST new ACLs."""
        results, added = self._plan_create(list(bindings))
        if added:
            acls = [*self._acls, *added]
            self._write(acls)
            self._install(acls)
            self._log("created", added)
        return results

    def delete(self, filters: Iterable[AclFilter]) -> list[tuple[str | None, list[AclBinding]]]:
        """Remove the ACLs the filters match, durable on return. Per filter: (why it is refused or None,
        the ACLs it matched and so deleted)."""
        results, removed = self._plan_delete(list(filters))
        if removed:
            acls = [a for a in self._acls if a not in removed]
            self._write(acls)
            self._install(acls)
            self._log("deleted", removed)
        return results

    def _lock(self) -> asyncio.Lock:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    async def create_async(self, bindings: Iterable[AclBinding]) -> list[str | None]:
        """:meth:`create` with the file written off the event loop; changes apply one at a time, each
        visible only once it is on disk."""
        bindings = list(bindings)
        async with self._lock():
            results, added = self._plan_create(bindings)
            if added:
                acls = [*self._acls, *added]
                await asyncio.to_thread(self._write, acls)
                self._install(acls)
                self._log("created", added)
        return results

    async def delete_async(self, filters: Iterable[AclFilter]) -> list[tuple[str | None, list[AclBinding]]]:
        """:meth:`delete` with the file written off the event loop."""
        filters = list(filters)
        async with self._lock():
            results, removed = self._plan_delete(filters)
            if removed:
                acls = [a for a in self._acls if a not in removed]
                await asyncio.to_thread(self._write, acls)
                self._install(acls)
                self._log("deleted", removed)
        return results

    def _log(self, verb: str, acls: Iterable[AclBinding]) -> None:
        for acl in acls:
            log.info("ACL %s: %s", verb, acl)
