"""Configuration: defaults, every variable, and errors that name the variable."""

from __future__ import annotations

import ipaddress

import pytest

from signer.service.config import load_config
from signer.service.errors import ConfigError
from tests.conftest import ALICE_TOKEN, SECRET_KEY, env_with


def test_defaults() -> None:
    config = load_config(env_with(SIGNER_MAX_SIZE=None, SIGNER_ALLOWED_CONTENT_TYPES=None, SIGNER_MAX_EXPIRES=None))
    assert config.bucket.region == "us-east-1"
    assert config.bucket.object_url("k") == "https://uploads-bucket.s3.amazonaws.com/k"
    assert config.rules.key_prefix == "uploads/"
    assert config.rules.max_expires == 3600
    assert config.rules.max_size is None
    assert config.rules.allowed_content_types == ()
    assert config.rules.allowed_methods == {"GET", "PUT", "HEAD"}
    assert config.rules.allowed_acls == {"private"}
    assert config.allow_anonymous is False
    assert config.trusted_proxies == (ipaddress.ip_network("127.0.0.1/32"),)
    assert dict(config.api_tokens)["alice"] == ALICE_TOKEN.encode()


def test_custom_endpoint_defaults_to_path_style_and_virtual_is_configurable() -> None:
    config = load_config(env_with(SIGNER_ENDPOINT_URL="http://127.0.0.1:9000", AWS_REGION="eu-west-1"))
    assert config.bucket.object_url("k") == "http://127.0.0.1:9000/uploads-bucket/k"
    assert config.bucket.region == "eu-west-1"
    config = load_config(env_with(SIGNER_ENDPOINT_URL="http://s3.localhost:9000", SIGNER_ADDRESSING_STYLE="virtual"))
    assert config.bucket.object_url("k") == "http://uploads-bucket.s3.localhost:9000/k"


def test_secrets_from_files(tmp_path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET_KEY + "\n")
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"carol:{ALICE_TOKEN}\n")
    config = load_config(
        env_with(
            AWS_SECRET_ACCESS_KEY=None,
            AWS_SECRET_ACCESS_KEY_FILE=str(secret_file),
            SIGNER_API_TOKENS=None,
            SIGNER_API_TOKENS_FILE=str(tokens_file),
        )
    )
    assert config.credentials.secret_key == SECRET_KEY
    assert [name for name, _ in config.api_tokens] == ["carol"]


@pytest.mark.parametrize(
    "overrides, variable",
    [
        ({"SIGNER_BUCKET": None}, "SIGNER_BUCKET"),
        ({"SIGNER_BUCKET": "Not_A_Bucket"}, "SIGNER_BUCKET"),
        ({"AWS_ACCESS_KEY_ID": None}, "AWS_ACCESS_KEY_ID"),
        ({"AWS_SECRET_ACCESS_KEY": None}, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_SECRET_ACCESS_KEY_FILE": "/nonexistent/secret"}, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_SECRET_ACCESS_KEY": None, "AWS_SECRET_ACCESS_KEY_FILE": "/nonexistent/secret"}, "AWS_SECRET_ACCESS_KEY_FILE"),
        ({"SIGNER_ENDPOINT_URL": "ftp://x"}, "SIGNER_ENDPOINT_URL"),
        ({"SIGNER_ADDRESSING_STYLE": "sideways"}, "SIGNER_ADDRESSING_STYLE"),
        ({"SIGNER_KEY_PREFIX": "uploads"}, "SIGNER_KEY_PREFIX"),
        ({"SIGNER_KEY_PREFIX": "/uploads/"}, "SIGNER_KEY_PREFIX"),
        ({"SIGNER_MAX_SIZE": "big"}, "SIGNER_MAX_SIZE"),
        ({"SIGNER_MAX_SIZE": "0"}, "SIGNER_MAX_SIZE"),
        ({"SIGNER_MAX_EXPIRES": "604801"}, "SIGNER_MAX_EXPIRES"),
        ({"SIGNER_MAX_EXPIRES": "0"}, "SIGNER_MAX_EXPIRES"),
        ({"SIGNER_ALLOWED_CONTENT_TYPES": "image"}, "SIGNER_ALLOWED_CONTENT_TYPES"),
        ({"SIGNER_ALLOWED_METHODS": "PATCH"}, "SIGNER_ALLOWED_METHODS"),
        ({"SIGNER_ALLOWED_ACLS": "everyone"}, "SIGNER_ALLOWED_ACLS"),
        ({"SIGNER_API_TOKENS": None}, "SIGNER_API_TOKENS"),
        ({"SIGNER_API_TOKENS": "alice"}, "SIGNER_API_TOKENS"),
        ({"SIGNER_API_TOKENS": "alice:short"}, "SIGNER_API_TOKENS"),
        ({"SIGNER_API_TOKENS": f"a/b:{ALICE_TOKEN}"}, "SIGNER_API_TOKENS"),
        ({"SIGNER_API_TOKENS": f"anonymous:{ALICE_TOKEN}"}, "SIGNER_API_TOKENS"),
        ({"SIGNER_API_TOKENS": f"a:{ALICE_TOKEN},a:{ALICE_TOKEN}x"}, "SIGNER_API_TOKENS"),
        ({"SIGNER_ALLOW_ANONYMOUS": "maybe"}, "SIGNER_ALLOW_ANONYMOUS"),
        ({"SIGNER_CORS_ORIGINS": "app.example"}, "SIGNER_CORS_ORIGINS"),
        ({"SIGNER_TRUSTED_PROXIES": "not-an-ip"}, "SIGNER_TRUSTED_PROXIES"),
        ({"SIGNER_USER_HEADER": "X Bad"}, "SIGNER_USER_HEADER"),
        ({"AWS_REGION": "Mars 1"}, "AWS_REGION"),
    ],
)
def test_errors_name_the_variable(overrides, variable) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env_with(**overrides))
    assert variable in caught.value.message
    assert SECRET_KEY not in caught.value.message
    assert ALICE_TOKEN not in caught.value.message


