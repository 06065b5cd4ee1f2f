"""Each provider of the chain against a real-behaving endpoint: local fakes of the ECS
container endpoint, IMDSv2 and STS (tests/fake_aws.py), and moto's STS server (which checks
our own SigV4 on AssumeRole). botocore's providers, pointed at the same endpoints, are the
oracle for what a provider must yield and for the chain's order."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from signer.credentials import Credentials
from signer.errors import CredentialsUnavailable, InvalidCredentials
from signer.providers import (
    AssumeRoleProvider,
    ContainerProvider,
    InstanceMetadataProvider,
    Sts,
    WebIdentityProvider,
    base_provider,
    container_url,
    credentials_chain,
    sts_from_env,
)
from tests.conftest import RUNTIME_SECRETS
from tests.fake_aws import CONTAINER_AUTH, IMDS_SESSION, SECRET_MARK, WEB_IDENTITY_JWT, FakeAws, fake_aws
from tests.servers import free_port, running

NOW = datetime.now(UTC)
ROLE = "arn:aws:iam::123456789012:role/fake-web-role"


@pytest.fixture
def fake() -> Iterator[FakeAws]:
    with fake_aws(rotate=False) as server:
        yield server


@pytest.fixture
def jwt_file(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text(WEB_IDENTITY_JWT + "\n")
    return str(path)


def same(ours: Credentials, issued) -> bool:
    return (ours.access_key, ours.secret_key, ours.session_token, ours.expiration) == (
        issued.access_key, issued.secret_key, issued.token, issued.expiration)


# --- each provider ------------------------------------------------------------------


def test_container_endpoint_with_authorization_token(fake: FakeAws, tmp_path: Path) -> None:
    credentials = ContainerProvider(f"{fake.url}/container", CONTAINER_AUTH).fetch(NOW)
    assert same(credentials, fake.issued[-1])
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(CONTAINER_AUTH)
    assert same(ContainerProvider(f"{fake.url}/container", token_file=str(token_file)).fetch(NOW), fake.issued[-1])
    with pytest.raises(CredentialsUnavailable) as caught:
        ContainerProvider(f"{fake.url}/container", "wrong-token").fetch(NOW)
    assert caught.value.message == "container: the endpoint answered 401"


def test_imds_v2_uses_a_session_token_and_never_v1(fake: FakeAws) -> None:
    credentials = InstanceMetadataProvider(fake.url).fetch(NOW)
    assert same(credentials, fake.issued[-1])
    put, role, creds = fake.requests
    assert put[:2] == ("PUT", "/latest/api/token") and put[2]["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    assert role[:2] == ("GET", "/latest/meta-data/iam/security-credentials/")
    assert creds[1] == "/latest/meta-data/iam/security-credentials/fake-instance-role"
    assert role[2]["x-aws-ec2-metadata-token"] == creds[2]["x-aws-ec2-metadata-token"] == IMDS_SESSION


def test_imds_without_a_token_endpoint_fails_rather_than_fall_back_to_v1(fake: FakeAws) -> None:
    with pytest.raises(CredentialsUnavailable) as caught:
        InstanceMetadataProvider(fake.url + "/elsewhere").fetch(NOW)
    assert "IMDSv1 is not used" in caught.value.message
    assert [method for method, *_ in fake.requests] == ["PUT"]  # no GET without a token


def test_web_identity_against_the_fake_sts(fake: FakeAws, jwt_file: str) -> None:
    provider = WebIdentityProvider(ROLE, jwt_file, "sigv4-signer-test", Sts(fake.url, "eu-west-1"))
    assert same(provider.fetch(NOW), fake.issued[-1])
    method, path, headers, body = fake.requests[-1]
    assert (method, path) == ("POST", "/") and "authorization" not in headers
    assert {k: v[0] for k, v in parse_qs(body.decode()).items()} == {
        "Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": ROLE,
        "RoleSessionName": "sigv4-signer-test", "WebIdentityToken": WEB_IDENTITY_JWT}


def test_provider_errors_name_the_source_and_never_a_secret(fake: FakeAws, jwt_file: str) -> None:
    fake.down = True
    failures = []
    for provider in (ContainerProvider(f"{fake.url}/container", CONTAINER_AUTH), InstanceMetadataProvider(fake.url),
                     WebIdentityProvider(ROLE, jwt_file, "s1", Sts(fake.url, "us-east-1")),
                     ContainerProvider(f"http://127.0.0.1:{free_port()}/container", CONTAINER_AUTH)):
        with pytest.raises(CredentialsUnavailable) as caught:
            provider.fetch(NOW)
        failures.append(caught.value.message)
    assert failures[0] == "container: the endpoint answered 500"
    assert failures[2] == "web-identity: STS answered 500 (ServiceUnavailable)"
    assert "cannot reach 127.0.0.1" in failures[3]
    for message in failures:
        assert CONTAINER_AUTH not in message and WEB_IDENTITY_JWT not in message and IMDS_SESSION not in message


# --- moto's STS -----------------------------------------------------------------------


def _moto(env: dict[str, str]):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return url, running(command, f"{url}/moto-api/", env={**os.environ, **env})


@pytest.fixture(scope="module")
def moto_sts() -> Iterator[str]:
    """moto's STS as a plain server (it accepts any web identity token and any signature)."""
    url, server = _moto({})
    with server:
        yield url


