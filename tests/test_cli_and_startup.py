"""The CLI, and gunicorn refusing to start half-configured (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
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
    moment = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    with freeze_time(moment):
        expected = client_for(Credentials(ACCESS_KEY, SECRET_KEY), Bucket("uploads-bucket")).generate_presigned_url(
            "put_object", Params={"Bucket": "uploads-bucket", "Key": "uploads/cat.jpg", "ContentType": "image/jpeg",
                                     "ContentLength": 3, "IfNoneMatch": "*"},
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


def test_cli_identity_cannot_take_a_reserved_namespace() -> None:
    """--identity signs as a token-named caller: 'user' and 'anonymous' (any case) are other namespaces."""
    for name in ("user", "USER", "anonymous", "Anonymous"):
        result = run_cli("presign", "GET", f"uploads/{name}/x.png", "--identity", name)
        assert result.returncode == 2 and "--identity" in result.stderr, name
    assert run_cli("presign", "GET", "uploads/webapp/x.png", "--identity", "webapp").returncode == 0


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
                               "did you mean SIGNER_MAX_SIZE?\n")


def gunicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "wsgi:app"]


def test_gunicorn_refuses_to_start_half_configured() -> None:
    environ = {**os.environ, **env_with(SIGNER_MAX_EXPIRES="9999999")}
    result = subprocess.run(gunicorn(free_port()), cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "configuration error: SIGNER_MAX_EXPIRES" in result.stderr
    assert "Traceback" not in result.stderr


def test_gunicorn_warns_about_a_misspelt_variable_once_whatever_its_workers(tmp_path) -> None:
    """Said once by the master, with the setting it most likely meant, not once per worker among
    gunicorn's lines (issue #29, item 6)."""
    port = free_port()
    log = tmp_path / "gunicorn.log"
    command = [*gunicorn(port)[:-3], "--workers", "3", "wsgi:app"]
    with running(command, f"http://127.0.0.1:{port}/healthz", env={**os.environ, **env_with(SIGNER_MAX_SIZ="10")},
                 log_path=log):
        pass
    lines = [line for line in log.read_text().splitlines() if "SIGNER_MAX_SIZ " in line]
    assert lines == ["sigv4-signer: warning: SIGNER_MAX_SIZ is not a setting of this service (ignored); "
                     "did you mean SIGNER_MAX_SIZE?"], log.read_text()[-2000:]


@pytest.mark.parametrize(("variable", "value", "line"), [
    ("LOCAL_S3_PORT", "abc", "run.sh: LOCAL_S3_PORT must be a port number from 1 to 65535, got 'abc'"),
    ("SIGNER_MAX_SIZE", "lots", "run.sh: configuration error: SIGNER_MAX_SIZE must be a whole number, got 'lots'"),
])
def test_the_local_default_refuses_bad_settings_before_starting_seaweedfs(variable: str, value: str, line: str) -> None:
    """One line, exit 2, and no SeaweedFS started (issue #29, items 5 and 6)."""
    environ = {**os.environ, **env_with(), "LOCAL_S3_PORT": str(free_port()), variable: value}
    result = subprocess.run([sys.executable, "-m", "scripts.local_store"], cwd=ROOT, env=environ, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line]


def test_a_second_local_default_on_the_same_data_folder_is_told_to_take_its_own(tmp_path) -> None:
    """Two SeaweedFS cannot share one folder: the second run.sh says so and names LOCAL_DATA_DIR
    (issue #29, item 2), instead of failing inside SeaweedFS."""
    import fcntl

    data = tmp_path / "data"
    data.mkdir()
    with open(data / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        environ = {**os.environ, **env_with(), "LOCAL_S3_PORT": str(free_port()), "LOCAL_DATA_DIR": str(data),
                   "SIGNER_BIND": f"127.0.0.1:{free_port()}"}
        result = subprocess.run([sys.executable, "-m", "scripts.local_store"], cwd=ROOT, env=environ,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"run.sh: {data}/ is in use by another scripts/run.sh (two SeaweedFS cannot share one folder); "
        "stop it, or give this one its own with LOCAL_DATA_DIR=<folder>"]


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


def test_access_log_lines_stay_json_whatever_the_client_sends(tmp_path) -> None:
    """A quote, a backslash, a line break or non-ASCII in the User-Agent or path can neither
    break the JSON nor forge a second line."""
    import http.client
    import json

    port = free_port()
    log = tmp_path / "gunicorn.log"
    forged = '{"time": "forged", "path": "/admin", "status": "200"}'
    agents = ['evil" , "status": "200', "back\\slash\\", "tab\there\u00e9", f"x\n{forged}"]
    paths = ['/v1/"quoted"\\', "/%22%5C%0A" + "%7B%22forged%22%3A1%7D", "/caf%C3%A9/%FF"]
    with running(gunicorn(port), f"http://127.0.0.1:{port}/healthz", env={**os.environ, **env_with()}, log_path=log):
        for agent in agents:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.putrequest("GET", "/healthz", skip_accept_encoding=True)
            connection.putheader("User-Agent", agent.encode("latin-1", "replace") if "\n" not in agent
                                 else agent.replace("\n", " ").encode("latin-1", "replace"))
            connection.endheaders()
            connection.getresponse().read()
            connection.close()
        for path in paths:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            connection.getresponse().read()
            connection.close()
    access = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in access]  # every line is one JSON object
    assert len(records) >= len(agents) + len(paths) + 1
    assert not any(record["time"] == "forged" for record in records)
    seen_agents = {record["user_agent"] for record in records}
    assert 'evil" , "status": "200' in seen_agents and "back\\slash\\" in seen_agents
    seen_paths = {record["path"] for record in records}
    assert '/v1/"quoted"\\' in seen_paths and any("forged" in path for path in seen_paths)


def test_anonymous_visitor_keeps_its_folder_across_gunicorn_workers(tmp_path) -> None:
    """Without SIGNER_COOKIE_SECRET every worker derives the same cookie key, so a visitor's
    cookie holds whichever worker answers; two visitors still get two folders."""
    import json
    import re

    port = free_port()
    env = {**os.environ, **env_with(SIGNER_API_TOKENS=None, SIGNER_ALLOW_ANONYMOUS="true")}
    command = [*gunicorn(port)[:-3], "--workers", "3", "wsgi:app"]
    with running(command, f"http://127.0.0.1:{port}/healthz", env=env, log_path=tmp_path / "gunicorn.log"):
        def whoami(cookie: str | None = None) -> tuple[str, str | None]:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/whoami",
                                             headers={"Cookie": cookie} if cookie else {})
            with urllib.request.urlopen(request, timeout=5) as response:
                issued = re.match(r"(signer_visitor=[^;]+)", response.headers.get("Set-Cookie") or "")
                return json.loads(response.read())["key_prefix"], issued and issued.group(1)

        prefix, cookie = whoami()
        assert cookie and prefix.startswith("uploads/anonymous/")
        answers = [whoami(cookie) for _ in range(24)]  # new connections: spread over the workers
        assert {answer[0] for answer in answers} == {prefix} and not any(answer[1] for answer in answers)
        assert whoami()[0] != prefix