def test_anonymous_or_gateway_mode_needs_no_tokens() -> None:
    assert load_config(env_with(SIGNER_API_TOKENS=None, SIGNER_ALLOW_ANONYMOUS="true")).allow_anonymous
    assert load_config(env_with(SIGNER_API_TOKENS=None, SIGNER_USER_HEADER="X-Auth-User")).user_header == "X-Auth-User"


def test_config_repr_hides_secrets() -> None:
    text = repr(load_config(env_with()))
    assert SECRET_KEY not in text
    assert ALICE_TOKEN not in text


def test_unknown_signer_variables_are_warned_about_not_fatal() -> None:
    config = load_config(env_with(SIGNER_MAX_SIZ="10", SIGNER_BIND="127.0.0.1:8080", SIGNER_WORKERS="2"))
    assert config.warnings == ("SIGNER_MAX_SIZ is not a setting of this service (ignored); "
                               "did you mean SIGNER_MAX_SIZE?",)
    far = load_config(env_with(SIGNER_COLOUR="blue")).warnings
    assert far == ("SIGNER_COLOUR is not a setting of this service (ignored); check the spelling against the README",)
    assert load_config(env_with()).warnings == ()


def test_every_variable_the_readme_documents_is_known() -> None:
    """The README's configuration table and KNOWN_VARIABLES name the same SIGNER_* settings."""
    import re
    from pathlib import Path

    from signer.service.config import KNOWN_VARIABLES

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("## Rules before signing", 1)[0]
    documented = set(re.findall(r"SIGNER_[A-Z0-9_]+", table))
    documented.add("SIGNER_CONFIG")  # documented in docs/kinds.md (the README is not edited by #26; see #29)
    documented |= {f"{name}_FILE" for name in documented if name in ("SIGNER_API_TOKENS", "SIGNER_COOKIE_SECRET", "SIGNER_WEBHOOK_SECRET")}
    assert documented == set(KNOWN_VARIABLES)
    root = Path(__file__).resolve().parent.parent
    sources = [*root.joinpath("signer").rglob("*.py"), root / "gunicorn.conf.py", root / "wsgi.py"]
    read = {name for path in sources for name in re.findall(r"SIGNER_[A-Z0-9_]*[A-Z0-9]", path.read_text())}
    assert read <= set(KNOWN_VARIABLES), read - set(KNOWN_VARIABLES)


