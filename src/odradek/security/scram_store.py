"""SCRAM credentials, durable in the data directory: what SCRAM logins are checked against and what
DescribeUserScramCredentials / AlterUserScramCredentials (and ``odradek user``) read and change.

Per (user, mechanism) the store keeps the salt, the iteration count, StoredKey and ServerKey (RFC 5802),
never a password or a salted password. They live in ``<data-dir>/__odradek/scram-credentials.json``
(``__odradek`` cannot be a topic's directory: a partition directory is ``<topic>-<n>``), readable by its
owner only, replaced atomically (temp file, fsync, rename, fsync the directory).

In the broker the store belongs to the event loop. An alteration is planned on the loop, written by a
worker thread, and only installed once on disk, one at a time in request order, so a login never sees a
credential that a crash could still take back, and the answer never claims what is not durable.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..broker.state import META_DIR, DataDirError
from ..log.files import replace_durably
from .sasl import (
    ITERATIONS_MAX,
    ITERATIONS_MIN,
    SALT_BYTES_MAX,
    SCRAM_BY_TYPE,
    SCRAM_MECHANISMS,
    ScramCredential,
    scram_keys,
)

__all__ = ["Deletion", "ScramCredential", "ScramStore", "ScramStoreError", "Upsertion"]

CREDENTIALS_FILE = "scram-credentials.json"
FORMAT_VERSION = 1
# A salted password is the mechanism's digest (32 or 64 bytes); anything far larger is no credential.
SALTED_PASSWORD_BYTES_MAX = 1024
# The file is read whole at start-up: bounded so that a damaged or hostile file cannot exhaust memory.
FILE_BYTES_MAX = 64 * 1024 * 1024

# Kafka error codes of the two admin APIs.
NONE = 0
UNKNOWN_SERVER_ERROR = -1
UNSUPPORTED_SASL_MECHANISM = 33
RESOURCE_NOT_FOUND = 91
DUPLICATE_RESOURCE = 92
UNACCEPTABLE_CREDENTIAL = 93

_DUPLICATE_ALTER = "A user credential cannot be altered twice in the same request"
_DUPLICATE_DESCRIBE = "Cannot describe SCRAM credentials for the same user twice in a single request: "
_MISSING_DESCRIBE = "Attempt to describe a user credential that does not exist: "
_MISSING_DELETE = "Attempt to delete a user credential that does not exist"

# user -> mechanism name -> credential
Credentials = dict[str, dict[str, ScramCredential]]


class ScramStoreError(DataDirError):
    """The credentials file cannot be read or written; the message names the file and what to do."""


@dataclass(frozen=True, slots=True)
class Deletion:
    """One AlterUserScramCredentials deletion (the request's entities have the same attributes)."""

    name: str
    mechanism: int


@dataclass(frozen=True, slots=True)
class Upsertion:
    name: str
    mechanism: int
    iterations: int
    salt: bytes
    salted_password: bytes


def _result(user: str, code: int = NONE, message: str | None = None) -> dict[str, Any]:
    return {"user": user, "error_code": code, "error_message": message}


def _check_name_and_mechanism(name: str, mechanism: int) -> tuple[int, str] | None:
    if not name:
        return UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    if mechanism not in SCRAM_BY_TYPE:
        return UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    return None


def _check_upsertion(u: Any) -> tuple[int, str] | None:
    problem = _check_name_and_mechanism(u.name, u.mechanism)
    if problem is not None:
        return problem
    if u.iterations < ITERATIONS_MIN:
        return UNACCEPTABLE_CREDENTIAL, "Too few iterations"
    if u.iterations > ITERATIONS_MAX:
        return UNACCEPTABLE_CREDENTIAL, "Too many iterations"
    # Kafka takes any salt and fails on an empty salted password with UNKNOWN_SERVER_ERROR (its HMAC
    # refuses an empty key); both are refused here as the unusable credentials they are.
    if len(u.salt) > SALT_BYTES_MAX:
        return UNACCEPTABLE_CREDENTIAL, f"The salt is longer than {SALT_BYTES_MAX} bytes"
    if not 0 < len(u.salted_password) <= SALTED_PASSWORD_BYTES_MAX:
        return UNACCEPTABLE_CREDENTIAL, "The salted password must be 1 to 1024 bytes"
    return None


def plan_alter(
    current: Credentials, deletions: Iterable[Any], upsertions: Iterable[Any]
) -> tuple[Credentials, list[dict[str, Any]]]:
    """Kafka's AlterUserScramCredentials semantics (ScramControlManager), pure: the credentials after the
    request and one result per user named in it.

    A user named twice (in deletions, upsertions or both) is refused with DUPLICATE_RESOURCE and none of
    its entries apply; a deletion of a credential that does not exist is RESOURCE_NOT_FOUND. Every other
    entry applies on its own. Results come deletions first, then upsertions, then refusals (as Kafka
    orders them), each group in request order.
    """
    deletes: dict[str, Any] = {}
    upserts: dict[str, Any] = {}
    refused: dict[str, tuple[int, str]] = {}
    for d in deletions:
        if d.name in refused:
            continue
        if deletes.pop(d.name, None) is not None:
            refused[d.name] = (DUPLICATE_RESOURCE, _DUPLICATE_ALTER)
            continue
        problem = _check_name_and_mechanism(d.name, d.mechanism)
        if problem is None and SCRAM_BY_TYPE[d.mechanism].name not in current.get(d.name, {}):
            problem = (RESOURCE_NOT_FOUND, _MISSING_DELETE)
        if problem is not None:
            refused[d.name] = problem
        else:
            deletes[d.name] = d
    for u in upsertions:
        if u.name in refused:
            continue
        if deletes.pop(u.name, None) is not None or upserts.pop(u.name, None) is not None:
            refused[u.name] = (DUPLICATE_RESOURCE, _DUPLICATE_ALTER)
            continue
        problem = _check_upsertion(u)
        if problem is not None:
            refused[u.name] = problem
        else:
            upserts[u.name] = u
    new = {user: dict(mechs) for user, mechs in current.items()}
    results = []
    for name, d in deletes.items():
        mechs = new[name]
        del mechs[SCRAM_BY_TYPE[d.mechanism].name]
        if not mechs:
            del new[name]
        results.append(_result(name))
    for name, u in upserts.items():
        mechanism = SCRAM_BY_TYPE[u.mechanism].name
        stored, server = scram_keys(mechanism, bytes(u.salted_password))
        new.setdefault(name, {})[mechanism] = ScramCredential(
            mechanism, bytes(u.salt), int(u.iterations), stored, server
        )
        results.append(_result(name))
    results.extend(_result(name, code, message) for name, (code, message) in refused.items())
    return new, results


def _described(user: str, code: int, message: str | None, infos: list | None = None) -> dict[str, Any]:
    return {**_result(user, code, message), "credential_infos": infos or []}


def describe(current: Credentials, users: Sequence[str] | None) -> list[dict[str, Any]]:
    """Kafka's DescribeUserScramCredentials results: every user (sorted) when ``users`` is None or empty,
    else one result per distinct name asked for, a name asked twice being DUPLICATE_RESOURCE."""
    if not users:
        names = sorted(current)
        twice: set[str] = set()
    else:
        counts = Counter(users)  # linear: a request may name many users
        names = list(counts)
        twice = {u for u, n in counts.items() if n > 1}
    out = []
    for user in names:
        if user in twice:
            out.append(
                {**_result(user, DUPLICATE_RESOURCE, _DUPLICATE_DESCRIBE + user), "credential_infos": []}
            )
            continue
        mechs = current.get(user)
        if not mechs:
            out.append(
                {**_result(user, RESOURCE_NOT_FOUND, _MISSING_DESCRIBE + user), "credential_infos": []}
            )
            continue
        infos = [
            {"mechanism": SCRAM_MECHANISMS[m].type_code, "iterations": c.iterations}
            for m, c in sorted(mechs.items(), key=lambda mc: SCRAM_MECHANISMS[mc[0]].type_code)
        ]
        out.append(_described(user, NONE, None, infos))
    return out


# --------------------------------------------------------------------------------------------------
# The file


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def encode(credentials: Credentials) -> bytes:
    doc = {
        "version": FORMAT_VERSION,
        "credentials": {
            user: {
                m: {
                    "salt": _b64(c.salt),
                    "iterations": c.iterations,
                    "stored_key": _b64(c.stored_key),
                    "server_key": _b64(c.server_key),
                }
                for m, c in sorted(mechs.items())
            }
            for user, mechs in sorted(credentials.items())
        },
    }
    return json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"


class _Bad(Exception):
    pass


def _bytes_field(entry: dict, key: str, size: int | None) -> bytes:
    value = entry.get(key)
    if not isinstance(value, str):
        raise _Bad(f"{key} is not text")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _Bad(f"{key} is not base64") from None
    if size is not None and len(raw) != size:
        raise _Bad(f"{key} has {len(raw)} bytes, expected {size}")
    return raw


def decode(data: bytes) -> Credentials:
    """The credentials of a file's bytes, each field checked; ValueError says what is wrong."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"not a version {FORMAT_VERSION} credentials file")
    creds = doc.get("credentials")
    if not isinstance(creds, dict):
        raise ValueError("no credentials object")
    out: Credentials = {}
    for user, mechs in creds.items():
        if not user or not isinstance(mechs, dict) or not mechs:
            raise ValueError(f"user {user!r}: expected a non-empty name and its mechanisms")
        for name, entry in mechs.items():
            try:
                m = SCRAM_MECHANISMS.get(name)
                if m is None:
                    raise _Bad("unknown mechanism")
                if not isinstance(entry, dict):
                    raise _Bad("not an object")
                iterations = entry.get("iterations")
                if type(iterations) is not int or not ITERATIONS_MIN <= iterations <= ITERATIONS_MAX:
                    raise _Bad(f"iterations must be {ITERATIONS_MIN}..{ITERATIONS_MAX}")
                salt = _bytes_field(entry, "salt", None)
                if len(salt) > SALT_BYTES_MAX:
                    raise _Bad("salt too long")
                stored = _bytes_field(entry, "stored_key", m.digest_bytes)
                server = _bytes_field(entry, "server_key", m.digest_bytes)
            except _Bad as e:
                raise ValueError(f"user {user!r} {name}: {e}") from None
            out.setdefault(user, {})[name] = ScramCredential(name, salt, iterations, stored, server)
    return out


class ScramStore:
    """The credentials of one data directory. ``get`` serves logins; ``describe`` and ``alter`` (sync, for
    the command line on a stopped broker) or ``alter_async`` (the broker's handler) serve the admin APIs."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / META_DIR / CREDENTIALS_FILE
        self._credentials: Credentials = {}
        self._alter_lock = asyncio.Lock()  # one alteration at a time, from plan to install

    def open(self) -> None:
        """Read the file if there is one; a damaged file is an error, never an empty store."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            self._credentials = {}
            return
        except OSError as e:
            raise ScramStoreError(f"cannot read SCRAM credentials {self.path}: {e.strerror}") from None
        if size > FILE_BYTES_MAX:
            raise ScramStoreError(f"SCRAM credentials {self.path} is {size} bytes (limit {FILE_BYTES_MAX})")
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise ScramStoreError(f"cannot read SCRAM credentials {self.path}: {e.strerror}") from None
        try:
            self._credentials = decode(data)
        except ValueError as e:
            raise ScramStoreError(
                f"SCRAM credentials file {self.path} is damaged: {e}; restore it from a backup, or move it "
                "away and add the users again (odradek user add --data-dir)"
            ) from None

    def close(self) -> None:
        self._credentials = {}

    def get(self, user: str, mechanism: str) -> ScramCredential | None:
        return self._credentials.get(user, {}).get(mechanism)

    def users(self) -> list[str]:
        return sorted(self._credentials)

    def describe(self, users: Sequence[str] | None = None) -> list[dict[str, Any]]:
        return describe(self._credentials, users)

    def alter(self, deletions: Iterable[Any], upsertions: Iterable[Any]) -> list[dict[str, Any]]:
        """Apply an alteration now, durably (blocking: for the command line, not the event loop)."""
        new, results = plan_alter(self._credentials, deletions, upsertions)
        if new != self._credentials:
            self._write(new)
            self._credentials = new
        return results

    async def alter_async(self, deletions: Iterable[Any], upsertions: Iterable[Any]) -> list[dict[str, Any]]:
        """Apply an alteration from the event loop: written off the loop, installed once durable. If the
        write fails nothing changes, and every result that would have succeeded says so."""
        deletions, upsertions = list(deletions), list(upsertions)
        async with self._alter_lock:
            new, results = plan_alter(self._credentials, deletions, upsertions)
            if new == self._credentials:
                return results
            try:
                await asyncio.to_thread(self._write, new)
            except ScramStoreError as e:
                return [
                    r if r["error_code"] != NONE else _result(r["user"], UNKNOWN_SERVER_ERROR, str(e))
                    for r in results
                ]
            self._credentials = new
            return results

    def _write(self, credentials: Credentials) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_durably(self.path, encode(credentials), mode=0o600)
        except OSError as e:
            raise ScramStoreError(f"cannot write SCRAM credentials {self.path}: {e.strerror or e}") from None
