"""Fine Uploader 5.16.2 (S3 build, signature version 4) in headless Chromium, uploading to a
signature-checking s3rver through the running service: simple and chunked uploads, success
and delete endpoints, refusals, and a wrong secret (which must make the browser test fail)."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from signer import Bucket, Credentials, presign_url
from signer.service.storage import list_objects
from tests.conftest import ACCESS_KEY, ALICE_TOKEN, SECRET_KEY
from tests.e2e.conftest import BUCKET, require_node_peers, service, virtual_hosted
from tests.servers import ROOT, free_port

FINE_UPLOADER = ROOT / "node_modules" / "fine-uploader" / "s3.fine-uploader"
ARTIFACTS = ROOT / ".ci-artifacts"
MiB = 1024 * 1024
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Fine Uploader test page</title></head><body>
<input type="file" id="files" multiple>
<script src="/fu/s3.fine-uploader.core.min.js"></script>
<script>
window.results = []; window.errors = []; window.deletes = []; window.signatureRequests = [];
window.start = function (settings) {
  const auth = {Authorization: "Bearer " + settings.token};
  window.uploader = new qq.s3.FineUploaderBasic({
    request: {endpoint: settings.s3, accessKey: settings.accessKey},
    objectProperties: {bucket: settings.bucket, region: "us-east-1",
                       key: (id) => settings.keyPrefix + window.uploader.getUuid(id) + ".bin"},
    signature: {endpoint: settings.service + "/s3/signature", version: 4, customHeaders: auth},
    uploadSuccess: {endpoint: settings.service + "/s3/success", customHeaders: auth},
    deleteFile: {enabled: true, endpoint: settings.service + "/s3/files", customHeaders: auth},
    chunking: {enabled: true, partSize: 5 * 1024 * 1024},
    validation: {sizeLimit: settings.sizeLimit},
    retry: {enableAuto: false},
    callbacks: {
      onComplete: (id, name, response) => window.results.push(
        {id, name, success: !!(response && response.success), key: window.uploader.getKey(id)}),
      onError: (id, name, reason) => window.errors.push({id, name, reason: String(reason)}),
      onDeleteComplete: (id, xhr, isError) => window.deletes.push({id, isError}),
    },
  });
  document.getElementById("files").onchange = (event) => window.uploader.addFiles(event.target.files);
};
</script></body></html>"""


