"""The CLI, and gunicorn refusing to start half-configured (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

from freezegun import freeze_time

from signer import Bucket, Credentials
from tests.conftest import ACCESS_KEY, ALICE_TOKEN, SECRET_KEY, env_with
from tests.oracle import client_for
from tests.servers import ROOT, free_port, running


def run_cli(*args: str, **env: str | None) -> subprocess.CompletedProcess:
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))}, **env_with(**env)}
    return subprocess.run([sys.executable, "-m", "signer", *args], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=60)


def test_cli_prints_a_url_botocore_agrees_with() -> None:
    result = run_cli("presign", "PUT", "uploads/cat.jpg", "--content-type", "image/jpeg", "--content-length", "3",
                     "--expires", "300")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert "\n" not in url
    stamp = parse_qs(urlsplit(url).query)["X-Amz-Date"][0]
    moment = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    with freeze_time(moment):
        expected = client_for(Credentials(ACCESS_KEY, SECRET_KEY), Bucket("uploads-bucket")).generate_presigned_url(
            "put_object", Params={"Bucket": "uploads-bucket", "Key": "uploads/cat.jpg", "ContentType": "image/jpeg",
                                     "ContentLength": 3},
            ExpiresIn=300,
        )
    assert url == expected


def test_cli_applies_the_rules() -> None:
    for args in (["presign", "PUT", "elsewhere/cat.jpg", "--content-type", "image/jpeg", "--content-length", "1"],
                 ["presign", "PUT", "uploads/cat.jpg", "--content-type", "image/jpeg"],
                 ["presign", "PUT", "uploads/cat.html", "--content-type", "text/html"],
                 ["presign", "PUT", "uploads/cat.jpg", "--content-type", "image/jpeg", "--expires", "99999"],
                 ["presign", "DELETE", "uploads/cat.jpg"]):
        result = run_cli(*args)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith("error (")
        assert SECRET_KEY not in result.stderr


def test_cli_presign_needs_no_api_tokens() -> None:
    """Tokens authenticate HTTP callers; the CLI has none, so it does not ask for them."""
    result = run_cli("presign", "GET", "uploads/cat.jpg", SIGNER_API_TOKENS=None)
    assert result.returncode == 0, result.stderr
    assert run_cli("check-config", SIGNER_API_TOKENS=None).returncode == 2  # the service would need them


def test_cli_config_errors_and_check() -> None:
    result = run_cli("presign", "GET", "uploads/x", SIGNER_BUCKET=None)
    assert result.returncode == 2 and "SIGNER_BUCKET" in result.stderr
    assert run_cli("check-config").returncode == 0
    misspelt = run_cli("check-config", SIGNER_MAX_SIZ="10")
    assert misspelt.returncode == 0
    assert misspelt.stderr == ("warning: SIGNER_MAX_SIZ is not a setting of this service (ignored); "
                               "check the spelling against the README\n")


def gunicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "wsgi:app"]


def test_gunicorn_refuses_to_start_half_configured() -> None:
    environ = {**os.environ, **env_with(SIGNER_MAX_EXPIRES="9999999")}
    result = subprocess.run(gunicorn(free_port()), cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "configuration error: SIGNER_MAX_EXPIRES" in result.stderr
    assert "Traceback" not in result.stderr


def test_gunicorn_serves_and_logs_json_lines(tmp_path) -> None:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with running(gunicorn(port), f"http://127.0.0.1:{port}/healthz", env={**os.environ, **env_with()}, log_path=log):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/whoami", headers={"Authorization": f"Bearer {ALICE_TOKEN}"}
        )
        assert b'"alice"' in urllib.request.urlopen(request, timeout=5).read()
    import json

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line["path"] == "/v1/whoami" and line["status"] == "200" for line in lines)
    text = log.read_text()
    assert ALICE_TOKEN not in text and SECRET_KEY not in text
