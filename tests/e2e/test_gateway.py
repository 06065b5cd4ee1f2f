"""Behind a real nginx (deploy/nginx.conf, ports and paths substituted) mounted at /signer/:
every endpoint works, self-URLs use the public scheme/host/prefix, and the gateway's user
header is believed only from the proxy, never from a client talking to gunicorn directly."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ALICE_TOKEN
from tests.e2e.conftest import path_style, service
from tests.servers import ROOT, free_port, require_tool, running

PROXY_ADDRESS = "127.0.0.2"  # nginx connects upstream from here (proxy_bind); clients come from 127.0.0.1
USERS = {"carol": "carol-password"}


def nginx_config(template: str, work: Path, listen: int, upstream: int) -> str:
    """deploy/nginx.conf with test ports, a private prefix, and proxy_bind."""
    replacements = {
        "events {}": "events {}\npid %s/nginx.pid;\nerror_log %s/error.log;%s" % (
            work, work, "\nuser root;" if os.geteuid() == 0 else ""),
        "\nhttp {\n": "\nhttp {\n    access_log %s/access.log;\n    client_body_temp_path %s/body;\n"
                  "    proxy_temp_path %s/proxy;\n    fastcgi_temp_path %s/fastcgi;\n    uwsgi_temp_path %s/uwsgi;\n"
                  "    scgi_temp_path %s/scgi;\n" % ((work,) * 6),
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream};",
        "listen 80;": f"listen 127.0.0.1:{listen};",
        "/etc/nginx/signer.htpasswd": str(work / "htpasswd"),
        "proxy_pass http://signer/;": f"proxy_pass http://signer/;\n            proxy_bind {PROXY_ADDRESS};",
    }
    for old, new in replacements.items():
        assert old in template, f"deploy/nginx.conf no longer has {old!r}"
        template = template.replace(old, new)
    return template


@pytest.fixture(scope="module")
def gateway(weed, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(public base URL through nginx, direct gunicorn URL)."""
    nginx = require_tool("nginx", "install it with: apt-get install nginx")
    work = tmp_path_factory.mktemp("nginx")
    (work / "htpasswd").write_text("".join(f"{user}:{{PLAIN}}{password}\n" for user, password in USERS.items()))
    with service(work, SIGNER_USER_HEADER="X-Auth-User", SIGNER_TRUSTED_PROXIES=PROXY_ADDRESS,
                 SIGNER_DEMO_PAGE="true", **path_style(weed)) as direct:
        upstream = int(direct.rsplit(":", 1)[1])
        listen = free_port()
        config = work / "nginx.conf"
        config.write_text(nginx_config((ROOT / "deploy/nginx.conf").read_text(), work, listen, upstream))
        public = f"http://127.0.0.1:{listen}/signer"
        with running([nginx, "-c", str(config), "-g", "daemon off;"], f"http://127.0.0.1:{listen}/",
                     log_path=work / "nginx.out"):
            yield public, direct


def call(url: str, *, body: dict | None = None, headers: dict[str, str] | None = None, user: str | None = None,
         method: str | None = None) -> tuple[int, dict | str]:
    headers = dict(headers or {})
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers.get_content_type()
    return status, json.loads(raw) if kind == "application/json" else raw.decode()


def test_every_endpoint_through_the_gateway(gateway) -> None:
    public, _ = gateway
    assert call(f"{public}/healthz") == (401, call(f"{public}/healthz")[1])  # nginx demands a login first
    assert call(f"{public}/healthz", user="carol") == (200, {"status": "ok"})
    assert call(f"{public}/readyz", user="carol")[0] == 200
    assert call(f"{public}/v1/whoami", user="carol") == (200, {"identity": "carol", "key_prefix": "uploads/user/carol/"})
    status, put = call(f"{public}/v1/presign", user="carol", body={
        "method": "PUT", "key": "uploads/user/carol/a.png", "content_type": "image/png", "content_length": 3})
    assert status == 200 and "/uploads-bucket/uploads/user/carol/a.png?" in put["url"], put
    status, form = call(f"{public}/v1/post-policy", user="carol", body={"filename": "a.png", "content_type": "image/png"})
    assert status == 200 and form["key"].startswith("uploads/user/carol/")
    status, refused = call(f"{public}/v1/presign", user="carol", body={
        "method": "PUT", "key": "uploads/alice/a.png", "content_type": "image/png", "content_length": 3})
    assert status == 403 and refused["code"] == "key_not_allowed"
    status, answer = call(f"{public}/s3/signature", user="carol", body={"headers": "x"})
    assert status == 400 and answer["invalid"] is True
    assert call(f"{public}/s3/success", user="carol", method="POST")[0] == 400
    assert call(f"{public}/s3/files/u?key=uploads/alice/x&bucket=uploads-bucket", user="carol", method="DELETE")[0] == 400
    assert call(f"{public}/v1/objects", user="carol")[0] == 200


def test_self_urls_use_the_public_scheme_host_and_prefix(gateway) -> None:
    public, direct = gateway
    status, document = call(f"{public}/openapi.json", user="carol")
    assert status == 200 and document["servers"] == [{"url": "/signer"}]  # relative: no Host is reflected
    status, page = call(f"{public}/", user="carol")
    assert status == 200 and '"base": "/signer"' in page
    assert call(f"{direct}/openapi.json")[1]["servers"] == [{"url": "/"}]


def test_forged_user_header_or_forwarded_headers_from_a_direct_client_count_for_nothing(gateway) -> None:
    _, direct = gateway
    forged = {"X-Auth-User": "carol", "X-Forwarded-For": PROXY_ADDRESS, "X-Forwarded-Host": "evil.example",
              "X-Forwarded-Prefix": "/evil"}
    status, answer = call(f"{direct}/v1/whoami", headers=forged)
    assert status == 401 and answer["code"] == "unauthorized"
    status, answer = call(f"{direct}/v1/whoami", headers={**forged, "Authorization": f"Bearer {ALICE_TOKEN}"})
    assert (status, answer["identity"]) == (200, "alice")  # its own token, not the forged user
    assert call(f"{direct}/openapi.json", headers=forged)[1]["servers"] == [{"url": "/"}]


def test_a_client_cannot_smuggle_a_user_through_the_gateway(gateway) -> None:
    public, _ = gateway
    status, answer = call(f"{public}/v1/whoami", user="carol", headers={"X-Auth-User": "alice"})
    assert answer["identity"] == "carol"