@pytest.fixture(scope="module")
def moto_checking_signatures() -> Iterator[str]:
    """moto with IAM authorization on after the first three (setup) calls: from then on it
    verifies every request's SigV4 signature against the access keys it issued."""
    url, server = _moto({"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    with server:
        yield url


def _iam_user(moto_url: str) -> Credentials:
    import boto3

    iam = boto3.client("iam", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    iam.create_user(UserName="signer")
    iam.put_user_policy(UserName="signer", PolicyName="all", PolicyDocument=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'))
    key = iam.create_access_key(UserName="signer")["AccessKey"]
    RUNTIME_SECRETS.append(key["SecretAccessKey"])
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def test_web_identity_against_moto(moto_sts: str, jwt_file: str) -> None:
    web = WebIdentityProvider(ROLE, jwt_file, "sigv4-signer-test", Sts(moto_sts, "us-east-1")).fetch(NOW)
    RUNTIME_SECRETS.append(web.secret_key)
    assert web.access_key.startswith("ASIA") and web.session_token and web.expiration > NOW


def test_assume_role_is_signed_by_our_sigv4_and_moto_checks_it(moto_checking_signatures: str) -> None:
    user = _iam_user(moto_checking_signatures)
    sts = Sts(moto_checking_signatures, "us-east-1")
    role = "arn:aws:iam::123456789012:role/uploads-only"
    narrower = AssumeRoleProvider(lambda: user, "environment", role, "sigv4-signer", sts).fetch(NOW)
    RUNTIME_SECRETS.append(narrower.secret_key)
    assert narrower.access_key.startswith("ASIA") and narrower.session_token
    assert narrower.expiration > NOW + timedelta(minutes=50)
    forged = Credentials(user.access_key, "not-the-right-secret-at-all")
    with pytest.raises(CredentialsUnavailable) as caught:
        AssumeRoleProvider(lambda: forged, "environment", role, "x1", sts).fetch(NOW)
    assert caught.value.message == "assume-role via environment: STS answered 403 (SignatureDoesNotMatch)"


def test_signer_role_arn_chains_onto_what_the_chain_found(moto_sts: str, jwt_file: str, caplog) -> None:
    env = {"AWS_ROLE_ARN": ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": jwt_file, "AWS_ENDPOINT_URL_STS": moto_sts,
           "SIGNER_ROLE_ARN": "arn:aws:iam::123456789012:role/uploads-only"}
    source = credentials_chain(env, "us-east-1")
    assert source.name == "assume-role via web-identity"
    credentials = source.get()
    RUNTIME_SECRETS.append(credentials.secret_key)
    status = source.status()
    assert status.usable and status.access_key == credentials.access_key and status.expiration > NOW
    refreshed = [r.getMessage() for r in caplog.records if "credentials refreshed" in r.getMessage()]
    assert [m.split(":")[0] for m in refreshed] == ["credentials refreshed from web-identity",
                                                    "credentials refreshed from assume-role via web-identity"]
    assert credentials.session_token not in "\n".join(r.getMessage() for r in caplog.records)


# --- the chain, and botocore as the oracle ------------------------------------------------


def botocore_method(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tmp_path: Path) -> tuple[str, Credentials]:
    """What botocore's default chain picks for ``env`` (no config or credentials files)."""
    import botocore.session

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in {**env, "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
    found = botocore.session.Session().get_credentials()
    frozen = found.get_frozen_credentials()
    return found.method, Credentials(frozen.access_key, frozen.secret_key, frozen.token)


BOTOCORE_NAMES = {"environment": "env", "web-identity": "assume-role-with-web-identity",
                  "container": "container-role", "instance-metadata": "iam-role"}


@pytest.mark.parametrize("present", [
    ("static", "web", "container", "imds"),
    ("web", "container", "imds"),
    ("container", "imds"),
    ("imds",),
    ("static", "imds"),
    ("web", "imds"),
])
def test_chain_order_is_botocores(present, fake: FakeAws, jwt_file: str, monkeypatch, tmp_path: Path) -> None:
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.url, "AWS_REGION": "us-east-1"}
    if "static" in present:
        env.update(AWS_ACCESS_KEY_ID="AKIDSTATIC0001", AWS_SECRET_ACCESS_KEY="this-is-not-the-secret-key")
    if "web" in present:
        env.update(AWS_ROLE_ARN=ROLE, AWS_WEB_IDENTITY_TOKEN_FILE=jwt_file, AWS_ENDPOINT_URL_STS=fake.url)
    if "container" in present:
        env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{fake.url}/container",
                   AWS_CONTAINER_AUTHORIZATION_TOKEN=CONTAINER_AUTH)
    provider = base_provider(env, "us-east-1")
    ours = provider.fetch(NOW)
    method, theirs = botocore_method(monkeypatch, env, tmp_path)
    assert BOTOCORE_NAMES[provider.name] == method
    assert (ours.access_key, ours.secret_key, ours.session_token) == (
        theirs.access_key, theirs.secret_key, theirs.session_token)


def test_same_keys_as_botocores_own_providers(fake: FakeAws) -> None:
    from botocore.credentials import ContainerProvider as BotoContainer
    from botocore.credentials import InstanceMetadataProvider as BotoInstance
    from botocore.utils import InstanceMetadataFetcher

    theirs = BotoContainer({"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{fake.url}/container",
                            "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_AUTH}).load()
    ours = ContainerProvider(f"{fake.url}/container", CONTAINER_AUTH).fetch(NOW)
    assert (ours.access_key, ours.secret_key, ours.session_token) == (
        theirs.access_key, theirs.secret_key, theirs.token)
    assert ours.expiration == theirs._expiry_time
    fetcher = InstanceMetadataFetcher(timeout=2, num_attempts=1, base_url=fake.url)
    theirs = BotoInstance(iam_role_fetcher=fetcher).load()
    ours = InstanceMetadataProvider(fake.url).fetch(NOW)
    assert (ours.access_key, ours.secret_key, ours.session_token) == (
        theirs.access_key, theirs.secret_key, theirs.token)
    assert ours.expiration == theirs._expiry_time


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/creds", "http://127.1.2.3/creds", "http://localhost/creds", "http://[::1]/creds",
    "http://169.254.170.2/v2/credentials", "http://169.254.170.23/v1/credentials", "http://[fd00:ec2::23]/creds",
    "https://creds.example.com/creds", "http://creds.example.com/creds", "http://10.0.0.1/creds",
    "http://169.254.169.254/creds", "http://169.254.170.3/creds",
])
def test_container_hosts_are_botocores(url: str) -> None:
    from botocore.utils import ContainerMetadataFetcher

    try:
        ContainerMetadataFetcher()._validate_allowed_url(url)
        allowed_by_botocore = True
    except ValueError:
        allowed_by_botocore = False
    try:
        container_url({"AWS_CONTAINER_CREDENTIALS_FULL_URI": url})
        allowed_by_us = True
    except InvalidCredentials as exc:
        assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in exc.message
        allowed_by_us = False
    assert allowed_by_us == allowed_by_botocore


def test_relative_uri_wins_and_goes_to_the_ecs_address() -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc",
           "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1/other"}
    assert container_url(env) == "http://169.254.170.2/v2/credentials/abc"


def test_sts_endpoints() -> None:
    assert sts_from_env({}, "eu-west-1") == Sts("https://sts.eu-west-1.amazonaws.com", "eu-west-1")
    assert sts_from_env({"AWS_STS_REGIONAL_ENDPOINTS": "regional"}, "us-east-1").endpoint == "https://sts.us-east-1.amazonaws.com"
    assert sts_from_env({"AWS_STS_REGIONAL_ENDPOINTS": "legacy"}, "eu-west-1") == Sts("https://sts.amazonaws.com", "us-east-1")
    assert sts_from_env({"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:5000"}, "eu-west-1") == Sts("http://127.0.0.1:5000", "eu-west-1")
    assert sts_from_env({}, "cn-north-1").endpoint == "https://sts.cn-north-1.amazonaws.com.cn"
    with pytest.raises(InvalidCredentials, match="AWS_STS_REGIONAL_ENDPOINTS"):
        sts_from_env({"AWS_STS_REGIONAL_ENDPOINTS": "global"}, "eu-west-1")


@pytest.mark.parametrize("env, variable", [
    ({"AWS_ROLE_ARN": ROLE}, "AWS_WEB_IDENTITY_TOKEN_FILE"),
    ({"AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/token", "AWS_ROLE_ARN": ROLE}, "AWS_WEB_IDENTITY_TOKEN_FILE"),
    ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://10.0.0.1/x"}, "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    ({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "v2/x"}, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
    ({"AWS_EC2_METADATA_DISABLED": "true"}, "AWS_ACCESS_KEY_ID"),
    ({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "ftp://x"}, "AWS_EC2_METADATA_SERVICE_ENDPOINT"),
    ({"AWS_METADATA_SERVICE_TIMEOUT": "soon"}, "AWS_METADATA_SERVICE_TIMEOUT"),
])
def test_misconfiguration_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        base_provider(env, "us-east-1")
    assert variable in caught.value.message


def test_web_identity_session_name_and_role_are_checked(jwt_file: str) -> None:
    with pytest.raises(InvalidCredentials, match="AWS_ROLE_ARN"):
        base_provider({"AWS_ROLE_ARN": "role/x", "AWS_WEB_IDENTITY_TOKEN_FILE": jwt_file}, "us-east-1")
    with pytest.raises(InvalidCredentials, match="AWS_ROLE_SESSION_NAME"):
        base_provider({"AWS_ROLE_ARN": ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": jwt_file,
                       "AWS_ROLE_SESSION_NAME": "has space"}, "us-east-1")
    with pytest.raises(InvalidCredentials, match="SIGNER_ROLE_ARN"):
        credentials_chain({"AWS_ACCESS_KEY_ID": "AKID1", "AWS_SECRET_ACCESS_KEY": "x", "SIGNER_ROLE_ARN": "nope"},
                          "us-east-1")


def test_no_secret_in_reprs(fake: FakeAws) -> None:
    provider = ContainerProvider(f"{fake.url}/container", CONTAINER_AUTH)
    text = repr(provider) + repr(provider.fetch(NOW))
    assert CONTAINER_AUTH not in text and SECRET_MARK not in text


def test_the_library_still_imports_nothing_but_the_standard_library() -> None:
    code = ("import sys, signer.providers, signer.refresh; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('botocore', 'boto3', 'requests', 'urllib3')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_sts_answers_with_a_dtd_are_refused_before_parsing() -> None:
    from signer.providers import credentials_from_sts

    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><x>&a;</x>'
    with pytest.raises(CredentialsUnavailable, match="DTD"):
        credentials_from_sts(200, bomb, "web-identity")
