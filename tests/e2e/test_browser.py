"""Fine Uploader 5.16.2 (S3 build, signature version 4) in headless Chromium, configured with the
docs/fineuploader.md's snippet byte for byte, uploading to SeaweedFS (which checks signatures and POST
conditions) through the running service: simple and chunked uploads with and without a size
limit, an over-size simple upload refused by the store, success and delete endpoints, refusals,
and a wrong secret (which must make the browser test fail)."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from signer.service.storage import list_objects
from tests.conftest import ACCESS_KEY, ALICE_TOKEN
from tests.e2e.conftest import FINE_UPLOADER, require_node_peers, service, virtual_hosted
from tests.seaweedfs import SeaweedFS
from tests.servers import ROOT, free_port, serving

ARTIFACTS = ROOT / ".ci-artifacts"
MiB = 1024 * 1024
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
FINAL = ("upload successful", "upload failed", "rejected", "canceled")


def readme_snippet() -> str:
    """docs/fineuploader.md's configuration, exactly as a reader copies it."""
    section = (ROOT / "docs" / "fineuploader.md").read_text(encoding="utf-8")
    match = re.search(r"```js\n(.*?)```", section, re.S)
    assert match, "docs/fineuploader.md: no js block"
    return match.group(1)


# The page: Fine Uploader's default template, the names docs/fineuploader.md says are yours (from the
# query string), then its snippet unchanged.
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Fine Uploader test page</title>
<link href="/fu/fine-uploader-new.min.css" rel="stylesheet"></head><body>
%(template)s
<div id="uploader"></div>
<script src="/fu/s3.fine-uploader.min.js"></script>
<script>
const settings = JSON.parse(new URLSearchParams(location.search).get("settings"));
const bucket = settings.bucket, bucketUrl = settings.bucketUrl, accessKey = settings.accessKey, region = settings.region,
      signerUrl = settings.signerUrl, token = settings.token, keyPrefix = settings.keyPrefix;
</script>
<script>
%(snippet)s</script></body></html>"""


class PageHandler(SimpleHTTPRequestHandler):
    """The test page at /, Fine Uploader's built files under /fu/."""

    def do_GET(self) -> None:
        if self.path.split("?")[0] in ("/", "/index.html"):
            template = (FINE_UPLOADER / "templates" / "default.html").read_text(encoding="utf-8")
            body = (PAGE % {"template": template, "snippet": readme_snippet()}).encode()
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
    with serving(ThreadingHTTPServer(("127.0.0.1", free_port()), partial(PageHandler, directory=str(FINE_UPLOADER)))) as url:
        yield url


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


@contextmanager
def fine_uploader_service(weed: SeaweedFS, page_origin: str, logs: Path, **overrides: str | None) -> Iterator[str]:
    with service(logs, SIGNER_CORS_ORIGINS=page_origin, SIGNER_ALLOWED_CONTENT_TYPES=None,
                 **virtual_hosted(weed), **overrides) as url:
        yield url


