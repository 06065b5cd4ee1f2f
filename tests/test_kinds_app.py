"""Choosing a kind over HTTP (Flask test client): the body's "kind", /kinds/<name>/ paths for every
protocol, 404 unknown_kind, 403 kind_not_allowed, whoami and the audit line of each grant."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time

from signer.service.config import load_config
from signer.service.web.app import create_app
from tests.conftest import ACCESS_KEY, bearer, env_with
from tests.fineuploader_samples import policy
from tests.test_kinds import AVATAR_AND_DOC

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def kinds_client(tmp_path):
    path = tmp_path / "kinds.toml"
    path.write_text(AVATAR_AND_DOC.replace("check_content = true\n", ""))  # no store here for its markers
    cfg = load_config(env_with(SIGNER_CONFIG=str(path), SIGNER_USER_HEADER="X-User",
                               SIGNER_ENDPOINT_URL="http://127.0.0.1:9"))
    return create_app(cfg).test_client()


def audit_lines(caplog) -> list[dict[str, object]]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "signer.audit"]


def presign(client, path="/v1/presign", **body):
    return client.post(path, json={"method": "PUT", "filename": "a.png", "content_type": "image/png",
                                   "content_length": 100, **body}, headers=bearer())


def test_the_body_or_the_path_chooses_the_kind_and_its_bucket(kinds_client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="signer.audit"):
        default = presign(kinds_client)
        avatar = presign(kinds_client, kind="avatar")
        by_path = presign(kinds_client, "/kinds/avatar/v1/presign")
    assert default.status_code == avatar.status_code == by_path.status_code == 200, avatar.json
    assert default.json["bucket"] == "uploads-bucket" and "/uploads-bucket/uploads/alice/" in default.json["url"]
    for answer in (avatar, by_path):
        assert answer.json["bucket"] == "avatars" and answer.json["key"].startswith("avatars/alice/")
        assert "/avatars/avatars/alice/" in answer.json["url"]
        assert "If-None-Match" not in answer.json["headers"]  # overwrite = "allow"
    lines = audit_lines(caplog)
    assert [line["kind"] for line in lines] == ["default", "avatar", "avatar"]
    assert set(lines[1]) == {"event", "identity", "via", "kind", "bucket", "key", "method", "expires_at", "protocol"}
    assert lines[1]["bucket"] == "avatars" and lines[1]["method"] == "PUT" and lines[1]["protocol"] == "presign"


def test_each_kind_refuses_the_others_types_and_sizes_before_signing(kinds_client) -> None:
    pdf_as_avatar = presign(kinds_client, kind="avatar", filename="a.pdf", content_type="application/pdf")
    big_avatar = presign(kinds_client, kind="avatar", content_length=20481)
    png_as_doc = presign(kinds_client, kind="doc")
    big_doc = presign(kinds_client, kind="doc", filename="a.pdf", content_type="application/pdf",
                      content_length=102401)
    assert pdf_as_avatar.status_code == png_as_doc.status_code == 403
    assert pdf_as_avatar.json["code"] == png_as_doc.json["code"] == "content_type_not_allowed"
    assert big_avatar.json["code"] == big_doc.json["code"] == "too_large"
    doc = presign(kinds_client, kind="doc", filename="a.pdf", content_type="application/pdf", content_length=102400)
    assert doc.status_code == 200 and doc.json["headers"]["If-None-Match"] == "*"  # overwrite = "deny"


def test_unknown_kind_is_404_naming_it_and_a_kind_not_open_is_403(kinds_client) -> None:
    for answer in (presign(kinds_client, kind="videos"), presign(kinds_client, "/kinds/videos/v1/presign"),
                   kinds_client.get("/kinds/videos/s3/params?filename=a.png&type=image/png", headers=bearer())):
        assert answer.status_code == 404
        assert "videos" in answer.get_data(as_text=True)
    assert presign(kinds_client, kind="videos").json["code"] == "unknown_kind"
    gateway = kinds_client.post("/v1/presign", json={"method": "GET", "key": "avatars/user/carol/a.png",
                                                     "kind": "avatar"}, headers={"X-User": "carol"})
    assert gateway.status_code == 403 and gateway.json["code"] == "kind_not_allowed"
    clash = presign(kinds_client, "/kinds/doc/v1/presign", kind="avatar")
    assert clash.status_code == 400


def test_whoami_and_objects_name_the_kinds(kinds_client) -> None:
    mine = kinds_client.get("/kinds/avatar/v1/whoami", headers=bearer()).json
    assert mine == {"identity": "alice", "key_prefix": "avatars/alice/", "kind": "avatar", "bucket": "avatars",
                    "kinds": ["default", "avatar", "doc"]}
    carol = kinds_client.get("/v1/whoami?kind=doc", headers={"X-User": "carol"}).json
    assert carol["kinds"] == ["default", "doc"] and carol["key_prefix"] == "docs/user/carol/"


def test_companion_and_fine_uploader_under_a_kind_path(kinds_client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="signer.audit"):
        params = kinds_client.get("/kinds/avatar/s3/params?filename=cat.png&type=image/png", headers=bearer())
        refused = kinds_client.get("/kinds/avatar/s3/params?filename=a.pdf&type=application/pdf", headers=bearer())
        with freeze_time(NOW):
            document = policy(NOW, access_key=ACCESS_KEY, bucket="docs", key="docs/alice/a.pdf",
                              content_type="application/pdf", size=(0, 1000))
            fine = kinds_client.post("/kinds/doc/s3/signature?v4=true", json=document, headers=bearer())
            wrong_bucket = kinds_client.post("/kinds/doc/s3/signature?v4=true", json=policy(
                NOW, access_key=ACCESS_KEY, bucket="avatars", key="docs/alice/a.pdf", content_type="application/pdf",
                size=(0, 1000)), headers=bearer())
        step = kinds_client.post("/kinds/doc/v1/sign-request", json={"method": "PUT", "key": "a.pdf",
                                                                     "contentType": "application/pdf"},
                                 headers=bearer())
    assert params.status_code == 200 and params.json["key"].startswith("avatars/alice/"), params.json
    assert params.json["url"].endswith("/avatars")
    assert refused.status_code == 403
    assert fine.status_code == 200, fine.json
    assert wrong_bucket.status_code == 400 and wrong_bucket.json["code"] == "bucket_not_allowed"
    assert step.status_code == 200 and step.json["key"].startswith("docs/alice/") and step.json["url"].endswith("/docs")
    protocols = {(line["protocol"], line["kind"]) for line in audit_lines(caplog)}
    assert protocols == {("companion", "avatar"), ("fine-uploader", "doc"), ("sign-request", "doc")}


def test_cli_kind(tmp_path, capsys, monkeypatch) -> None:
    from signer.cli import main

    path = tmp_path / "kinds.toml"
    path.write_text(AVATAR_AND_DOC)
    for name, value in env_with(SIGNER_CONFIG=str(path)).items():
        monkeypatch.setenv(name, value)
    assert main(["presign", "GET", "docs/report.pdf", "--kind", "doc", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["bucket"] == "docs" and "docs.s3.amazonaws.com/docs/report.pdf" in answer["url"]
    assert main(["presign", "GET", "docs/report.pdf", "--kind", "videos"]) == 2
    assert "unknown_kind" in capsys.readouterr().err


def test_a_doc_get_url_signs_an_attachment_with_the_objects_name(kinds_client) -> None:
    from urllib.parse import parse_qs, urlsplit

    doc = kinds_client.post("/v1/presign", json={"method": "GET", "key": "docs/alice/Report Q4 é.pdf", "kind": "doc"},
                            headers=bearer()).json
    query = parse_qs(urlsplit(doc["url"]).query)
    assert query["response-content-disposition"] == [
        "attachment; filename=\"Report_Q4__.pdf\"; filename*=UTF-8''Report%20Q4%20%C3%A9.pdf"]
    assert "X-Amz-Signature" in query
    avatar = kinds_client.post("/v1/presign", json={"method": "GET", "key": "avatars/alice/a.png", "kind": "avatar"},
                               headers=bearer()).json
    assert "response-content-disposition" not in avatar["url"]
