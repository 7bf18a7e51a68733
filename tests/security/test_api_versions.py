"""The security APIs are advertised in the version ranges Apache Kafka 4.4 advertises."""

from __future__ import annotations

from kio.schema.api_versions.v3.request import ApiVersionsRequest

from odradek.protocol.apis import ApiKey
from wire import WireClient

SECURITY_APIS = (
    ApiKey.SASL_HANDSHAKE,
    ApiKey.SASL_AUTHENTICATE,
    ApiKey.DESCRIBE_ACLS,
    ApiKey.CREATE_ACLS,
    ApiKey.DELETE_ACLS,
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS,
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS,
)


def advertised(bootstrap: str) -> dict[int, tuple[int, int]]:
    body = {"client_software_name": "odradek-tests", "client_software_version": "1"}
    with WireClient(bootstrap) as c:
        response = c.request(ApiVersionsRequest, body)
    assert int(response.error_code) == 0
    return {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in response.api_keys}


def test_security_api_ranges_match_kafka(odradek, kafka):
    ours, theirs = advertised(odradek.bootstrap), advertised(kafka.bootstrap)
    assert {k: ours.get(k) for k in SECURITY_APIS} == {k: theirs.get(k) for k in SECURITY_APIS}