@pytest.fixture(scope="module")
def limited_service(weed, page_origin, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The service with SIGNER_MAX_SIZE = 16 MiB, and DELETE allowed (for deleteFile)."""
    logs = tmp_path_factory.mktemp("browser-service")
    with fine_uploader_service(weed, page_origin, logs, SIGNER_MAX_SIZE=str(16 * MiB),
                               SIGNER_ALLOWED_METHODS="GET,PUT,HEAD,DELETE") as url:
        yield url, logs


def keys_under(weed: SeaweedFS, prefix: str) -> list[str]:
    return [item["key"] for item in list_objects(weed.credentials, _bucket(weed), prefix)]


def _bucket(weed: SeaweedFS):
    from signer import Bucket

    return Bucket(weed.bucket, endpoint_url=weed.path_endpoint)


def upload(browser, page_origin: str, service_url: str, weed: SeaweedFS, files: list[tuple[str, bytes]], *,
           key_prefix: str = "uploads/alice/", timeout_ms: int = 120000):
    """Open the page, choose ``files`` in Fine Uploader's own file input, wait until each is done.
    The page keeps every S3 answer it saw in ``page.s3_answers``."""
    page = browser.new_page()
    captured: list[dict] = []
    answers: list[dict] = []
    page.on("request", lambda request: captured.append({"url": request.url, "body": request.post_data})
            if "/s3/signature" in request.url else None)
    page.on("response", lambda response: answers.append({"url": response.url, "status": response.status,
                                                         "body": _text(response)})
            if ".s3.localhost:" in response.url and response.request.method == "POST" else None)
    page.captured = captured  # type: ignore[attr-defined]
    page.s3_answers = answers  # type: ignore[attr-defined]
    settings = {"bucket": weed.bucket, "bucketUrl": f"http://{weed.bucket}.s3.localhost:{weed.port}", "accessKey": ACCESS_KEY,
                "region": "us-east-1", "signerUrl": service_url, "token": ALICE_TOKEN, "keyPrefix": key_prefix}
    page.goto(page_origin + "/?" + urllib.parse.urlencode({"settings": json.dumps(settings)}))
    page.wait_for_selector(".qq-upload-button input[type=file]", state="attached", timeout=30000)
    page.set_input_files(".qq-upload-button input[type=file]", files=[
        {"name": name, "mimeType": "application/octet-stream", "buffer": data} for name, data in files
    ])
    page.wait_for_function(
        f"uploader.getUploads().length >= {len(files)} && "
        f"uploader.getUploads().every(u => {list(FINAL)!r}.includes(u.status))", timeout=timeout_ms)
    return page


def _text(response) -> str:
    try:
        return response.text()
    except Exception:  # noqa: BLE001 - the body may be gone when the page moved on (whatever Playwright raises)
        return ""


def results(page) -> dict[str, dict]:
    """name -> {id, status, key} for every file the page was given."""
    uploads = page.evaluate("uploader.getUploads().map(u => ({id: u.id, name: u.name, status: u.status, "
                            "key: uploader.getKey(u.id)}))")
    return {item["name"]: item for item in uploads}


def payload(size: int, seed: int) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


def access_log(logs: Path) -> list[dict]:
    lines = []
    for path in logs.glob("service-*.log"):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return lines


def test_readme_config_simple_and_chunked_under_a_size_limit(browser, page_origin, limited_service, weed) -> None:
    """Issue #15's bar: a 20 KB simple and an 11 MB chunked upload land byte-exact with
    SIGNER_MAX_SIZE set, docs/fineuploader.md's snippet unchanged; then deleteFile removes one."""
    service_url, logs = limited_service
    small, big = payload(20 * 1000, 1), payload(11 * 1000 * 1000, 2)
    page = upload(browser, page_origin, service_url, weed, [("small.bin", small), ("big.bin", big)])
    done = results(page)
    assert {name: item["status"] for name, item in done.items()} == {
        "small.bin": "upload successful", "big.bin": "upload successful"}
    assert weed.get_object(done["small.bin"]["key"]) == small
    assert weed.get_object(done["big.bin"]["key"]) == big

    log = access_log(logs)
    assert sum(1 for line in log if line["path"] == "/s3/success" and line["status"] == "200") >= 2
    # the chunked upload went through initiate, three parts and complete: five header signatures
    assert sum(1 for line in log if line["path"] == "/s3/signature" and line["status"] == "200") >= 6
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fineuploader-signature-requests.json").write_text(json.dumps(
        {"seaweedfs_port": weed.port, "requests": page.captured}, indent=1))

    small_id = done["small.bin"]["id"]
    page.evaluate(f"uploader.deleteFile({small_id})")
    page.wait_for_function(f"uploader.getUploads({{id: {small_id}}}).status === 'deleted'", timeout=30000)
    remaining = keys_under(weed, "uploads/alice/")
    assert done["small.bin"]["key"] not in remaining and done["big.bin"]["key"] in remaining
    page.close()


def test_readme_config_without_a_size_limit(browser, page_origin, weed, tmp_path) -> None:
    with fine_uploader_service(weed, page_origin, tmp_path, SIGNER_MAX_SIZE=None) as service_url:
        small, big = payload(20 * 1000, 3), payload(6 * MiB, 4)
        page = upload(browser, page_origin, service_url, weed, [("small.bin", small), ("big.bin", big)])
        done = results(page)
        assert [item["status"] for item in done.values()] == ["upload successful"] * 2
        assert weed.get_object(done["small.bin"]["key"]) == small
        assert weed.get_object(done["big.bin"]["key"]) == big
        page.close()


