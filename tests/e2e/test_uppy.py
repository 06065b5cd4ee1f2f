"""Uppy 6 (@uppy/core, @uppy/dashboard, @uppy/aws-s3 from npm) in headless Chromium, uploading
to SeaweedFS (which verifies every signature) through the running service: Companion mode with
no client code but ``companionEndpoint``, and the ``signRequest`` mode. Uppy's Companion calls
carry no custom headers, so identity comes as a trusted gateway would give it: a route in the
browser adds ``X-Auth-User`` to the service's requests only (the service trusts it from
127.0.0.1); each test uses its own user, hence its own prefix."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
import requests

from signer import Bucket
from signer.service.storage import UploadNotFound, list_parts
from tests.e2e.conftest import service
from tests.servers import ROOT

MiB = 1024 * 1024
ARTIFACTS = ROOT / ".ci-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--no-first-run"]
MAX_SIZE = 12 * MiB + MiB // 2  # 12.5 MiB: 12 MB fits, a 14 MiB upload of 3 parts does not
USER_HEADER = "X-Auth-User"

UPLOAD_JS = """async ({mode, name, type, size, seed, action}) => {
  const { Uppy, AwsS3 } = await import("/vendor/uppy/uppy.min.mjs");
  const signRequest = async (request) => {
    const answer = await fetch("/v1/sign-request", {method: "POST", headers: {"Content-Type": "application/json"},
                                                    body: JSON.stringify(request)});
    if (!answer.ok) throw new Error((await answer.json()).error);
    return answer.json();
  };
  const uppy = new Uppy().use(AwsS3, {
    ...(mode === "companion" ? {companionEndpoint: location.origin} : {signRequest}),
    shouldUseMultipart: (file) => file.size > 5 * 1024 * 1024,
  });
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) % 251;
  const id = uppy.addFile({name, type, data: new Blob([bytes], {type})});
  let acted = false;
  const events = [];
  uppy.on("upload-progress", (file, progress) => {
    if (acted || !action || progress.bytesUploaded < 5.5 * 1024 * 1024) return;
    acted = true;
    if (action === "pause") {
      uppy.pauseResume(id); events.push("paused");
      setTimeout(() => { events.push("resumed"); uppy.pauseResume(id); }, 1500);
    } else if (action === "cancel") {
      events.push("cancelled"); uppy.removeFile(id);
    }
  });
  const upload = uppy.upload();
  if (action === "cancel") {
    await new Promise((resolve) => uppy.on("file-removed", resolve));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return {events, successful: 0, failed: []};
  }
  const result = await upload;
  return {events, successful: result.successful.length, failed: result.failed.map((f) => String(f.error))};
}"""


def payload(size: int, seed: int) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


@pytest.fixture(scope="module")
def store(weed):
    """The session's SeaweedFS (tests/e2e/conftest.py); every test here writes under its own user."""
    return weed


@pytest.fixture(scope="module")
def origin(store, tmp_path_factory) -> Iterator[str]:
    """The service with its demo page (Uppy at /), trusting X-Auth-User from 127.0.0.1."""
    logs = tmp_path_factory.mktemp("uppy-service")
    with service(logs, SIGNER_API_TOKENS=None, SIGNER_USER_HEADER=USER_HEADER, SIGNER_DEMO_PAGE="true",
                 SIGNER_MAX_SIZE=str(MAX_SIZE), SIGNER_ALLOWED_METHODS=None,  # the default: GET,PUT,HEAD
                 **store.signer_env("path")) as url:
        yield url


def require(condition: bool, message: str) -> None:
    """Skip on a developer machine without the peer, fail under CI=true."""
    if not condition:
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    require(os.path.exists(CHROMIUM), "Chromium is not installed; on Debian: apt-get install chromium")
    require((ROOT / "node_modules/.uppy/uppy.min.mjs").is_file(), "Uppy is not installed: run npm ci")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed: pip install -r requirements-test.txt")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def open_page(browser, origin: str, user: str, requests_seen: list[str] | None = None):
    """The demo page, with the gateway's user header added to the service's requests only."""
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.route(re.compile("^" + re.escape(origin) + "/.*"),
               lambda route: route.continue_(headers={**route.request.headers, USER_HEADER.lower(): user}))
    if requests_seen is not None:
        page.on("request", lambda request: requests_seen.append(f"{request.method} {request.url}"))
    page.goto(origin + "/")
    page.wait_for_function("window.uppy !== undefined", timeout=30000)
    return page


def objects(store, prefix: str) -> dict[str, bytes]:
    status, _, body = store.request("GET", "", f"list-type=2&prefix={prefix}")
    assert status == 200
    keys = re.findall(r"<Key>([^<]+)</Key>", body.decode())
    return {key: store.get_object(key) for key in keys}


def open_uploads(store, prefix: str) -> list[str]:
    status, _, body = store.request("GET", "", f"prefix={prefix}&uploads=")
    assert status == 200, body
    return re.findall(r"<UploadId>([^<]+)</UploadId>", body.decode())


