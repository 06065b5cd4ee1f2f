"""Users of the app's own login (issue #27), end to end: a real OIDC provider (oidc-provider-mock)
issues ID tokens; the service (gunicorn, SeaweedFS behind it) takes them; Uppy 6 in Chromium, set up
with docs/jwt.md's snippets as written, sends them, in Companion mode and in signRequest mode, a
fresh token on each call; Fine Uploader with docs/jwt.md's snippet. Then the isolation of an upload
another user started: list, sign part, complete and abort are refused to a second user's token, and
the first user finishes with a new token."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import ThreadingHTTPServer

import pytest
import requests

from tests.conftest import ACCESS_KEY
from tests.e2e.conftest import FINE_UPLOADER, service, virtual_hosted
from tests.e2e.test_browser import PAGE, PageHandler, results
from tests.e2e.test_uppy import browser, objects, open_uploads, payload  # noqa: F401 - fixture
from tests.jwt_issuer import AUDIENCE, oidc_provider, provider_token
from tests.servers import ROOT, free_port, serving

MiB = 1024 * 1024


def js_block(heading: str, language: str = "js") -> str:
    """The first ```js block under ``heading`` in docs/jwt.md, as a reader copies it."""
    text = (ROOT / "docs/jwt.md").read_text(encoding="utf-8").split(heading + "\n", 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", text, re.S)
    assert match, f"docs/jwt.md: no {language} block under {heading}"
    return match.group(1)


# The snippet's imports become the bundle's (Uppy 6 ships no browser bundle: scripts/uppy-entry.mjs);
# getToken hands out the tokens the test got, one per call, in turn; then one file is uploaded.
RUN_SNIPPET = """async ({signerUrl, tokens, size, seed, multipart}) => {
  const { Uppy, AwsS3 } = await import("/vendor/uppy/uppy.min.mjs");
  let calls = 0;
  const getToken = async () => tokens[calls++ % tokens.length];
  /* SNIPPET */
  uppy.getPlugin("AwsS3").setOptions({ shouldUseMultipart: () => multipart });
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) % 251;
  uppy.addFile({ name: "photo.png", type: "image/png", data: new Blob([bytes], { type: "image/png" }) });
  const result = await uppy.upload();
  return { successful: result.successful.length, failed: result.failed.map((f) => String(f.error)), calls };
}"""


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with oidc_provider() as url:
        yield url


@pytest.fixture(scope="module")
def origin(weed, provider, tmp_path_factory) -> Iterator[str]:
    """The service taking the provider's ID tokens only (no API tokens), with the demo page for Uppy's bundle."""
    with service(tmp_path_factory.mktemp("jwt-service"), SIGNER_API_TOKENS=None, SIGNER_JWT_ISSUER=provider,
                 SIGNER_JWT_AUDIENCE=AUDIENCE, SIGNER_DEMO_PAGE="true", SIGNER_MAX_SIZE=str(20 * MiB),
                 **weed.signer_env("path")) as url:
        yield url


def snippet_body(heading: str) -> str:
    return "\n".join(line for line in js_block(heading).splitlines() if not line.startswith("import "))


@pytest.mark.parametrize("heading", ["### Uppy (`@uppy/aws-s3` 6), signRequest mode — recommended",
                                     "### Uppy, Companion mode"], ids=["sign-request", "companion"])
def test_uppy_sends_the_token_and_uploads_land_in_the_users_folder(browser, origin, provider, weed,  # noqa: F811
                                                                   heading) -> None:
    user = "erin" if "signRequest" in heading else "frank"
    tokens = [provider_token(provider, user), provider_token(provider, user)]  # a fresh token mid-upload
    assert tokens[0] != tokens[1]
    page = browser.new_page()
    page.goto(origin + "/")
    for size, seed, multipart in ((20 * 1000, 3, False), (12 * 1000 * 1000, 5, True)):
        result = page.evaluate(RUN_SNIPPET.replace("/* SNIPPET */", snippet_body(heading)),
                               {"signerUrl": origin, "tokens": tokens, "size": size, "seed": seed,
                                "multipart": multipart})
        assert result["successful"] == 1 and result["failed"] == [], result
        assert result["calls"] >= (4 if multipart else 1)  # create, 3 parts, complete: both tokens took turns
    landed = sorted(objects(weed, f"uploads/user/{user}/").values(), key=len)
    assert landed == [payload(20 * 1000, 3), payload(12 * 1000 * 1000, 5)]
    assert open_uploads(weed, f"uploads/user/{user}/") == []
    page.close()


def test_the_demo_page_uploads_as_the_user_whose_token_its_address_carries(browser, origin, provider,  # noqa: F811
                                                                              weed) -> None:
    token = provider_token(provider, "heidi")
    seen: list[tuple[str, str | None]] = []
    page = browser.new_page()
    page.on("request", lambda request: seen.append((request.url, request.headers.get("authorization"))))
    page.goto(f"{origin}/#token={token}")
    page.wait_for_function("window.uppy !== undefined", timeout=30000)
    page.set_input_files(".uppy-Dashboard-input", files=[
        {"name": "holiday.png", "mimeType": "image/png", "buffer": payload(7 * MiB, 8)}])  # multipart
    page.click(".uppy-StatusBar-actionBtn--upload")
    page.wait_for_function("window.uppy.getFiles().every((f) => f.progress.uploadComplete)", timeout=60000)
    page.wait_for_function("document.querySelectorAll('#objects li').length >= 1", timeout=30000)
    assert list(objects(weed, "uploads/user/heidi/").values()) == [payload(7 * MiB, 8)]
    service_calls = [auth for url, auth in seen if re.match(re.escape(origin) + "/(s3|v1)/", url)]
    assert service_calls and all(auth == f"Bearer {token}" for auth in service_calls)
    assert all(auth is None for url, auth in seen if not url.startswith(origin))  # never to the store
    assert all(token not in url for url, _ in seen)  # the fragment never leaves the page
    page.close()


def test_another_users_token_cannot_touch_an_upload_and_a_fresh_token_finishes_it(origin, provider, weed) -> None:
    def call(method: str, path: str, user_token: str, **options):
        return requests.request(method, origin + path, headers={"Authorization": f"Bearer {user_token}"},
                                timeout=30, **options)

    alice, mallory = provider_token(provider, "alice"), provider_token(provider, "mallory")
    created = call("POST", "/s3/multipart", alice, json={"filename": "big.pdf", "type": "application/pdf"}).json()
    key, upload_id = created["key"], urllib.parse.quote(created["uploadId"], safe="")
    assert key.startswith("uploads/user/alice/")
    signed = call("GET", f"/s3/multipart/{upload_id}/1", alice, params={"key": key}).json()
    etag = requests.put(signed["url"], data=b"alice's part", timeout=30).headers["ETag"]
    parts = {"parts": [{"PartNumber": 1, "ETag": etag}]}

    her_folder = key.replace("uploads/user/alice/", "uploads/user/mallory/")  # the same id under mallory's prefix
    for method, path, options in (
            ("GET", f"/s3/multipart/{upload_id}", {}),  # list parts
            ("GET", f"/s3/multipart/{upload_id}/2", {}),  # sign a part
            ("GET", f"/s3/multipart/{upload_id}/batch", {"partNumbers": "2,3"}),
            ("POST", f"/s3/multipart/{upload_id}/complete", None),
            ("DELETE", f"/s3/multipart/{upload_id}", {})):
        for asked, status, code in ((key, 403, "key_not_allowed"), (her_folder, 404, "upload_not_found")):
            answer = call(method, path, mallory, params={"key": asked, **(options or {})},
                          json=parts if options is None else None)
            assert (answer.status_code, answer.json()["code"]) == (status, code), (method, path, answer.text)
    assert len(open_uploads(weed, key)) == 1  # still there, untouched

    fresh = provider_token(provider, "alice")  # the browser's next token: the same user
    assert call("GET", f"/s3/multipart/{upload_id}", fresh, params={"key": key}).json()[0]["ETag"] == etag
    done = call("POST", f"/s3/multipart/{upload_id}/complete", fresh, params={"key": key}, json=parts)
    assert done.status_code == 200, done.text
    assert objects(weed, key) == {key: b"alice's part"}


@contextmanager
def docs_fine_uploader_page() -> Iterator[str]:
    """Fine Uploader's test page (tests/e2e/test_browser.py) with docs/jwt.md's snippet instead of the README's."""

    class Handler(PageHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/":
                template = (FINE_UPLOADER / "templates" / "default.html").read_text(encoding="utf-8")
                body = (PAGE % {"template": template, "snippet": js_block("### Fine Uploader (5.16, S3 build)")})
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), partial(Handler, directory=str(FINE_UPLOADER)))
    with serving(server) as url:
        yield url


def test_fine_uploader_sends_the_token_from_the_docs_snippet(browser, provider, weed, tmp_path) -> None:  # noqa: F811
    with docs_fine_uploader_page() as page_origin, service(
            tmp_path, SIGNER_API_TOKENS=None, SIGNER_JWT_ISSUER=provider, SIGNER_JWT_AUDIENCE=AUDIENCE,
            SIGNER_CORS_ORIGINS=page_origin, SIGNER_ALLOWED_CONTENT_TYPES=None, SIGNER_MAX_SIZE=str(16 * MiB),
            **virtual_hosted(weed)) as signer:
        token = provider_token(provider, "grace")
        prefix = requests.get(f"{signer}/v1/whoami", headers={"Authorization": f"Bearer {token}"},
                              timeout=10).json()["key_prefix"]
        assert prefix == "uploads/user/grace/"
        page = browser.new_page()
        settings = {"bucket": weed.bucket, "bucketUrl": f"http://{weed.bucket}.s3.localhost:{weed.port}",
                    "accessKey": ACCESS_KEY, "region": "us-east-1", "signerUrl": signer, "token": token,
                    "keyPrefix": prefix}
        page.goto(page_origin + "/?" + urllib.parse.urlencode({"settings": json.dumps(settings)}))
        page.wait_for_selector(".qq-upload-button input[type=file]", state="attached", timeout=30000)
        page.set_input_files(".qq-upload-button input[type=file]", files=[
            {"name": "small.bin", "mimeType": "application/octet-stream", "buffer": payload(20 * 1000, 4)},
            {"name": "chunked.bin", "mimeType": "application/octet-stream", "buffer": payload(11 * 1000 * 1000, 6)}])
        page.wait_for_function("uploader.getUploads().length >= 2 && uploader.getUploads().every("
                               "u => ['upload successful', 'upload failed', 'rejected'].includes(u.status))",
                               timeout=120000)
        assert {name: item["status"] for name, item in results(page).items()} == {
            "small.bin": "upload successful", "chunked.bin": "upload successful"}
        landed = sorted(objects(weed, prefix).values(), key=len)
        assert landed == [payload(20 * 1000, 4), payload(11 * 1000 * 1000, 6)]
        page.close()


def test_an_auth0_style_sub_is_a_folder_the_store_takes(origin, provider, weed) -> None:
    """``auth0|…`` and ``:`` are in the identity alphabet: signed (percent-encoded) and stored as they are."""
    token = provider_token(provider, "auth0|64f0c2:x")
    headers = {"Authorization": f"Bearer {token}"}
    signed = requests.post(f"{origin}/v1/presign", headers=headers, timeout=30, json={
        "method": "PUT", "filename": "a.pdf", "content_type": "application/pdf", "content_length": 5}).json()
    assert signed["key"].startswith("uploads/user/auth0|64f0c2:x/"), signed
    put = requests.put(signed["url"], data=b"hello", headers=signed["headers"], timeout=30)
    assert put.status_code == 200, put.text
    created = requests.post(f"{origin}/s3/multipart", headers=headers, timeout=30,
                            json={"filename": "b.pdf", "type": "application/pdf"}).json()
    upload_id = urllib.parse.quote(created["uploadId"], safe="")
    part = requests.get(f"{origin}/s3/multipart/{upload_id}/1", headers=headers, params={"key": created["key"]},
                        timeout=30).json()
    etag = requests.put(part["url"], data=b"world", timeout=30).headers["ETag"]
    done = requests.post(f"{origin}/s3/multipart/{upload_id}/complete", headers=headers, timeout=30,
                         params={"key": created["key"]}, json={"parts": [{"PartNumber": 1, "ETag": etag}]})
    assert done.status_code == 200, done.text
    assert sorted(objects(weed, "uploads/user/auth0|64f0c2:x/").values()) == [b"hello", b"world"]
