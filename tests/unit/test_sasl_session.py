"""A connection's SASL life without sockets: what is admitted when, handshakes, logins, re-authentication."""

from __future__ import annotations

import pytest

from odradek.security.sasl import AuthenticationFailed
from odradek.security.session import (
    ILLEGAL_SASL_STATE,
    UNSUPPORTED_SASL_MECHANISM,
    SaslSession,
    SessionClosed,
)

METADATA, API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 3, 18, 17, 36
USERS = {"alice": "alice-secret"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


def session(reauth_ms: int = 0, clock: Clock | None = None) -> SaslSession:
    return SaslSession(("PLAIN", "SCRAM-SHA-512"), USERS, None, reauth_ms, clock or Clock())


def login(s: SaslSession, password: str = "alice-secret") -> tuple[bytes, int]:
    s.admits(SASL_HANDSHAKE)
    assert s.handshake("PLAIN", 1) == (0, ["PLAIN", "SCRAM-SHA-512"])
    s.admits(SASL_AUTHENTICATE)
    return s.authenticate(b"\0alice\0" + password.encode())


def test_only_api_versions_and_handshake_before_authentication():
    s = session()
    s.admits(API_VERSIONS)
    s.admits(SASL_HANDSHAKE)
    with pytest.raises(SessionClosed, match="during SASL handshake"):
        s.admits(METADATA)
    assert s.handshake("PLAIN", 1)[0] == 0
    with pytest.raises(SessionClosed, match="during SASL authentication"):
        s.admits(METADATA)
    with pytest.raises(SessionClosed):
        s.admits(API_VERSIONS)


def test_a_good_login_admits_everything_with_the_principal():
    s = session()
    assert login(s) == (b"", 0)
    assert s.authenticated and s.principal == "User:alice" and s.state == "done"
    s.admits(METADATA)


def test_a_wrong_password_fails_and_the_session_stays_failed():
    s = session()
    with pytest.raises(AuthenticationFailed, match="Invalid username or password"):
        login(s, "wrong")
    assert s.failed and not s.authenticated and s.principal is None
    with pytest.raises(SessionClosed):
        s.admits(METADATA)


class NoCredentials:
    def get(self, user: str, mechanism: str) -> None:
        return None


@pytest.mark.parametrize("token", [b"\xff\xfe not scram", b"", b"n,,", b"n,,n=alice", b"\0" * 64])
def test_a_malformed_token_is_a_failed_login_not_an_error(token):
    s = SaslSession(("SCRAM-SHA-512",), {}, NoCredentials(), 0, Clock())
    assert s.handshake("SCRAM-SHA-512", 1)[0] == 0
    with pytest.raises(AuthenticationFailed):
        s.authenticate(token)
    assert s.failed


def test_an_unknown_mechanism_is_refused_with_the_enabled_list():
    s = session()
    assert s.handshake("GSSAPI", 1) == (UNSUPPORTED_SASL_MECHANISM, ["PLAIN", "SCRAM-SHA-512"])
    assert s.failed


def test_a_second_handshake_before_completion_is_an_illegal_state():
    s = session()
    s.handshake("PLAIN", 1)
    assert s.handshake("PLAIN", 1)[0] == ILLEGAL_SASL_STATE


def test_handshake_v0_expects_a_bare_token():
    s = session()
    assert s.handshake("PLAIN", 0)[0] == 0
    assert s.expects_raw_token
    assert s.authenticate(b"\0alice\0alice-secret") == (b"", 0)
    assert s.authenticated and not s.expects_raw_token


def test_session_lifetime_and_expiry():
    clock = Clock()
    s = session(reauth_ms=5_000, clock=clock)
    assert login(s) == (b"", 5_000)
    assert s.expires_at_ms == 6_000
    clock.now = 5_999
    s.admits(METADATA)
    clock.now = 6_000
    with pytest.raises(SessionClosed, match="expired"):
        s.admits(METADATA)
    s.admits(SASL_HANDSHAKE)  # re-authentication is still possible


def test_reauthentication_renews_the_session_with_the_same_principal():
    clock = Clock()
    s = session(reauth_ms=5_000, clock=clock)
    login(s)
    clock.now = 4_000
    assert s.handshake("PLAIN", 1)[0] == 0
    assert not s.authenticated  # nothing but SaslAuthenticate until it completes
    with pytest.raises(SessionClosed):
        s.admits(METADATA)
    assert s.authenticate(b"\0alice\0alice-secret") == (b"", 5_000)
    assert s.authenticated and s.expires_at_ms == 9_000


def test_reauthentication_may_not_change_mechanism_or_principal():
    s = session(reauth_ms=5_000)
    login(s)
    assert s.handshake("SCRAM-SHA-512", 1)[0] == ILLEGAL_SASL_STATE
    s2 = SaslSession(("PLAIN",), {"alice": "a", "bob": "b"}, None, 5_000, Clock())
    s2.handshake("PLAIN", 1)
    s2.authenticate(b"\0alice\0a")
    s2.handshake("PLAIN", 1)
    with pytest.raises(AuthenticationFailed, match="Cannot change principals"):
        s2.authenticate(b"\0bob\0b")
    assert s2.failed
