"""schemathesis against our own /openapi.json: generated requests to every operation, no 5xx,
and every response matches the documented status codes, content types and schemas."""

from __future__ import annotations

import os

import boto3
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from signer.service.config import load_config
from signer.service.web.app import create_app
from tests.conftest import ACCESS_KEY, ALICE_TOKEN, SECRET_KEY, env_with
from tests.servers import free_port, moto_server

# The endpoints that call S3 (success, delete, list) get a real store: moto on loopback, on a
# port chosen now (schemathesis reads the app at collection) and started only when this
# module's tests run.
STORE_PORT = free_port()
APP = create_app(load_config(env_with(SIGNER_ENDPOINT_URL=f"http://127.0.0.1:{STORE_PORT}")))
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _store():
    with moto_server(STORE_PORT) as url:
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key=SECRET_KEY).create_bucket(Bucket="uploads-bucket")
        yield
EXAMPLES = 60 if os.environ.get("CI") == "true" else 20  # per operation; 9 operations, hundreds of cases


@schema.auth()
class BearerToken:
    """Alice's token on every generated request; schemathesis's own no-auth probes still run."""

    def get(self, case, context):  # noqa: ARG002 - schemathesis's auth interface
        return ALICE_TOKEN

    def set(self, case, data, context):  # noqa: ARG002 - schemathesis's auth interface
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case) -> None:
    # Not checked: "schema-valid data is accepted". Some 400s are cross-field rules a schema
    # cannot state (no content_type on GET, a key inside your own prefix); every other check
    # runs: no 5xx, documented status codes, content types and response schemas.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


# --- the same run with hostile but well-formed text in every generated string ----------

from hypothesis import strategies as st  # noqa: E402

HOSTILE_TEXT = ["\ud800", "\udc80", "\u0661\u0662", "\u00b9", "\ufeff", "\u202e", "\x00", "\r\n", '"\\']
URL_TEXT = [text for text in HOSTILE_TEXT if not text.startswith(("\ud800", "\udc80"))]  # a URL cannot carry them


def _hostile_leaves(value, hostile=tuple(HOSTILE_TEXT)):
    """A strategy: ``value`` with each string leaf kept or given a lone surrogate, a non-ASCII
    digit, a BOM, an RTL override, NUL, CRLF or a quote and a backslash."""
    if isinstance(value, str):
        return st.one_of(st.just(value), st.sampled_from(hostile).map(lambda bad: value + bad), st.sampled_from(hostile))
    if isinstance(value, dict):
        return st.fixed_dictionaries({name: _hostile_leaves(item, hostile) for name, item in value.items()})
    if isinstance(value, list):
        return st.tuples(*(_hostile_leaves(item, hostile) for item in value)).map(list)
    return st.just(value)


def flatmap_body(context, body):
    json_body = not context.operation.path.startswith(("/s3/success", "/s3/files"))  # those take forms
    return _hostile_leaves(body, tuple(HOSTILE_TEXT if json_body else URL_TEXT))


def flatmap_query(context, query):  # noqa: ARG001 - schemathesis's hook signature
    return _hostile_leaves(query, tuple(URL_TEXT))


@schema.hooks.apply(flatmap_query)
@schema.hooks.apply(flatmap_body)
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_with_hostile_text(case) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
