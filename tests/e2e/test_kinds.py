"""Upload kinds against SeaweedFS with three buckets (issue #26): the service under gunicorn with the
avatar/doc file, real uploads, the finish step's content check and its webhook, Uppy (Companion mode)
and Fine Uploader in Chromium with endpoints under /kinds/<name>/, and the audit lines."""

from __future__ import annotations

import http.client
import json
import os
import re
import struct
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import ACCESS_KEY, ALICE_TOKEN, bearer
from tests.e2e.conftest import require_node_peers, service
from tests.seaweedfs import SeaweedFS
from tests.servers import ROOT
from tests.webhook_receiver import Receiver, receiver

AVATARS, DOCS = "avatars", "docs"
WEBHOOK_SECRET = "webhook-secret-for-tests-0123456789abcdef"
KINDS = """
[kinds.avatar]
bucket = "avatars"
key_prefix = "avatars/"
max_size = 20480
content_types = ["image/png", "image/jpeg"]
overwrite = "allow"
check_content = true

[kinds.doc]
bucket = "docs"
key_prefix = "docs/"
max_size = 102400
content_types = ["application/pdf"]
overwrite = "deny"
content_disposition = "attachment"
"""
USER_HEADER = "X-Auth-User"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--no-first-run"]


def png(seed: int = 0) -> bytes:
    """A real 1x1 PNG (the PNG specification's chunks), its pixel from ``seed``."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    pixel = zlib.compress(bytes([0, seed % 256, 0, 0]))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", pixel) + chunk(b"IEND", b""))


def pdf(words: str = "hello") -> bytes:
    return f"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% {words}\ntrailer << /Root 1 0 R >>\n%%EOF\n".encode()


HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"


@pytest.fixture(scope="module")
def hook() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


@pytest.fixture(scope="module")
def kinds_service(weed: SeaweedFS, hook: Receiver, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The service with the avatar/doc file, virtual-hosted (Fine Uploader's chunking needs it), the
    demo page (Uppy), a gateway user header (Uppy's Companion calls carry no token), a webhook."""
    for bucket in (AVATARS, DOCS):
        weed.create_bucket(bucket)
    logs = tmp_path_factory.mktemp("kinds-service")
    config = logs / "kinds.toml"
    config.write_text(KINDS)
    with service(logs, SIGNER_CONFIG=str(config), SIGNER_USER_HEADER=USER_HEADER, SIGNER_DEMO_PAGE="true",
                 SIGNER_WEBHOOK_URL=hook.url, SIGNER_WEBHOOK_SECRET=WEBHOOK_SECRET, SIGNER_FINISH_INTERVAL="1",
                 SIGNER_CORS_ORIGINS="*", **weed.signer_env("virtual")) as url:
        yield url, logs


def sign(url: str, path: str = "/v1/presign", **body) -> requests.Response:
    return requests.post(url + path, json=body, headers=bearer(), timeout=15)


