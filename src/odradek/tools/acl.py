"""``odradek acl add | list | delete``: ACLs of a running cluster (what ``kafka-acls.sh`` does).

Over the wire (CreateAcls / DescribeAcls / DeleteAcls through confluent-kafka's AdminClient), so it works
the same against Odradek and Apache Kafka. The options are kafka-acls.sh's: ``--allow-principal`` /
``--deny-principal`` with ``--allow-host`` / ``--deny-host``, ``--operation``, one or more of ``--topic``,
``--group``, ``--cluster``, ``--transactional-id``, and ``--resource-pattern-type``.

``delete`` removes what its filter matches and prints what that was; a filter naming no resource, principal
or operation would remove every ACL, so it needs ``--all``.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from .common import Client, ToolError

OPERATIONS = (
    "ALL",
    "READ",
    "WRITE",
    "CREATE",
    "DELETE",
    "ALTER",
    "DESCRIBE",
    "CLUSTER_ACTION",
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
    "IDEMPOTENT_WRITE",
)
CLUSTER_NAME = "kafka-cluster"
COLUMNS = ["RESOURCE-TYPE", "NAME", "PATTERN-TYPE", "PRINCIPAL", "HOST", "OPERATION", "PERMISSION"]


def _operation(value: str) -> str:
    op = value.strip().upper().replace("-", "_")
    if op == "IDEMPOTENTWRITE":
        op = "IDEMPOTENT_WRITE"
    if op not in OPERATIONS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(OPERATIONS)}, got {value!r}")
    return op


def _principal(value: str) -> str:
    if ":" not in value:
        raise argparse.ArgumentTypeError(f"expected TYPE:NAME, e.g. User:alice, got {value!r}")
    return value


def add_parser(sub: argparse._SubParsersAction, client_options: argparse.ArgumentParser) -> None:
    """The ``acl`` command's parsers; ``client_options`` is the connection group every tool takes."""
    acl = sub.add_parser("acl", help="add, list and delete ACLs", description=__doc__.split("\n\n")[0])
    acts = acl.add_subparsers(dest="action", required=True)

    resources = argparse.ArgumentParser(add_help=False)
    g = resources.add_argument_group("resources")
    g.add_argument("--topic", action="append", default=[], metavar="NAME", help="a topic; repeatable")
    g.add_argument("--group", action="append", default=[], metavar="NAME", help="a group; repeatable")
    g.add_argument(
        "--transactional-id", action="append", default=[], metavar="ID", help="a transactional id; repeatable"
    )
    g.add_argument("--cluster", action="store_true", help="the cluster (kafka-cluster)")

    p = acts.add_parser("add", parents=[client_options, resources], help="grant or deny operations")
    p.add_argument("--allow-principal", action="append", default=[], type=_principal, metavar="PRINCIPAL")
    p.add_argument("--deny-principal", action="append", default=[], type=_principal, metavar="PRINCIPAL")
    p.add_argument(
        "--allow-host", action="append", default=[], metavar="HOST", help="for allowed principals (default *)"
    )
    p.add_argument(
        "--deny-host", action="append", default=[], metavar="HOST", help="for denied principals (default *)"
    )
    p.add_argument(
        "--operation",
        action="append",
        default=[],
        type=_operation,
        metavar="OP",
        help="repeatable (required)",
    )
    p.add_argument("--resource-pattern-type", choices=["literal", "prefixed"], default="literal")

    for action, helptext in (("list", "show ACLs"), ("delete", "remove ACLs and show what was removed")):
        p = acts.add_parser(action, parents=[client_options, resources], help=helptext)
        p.add_argument(
            "--resource-pattern-type",
            choices=["any", "match", "literal", "prefixed"],
            default="any" if action == "list" else "literal",
            help="match: every ACL that applies to the named resources (their name, *, their prefixes)",
        )
        p.add_argument("--principal", type=_principal, metavar="PRINCIPAL", help="only this principal's ACLs")
        if action == "delete":
            p.add_argument("--host", metavar="HOST", help="only ACLs for this host pattern")
            p.add_argument("--operation", type=_operation, metavar="OP", help="only ACLs of this operation")
            p.add_argument("--permission", choices=["allow", "deny"], help="only ALLOW or only DENY ACLs")
            p.add_argument("--all", action="store_true", help="allow a filter that matches every ACL")


