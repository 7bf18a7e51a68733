"""``odradek user add | delete | list``: SCRAM users (what ``kafka-configs.sh --entity-type users`` does).

Over the wire (AlterUserScramCredentials / DescribeUserScramCredentials, through confluent-kafka's
AdminClient) against any running cluster, Odradek or Kafka; or, with ``--data-dir``, straight into the
credential store of an Odradek broker that is not running: the way to create the first user before any
listener lets an administrator in. The data directory is locked as the broker locks it, so a running
broker's directory is refused.

Passwords are read from a prompt or from stdin (``--password-stdin``), never echoed or logged;
``--password`` exists for scripts but shows the password to anyone who can list processes.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import getpass
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
DEFAULT_MECHANISM = "SCRAM-SHA-512"
DEFAULT_ITERATIONS = 8192
SALT_BYTES = 32
# A password read from stdin or a prompt longer than this is a mistake (a file piped in whole).
PASSWORD_CHARS_MAX = 4096

# Kafka's error names for the codes these two APIs answer, for the one-line errors.
_ERROR_NAMES = {
    31: "CLUSTER_AUTHORIZATION_FAILED",
    33: "UNSUPPORTED_SASL_MECHANISM",
    91: "RESOURCE_NOT_FOUND",
    92: "DUPLICATE_RESOURCE",
    93: "UNACCEPTABLE_CREDENTIAL",
    -1: "UNKNOWN_SERVER_ERROR",
}


def add_parser(sub: argparse._SubParsersAction, client_options: argparse.ArgumentParser) -> None:
    """The ``user`` command's parsers; ``client_options`` is the connection group every tool takes."""
    user = sub.add_parser(
        "user",
        help="add, delete and list SCRAM users",
        description="SCRAM users of a running cluster (over the wire), or, with --data-dir, of a stopped "
        "Odradek broker's data directory (for the first user, before any listener lets an admin in).",
    )
    us = user.add_subparsers(dest="action", required=True)
    local = argparse.ArgumentParser(add_help=False)
    local.add_argument(
        "--data-dir",
        type=Path,
        metavar="PATH",
        help="write the credential store of this stopped broker's data directory instead of asking a "
        "running broker (refused while a broker runs on it)",
    )
    p = us.add_parser(
        "add", parents=[client_options, local], help="add a user's SCRAM credential, or change its password"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--mechanism", choices=MECHANISMS, default=DEFAULT_MECHANISM, help="default SCRAM-SHA-512")
    p.add_argument(
        "--iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        metavar="N",
        help=f"PBKDF2 iterations, 4096 to 16384 (default {DEFAULT_ITERATIONS})",
    )
    pw = p.add_mutually_exclusive_group()
    pw.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )
    pw.add_argument(
        "--password",
        metavar="PASSWORD",
        help="the password itself: visible to every local user in the process list; prefer the prompt "
        "or --password-stdin",
    )
    p = us.add_parser("delete", parents=[client_options, local], help="delete a user's SCRAM credentials")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--mechanism", choices=MECHANISMS, help="only this mechanism's credential (default: every one it has)"
    )
    p = us.add_parser("list", parents=[client_options, local], help="users and their SCRAM mechanisms")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these users (default: all)")


# --------------------------------------------------------------------------------------------------
# Where the credentials are: a running cluster, or a stopped broker's data directory