def test_the_credentials_provider_is_chosen_from_the_environment() -> None:
    """Static keys as before; without any, the SDKs' chain (see tests/test_providers.py)."""
    assert load_config(env_with()).credentials_source.name == "environment"
    no_keys = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
    assert load_config(env_with(**no_keys)).credentials_source.name == "instance-metadata"
    ecs = env_with(**no_keys, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/credentials/x")
    assert load_config(ecs).credentials_source.name == "container"
    assert load_config({**ecs, "SIGNER_ROLE_ARN": "arn:aws:iam::123456789012:role/uploads"}).credentials_source.name \
        == "assume-role via container"
    with pytest.raises(ConfigError) as caught:
        load_config(env_with(**no_keys, AWS_EC2_METADATA_DISABLED="true"))
    assert "AWS_ACCESS_KEY_ID" in caught.value.message and "AWS_ROLE_ARN" in caught.value.message
    with pytest.raises(ConfigError, match="AWS_WEB_IDENTITY_TOKEN_FILE"):
        load_config(env_with(**no_keys, AWS_ROLE_ARN="arn:aws:iam::123456789012:role/x"))


# --- the finish step's settings (issue #19) ---------------------------------------------

WEBHOOK_SECRET = "a-webhook-secret-of-32-characters-at-least"


@pytest.mark.parametrize("url", ["https://hooks.example:99999/uploads", "https://hooks..example/uploads",
                                 f"https://{'a' * 64}.example/uploads"])
def test_a_webhook_url_no_connection_can_use_stops_start_up(url: str) -> None:
    """The standard library cannot connect to it (port out of range, empty or long label): accepted,
    every event would fail at delivery as a ValueError, which the sweeper takes for an unreadable
    marker and drops."""
    import socket
    from urllib.parse import urlsplit

    with pytest.raises(ValueError):  # out of range, or UnicodeError: label empty or too long
        parts = urlsplit(url)
        socket.getaddrinfo(parts.hostname, parts.port)
    with pytest.raises(ConfigError, match="SIGNER_WEBHOOK_URL"):
        load_config(env_with(SIGNER_WEBHOOK_URL=url, SIGNER_WEBHOOK_SECRET=WEBHOOK_SECRET))
    assert load_config(env_with(SIGNER_WEBHOOK_URL="https://hooks.example:65535/uploads",
                                SIGNER_WEBHOOK_SECRET=WEBHOOK_SECRET)).webhook is not None


def test_webhook_needs_its_secret_and_a_plain_url(tmp_path) -> None:
    cfg = load_config(env_with(SIGNER_WEBHOOK_URL="https://hooks.example/uploads?app=1",
                               SIGNER_WEBHOOK_SECRET=WEBHOOK_SECRET))
    assert cfg.webhook is not None and cfg.webhook.url == "https://hooks.example/uploads?app=1"
    assert WEBHOOK_SECRET not in repr(cfg) and WEBHOOK_SECRET not in repr(cfg.finish)
    assert cfg.finish_interval == 10 and load_config(env_with()).webhook is None
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(WEBHOOK_SECRET + "\n")
    from_file = load_config(env_with(SIGNER_WEBHOOK_URL="http://127.0.0.1:9/h", SIGNER_WEBHOOK_SECRET_FILE=str(secret_file)))
    assert from_file.webhook is not None and from_file.webhook.secret == WEBHOOK_SECRET.encode()
    for bad, variable in (
        ({"SIGNER_WEBHOOK_URL": "https://hooks.example/"}, "SIGNER_WEBHOOK_SECRET"),
        ({"SIGNER_WEBHOOK_URL": "https://hooks.example/", "SIGNER_WEBHOOK_SECRET": "short"}, "SIGNER_WEBHOOK_SECRET"),
        ({"SIGNER_WEBHOOK_SECRET": WEBHOOK_SECRET}, "SIGNER_WEBHOOK_URL"),
        ({"SIGNER_WEBHOOK_URL": "https://user:pw@hooks.example/", "SIGNER_WEBHOOK_SECRET": WEBHOOK_SECRET},
         "SIGNER_WEBHOOK_URL"),
        ({"SIGNER_WEBHOOK_URL": "ftp://hooks.example/", "SIGNER_WEBHOOK_SECRET": WEBHOOK_SECRET}, "SIGNER_WEBHOOK_URL"),
        ({"SIGNER_WEBHOOK_URL": "https://hooks.example/#x", "SIGNER_WEBHOOK_SECRET": WEBHOOK_SECRET},
         "SIGNER_WEBHOOK_URL"),
        ({"SIGNER_FINISH_INTERVAL": "0"}, "SIGNER_FINISH_INTERVAL"),
    ):
        with pytest.raises(ConfigError, match=variable) as caught:
            load_config(env_with(**bad))
        assert WEBHOOK_SECRET not in caught.value.message