class PageHandler(SimpleHTTPRequestHandler):
    """The test page at /, Fine Uploader's built files under /fu/."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path in ("/", "/index.html"):
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/fu/"):
            self.path = self.path[len("/fu"):]
            super().do_GET()
            return
        self.send_error(404)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve_test_page() -> Iterator[str]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(PageHandler, directory=str(FINE_UPLOADER)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def chromium_path() -> str:
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(candidate):
            return candidate
    message = "Chromium is not installed; on Debian: apt-get install chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    require_node_peers()
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("playwright is not installed: pip install -r requirements-test.txt")
        pytest.skip("playwright is not installed: pip install -r requirements-test.txt")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    with serve_test_page() as origin:
        yield origin


@pytest.fixture(scope="module")
def fine_uploader_service(s3rver, page_origin, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    logs = tmp_path_factory.mktemp("browser-service")
    with service(logs, SIGNER_MAX_SIZE=str(8 * MiB), SIGNER_CORS_ORIGINS=page_origin,
                 SIGNER_ALLOWED_CONTENT_TYPES="application/octet-stream,image/*", **virtual_hosted(s3rver)) as url:
        yield url, logs


def store(s3rver: int) -> tuple[Credentials, Bucket]:
    return Credentials(ACCESS_KEY, SECRET_KEY), Bucket(BUCKET, endpoint_url=f"http://127.0.0.1:{s3rver}")


def keys_under(s3rver: int, prefix: str) -> list[str]:
    creds, bucket = store(s3rver)
    return [item["key"] for item in list_objects(creds, bucket, prefix)]


def download(s3rver: int, key: str) -> bytes:
    creds, bucket = store(s3rver)
    with urllib.request.urlopen(presign_url(creds, bucket, key).url, timeout=10) as response:
        return response.read()


def upload(browser, page_origin: str, service_url: str, s3rver: int, files: list[tuple[str, bytes]], *,
           key_prefix: str = "uploads/alice/", size_limit: int = 8 * MiB, timeout_ms: int = 90000):
    """Open the page, start Fine Uploader, choose ``files``, wait until each finished."""
    page = browser.new_page()
    captured: list[dict] = []
    page.on("request", lambda request: captured.append({"url": request.url, "body": request.post_data})
            if "/s3/signature" in request.url else None)
    page.captured = captured  # type: ignore[attr-defined]
    page.goto(page_origin + "/")
    page.evaluate("settings => window.start(settings)", {
        "s3": f"http://{BUCKET}.s3.localhost:{s3rver}", "bucket": BUCKET, "accessKey": ACCESS_KEY,
        "service": service_url, "token": ALICE_TOKEN, "keyPrefix": key_prefix, "sizeLimit": size_limit,
    })
    page.set_input_files("#files", files=[
        {"name": name, "mimeType": "application/octet-stream", "buffer": data} for name, data in files
    ])
    page.wait_for_function(f"window.results.length >= {len(files)}", timeout=timeout_ms)
    return page


def payload(size: int, seed: int) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


def access_log(logs: Path) -> list[dict]:
    lines = []
    for path in logs.glob("service-*.log"):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return lines


def test_simple_and_chunked_uploads_succeed_and_delete(browser, page_origin, fine_uploader_service, s3rver) -> None:
    service_url, logs = fine_uploader_service
    small, big = payload(20 * 1024, 1), payload(6 * MiB + 123, 2)
    page = upload(browser, page_origin, service_url, s3rver, [("small.bin", small), ("big.bin", big)])
    results = {r["name"]: r for r in page.evaluate("window.results")}
    assert page.evaluate("window.errors") == []
    assert results["small.bin"]["success"] and results["big.bin"]["success"]
    assert download(s3rver, results["small.bin"]["key"]) == small
    assert download(s3rver, results["big.bin"]["key"]) == big

    log = access_log(logs)
    assert sum(1 for line in log if line["path"] == "/s3/success" and line["status"] == "200") >= 2
    # the chunked upload went through initiate, two parts and complete: four header signatures
    assert sum(1 for line in log if line["path"] == "/s3/signature" and line["status"] == "200") >= 5

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fineuploader-signature-requests.json").write_text(json.dumps(
        {"s3rver_port": s3rver, "requests": page.captured}, indent=1))

    small_id = results["small.bin"]["id"]
    page.evaluate(f"window.uploader.deleteFile({small_id})")
    page.wait_for_function("window.deletes.length >= 1", timeout=30000)
    assert page.evaluate("window.deletes") == [{"id": small_id, "isError": False}]
    remaining = keys_under(s3rver, "uploads/alice/")
    assert results["small.bin"]["key"] not in remaining and results["big.bin"]["key"] in remaining
    page.close()


def test_key_outside_the_prefix_is_refused(browser, page_origin, fine_uploader_service, s3rver) -> None:
    service_url, _ = fine_uploader_service
    page = upload(browser, page_origin, service_url, s3rver,
                  [("small.bin", payload(1000, 3)), ("big.bin", payload(6 * MiB, 4))], key_prefix="uploads/bob/")
    assert not any(result["success"] for result in page.evaluate("window.results"))
    assert len(page.evaluate("window.errors")) >= 2
    assert keys_under(s3rver, "uploads/bob/") == []
    page.close()


def test_files_over_the_size_limit_fail_and_leave_nothing(browser, page_origin, fine_uploader_service, s3rver) -> None:
    """The page believes 100 MiB is fine; the service's limit is 8 MiB. The simple upload's
    policy is refused; the chunked one lands in S3 and /s3/success removes it."""
    service_url, _ = fine_uploader_service
    before = set(keys_under(s3rver, "uploads/alice/"))
    page = upload(browser, page_origin, service_url, s3rver,
                  [("simple.bin", payload(2 * MiB, 5)), ("chunked.bin", payload(9 * MiB, 6))], size_limit=100 * MiB)
    assert not any(result["success"] for result in page.evaluate("window.results"))
    assert len(page.evaluate("window.errors")) >= 2
    assert set(keys_under(s3rver, "uploads/alice/")) == before
    page.close()


def test_wrong_secret_makes_the_chunked_upload_fail(browser, page_origin, s3rver, tmp_path) -> None:
    """The browser test can fail: signed with the wrong secret, S3 refuses the chunked upload."""
    with service(tmp_path, AWS_SECRET_ACCESS_KEY="this-is-not-the-secret-key", SIGNER_MAX_SIZE=str(8 * MiB),
                 SIGNER_CORS_ORIGINS=page_origin, SIGNER_ALLOWED_CONTENT_TYPES="application/octet-stream",
                 **virtual_hosted(s3rver)) as service_url:
        before = set(keys_under(s3rver, "uploads/alice/"))
        page = upload(browser, page_origin, service_url, s3rver, [("big.bin", payload(6 * MiB, 7))])
        assert page.evaluate("window.results")[0]["success"] is False
        assert page.evaluate("window.errors")
        assert set(keys_under(s3rver, "uploads/alice/")) == before
        page.close()


def test_demo_page_uploads_and_lists(browser, s3rver, tmp_path) -> None:
    """The demo page (Fine Uploader UI) works against a real store; its screenshot is the README's."""
    with service(tmp_path, SIGNER_API_TOKENS=None, SIGNER_ALLOW_ANONYMOUS="true", SIGNER_DEMO_PAGE="true",
                 SIGNER_KEY_PREFIX="demo/", SIGNER_ALLOWED_CONTENT_TYPES=None, **virtual_hosted(s3rver)) as origin:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(origin + "/fine-uploader")  # "/" is Uppy's page (tests/e2e/test_uppy.py)
        page.wait_for_selector(".qq-upload-button input[type=file]", state="attached", timeout=30000)
        page.set_input_files(".qq-upload-button input[type=file]", files=[
            {"name": "holiday-photo.png", "mimeType": "image/png", "buffer": payload(300 * 1024, 8)},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello from the demo page\n"},
        ])
        page.wait_for_function("document.querySelectorAll('.qq-upload-success').length >= 2", timeout=60000)
        page.wait_for_function("document.querySelectorAll('#objects li').length >= 2", timeout=30000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
        listed = page.inner_text("#objects")
        assert ".png" in listed and ".txt" in listed
        page.close()
