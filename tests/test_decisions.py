"""One request plan: the same table of requests through the HTTP API and the CLI must give
the same decisions (what is signed, or which refusal), because both call plan_presign."""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from signer.cli import main as cli_main
from tests.conftest import bearer, env_with

KEY = "uploads/alice/cat.png"

# (JSON body, the same request as CLI arguments)
TABLE: list[tuple[dict[str, Any], list[str]]] = [
    ({"method": "PUT", "key": KEY, "content_type": "image/png", "content_length": 10},
     ["PUT", KEY, "--content-type", "image/png", "--content-length", "10"]),
    ({"method": "PUT", "key": KEY, "content_type": "image/png"},
     ["PUT", KEY, "--content-type", "image/png"]),
    ({"method": "PUT", "key": KEY, "content_length": 10},
     ["PUT", KEY, "--content-length", "10"]),
    ({"method": "PUT", "key": KEY, "content_type": "text/html", "content_length": 10},
     ["PUT", KEY, "--content-type", "text/html", "--content-length", "10"]),
    ({"method": "PUT", "key": KEY, "content_type": "image/png", "content_length": 1000001},
     ["PUT", KEY, "--content-type", "image/png", "--content-length", "1000001"]),
    ({"method": "PUT", "key": "uploads/bob/cat.png", "content_type": "image/png", "content_length": 1},
     ["PUT", "uploads/bob/cat.png", "--content-type", "image/png", "--content-length", "1"]),
    ({"method": "PUT", "key": "uploads/alice/../bob/x.png", "content_type": "image/png", "content_length": 1},
     ["PUT", "uploads/alice/../bob/x.png", "--content-type", "image/png", "--content-length", "1"]),
    ({"method": "PUT", "filename": "cat.PNG", "content_type": "image/png", "content_length": 3},
     ["PUT", "--filename", "cat.PNG", "--content-type", "image/png", "--content-length", "3"]),
    ({"method": "PUT", "key": KEY, "filename": "cat.png", "content_type": "image/png", "content_length": 3},
     ["PUT", KEY, "--filename", "cat.png", "--content-type", "image/png", "--content-length", "3"]),
    ({"method": "PUT"}, ["PUT"]),
    ({"method": "GET", "key": KEY}, ["GET", KEY]),
    ({"method": "GET", "key": KEY, "expires_in": 600}, ["GET", KEY, "--expires", "600"]),
    ({"method": "GET", "key": KEY, "expires_in": 901}, ["GET", KEY, "--expires", "901"]),
    ({"method": "GET", "key": KEY, "expires_in": 0}, ["GET", KEY, "--expires", "0"]),
    ({"method": "GET", "filename": "cat.png"}, ["GET", "--filename", "cat.png"]),
    ({"method": "GET", "key": KEY, "content_type": "image/png"}, ["GET", KEY, "--content-type", "image/png"]),
    ({"method": "DELETE", "key": KEY}, ["DELETE", KEY]),
    ({"method": "POST", "key": KEY}, ["POST", KEY]),
    ({"method": "HEAD", "key": KEY}, ["HEAD", KEY]),
]


def decision(answer: dict[str, Any]) -> dict[str, Any]:
    """What was decided, without what differs per call (time, signature, the generated uuid)."""
    query = parse_qs(urlsplit(answer["url"]).query)
    key = answer["key"]
    return {
        "method": answer["method"],
        "headers": answer["headers"],
        "key": key if "/20" not in key else key.rsplit("/", 1)[0] + "/<uuid>." + key.rsplit(".", 1)[-1],
        "expires": query["X-Amz-Expires"],
        "signed_headers": query["X-Amz-SignedHeaders"],
        "path": urlsplit(answer["url"]).path.split("/20")[0],
    }


@pytest.mark.parametrize("body, argv", TABLE, ids=[" ".join(argv) for _, argv in TABLE])
def test_api_and_cli_decide_alike(client, monkeypatch, capsys, body, argv) -> None:
    response = client.post("/v1/presign", data=json.dumps(body), content_type="application/json", headers=bearer())

    for name in [name for name in os.environ if name.startswith(("AWS_", "SIGNER_"))]:
        monkeypatch.delenv(name)
    for name, value in env_with().items():
        monkeypatch.setenv(name, value)
    status = cli_main(["presign", *argv, "--identity", "alice", "--json"])
    out, err = capsys.readouterr()

    if response.status_code == 200:
        assert status == 0, err
        assert decision(json.loads(out)) == decision(response.json)
    else:
        assert status == 2 and out == ""
        assert err.startswith(f"error ({response.json['code']}): "), (err, response.json)
        bare = re.search(r"(?<![-\w])(content_length|content_type|expires_in|filename|method|key)\b", err)
        assert bare is None, f"the CLI names its flags, not JSON fields: {err}"