def test_over_size_simple_upload_is_refused_by_the_store(browser, page_origin, weed, tmp_path) -> None:
    """The service signs the policy (adding the size range Fine Uploader left out); SeaweedFS,
    not the service, refuses the 2 MiB body under a 1 MiB limit."""
    with fine_uploader_service(weed, page_origin, tmp_path, SIGNER_MAX_SIZE=str(MiB)) as service_url:
        page = upload(browser, page_origin, service_url, weed, [("too-big.bin", payload(2 * MiB, 5))])
        done = results(page)
        assert done["too-big.bin"]["status"] == "upload failed"
        signed = [line for line in access_log(tmp_path) if line["path"] == "/s3/signature" and line["method"] == "POST"]
        assert [line["status"] for line in signed] == ["200"]  # the service said yes ...
        assert [(a["status"], "EntityTooLarge" in a["body"]) for a in page.s3_answers] == [(400, True)]  # ... S3 no
        assert weed.get_object(done["too-big.bin"]["key"]) is None
        page.close()


def test_key_outside_the_prefix_is_refused(browser, page_origin, limited_service, weed) -> None:
    service_url, _ = limited_service
    page = upload(browser, page_origin, service_url, weed,
                  [("small.bin", payload(1000, 6)), ("big.bin", payload(6 * MiB, 7))], key_prefix="uploads/bob/")
    assert [item["status"] for item in results(page).values()] == ["upload failed"] * 2
    assert keys_under(weed, "uploads/bob/") == []
    page.close()


def test_chunked_upload_over_the_limit_is_removed(browser, page_origin, weed, tmp_path) -> None:
    """A chunked upload cannot be bounded by signatures: it lands, and /s3/success deletes it."""
    with fine_uploader_service(weed, page_origin, tmp_path, SIGNER_MAX_SIZE=str(6 * MiB)) as service_url:
        before = set(keys_under(weed, "uploads/alice/"))
        page = upload(browser, page_origin, service_url, weed, [("chunked.bin", payload(7 * MiB, 8))])
        assert results(page)["chunked.bin"]["status"] == "upload failed"
        assert set(keys_under(weed, "uploads/alice/")) == before
        page.close()


def test_wrong_secret_makes_both_uploads_fail(browser, page_origin, weed, tmp_path) -> None:
    """The browser test can fail: signed with the wrong secret, S3 refuses both kinds of upload."""
    with fine_uploader_service(weed, page_origin, tmp_path, AWS_SECRET_ACCESS_KEY="this-is-not-the-secret-key",
                               SIGNER_MAX_SIZE=str(16 * MiB)) as service_url:
        before = set(keys_under(weed, "uploads/alice/"))
        page = upload(browser, page_origin, service_url, weed,
                      [("small.bin", payload(1000, 9)), ("big.bin", payload(6 * MiB, 10))])
        assert [item["status"] for item in results(page).values()] == ["upload failed"] * 2
        assert set(keys_under(weed, "uploads/alice/")) == before
        page.close()


def test_demo_page_uploads_and_lists(browser, weed, tmp_path) -> None:
    """The demo page (Fine Uploader UI) uploads, chunked too, and lists with download links;
    its screenshot is docs/fineuploader.md's (docs/demo.png)."""
    with service(tmp_path, SIGNER_API_TOKENS=None, SIGNER_ALLOW_ANONYMOUS="true", SIGNER_DEMO_PAGE="true",
                 SIGNER_KEY_PREFIX="demo/", SIGNER_ALLOWED_CONTENT_TYPES=None, SIGNER_MAX_SIZE=str(50 * MiB),
                 **virtual_hosted(weed)) as origin:
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        page.goto(origin + "/fine-uploader")
        page.wait_for_selector(".qq-upload-button input[type=file]", state="attached", timeout=30000)
        notes = b"hello from the demo page\n"
        page.set_input_files(".qq-upload-button input[type=file]", files=[
            {"name": "holiday-video.mp4", "mimeType": "video/mp4", "buffer": payload(20 * 1000 * 1000, 11)},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": notes},
        ])
        page.wait_for_function("document.querySelectorAll('.qq-upload-success').length >= 2", timeout=120000)
        page.wait_for_function("document.querySelectorAll('#objects li a').length >= 2", timeout=30000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
        listed = page.inner_text("#objects")
        assert "holiday-video.mp4" in listed and "notes.txt" in listed
        link = page.eval_on_selector("#objects li a[data-name='notes.txt']", "a => a.href")
        assert page.evaluate("url => fetch(url).then(r => r.text())", link) == notes.decode()
        page.close()
