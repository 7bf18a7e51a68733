"""SASL servers without I/O: PLAIN (RFC 4616) and SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677).

The broker's authenticator feeds each SaslAuthenticate token to :meth:`SaslServer.evaluate` and sends back
what it returns; nothing here touches a socket or a clock.

* ``new_server(mechanism, *, plain_users, scram_store, reauthentication=False) -> SaslServer``
* ``SaslServer.evaluate(token: bytes) -> bytes``: the next challenge (b"" when none); raises
  :class:`AuthenticationFailed`, whose ``str()`` is exactly what the client is told (Kafka's wording) and
  whose ``reason`` says why for the broker's log (never a password)
* ``SaslServer.complete`` / ``SaslServer.principal`` ("User:<name>" once complete)
* ``plain_users_from_jaas(text) -> dict[str, str]``: the ``user_<name>="<password>"`` options of a JAAS line
* ``salted_password`` / ``scram_keys`` / ``new_credential``: RFC 5802's key derivation, shared by the
  credential store, the AlterUserScramCredentials handler and ``odradek user``

What the client learns on failure follows Kafka's SaslServerAuthenticator: PLAIN's wrong password or unknown
user and an authorization id other than the user name get their own message; anything else (a malformed
token, an unknown SCRAM user, a bad proof) gets one generic message naming only the mechanism, so that a
client cannot tell which part was wrong. Like Kafka, an unknown SCRAM user fails on the client's first
message, a wrong password on its final one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from ..config import ConfigError

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# Kafka's bounds on a SCRAM credential's iteration count (ScramMechanism.minIterations and
# ScramControlManager.MAX_ITERATIONS): the same for both hashes.
ITERATIONS_MIN = 4096
ITERATIONS_MAX = 16384

# The largest token a mechanism reads. Every message of PLAIN and SCRAM is a few hundred bytes (RFC 4616
# asks for 255-byte fields); the broker's frame bound (sasl.server.max.receive.size) applies before this.
TOKEN_BYTES_MAX = 16 * 1024
# A SCRAM client nonce is echoed back in the server's first message: bounded so that it stays small.
NONCE_CHARS_MAX = 1024
# Salts the store accepts (AlterUserScramCredentials lets the client choose; Kafka's clients send 32-64).
SALT_BYTES_MAX = 1024

PLAIN_INVALID = "Authentication failed: Invalid username or password"
AUTHZID_MISMATCH = (
    "Authentication failed: Client requested an authorization id that is different from username"
)


class AuthenticationFailed(Exception):
    """The client's credentials were refused; ``str(e)`` is the message the client receives.

    ``reason`` is for the broker's log: what was actually wrong (an unknown user, a bad proof), which the
    client is deliberately not told. It never holds a password or a proof.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class IllegalSaslState(AuthenticationFailed):
    """A token arrived after the exchange had completed or failed (Kafka's ILLEGAL_SASL_STATE)."""


class UnsupportedMechanism(ValueError):
    """A mechanism name this module has no server for."""


# --------------------------------------------------------------------------------------------------
# SCRAM key derivation (RFC 5802 section 3)