def upload(page, **options) -> dict:
    defaults = {"mode": "companion", "name": "photo.png", "type": "image/png", "seed": 1, "action": None}
    return page.evaluate(UPLOAD_JS, {**defaults, **options})


@pytest.mark.parametrize("mode", ["companion", "sign-request"])
def test_small_and_multipart_uploads_land_byte_exact(browser, origin, store, mode) -> None:
    user = f"u-{mode}"
    page = open_page(browser, origin, user)
    for size, seed in ((20 * 1000, 3), (12 * 1000 * 1000, 5)):
        result = upload(page, mode=mode, size=size, seed=seed)
        assert result == {"events": [], "successful": 1, "failed": []}, result
    landed = sorted(objects(store, f"uploads/user/{user}/").values(), key=len)
    assert [len(body) for body in landed] == [20 * 1000, 12 * 1000 * 1000]
    assert landed == [payload(20 * 1000, 3), payload(12 * 1000 * 1000, 5)]
    assert open_uploads(store, f"uploads/user/{user}/") == []
    page.close()


def test_dashboard_page_uploads_with_companion_endpoint_only(browser, origin, store) -> None:
    """The demo page's own Uppy (Dashboard, Companion mode): a file added through the
    Dashboard's file input lands; its screenshot is the README's (docs/demo-uppy.png)."""
    page = open_page(browser, origin, "u-dashboard")
    page.set_input_files(".uppy-Dashboard-input", files=[
        {"name": "holiday-photo.png", "mimeType": "image/png", "buffer": payload(300 * 1024, 8)}])
    page.click(".uppy-StatusBar-actionBtn--upload")
    page.wait_for_function("window.uppy.getFiles().every((f) => f.progress.uploadComplete)", timeout=60000)
    page.wait_for_function("document.querySelectorAll('#objects li').length >= 1", timeout=30000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-uppy.png"), full_page=True)
    assert list(objects(store, "uploads/user/u-dashboard/").values()) == [payload(300 * 1024, 8)]
    page.close()


def test_demo_page_says_why_and_lists_names_with_links(browser, origin, store) -> None:
    """#29 item 7, the demo page's own Dashboard: an empty list says so; the limit is shown one way
    (the page, the Dashboard's note and the over-size message agree); a refused type shows the
    service's own message and leaves nothing to Retry; an upload is listed by the name it was given,
    linked to a presigned GET that answers its bytes."""
    page = open_page(browser, origin, "u-demo")
    page.wait_for_function("!document.getElementById('empty').hidden", timeout=30000)
    assert page.locator("#objects li").count() == 0
    limit = "12.5 MiB (13107200 bytes)"
    assert page.inner_text("#limit") == limit and f"Largest file: {limit}" in page.inner_text(".uppy-Dashboard-note")

    page.set_input_files(".uppy-Dashboard-input", files=[{"name": "page.html", "mimeType": "text/html",
                                                          "buffer": b"<p>not a picture</p>"}])
    page.click(".uppy-StatusBar-actionBtn--upload")
    page.wait_for_function("document.querySelectorAll('#refused li').length === 1", timeout=30000)
    refusal = page.inner_text("#refused li")
    assert refusal.startswith("page.html was not uploaded: content type 'text/html' is not allowed"), refusal
    assert "allowed types are image/*" in refusal and "Retry" not in refusal, refusal
    page.wait_for_function("window.uppy.getFiles().length === 0", timeout=10000)  # nothing left to retry
    assert page.locator(".uppy-StatusBar-actionBtn--retry").count() == 0
    assert "Upload failed" not in page.inner_text("#uppy")

    page.set_input_files(".uppy-Dashboard-input", files=[{"name": "huge.png", "mimeType": "image/png",
                                                          "buffer": bytes(MAX_SIZE + 1)}])
    page.wait_for_function("document.querySelectorAll('#refused li').length === 2", timeout=30000)
    assert page.locator("#refused li").nth(1).inner_text() == f"huge.png is larger than the largest file allowed, {limit}"

    page.set_input_files(".uppy-Dashboard-input", files=[{"name": "holiday photo.png", "mimeType": "image/png",
                                                          "buffer": payload(2048, 6)}])
    page.click(".uppy-StatusBar-actionBtn--upload")
    page.wait_for_function("document.querySelectorAll('#objects li a').length === 1", timeout=60000)
    link = page.locator("#objects li a")
    assert link.inner_text() == "holiday photo.png" and page.is_hidden("#empty")
    assert requests.get(link.get_attribute("href"), timeout=10).content == payload(2048, 6)
    assert list(objects(store, "uploads/user/u-demo/").values()) == [payload(2048, 6)]  # the refused ones left nothing
    page.close()


def test_pause_then_resume_continues_from_the_listed_parts(browser, origin, store) -> None:
    seen: list[str] = []
    page = open_page(browser, origin, "u-pause", seen)
    result = upload(page, size=12 * 1000 * 1000, seed=9, action="pause")
    assert result == {"events": ["paused", "resumed"], "successful": 1, "failed": []}, result
    assert any(re.match(r"GET .*/s3/multipart/[^/?]+\?key=", line) for line in seen), "no list-parts on resume"
    part_puts = [line for line in seen if line.startswith("PUT ") and "partNumber=1&" in line]
    assert len(part_puts) == 1, part_puts  # part 1 was listed, not sent again
    assert list(objects(store, "uploads/user/u-pause/").values()) == [payload(12 * 1000 * 1000, 9)]
    page.close()


def test_cancel_with_the_default_methods_aborts_the_upload(browser, origin, store) -> None:
    """SIGNER_ALLOWED_METHODS is the default (no DELETE): Uppy's cancel, after the first part,
    reaches the service, which aborts; our own signed ListParts then says the upload is gone."""
    answers: list[tuple[str, str, int]] = []
    created: list[dict] = []
    page = open_page(browser, origin, "u-cancel")
    page.on("response", lambda response: answers.append((response.request.method, response.url, response.status)))
    page.on("response", lambda response: created.append(response.json()) if (
        response.request.method == "POST" and response.url == f"{origin}/s3/multipart") else None)
    result = upload(page, size=12 * 1000 * 1000, seed=2, action="cancel")
    assert result["events"] == ["cancelled"], result
    assert len(created) == 1, created
    key, upload_id = created[0]["key"], created[0]["uploadId"].rpartition(".")[0]  # the store's id, seal removed
    part_puts = [status for method, url, status in answers if method == "PUT" and "partNumber=1&" in url]
    assert part_puts == [200], answers  # cancelled mid-upload, after a part had landed
    aborts = [status for method, url, status in answers if method == "DELETE" and "/s3/multipart/" in url]
    assert aborts == [200], answers
    bucket = Bucket(store.bucket, store.region, store.path_endpoint, "path")
    with pytest.raises(UploadNotFound):
        list_parts(store.credentials, bucket, key, upload_id)
    assert open_uploads(store, "uploads/user/u-cancel/") == []
    assert objects(store, "uploads/user/u-cancel/") == {}
    page.close()


def test_over_size_multipart_is_refused_at_complete_and_leaves_nothing(browser, origin, store) -> None:
    page = open_page(browser, origin, "u-big")
    result = upload(page, size=14 * MiB, seed=4)
    assert result["successful"] == 0 and len(result["failed"]) == 1
    assert "above the maximum" in result["failed"][0] and "aborted" in result["failed"][0], result
    assert open_uploads(store, "uploads/user/u-big/") == [] and objects(store, "uploads/user/u-big/") == {}
    page.close()


def test_disallowed_type_is_refused_at_create(browser, origin, store) -> None:
    page = open_page(browser, origin, "u-type")
    for size in (20 * 1000, 6 * MiB):
        result = upload(page, size=size, name="page.html", type="text/html")
        assert result["successful"] == 0 and "text/html" in result["failed"][0] and "not allowed" in result["failed"][0], result
    assert open_uploads(store, "uploads/user/u-type/") == [] and objects(store, "uploads/user/u-type/") == {}
    page.close()


def test_another_caller_cannot_complete_or_abort(origin, store) -> None:
    alice, bob = {USER_HEADER: "u-alice"}, {USER_HEADER: "u-bob"}
    created = requests.post(f"{origin}/s3/multipart", json={"filename": "a.png", "type": "image/png"}, headers=alice,
                            timeout=10).json()
    url = requests.get(f"{origin}/s3/multipart/{created['uploadId']}/1", params={"key": created["key"]},
                       headers=alice, timeout=10).json()["url"]
    etag = requests.put(url, data=b"x" * 1000, timeout=10).headers["ETag"]
    body = {"parts": [{"PartNumber": 1, "ETag": etag}]}
    for key in (created["key"], "uploads/user/u-bob/a.png"):
        params = {"key": key}
        completed = requests.post(f"{origin}/s3/multipart/{created['uploadId']}/complete", params=params, json=body,
                                  headers=bob, timeout=10)
        aborted = requests.delete(f"{origin}/s3/multipart/{created['uploadId']}", params=params, headers=bob, timeout=10)
        assert (completed.status_code, aborted.status_code) in ((403, 403), (404, 404)), (completed.text, aborted.text)
    assert len(open_uploads(store, "uploads/user/u-alice/")) == 1 and objects(store, "uploads/user/u-alice/") == {}
    done = requests.post(f"{origin}/s3/multipart/{created['uploadId']}/complete", params={"key": created["key"]},
                         json=body, headers=alice, timeout=10)
    assert done.status_code == 200 and list(objects(store, "uploads/user/u-alice/").values()) == [b"x" * 1000]
