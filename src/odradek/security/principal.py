"""Principals of TLS clients: the certificate's subject as Kafka writes it, through
``ssl.principal.mapping.rules``.

Kafka names a client-certificate principal ``User:<DN>`` with the DN in RFC 2253 form (most specific
attribute first: ``CN=alice,OU=ops,O=example``). The ``cryptography`` package writes that form
(``Name.rfc4514_string``, which RFC 4514 made the successor of RFC 2253) — a library, rather than
formatting the ``ssl`` module's subject tuples by hand, because escaping and unnamed attributes (shown as
dotted OIDs with hex values, as Java does) are easy to get subtly wrong.

Rules, as Kafka's: ``RULE:<regex>/<replacement>/[L|U]`` entries and ``DEFAULT``, tried in order; the
first whose regex matches the whole DN gives the name (``$1`` style groups; L/U lower/upper-cases it);
``DEFAULT`` gives the DN itself; no rule matching refuses the client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import ConfigError

_RULE_RE = re.compile(r"\s*(?:(DEFAULT)|RULE:((?:\\/|[^/])*)/((?:\\/|[^/])*)/([LU]?))\s*(?:,|$)")


class NoMatchingRule(Exception):
    """No rule of ssl.principal.mapping.rules applies to the DN: the client is refused."""


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""

    def apply(self, dn: str) -> str | None:
        if self.pattern is None:
            return dn
        m = self.pattern.fullmatch(dn)
        if m is None:
            return None
        name = m.expand(self.replacement)
        return name.lower() if self.case == "L" else name.upper() if self.case == "U" else name


def _java_replacement(text: str) -> str:
    """A Java replacement string ($1, \\$) as a Python template (\\g<1>)."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1].replace("\\", "\\\\"))
            i += 2
        elif c == "$" and i + 1 < len(text) and text[i + 1].isdigit():
            j = i + 1
            while j < len(text) and text[j].isdigit():
                j += 1
            out.append(f"\\g<{text[i + 1 : j]}>")
            i = j
        else:
            out.append("\\\\" if c == "\\" else c)
            i += 1
    return "".join(out)


class PrincipalMapper:
    def __init__(self, rules: str) -> None:
        self.rules: list[_Rule] = []
        text = rules.strip() or "DEFAULT"
        pos = 0
        while pos < len(text):
            m = _RULE_RE.match(text, pos)
            if m is None or m.end() == pos:
                raise ConfigError(f"ssl.principal.mapping.rules: cannot parse {text[pos:]!r}")
            if m.group(1):
                self.rules.append(_Rule(None))
            else:
                try:
                    pattern = re.compile(m.group(2).replace("\\/", "/"))
                except re.error as e:
                    raise ConfigError(
                        f"ssl.principal.mapping.rules: bad pattern {m.group(2)!r}: {e}"
                    ) from None
                self.rules.append(
                    _Rule(pattern, _java_replacement(m.group(3).replace("\\/", "/")), m.group(4))
                )
            pos = m.end()

    def name(self, dn: str) -> str:
        for rule in self.rules:
            name = rule.apply(dn)
            if name is not None:
                return name
        raise NoMatchingRule(f"no rule of ssl.principal.mapping.rules applies to {dn!r}")


def require_cryptography() -> None:
    """ConfigError (one line, at start) when client certificates are asked for without the package that
    reads them."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise ConfigError(
            "ssl.client.auth needs the cryptography package: pip install 'odradek[security]'"
        ) from None


def subject_dn(der: bytes) -> str:
    """The subject of a DER certificate in RFC 2253 order, as Kafka's principal builder reads it."""
    try:
        from cryptography import x509
    except ImportError:  # pragma: no cover - the extra is installed with the broker's security features
        raise ConfigError(
            "ssl.client.auth needs the cryptography package: pip install 'odradek[security]'"
        ) from None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()