def _resources(args: argparse.Namespace) -> list[tuple[Any, str]]:
    from confluent_kafka.admin import ResourceType

    out = [(ResourceType.TOPIC, t) for t in args.topic]
    out += [(ResourceType.GROUP, g) for g in args.group]
    out += [(ResourceType.TRANSACTIONAL_ID, t) for t in args.transactional_id]
    if args.cluster:
        out.append((ResourceType.BROKER, CLUSTER_NAME))  # librdkafka's name for Kafka's CLUSTER
    return out


def _row(b: Any) -> list[str]:
    restype = "CLUSTER" if b.restype.name == "BROKER" else b.restype.name
    return [
        restype,
        b.name,
        b.resource_pattern_type.name,
        b.principal,
        b.host,
        b.operation.name,
        b.permission_type.name,
    ]


def _show(out: Any, bindings: list[Any]) -> None:
    rows = sorted(_row(b) for b in bindings)
    if out.json:
        out.document(
            [dict(zip([c.lower().replace("-", "_") for c in COLUMNS], r, strict=True)) for r in rows]
        )
    else:
        out.table(COLUMNS, rows)


def run(args: argparse.Namespace, out: Any) -> int:
    client = Client.from_args(args)
    return {"add": _add, "list": _list, "delete": _delete}[args.action](client, args, out)


def _add(client: Client, args: argparse.Namespace, out: Any) -> int:
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType

    resources = _resources(args)
    if not resources:
        raise ToolError("name at least one resource: --topic, --group, --transactional-id or --cluster", 2)
    if not args.operation:
        raise ToolError("name at least one --operation", 2)
    if not args.allow_principal and not args.deny_principal:
        raise ToolError("name at least one --allow-principal or --deny-principal", 2)
    pattern = ResourcePatternType[args.resource_pattern_type.upper()]
    entries = [
        (p, h, AclPermissionType.ALLOW) for p in args.allow_principal for h in (args.allow_host or ["*"])
    ] + [(p, h, AclPermissionType.DENY) for p in args.deny_principal for h in (args.deny_host or ["*"])]
    bindings = list(
        dict.fromkeys(
            AclBinding(rtype, name, pattern, principal, host, AclOperation[op], permission)
            for (rtype, name), (principal, host, permission), op in itertools.product(
                resources, entries, dict.fromkeys(args.operation)
            )
        )
    )
    client.wait(client.admin().create_acls(bindings, request_timeout=client.timeout_s), "cannot add ACL")
    if out.json:
        _show(out, bindings)
    else:
        out.note(f"added {len(bindings)} ACL{'s' if len(bindings) != 1 else ''}")
    return 0


def _filters(args: argparse.Namespace, **entry: Any) -> list[Any]:
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    pattern = ResourcePatternType[args.resource_pattern_type.upper()]
    resources: list[tuple[Any, str | None]] = list(_resources(args)) or [(ResourceType.ANY, None)]
    return [
        AclBindingFilter(
            rtype,
            name,
            pattern,
            args.principal,
            entry.get("host"),
            entry.get("operation") or AclOperation.ANY,
            entry.get("permission") or AclPermissionType.ANY,
        )
        for rtype, name in resources
    ]


def _list(client: Client, args: argparse.Namespace, out: Any) -> int:
    found: dict[Any, None] = {}
    admin = client.admin()
    for f in _filters(args):
        result = client.wait(
            {"": admin.describe_acls(f, request_timeout=client.timeout_s)}, "cannot list ACLs"
        )
        found.update(dict.fromkeys(result[""]))
    _show(out, list(found))
    return 0


def _delete(client: Client, args: argparse.Namespace, out: Any) -> int:
    from confluent_kafka.admin import AclOperation, AclPermissionType

    narrowed = _resources(args) or args.principal or args.host or args.operation or args.permission
    if not narrowed and not args.all:
        raise ToolError("this filter matches every ACL; narrow it, or add --all to remove them all", 2)
    filters = _filters(
        args,
        host=args.host,
        operation=AclOperation[args.operation] if args.operation else None,
        permission=AclPermissionType[args.permission.upper()] if args.permission else None,
    )
    results = client.wait(
        client.admin().delete_acls(filters, request_timeout=client.timeout_s), "cannot delete ACLs"
    )
    removed = list(dict.fromkeys(b for f in filters for b in results[f]))
    _show(out, removed)
    if not out.json:
        out.note(f"deleted {len(removed)} ACL{'s' if len(removed) != 1 else ''}")
    return 0