@dataclass
class Fetched:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def fetch(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Fetched:
    """One request to a store URL; ``<bucket>.s3.localhost`` is loopback (RFC 6761), which the
    resolver here may not know: connect to 127.0.0.1 and send the URL's Host."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=15)
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body or None,
                           headers={"Host": parts.netloc, **(headers or {})})
        answer = connection.getresponse()
        return Fetched(answer.status, dict(answer.getheaders()), answer.read())
    finally:
        connection.close()


def put(answer: dict, data: bytes) -> Fetched:
    return fetch("PUT", answer["url"], data, answer["headers"])


def stored(weed: SeaweedFS, bucket: str, key: str) -> bytes | None:
    return SeaweedFS(weed.port, bucket, weed.credentials).get_object(key)


def audit_lines(logs: Path) -> list[dict]:
    lines = []
    for path in logs.glob("service-*.log"):
        lines += [json.loads(line[len("audit "):]) for line in path.read_text().splitlines()
                  if line.startswith("audit {")]
    return lines


def events_for(hook: Receiver, key: str, timeout: float = 40.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [d.event for d in hook.deliveries if d.event.get("key") == key]
        if found:
            return found
        time.sleep(0.2)
    return []


def test_each_kind_refuses_the_others_types_and_sizes_before_signing(kinds_service) -> None:
    url, _ = kinds_service
    refused = [
        sign(url, method="PUT", key="avatars/alice/a.pdf", content_type="application/pdf", content_length=10, kind="avatar"),
        sign(url, method="PUT", key="avatars/alice/a.png", content_type="image/png", content_length=20481, kind="avatar"),
        sign(url, "/kinds/doc/v1/presign", method="PUT", key="docs/alice/a.png", content_type="image/png",
             content_length=10),
        sign(url, method="PUT", key="docs/alice/a.pdf", content_type="application/pdf", content_length=102401,
             kind="doc"),
    ]
    assert [(answer.status_code, answer.json()["code"]) for answer in refused] == [
        (403, "content_type_not_allowed"), (403, "too_large"), (403, "content_type_not_allowed"), (403, "too_large")]
    unknown = sign(url, method="GET", key="x/alice/a", kind="videos")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_kind" and "videos" in unknown.json()["error"]


def test_urls_name_the_kinds_bucket_avatars_replace_and_docs_get_412(kinds_service, weed) -> None:
    url, _ = kinds_service
    first, second = png(1), png(2)
    for data in (first, second):
        answer = sign(url, method="PUT", key="avatars/alice/me.png", content_type="image/png",
                      content_length=len(data), kind="avatar").json()
        assert answer["bucket"] == AVATARS and answer["url"].startswith(f"http://{AVATARS}.s3.localhost:")
        assert put(answer, data).status_code == 200
    assert stored(weed, AVATARS, "avatars/alice/me.png") == second  # overwrite = "allow": replaced

    document = pdf("first")
    answers = [sign(url, "/kinds/doc/v1/presign", method="PUT", key="docs/alice/report.pdf",
                    content_type="application/pdf", content_length=len(document)).json() for _ in range(2)]
    assert answers[0]["bucket"] == DOCS and answers[0]["url"].startswith(f"http://{DOCS}.s3.localhost:")
    assert put(answers[0], document).status_code == 200
    again = put(answers[1], pdf("other"))
    assert again.status_code == 412, again.text  # overwrite = "deny": the store refuses the second
    assert stored(weed, DOCS, "docs/alice/report.pdf") == document
    assert stored(weed, "uploads-bucket", "docs/alice/report.pdf") is None


def test_a_doc_get_url_downloads_as_an_attachment(kinds_service) -> None:
    url, _ = kinds_service
    document = pdf("attachment")
    answer = sign(url, method="PUT", key="docs/alice/Q4 report.pdf", content_type="application/pdf",
                  content_length=len(document), kind="doc").json()
    assert put(answer, document).status_code == 200
    link = sign(url, method="GET", key="docs/alice/Q4 report.pdf", kind="doc").json()["url"]
    fetched = fetch("GET", link)
    assert fetched.status_code == 200 and fetched.content == document
    assert fetched.headers["Content-Disposition"].startswith('attachment; filename="Q4_report.pdf"')
    avatar = sign(url, method="GET", key="avatars/alice/me.png", kind="avatar").json()["url"]
    assert "Content-Disposition" not in fetch("GET", avatar).headers


def test_html_declared_png_is_deleted_with_upload_rejected_and_a_real_png_stays(kinds_service, weed, hook) -> None:
    url, _ = kinds_service
    keys = {"avatars/alice/evil.png": HTML, "avatars/alice/good.png": png(7)}
    for key, data in keys.items():
        answer = sign(url, method="PUT", key=key, content_type="image/png", content_length=len(data),
                      kind="avatar").json()
        assert put(answer, data).status_code == 200
    evil = events_for(hook, "avatars/alice/evil.png")
    good = events_for(hook, "avatars/alice/good.png")
    assert [event["type"] for event in evil] == ["upload.rejected"], evil
    assert evil[0]["reason"]["code"] == "content_mismatch"
    assert "text/html" in evil[0]["reason"]["message"] and "image/png" in evil[0]["reason"]["message"]
    assert [event["type"] for event in good] == ["upload.verified"], good
    assert stored(weed, AVATARS, "avatars/alice/evil.png") is None
    assert stored(weed, AVATARS, "avatars/alice/good.png") == keys["avatars/alice/good.png"]


def test_sign_request_and_post_policy_under_a_kind(kinds_service, weed) -> None:
    url, _ = kinds_service
    form = sign(url, "/kinds/doc/v1/sign-request", method="PUT", key="a.pdf", contentType="application/pdf").json()
    document = pdf("form")
    prepared = requests.Request("POST", form["url"], data=form["fields"],
                                files={"file": ("a.pdf", document, "application/pdf")}).prepare()
    assert isinstance(prepared.body, bytes)
    posted = fetch("POST", form["url"], prepared.body, {"Content-Type": prepared.headers["Content-Type"]})
    assert posted.status_code in (200, 204), posted.text
    assert form["key"].startswith("docs/alice/") and stored(weed, DOCS, form["key"]) == document
    policy = sign(url, "/v1/post-policy", filename="b.pdf", content_type="application/pdf", kind="doc").json()
    assert policy["bucket"] == DOCS and policy["key"].startswith("docs/alice/")


# --- browsers -------------------------------------------------------------------------------


def require(condition: bool, message: str) -> None:
    if not condition:
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    require(os.path.exists(CHROMIUM), "Chromium is not installed; on Debian: apt-get install chromium")
    require((ROOT / "node_modules/.uppy/uppy.min.mjs").is_file(), "Uppy is not installed: run npm ci")
    require_node_peers()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed: pip install -r requirements-test.txt")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


UPPY_JS = """async ({endpoint, name, type, data}) => {
  const { Uppy, AwsS3 } = await import("/vendor/uppy/uppy.min.mjs");
  const uppy = new Uppy().use(AwsS3, {companionEndpoint: endpoint, shouldUseMultipart: false});
  uppy.addFile({name, type, data: new Blob([new Uint8Array(data)], {type})});
  const result = await uppy.upload();
  return {successful: result.successful.map((f) => f.s3Multipart ? f.s3Multipart.key : (f.response.body.key
            || decodeURIComponent(new URL(f.response.uploadURL).pathname.slice(1)))),
          failed: result.failed.map((f) => String(f.error))};
}"""


def test_uppy_companion_under_kinds_avatar_lands_a_png_and_is_refused_a_pdf(browser, kinds_service, weed) -> None:
    url, logs = kinds_service
    page = browser.new_page()
    page.route(re.compile("^" + re.escape(url) + "/.*"),
               lambda route: route.continue_(headers={**route.request.headers, USER_HEADER.lower(): "uppy-user"}))
    page.goto(url + "/")
    image = png(9)
    landed = page.evaluate(UPPY_JS, {"endpoint": url + "/kinds/avatar", "name": "me.png", "type": "image/png",
                                     "data": list(image)})
    assert landed["failed"] == [] and len(landed["successful"]) == 1, landed
    listing = SeaweedFS(weed.port, AVATARS, weed.credentials).request("GET", "", "list-type=2&prefix=avatars/user/uppy-user/")
    keys = re.findall(r"<Key>([^<]+)</Key>", listing[2].decode())
    assert len(keys) == 1 and stored(weed, AVATARS, keys[0]) == image
    refused = page.evaluate(UPPY_JS, {"endpoint": url + "/kinds/avatar", "name": "doc.pdf", "type": "application/pdf",
                                      "data": list(pdf("uppy"))})
    assert refused["successful"] == [] and len(refused["failed"]) == 1, refused
    page.close()


def test_fine_uploader_with_kinds_doc_endpoints_lands_a_pdf(browser, kinds_service, weed) -> None:
    from tests.e2e.test_browser import results, serve_test_page

    url, _ = kinds_service
    document = pdf("fine uploader")
    with serve_test_page() as origin:
        page = browser.new_page()
        settings = {"bucket": DOCS, "bucketUrl": f"http://{DOCS}.s3.localhost:{weed.port}", "accessKey": ACCESS_KEY,
                    "region": "us-east-1", "signerUrl": url + "/kinds/doc", "token": ALICE_TOKEN,
                    "keyPrefix": "docs/alice/"}
        page.goto(origin + "/?" + urllib.parse.urlencode({"settings": json.dumps(settings)}))
        page.wait_for_selector(".qq-upload-button input[type=file]", state="attached", timeout=30000)
        page.set_input_files(".qq-upload-button input[type=file]", files=[
            {"name": "report.pdf", "mimeType": "application/pdf", "buffer": document}])
        page.wait_for_function("uploader.getUploads().length >= 1 && ['upload successful', 'upload failed']"
                               ".includes(uploader.getUploads()[0].status)", timeout=60000)
        done = results(page)
        page.close()
    assert done["report.pdf"]["status"] == "upload successful", done
    key = done["report.pdf"]["key"]
    assert key.startswith("docs/alice/") and stored(weed, DOCS, key) == document


def test_an_audit_line_for_every_protocol_without_secrets(kinds_service) -> None:
    """Runs after the tests above (file order): every protocol has granted something by now."""
    url, logs = kinds_service
    sign(url, method="GET", key="docs/alice/report.pdf", kind="doc")
    deadline = time.monotonic() + 10  # a worker writes its audit lines within 0.2 s (grants.AUDIT_FLUSH)
    while not any(line["method"] == "GET" and line["kind"] == "doc" for line in audit_lines(logs)):
        assert time.monotonic() < deadline, "the GET's audit line never reached the log"
        time.sleep(0.1)
    lines = audit_lines(logs)
    protocols = {line["protocol"] for line in lines}
    assert {"presign", "post-policy", "sign-request", "companion"} <= protocols, protocols
    if any(line["protocol"] == "fine-uploader" for line in lines) is False:
        pytest.fail("no Fine Uploader audit line: did the browser test run?")
    for line in lines:
        assert set(line) == {"event", "identity", "via", "kind", "bucket", "key", "method", "expires_at", "protocol"}
        assert "Signature" not in json.dumps(line) and ALICE_TOKEN not in json.dumps(line)
    assert {line["bucket"] for line in lines if line["kind"] == "doc"} == {DOCS}
    assert {line["bucket"] for line in lines if line["kind"] == "avatar"} == {AVATARS}


def test_doctor_checks_every_kinds_bucket(weed, tmp_path) -> None:
    from signer.service.config import load_config
    from signer.service.doctor import healthy, report, run_doctor
    from tests.conftest import env_with

    for bucket in (AVATARS, DOCS):
        weed.create_bucket(bucket)
    config = tmp_path / "kinds.toml"
    config.write_text(KINDS.replace('bucket = "docs"', 'bucket = "no-such-docs-bucket"'))
    findings = run_doctor(load_config(env_with(SIGNER_CONFIG=str(config), **weed.signer_env("path"))))
    checks = {finding.check: finding for finding in findings}
    assert checks["bucket"].ok and checks["avatar: bucket"].ok and checks["avatar: cleanup"].ok, report(findings)
    assert checks["doc: bucket"].ok is False and "no-such-docs-bucket" in checks["doc: bucket"].message
    assert not healthy(findings)