class Remote:
    """A running cluster, through AdminClient."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def describe(self, names: list[str] | None) -> dict[str, list[tuple[str, int]]]:
        """{user: [(mechanism, iterations)]}; an unknown name asked for is a ToolError."""
        from .common import ToolError, describe_error

        admin = self.client.admin()
        if names is None:
            found = self.client.wait({"": admin.describe_user_scram_credentials()}, "cannot list users")[""]
        else:
            found = {}
            futures = admin.describe_user_scram_credentials(names)
            for name, fut in futures.items():
                try:
                    found[name] = fut.result(timeout=self.client.timeout_s + 5)
                except Exception as e:
                    raise ToolError(describe_error(e, f"user {name!r}")) from None
        return {
            name: sorted((i.mechanism.name.replace("_", "-"), i.iterations) for i in d.scram_credential_infos)
            for name, d in found.items()
        }

    def upsert(self, name: str, mechanism: str, iterations: int, password: str) -> None:
        from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

        mech = ScramMechanism[mechanism.replace("-", "_")]
        # No salt given: the client draws a random one and sends only the salted password.
        alteration = UserScramCredentialUpsertion(
            name, ScramCredentialInfo(mech, iterations), password.encode()
        )
        self._alter([alteration], "cannot add user")

    def delete(self, name: str, mechanisms: list[str]) -> None:
        from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion

        alterations = [
            UserScramCredentialDeletion(name, ScramMechanism[m.replace("-", "_")]) for m in mechanisms
        ]
        self._alter(alterations, "cannot delete user")

    def _alter(self, alterations: list[Any], what: str) -> None:
        admin = self.client.admin()
        self.client.wait(admin.alter_user_scram_credentials(alterations), what)


class Local:
    """A stopped broker's credential store, under the broker's own data directory lock."""

    def __init__(self, data_dir: Path) -> None:
        from ..security.scram_store import ScramStore

        self.data_dir = data_dir
        self.store = ScramStore(data_dir)
        self.store.open()

    def describe(self, names: list[str] | None) -> dict[str, list[tuple[str, int]]]:
        from .common import ToolError

        out = {}
        for r in self.store.describe(names):
            if r["error_code"]:
                raise ToolError(f"user {r['user']!r}: {r['error_message']} ({_ERROR_NAMES[r['error_code']]})")
            names_by_type = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}
            out[r["user"]] = [(names_by_type[i["mechanism"]], i["iterations"]) for i in r["credential_infos"]]
        return out

    def upsert(self, name: str, mechanism: str, iterations: int, password: str) -> None:
        from ..security.sasl import ITERATIONS_MAX, ITERATIONS_MIN, SCRAM_MECHANISMS, salted_password
        from ..security.scram_store import Upsertion

        salt = secrets.token_bytes(SALT_BYTES)
        salted = b"\x00"  # the store refuses the iteration count before it looks at this
        if ITERATIONS_MIN <= iterations <= ITERATIONS_MAX:
            salted = salted_password(mechanism, password, salt, iterations)
        code = SCRAM_MECHANISMS[mechanism].type_code
        self._check(
            self.store.alter([], [Upsertion(name, code, iterations, salt, salted)]), "cannot add user"
        )

    def delete(self, name: str, mechanisms: list[str]) -> None:
        from ..security.sasl import SCRAM_MECHANISMS
        from ..security.scram_store import Deletion

        deletions = [Deletion(name, SCRAM_MECHANISMS[m].type_code) for m in mechanisms]
        self._check(self.store.alter(deletions, []), "cannot delete user")

    @staticmethod
    def _check(results: list[dict[str, Any]], what: str) -> None:
        from .common import ToolError

        for r in results:
            if r["error_code"]:
                name = _ERROR_NAMES[r["error_code"]]
                raise ToolError(f"{what} {r['user']!r}: {r['error_message']} ({name})")


@contextmanager
def locked_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's lock (the broker's own, ``<data-dir>/.lock``) for the command's length."""
    from ..broker.state import LOCK_FILE
    from .common import ToolError

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise ToolError(f"cannot use data directory {data_dir}: {e.strerror}", 2) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ToolError(
                    f"data directory {data_dir} is in use by a running broker; change its users over the "
                    "wire instead (-b HOST:PORT, without --data-dir)"
                ) from None
            raise ToolError(f"cannot lock data directory {data_dir}: {e.strerror}") from None
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# The commands


def run(args: argparse.Namespace, out: Any) -> int:
    from .common import Client, ToolError

    action = {"add": add, "delete": delete, "list": list_}[args.action]
    if args.data_dir is None:
        return action(Remote(Client.from_args(args)), args, out)
    from ..security.scram_store import ScramStoreError

    with locked_data_dir(args.data_dir):
        try:
            return action(Local(args.data_dir), args, out)
        except ScramStoreError as e:
            raise ToolError(str(e)) from None


def read_password(args: argparse.Namespace) -> str:
    from .common import ToolError

    if args.password is not None:
        password = args.password
    elif args.password_stdin:
        line = sys.stdin.readline(PASSWORD_CHARS_MAX + 2)
        password = line.removesuffix("\n").removesuffix("\r")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            raise ToolError("the two passwords differ", 2)
    else:
        raise ToolError("no password: use --password-stdin to read it from stdin, or run in a terminal", 2)
    if not password:
        raise ToolError("the password is empty", 2)
    if len(password) > PASSWORD_CHARS_MAX:
        raise ToolError(f"the password is longer than {PASSWORD_CHARS_MAX} characters", 2)
    return password


def add(backend: Remote | Local, args: argparse.Namespace, out: Any) -> int:
    from .common import ToolError

    if not args.name:
        raise ToolError("the user name is empty", 2)
    password = read_password(args)
    backend.upsert(args.name, args.mechanism, args.iterations, password)
    if out.json:
        out.document({"added": args.name, "mechanism": args.mechanism, "iterations": args.iterations})
    else:
        out.line(f"user {args.name}: {args.mechanism} credential set ({args.iterations} iterations)")
    return 0


def delete(backend: Remote | Local, args: argparse.Namespace, out: Any) -> int:
    if args.mechanism:
        mechanisms = [args.mechanism]
    else:
        mechanisms = [m for m, _ in backend.describe([args.name])[args.name]]
    backend.delete(args.name, mechanisms)
    if out.json:
        out.document({"deleted": args.name, "mechanisms": mechanisms})
    else:
        noun = "credential" if len(mechanisms) == 1 else "credentials"
        out.line(f"user {args.name}: {', '.join(mechanisms)} {noun} deleted")
    return 0


def list_(backend: Remote | Local, args: argparse.Namespace, out: Any) -> int:
    found = backend.describe(list(args.names) or None)
    rows = [(name, m, n) for name in sorted(found) for m, n in found[name]]
    if out.json:
        out.document([{"user": u, "mechanism": m, "iterations": n} for u, m, n in rows])
    else:
        out.table(["USER", "MECHANISM", "ITERATIONS"], rows)
    return 0
