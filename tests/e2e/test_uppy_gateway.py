"""Uppy's Companion mode behind a real nginx that maps a session cookie to the user header:
the demo page served through the gateway at /signer/ uploads a 20 KB and a 12 MB file to
SeaweedFS with no client code but ``companionEndpoint`` (same origin, so the cookie goes along);
without the cookie the gateway refuses, and a client that reaches gunicorn directly with a
forged user header is nobody."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.conftest import service
from tests.e2e.test_uppy import browser, objects, open_uploads, payload  # noqa: F401 - fixture
from tests.servers import free_port, require_tool, running

PROXY_ADDRESS = "127.0.0.2"
SESSION = "dave-session-0123456789abcdef"

CONFIG = """events {}
pid %(work)s/nginx.pid;
error_log %(work)s/error.log;
%(user)s
http {
    access_log %(work)s/access.log;
    client_body_temp_path %(work)s/body;
    proxy_temp_path %(work)s/proxy;
    fastcgi_temp_path %(work)s/fastcgi;
    uwsgi_temp_path %(work)s/uwsgi;
    scgi_temp_path %(work)s/scgi;
    # Your session store in miniature: the session cookie names the user.
    map $cookie_session $session_user {
        default "";
        "%(session)s" dave;
    }
    server {
        listen 127.0.0.1:%(listen)d;
        location /signer/ {
            if ($session_user = "") { return 401; }
            proxy_set_header X-Auth-User $session_user;
            proxy_pass http://127.0.0.1:%(upstream)d/;
            proxy_bind %(proxy)s;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Forwarded-Prefix /signer;
            client_max_body_size 64k;
        }
    }
}
"""


@pytest.fixture(scope="module")
def gateway(weed, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(public origin through nginx, direct gunicorn URL)."""
    nginx = require_tool("nginx", "install it with: apt-get install nginx")
    work = tmp_path_factory.mktemp("nginx-uppy")
    with service(work, SIGNER_API_TOKENS=None, SIGNER_USER_HEADER="X-Auth-User", SIGNER_TRUSTED_PROXIES=PROXY_ADDRESS,
                 SIGNER_DEMO_PAGE="true", SIGNER_MAX_SIZE=str(13 * 1024 * 1024), **weed.signer_env("path")) as direct:
        listen = free_port()
        config = work / "nginx.conf"
        config.write_text(CONFIG % {"work": work, "user": "user root;" if os.geteuid() == 0 else "", "listen": listen,
                                    "upstream": int(direct.rsplit(":", 1)[1]), "proxy": PROXY_ADDRESS,
                                    "session": SESSION})
        origin = f"http://127.0.0.1:{listen}"
        with running([nginx, "-c", str(config), "-g", "daemon off;"], f"{origin}/", log_path=work / "nginx.out"):
            yield origin, direct


def test_uppy_uploads_through_the_gateway_with_a_session_cookie(browser, gateway, weed) -> None:  # noqa: F811
    origin, _ = gateway
    context = browser.new_context()
    context.add_cookies([{"name": "session", "value": SESSION, "url": origin}])
    page = context.new_page()
    page.goto(f"{origin}/signer/")
    page.wait_for_function("window.uppy !== undefined", timeout=30000)
    result = page.evaluate("""async () => {
      const make = (size, seed) => { const b = new Uint8Array(size);
        for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) % 251; return b; };
      window.uppy.addFile({name: "small.png", type: "image/png", data: new Blob([make(20000, 6)], {type: "image/png"})});
      window.uppy.addFile({name: "big.png", type: "image/png", data: new Blob([make(12000000, 7)], {type: "image/png"})});
      const result = await window.uppy.upload();
      return {successful: result.successful.length, failed: result.failed.map((f) => String(f.error))};
    }""")
    assert result == {"successful": 2, "failed": []}, result
    landed = sorted(objects(weed, "uploads/user/dave/").values(), key=len)
    assert landed == [payload(20000, 6), payload(12000000, 7)]
    assert open_uploads(weed, "uploads/user/dave/") == []
    context.close()


def test_without_the_cookie_or_with_a_forged_header_nothing_is_signed(gateway) -> None:
    origin, direct = gateway
    assert requests.post(f"{origin}/signer/s3/multipart", json={"filename": "a.png", "type": "image/png"},
                         timeout=10).status_code == 401
    forged = requests.post(f"{direct}/s3/multipart", json={"filename": "a.png", "type": "image/png"},
                           headers={"X-Auth-User": "dave"}, timeout=10)
    assert forged.status_code == 401 and re.search("unauthorized", forged.json()["code"])
    good = requests.get(f"{origin}/signer/v1/whoami", cookies={"session": SESSION}, timeout=10)
    assert good.json() == {"identity": "dave", "key_prefix": "uploads/user/dave/"}
    refused = requests.post(f"{origin}/signer/s3/multipart", json={"filename": "a.html", "type": "text/html"},
                            cookies={"session": SESSION}, timeout=10)
    assert refused.status_code == 403 and "'text/html' is not allowed" in refused.reason  # what Uppy shows
