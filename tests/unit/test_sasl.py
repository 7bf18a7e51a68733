"""The SASL servers without sockets: PLAIN (RFC 4616) and SCRAM (RFC 5802 / 7677) against a small SCRAM
client written here from the RFC, RFC 7677's published exchange, and the JAAS reader of PLAIN users."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.config import ConfigError
from odradek.security import sasl
from odradek.security.sasl import (
    AUTHZID_MISMATCH,
    PLAIN_INVALID,
    AuthenticationFailed,
    IllegalSaslState,
    ScramServer,
    new_credential,
    new_server,
    plain_users_from_jaas,
)

USERS = {"admin": "admin-secret", "alice": "alice-secret"}


def generic(mechanism: str) -> str:
    return (
        "Authentication failed during authentication due to invalid credentials with SASL mechanism "
        + mechanism
    )


# --------------------------------------------------------------------------------------------------
# PLAIN


def plain(token: bytes) -> sasl.SaslServer:
    server = new_server("PLAIN", plain_users=USERS, scram_store=None)
    server.evaluate(token)
    return server


def test_plain_accepts_the_configured_user():
    server = plain(b"\x00alice\x00alice-secret")
    assert server.complete and server.principal == "User:alice"
    assert plain(b"alice\x00alice\x00alice-secret").principal == "User:alice"  # authzid = authcid


@pytest.mark.parametrize(
    "token", [b"\x00alice\x00wrong", b"\x00mallory\x00alice-secret", b"\x00alice\x00alice-secre"]
)
def test_plain_wrong_password_and_unknown_user_get_kafkas_message(token):
    with pytest.raises(AuthenticationFailed) as e:
        plain(token)
    assert str(e.value) == PLAIN_INVALID == "Authentication failed: Invalid username or password"
    assert "secret" not in e.value.reason


def test_plain_other_authorization_id_is_refused_with_kafkas_message():
    with pytest.raises(AuthenticationFailed) as e:
        plain(b"admin\x00alice\x00alice-secret")
    assert str(e.value) == AUTHZID_MISMATCH
    # ... but only once the password was right: a wrong one says so first, as in Kafka.
    with pytest.raises(AuthenticationFailed, match="Invalid username or password"):
        plain(b"admin\x00alice\x00nope")


@pytest.mark.parametrize(
    "token",
    [
        b"",
        b"alice",
        b"\x00alice",
        b"\x00\x00alice-secret",
        b"\x00alice\x00",
        b"a\x00b\x00c\x00d",
        b"\x00\xff\x00x",
    ],
)
def test_plain_malformed_tokens_get_the_generic_message(token):
    with pytest.raises(AuthenticationFailed) as e:
        plain(token)
    assert str(e.value) == generic("PLAIN")


def test_plain_bounds_the_token_and_takes_one_token_only():
    with pytest.raises(AuthenticationFailed):
        plain(b"\x00alice\x00" + b"x" * sasl.TOKEN_BYTES_MAX)
    server = plain(b"\x00alice\x00alice-secret")
    with pytest.raises(IllegalSaslState):
        server.evaluate(b"\x00alice\x00alice-secret")


def test_reauthentication_changes_the_generic_wording():
    server = new_server("PLAIN", plain_users=USERS, reauthentication=True)
    with pytest.raises(AuthenticationFailed) as e:
        server.evaluate(b"garbage")
    assert str(e.value).startswith("Authentication failed during re-authentication due to")


def test_unknown_mechanism():
    with pytest.raises(sasl.UnsupportedMechanism):
        new_server("GSSAPI", plain_users=USERS, scram_store=None)


# --------------------------------------------------------------------------------------------------
# SCRAM: a client from RFC 5802 section 3


class Store:
    def __init__(self, **creds: sasl.ScramCredential) -> None:
        self.creds = creds

    def get(self, user: str, mechanism: str) -> sasl.ScramCredential | None:
        c = self.creds.get(user)
        return c if c is not None and c.mechanism == mechanism else None


class ScramClient:
    def __init__(
        self, mechanism: str, user: str, password: str, nonce: str = "fyko+d2lbbFgONRv9qkxdawL"
    ) -> None:
        self.hash = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
        self.user, self.password, self.nonce = user, password, nonce
        self.gs2 = "n,,"

    def first(self, authzid: str = "", extensions: str = "") -> bytes:
        if authzid:
            self.gs2 = f"n,a={authzid},"
        name = self.user.replace("=", "=3D").replace(",", "=2C")
        self.bare = f"n={name},r={self.nonce}{extensions}"
        return (self.gs2 + self.bare).encode()

    def final(self, server_first: bytes, password: str | None = None) -> bytes:
        attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
        assert attrs["r"].startswith(self.nonce)
        salted = hashlib.pbkdf2_hmac(
            self.hash, (password or self.password).encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.digest(salted, b"Client Key", self.hash)
        stored_key = hashlib.new(self.hash, client_key).digest()
        without_proof = f"c={base64.b64encode(self.gs2.encode()).decode()},r={attrs['r']}"
        auth = f"{self.bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth, self.hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.server_signature = hmac.digest(hmac.digest(salted, b"Server Key", self.hash), auth, self.hash)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check(self, server_final: bytes) -> None:
        assert server_final == b"v=" + base64.b64encode(self.server_signature)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_exchange_with_an_rfc_client(mechanism):
    store = Store(alice=new_credential(mechanism, "alice-secret", 4096))
    server = new_server(mechanism, plain_users={}, scram_store=store)
    client = ScramClient(mechanism, "alice", "alice-secret")
    server_first = server.evaluate(client.first())
    assert not server.complete
    assert server_first.startswith(b"r=fyko+d2lbbFgONRv9qkxdawL") and b",i=4096" in server_first
    client.check(server.evaluate(client.final(server_first)))
    assert server.complete and server.principal == "User:alice"
    with pytest.raises(IllegalSaslState):
        server.evaluate(b"more")


def test_rfc7677_scram_sha_256_test_vector():
    """RFC 7677 section 3: user "user", password "pencil", and the exact messages it publishes."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    store = Store(user=new_credential("SCRAM-SHA-256", "pencil", 4096, salt=salt))
    server = ScramServer("SCRAM-SHA-256", store, nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert (
        server.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        == b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    final = (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert server.evaluate(final) == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert server.principal == "User:user"


def test_scram_wrong_password_fails_on_the_final_message_with_the_generic_text():
    store = Store(alice=new_credential("SCRAM-SHA-512", "alice-secret", 4096))
    server = new_server("SCRAM-SHA-512", scram_store=store)
    client = ScramClient("SCRAM-SHA-512", "alice", "alice-secret")
    first = server.evaluate(client.first())
    with pytest.raises(AuthenticationFailed) as e:
        server.evaluate(client.final(first, password="wrong"))
    assert str(e.value) == generic("SCRAM-SHA-512")
    assert "proof" in e.value.reason and not server.complete
    with pytest.raises(IllegalSaslState):
        server.evaluate(client.final(first))


def test_scram_unknown_user_fails_on_the_first_message_as_in_kafka():
    server = new_server("SCRAM-SHA-512", scram_store=Store())
    with pytest.raises(AuthenticationFailed) as e:
        server.evaluate(ScramClient("SCRAM-SHA-512", "nobody", "x").first())
    assert str(e.value) == generic("SCRAM-SHA-512")


def test_scram_credential_of_another_mechanism_does_not_log_in():
    store = Store(alice=new_credential("SCRAM-SHA-256", "alice-secret", 4096))
    with pytest.raises(AuthenticationFailed):
        new_server("SCRAM-SHA-512", scram_store=store).evaluate(
            ScramClient("SCRAM-SHA-512", "alice", "p").first()
        )


def test_scram_names_with_escapes_and_authzid():
    store = Store(**{"a,b=c": new_credential("SCRAM-SHA-256", "pw", 4096)})
    server = new_server("SCRAM-SHA-256", scram_store=store)
    client = ScramClient("SCRAM-SHA-256", "a,b=c", "pw")
    client.check(server.evaluate(client.final(server.evaluate(client.first(authzid="a=2Cb=3Dc")))))
    assert server.principal == "User:a,b=c"

    store = Store(alice=new_credential("SCRAM-SHA-256", "pw", 4096))
    server = new_server("SCRAM-SHA-256", scram_store=store)
    with pytest.raises(AuthenticationFailed) as e:
        server.evaluate(ScramClient("SCRAM-SHA-256", "alice", "pw").first(authzid="admin"))
    assert str(e.value) == AUTHZID_MISMATCH


def test_scram_extensions_are_ignored_but_delegation_tokens_refused():
    store = Store(alice=new_credential("SCRAM-SHA-256", "pw", 4096))
    server = new_server("SCRAM-SHA-256", scram_store=store)
    client = ScramClient("SCRAM-SHA-256", "alice", "pw")
    client.check(server.evaluate(client.final(server.evaluate(client.first(extensions=",foo=bar")))))
    server = new_server("SCRAM-SHA-256", scram_store=store)
    with pytest.raises(AuthenticationFailed) as e:
        server.evaluate(client.first(extensions=",tokenauth=true"))
    assert str(e.value) == generic("SCRAM-SHA-256")


@pytest.mark.parametrize(
    "first",
    [
        b"p=tls-unique,,n=alice,r=abc",  # channel binding: not offered
        b"y,,n=alice,r=abc",
        b"n,,m=ext,n=alice,r=abc",  # a mandatory extension we cannot know
        b"n,,n=alice",
        b"n,,n=,r=abc",
        b"n,,n=al=ice,r=abc",  # a bare "=" in a name
        b"n,,n=alice,r=a b",
        b"n,,r=abc,n=alice",
        b"n,n=alice,r=abc",
        b"",
        b"\xff\xfe",
        b"n,,n=alice,r=abc,=x",
        b"n,,n=alice,r=" + b"x" * (sasl.NONCE_CHARS_MAX + 1),
    ],
)
def test_scram_malformed_first_messages_fail_generically(first):
    store = Store(alice=new_credential("SCRAM-SHA-256", "pw", 4096))
    with pytest.raises(AuthenticationFailed) as e:
        new_server("SCRAM-SHA-256", scram_store=store).evaluate(first)
    assert str(e.value) == generic("SCRAM-SHA-256")


def _final_variants(good: bytes) -> list[bytes]:
    without_proof, _, proof = good.rpartition(b",")
    c, r = without_proof.split(b",", 1)
    return [
        without_proof,  # no proof
        b"c=eSws," + r + b"," + proof,  # another gs2 header ("y,,")
        c + b",r=other," + proof,  # another nonce
        c + b"," + r[:-1] + b"," + proof,  # the nonce cut short
        without_proof + b",p=AAAA",  # a proof of the wrong size
        without_proof + b",p=!!!!",  # not base64
        r + b"," + c + b"," + proof,  # out of order
        good + b"x",
        b"",
    ]


def test_scram_malformed_final_messages_fail_and_end_the_exchange():
    store = Store(alice=new_credential("SCRAM-SHA-256", "pw", 4096))
    client = ScramClient("SCRAM-SHA-256", "alice", "pw")
    probe = ScramServer("SCRAM-SHA-256", store, nonce="SERVER")
    good = client.final(probe.evaluate(client.first()))
    for bad in _final_variants(good):
        server = ScramServer("SCRAM-SHA-256", store, nonce="SERVER")
        server.evaluate(client.first())
        with pytest.raises(AuthenticationFailed) as e:
            server.evaluate(bad)
        assert str(e.value) == generic("SCRAM-SHA-256"), bad
        assert not server.complete
    server = ScramServer("SCRAM-SHA-256", store, nonce="SERVER")
    server.evaluate(client.first())
    client.check(server.evaluate(good))


def test_server_nonces_are_fresh():
    store = Store(alice=new_credential("SCRAM-SHA-256", "pw", 4096))
    client = ScramClient("SCRAM-SHA-256", "alice", "pw")
    nonces = {
        new_server("SCRAM-SHA-256", scram_store=store).evaluate(client.first()).split(b",")[0]
        for _ in range(20)
    }
    assert len(nonces) == 20


def test_key_derivation_helpers():
    c = new_credential("SCRAM-SHA-512", "pw", 4096, salt=b"salt")
    salted = sasl.salted_password("SCRAM-SHA-512", "pw", b"salt", 4096)
    assert salted == hashlib.pbkdf2_hmac("sha512", b"pw", b"salt", 4096)
    assert (c.stored_key, c.server_key) == sasl.scram_keys("SCRAM-SHA-512", salted)
    assert len(c.stored_key) == 64 and "pw" not in repr(c) and "salt=" not in repr(c)
    with pytest.raises(ValueError):
        new_credential("SCRAM-SHA-512", "pw", 4095)
    with pytest.raises(ValueError):
        new_credential("SCRAM-SHA-512", "pw", 16385)


# --------------------------------------------------------------------------------------------------
# JAAS


def test_jaas_users():
    text = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";'
    )
    assert plain_users_from_jaas(text) == {"admin": "admin-secret", "alice": "alice-secret"}


def test_jaas_quoting_escapes_bare_words_and_layout():
    text = (
        "org.apache.kafka.common.security.plain.PlainLoginModule  REQUIRED\n"
        '  user_bob="a \\"quoted\\" \\\\ pw"'
        '\tuser_carol=plainword user_dave = "x;y=z"  ;  '
    )
    assert plain_users_from_jaas(text) == {"bob": 'a "quoted" \\ pw', "carol": "plainword", "dave": "x;y=z"}
    assert plain_users_from_jaas("a.B optional;") == {}


@pytest.mark.parametrize(
    "text",
    [
        "",
        'PlainLoginModule required user_a="x"',  # no ';'
        'PlainLoginModule mandatory user_a="x";',  # bad flag
        'PlainLoginModule required user_a="x;',  # unclosed quote
        'PlainLoginModule required user_a="x" user_a="y";',  # twice
        'PlainLoginModule required user_a "x";',
        'PlainLoginModule required user_="x";',
        'PlainLoginModule required user_a="x"; Other required;',
        '"Quoted" required;',
    ],
)
def test_jaas_malformed_text_is_a_config_error_that_hides_the_values(text):
    with pytest.raises(ConfigError) as e:
        plain_users_from_jaas(text, "listener.name.sasl_plaintext.plain.sasl.jaas.config")
    assert str(e.value).startswith("listener.name.sasl_plaintext.plain.sasl.jaas.config: ")
    assert '"x"' not in str(e.value) and "x;" not in str(e.value)


# --------------------------------------------------------------------------------------------------
# Arbitrary input: a refusal, never another exception


_scram_parts = st.lists(
    st.one_of(
        st.sampled_from(["n", "y", "p=x", "a=alice", "n=alice", "r=abc", "c=biws", "p=AAAA", "m=x", "=", ""]),
        st.text(alphabet="abc=,2CD3\x00é", max_size=8),
    ),
    max_size=8,
).map(lambda parts: ",".join(parts).encode())


@settings(max_examples=300, deadline=None)
@given(
    mechanism=st.sampled_from(sasl.MECHANISMS),
    tokens=st.lists(st.one_of(st.binary(max_size=64), _scram_parts), min_size=1, max_size=3),
)
def test_arbitrary_tokens_are_refused_never_crash(mechanism, tokens):
    store = Store(alice=new_credential(mechanism if mechanism != "PLAIN" else "SCRAM-SHA-256", "pw", 4096))
    server = new_server(mechanism, plain_users=USERS, scram_store=store)
    for token in tokens:
        try:
            server.evaluate(token)
        except AuthenticationFailed as e:
            assert str(e) in (generic(mechanism), PLAIN_INVALID, AUTHZID_MISMATCH)
            assert not server.complete
            return
    assert not server.complete or mechanism == "PLAIN"