@dataclass(frozen=True, slots=True)
class ScramMechanism:
    name: str  # "SCRAM-SHA-512"
    type_code: int  # Kafka's ScramMechanism type byte in the admin APIs
    hash_name: str  # hashlib's name

    @property
    def digest_bytes(self) -> int:
        return hashlib.new(self.hash_name).digest_size

    def hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.digest(key, message, self.hash_name)

    def h(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()


SCRAM_MECHANISMS: dict[str, ScramMechanism] = {
    "SCRAM-SHA-256": ScramMechanism("SCRAM-SHA-256", 1, "sha256"),
    "SCRAM-SHA-512": ScramMechanism("SCRAM-SHA-512", 2, "sha512"),
}
SCRAM_BY_TYPE: dict[int, ScramMechanism] = {m.type_code: m for m in SCRAM_MECHANISMS.values()}


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What the broker keeps of a SCRAM password (RFC 5802): enough to verify a proof, not to make one."""

    mechanism: str
    salt: bytes = field(repr=False)
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)


def scram_mechanism(name: str) -> ScramMechanism:
    try:
        return SCRAM_MECHANISMS[name]
    except KeyError:
        raise UnsupportedMechanism(
            f"unknown SCRAM mechanism {name!r}; expected one of {', '.join(SCRAM_MECHANISMS)}"
        ) from None


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i): PBKDF2 with the mechanism's HMAC. Kafka applies no SASLprep; neither do we."""
    m = scram_mechanism(mechanism)
    return hashlib.pbkdf2_hmac(m.hash_name, password.encode("utf-8"), salt, iterations)


def scram_keys(mechanism: str, salted: bytes) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) from a salted password; the salted password itself is then forgotten."""
    m = scram_mechanism(mechanism)
    client_key = m.hmac(salted, b"Client Key")
    return m.h(client_key), m.hmac(salted, b"Server Key")


def new_credential(
    mechanism: str, password: str, iterations: int, salt: bytes | None = None
) -> ScramCredential:
    """A credential for ``password`` with a fresh random salt (32 bytes, as Kafka's own clients make)."""
    if not ITERATIONS_MIN <= iterations <= ITERATIONS_MAX:
        raise ValueError(f"iterations must be {ITERATIONS_MIN}..{ITERATIONS_MAX}, got {iterations}")
    salt = secrets.token_bytes(32) if salt is None else salt
    stored, server = scram_keys(mechanism, salted_password(mechanism, password, salt, iterations))
    return ScramCredential(mechanism, salt, iterations, stored, server)


# --------------------------------------------------------------------------------------------------
# Servers


class CredentialSource(Protocol):
    def get(self, user: str, mechanism: str) -> ScramCredential | None: ...


def generic_failure(mechanism: str, reauthentication: bool) -> str:
    """Kafka's message for every failure a mechanism does not explain to the client."""
    phase = "re-authentication" if reauthentication else "authentication"
    return f"Authentication failed during {phase} due to invalid credentials with SASL mechanism {mechanism}"


class SaslServer:
    mechanism: str
    complete: bool = False
    principal: str | None = None

    def __init__(self, mechanism: str, reauthentication: bool) -> None:
        self.mechanism = mechanism
        self._generic = generic_failure(mechanism, reauthentication)

    def evaluate(self, token: bytes) -> bytes:
        raise NotImplementedError

    def _fail(self, reason: str) -> AuthenticationFailed:
        """The generic refusal; ``reason`` goes to the log only."""
        return AuthenticationFailed(self._generic, reason)


class PlainServer(SaslServer):
    """RFC 4616: one token ``[authzid] NUL authcid NUL passwd`` against the configured users."""

    def __init__(self, users: Mapping[str, str], reauthentication: bool = False) -> None:
        super().__init__("PLAIN", reauthentication)
        self._users = users
        self._done = False

    def evaluate(self, token: bytes) -> bytes:
        if self._done:
            raise IllegalSaslState(self._generic, "PLAIN token after the exchange ended")
        self._done = True
        if len(token) > TOKEN_BYTES_MAX:
            raise self._fail(f"PLAIN token of {len(token)} bytes (limit {TOKEN_BYTES_MAX})")
        parts = bytes(token).split(b"\x00")
        if len(parts) != 3:
            raise self._fail(f"PLAIN token has {len(parts)} fields, expected 3")
        try:
            authzid, user, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise self._fail("PLAIN token is not UTF-8") from None
        if not user:
            raise self._fail("PLAIN username not specified")
        if not password:
            raise self._fail("PLAIN password not specified")
        expected = self._users.get(user)
        # Compared in constant time, and against a dummy for an unknown user, so timing tells nothing.
        given = password.encode("utf-8")
        match = hmac.compare_digest(given, (expected if expected is not None else "\x00" + password).encode())
        if expected is None or not match:
            raise AuthenticationFailed(
                PLAIN_INVALID,
                f"PLAIN {'unknown user' if expected is None else 'wrong password for'} {user!r}",
            )
        if authzid and authzid != user:
            raise AuthenticationFailed(AUTHZID_MISMATCH, f"PLAIN user {user!r} asked for authzid {authzid!r}")
        self.complete = True
        self.principal = f"User:{user}"
        return b""


class _Scram(Enum):
    CLIENT_FIRST = "receive client-first"
    CLIENT_FINAL = "receive client-final"
    COMPLETE = "complete"
    FAILED = "failed"


_ALPHA = re.compile(r"^[A-Za-z]+$")
_PRINTABLE = re.compile(r"^[\x21-\x2b\x2d-\x7e]+$")  # RFC 5802 "printable": %x21-7E except ","
_BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


class _Malformed(Exception):
    pass


def _saslname(value: str) -> str:
    """RFC 5802 saslname: "," and "=" arrive as =2C and =3D; any other "=" is malformed."""
    if not value:
        raise _Malformed("empty name")
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "=":
            code = value[i + 1 : i + 3]
            if code == "2C":
                out.append(",")
            elif code == "3D":
                out.append("=")
            else:
                raise _Malformed("bad escape in a name")
            i += 3
            continue
        if c == "," or c == "\x00":
            raise _Malformed("bad character in a name")
        out.append(c)
        i += 1
    return "".join(out)


def _attribute(part: str, name: str) -> str:
    if not part.startswith(name + "="):
        raise _Malformed(f"expected {name}=")
    return part[len(name) + 1 :]


def _b64(value: str) -> bytes:
    if not _BASE64.match(value):
        raise _Malformed("not base64")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _Malformed("not base64") from None


def _extensions(parts: list[str]) -> dict[str, str]:
    out = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not _ALPHA.match(key) or not value:
            raise _Malformed("bad extension")
        out[key] = value
    return out


class ScramServer(SaslServer):
    """RFC 5802 server side: client-first, server-first, client-final, server-final.

    States: CLIENT_FIRST -> CLIENT_FINAL -> COMPLETE, and any failure -> FAILED; a token in COMPLETE or
    FAILED is an illegal state. ``nonce`` fixes the server's nonce (tests use RFC 7677's exchange).
    """

    def __init__(
        self,
        mechanism: str,
        store: CredentialSource,
        reauthentication: bool = False,
        nonce: str | None = None,
    ) -> None:
        super().__init__(mechanism, reauthentication)
        self._m = scram_mechanism(mechanism)
        self._store = store
        self._server_nonce = nonce if nonce is not None else secrets.token_urlsafe(24)
        self._state = _Scram.CLIENT_FIRST
        self._credential: ScramCredential | None = None
        self._gs2_header = b""
        self._client_first_bare = b""
        self._server_first = b""
        self._nonce = ""
        self._user = ""

    def evaluate(self, token: bytes) -> bytes:
        state = self._state
        if state in (_Scram.COMPLETE, _Scram.FAILED):
            raise IllegalSaslState(self._generic, f"SCRAM token in state {state.value}")
        self._state = _Scram.FAILED  # until this step succeeds
        try:
            if len(token) > TOKEN_BYTES_MAX:
                raise self._fail(f"SCRAM token of {len(token)} bytes (limit {TOKEN_BYTES_MAX})")
            try:
                text = bytes(token).decode("utf-8")
            except UnicodeDecodeError:
                raise self._fail("SCRAM message is not UTF-8") from None
            try:
                if state is _Scram.CLIENT_FIRST:
                    out = self._client_first(text)
                    self._state = _Scram.CLIENT_FINAL
                else:
                    out = self._client_final(text)
                    self._state = _Scram.COMPLETE
                    self.complete = True
                    self.principal = f"User:{self._user}"
            except _Malformed as e:
                raise self._fail(f"malformed SCRAM {state.value} message: {e}") from None
        finally:
            if self._state is not _Scram.CLIENT_FINAL:
                self._credential = None  # nothing of the secret outlives the exchange
        return out

    def _client_first(self, text: str) -> bytes:
        # gs2-header = gs2-cbind-flag "," [ authzid ] "," ; then client-first-message-bare
        flag, sep1, rest = text.partition(",")
        authz, sep2, bare = rest.partition(",")
        if not sep1 or not sep2:
            raise _Malformed("no gs2 header")
        if flag != "n":
            # "p=" asks for channel binding, which Kafka does not offer; "y" Kafka refuses too.
            raise _Malformed(f"channel binding flag {flag[:2]!r}")
        authzid = _saslname(_attribute(authz, "a")) if authz else ""
        parts = bare.split(",")
        if parts[0].startswith("m="):
            raise _Malformed("mandatory extension")  # RFC 5802: unknown m= must fail
        if len(parts) < 2:
            raise _Malformed("no nonce")
        user = _saslname(_attribute(parts[0], "n"))
        nonce = _attribute(parts[1], "r")
        if not _PRINTABLE.match(nonce) or len(nonce) > NONCE_CHARS_MAX:
            raise _Malformed("bad nonce")
        extensions = _extensions(parts[2:])
        if extensions.get("tokenauth", "").lower() == "true":
            # Kafka's delegation tokens ride on SCRAM with this extension; Odradek has none to check.
            raise self._fail(f"SCRAM delegation token authentication for {user!r} (not supported)")
        credential = self._store.get(user, self.mechanism)
        if credential is None:
            raise self._fail(f"no {self.mechanism} credential for user {user!r}")
        if authzid and authzid != user:
            raise AuthenticationFailed(AUTHZID_MISMATCH, f"SCRAM user {user!r} asked for authzid {authzid!r}")
        if credential.iterations < ITERATIONS_MIN:
            raise self._fail(f"{self.mechanism} credential of {user!r} has too few iterations")
        self._credential = credential
        self._user = user
        self._gs2_header = text[: len(flag) + len(authz) + 2].encode()
        self._client_first_bare = bare.encode()
        self._nonce = nonce + self._server_nonce
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}".encode()
        return self._server_first

    def _client_final(self, text: str) -> bytes:
        # client-final-message = c=<base64 gs2 header>,r=<nonce>[,extensions],p=<proof>
        without_proof, sep, proof_part = text.rpartition(",")
        if not sep:
            raise _Malformed("no proof")
        proof = _b64(_attribute(proof_part, "p"))
        parts = without_proof.split(",")
        if len(parts) < 2:
            raise _Malformed("no channel binding or nonce")
        binding = _b64(_attribute(parts[0], "c"))
        nonce = _attribute(parts[1], "r")
        _extensions(parts[2:])
        if binding != self._gs2_header:
            raise _Malformed("channel binding differs from the gs2 header")
        if not hmac.compare_digest(nonce.encode(), self._nonce.encode()):
            raise self._fail("SCRAM client final message has another nonce")
        credential = self._credential
        assert credential is not None, "a client-final message is only read after a credential was found"
        m = self._m
        if len(proof) != m.digest_bytes:
            raise self._fail(f"SCRAM proof of {len(proof)} bytes, expected {m.digest_bytes}")
        auth_message = b",".join((self._client_first_bare, self._server_first, without_proof.encode()))
        client_signature = m.hmac(credential.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(m.h(client_key), credential.stored_key):
            raise self._fail(f"wrong {self.mechanism} proof for user {self._user!r}")
        server_signature = m.hmac(credential.server_key, auth_message)
        return b"v=" + base64.b64encode(server_signature)


def new_server(
    mechanism: str,
    *,
    plain_users: Mapping[str, str] | None = None,
    scram_store: CredentialSource | Any = None,
    reauthentication: bool = False,
) -> SaslServer:
    """A fresh server for one exchange. ``reauthentication`` (KIP-368) changes only the wording of the
    generic failure message, as in Kafka."""
    if mechanism == "PLAIN":
        return PlainServer(plain_users or {}, reauthentication)
    if mechanism in SCRAM_MECHANISMS:
        if scram_store is None:
            raise ValueError(f"{mechanism} needs a credential store")
        return ScramServer(mechanism, scram_store, reauthentication)
    raise UnsupportedMechanism(
        f"unsupported SASL mechanism {mechanism!r}; expected one of {', '.join(MECHANISMS)}"
    )


# --------------------------------------------------------------------------------------------------
# JAAS


_JAAS_FLAGS = ("required", "requisite", "sufficient", "optional")
_JAVA_CLASS = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$")
_JAAS_KEY = re.compile(r"^[^\s=;\"]+$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _jaas_tokens(text: str, what: str) -> list[tuple[str, str]]:
    """(kind, text) tokens: "word", "quoted", "=", ";". Messages never quote the text (it holds secrets)."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "=;":
            tokens.append((c, c))
            i += 1
        elif c == '"':
            out = []
            i += 1
            while True:
                if i >= n:
                    raise ConfigError(f"{what}: a quoted value is not closed (missing '\"')")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    out.append(_ESCAPES.get(text[i + 1], text[i + 1]))
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    out.append(c)
                    i += 1
            tokens.append(("quoted", "".join(out)))
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '=;"':
                j += 1
            tokens.append(("word", text[i:j]))
            i = j
    return tokens


def plain_users_from_jaas(text: str, what: str = "sasl.jaas.config") -> dict[str, str]:
    """The PLAIN users of one JAAS login module entry, as Kafka's PlainServerCallbackHandler reads them:

    ``org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";``
    gives ``{"alice": "alice-secret"}``. Values may be quoted (with backslash escapes) or bare words;
    ``username`` / ``password`` (the broker's own client login) and other options are ignored.
    """
    tokens = _jaas_tokens(text, what)
    if len(tokens) < 3 or tokens[0][0] != "word" or not _JAVA_CLASS.match(tokens[0][1]):
        raise ConfigError(f"{what}: expected 'LoginModuleClass required key=\"value\" ...;'")
    if tokens[1][0] != "word" or tokens[1][1].lower() not in _JAAS_FLAGS:
        raise ConfigError(f"{what}: the login module's flag must be one of {', '.join(_JAAS_FLAGS)}")
    if tokens[-1][0] != ";":
        raise ConfigError(f"{what}: the login module entry must end with ';'")
    body = tokens[2:-1]
    if any(kind == ";" for kind, _ in body):
        raise ConfigError(f"{what}: only one login module may be given")
    if len(body) % 3:
        raise ConfigError(f"{what}: expected key=value options after the flag")
    users: dict[str, str] = {}
    seen: set[str] = set()
    for k in range(0, len(body), 3):
        (key_kind, key), (eq, _), (value_kind, value) = body[k : k + 3]
        if (
            key_kind != "word"
            or not _JAAS_KEY.match(key)
            or eq != "="
            or value_kind not in ("word", "quoted")
        ):
            raise ConfigError(f"{what}: option {k // 3 + 1} is not key=value")
        if key in seen:
            raise ConfigError(f"{what}: option {key} is given twice")
        seen.add(key)
        if key.startswith("user_"):
            name = key[len("user_") :]
            if not name:
                raise ConfigError(f"{what}: option user_ names no user")
            users[name] = value
    return users
