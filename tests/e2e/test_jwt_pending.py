"""An app user's uploads count against their own cap, not an API token's of the same name (#27):
SIGNER_MAX_PENDING_PER_CALLER keyed by identity let a JWT user whose sub is ``alice`` (a name the
user may choose, with SIGNER_JWT_IDENTITY_CLAIM=preferred_username) use up the API token
``alice``'s uploads, against a real service, SeaweedFS and a webhook (so every upload is recorded)."""

from __future__ import annotations

import uuid
from pathlib import Path

import requests

from tests.conftest import bearer
from tests.e2e.test_finish import SECRET
from tests.e2e.test_finish_replicas import signer
from tests.jwt_issuer import AUDIENCE, Key, issuer_server
from tests.seaweedfs import SeaweedFS
from tests.webhook_receiver import receiver

BODY = {"method": "PUT", "filename": "x.png", "content_type": "image/png", "content_length": 3}


def test_an_app_user_named_like_an_api_token_does_not_use_up_its_cap(weed: SeaweedFS, tmp_path: Path) -> None:
    prefix = f"p{uuid.uuid4().hex[:12]}/"
    with issuer_server(Key.rsa("k")) as issuer, receiver() as hook, signer(
            weed, tmp_path, prefix, SIGNER_WEBHOOK_URL=hook.url, SIGNER_WEBHOOK_SECRET=SECRET,
            SIGNER_MAX_PENDING_PER_CALLER="3", SIGNER_JWT_ISSUER=issuer.url, SIGNER_JWT_AUDIENCE=AUDIENCE) as (url, _):
        app_user = {"Authorization": f"Bearer {issuer.token('alice')}"}
        answers = [requests.post(f"{url}/v1/presign", json=BODY, headers=app_user, timeout=10) for _ in range(4)]
        assert [a.status_code for a in answers] == [200] * 3 + [429]
        assert answers[0].json()["key"].startswith(f"{prefix}user/alice/")
        token = requests.post(f"{url}/v1/presign", json=BODY, headers=bearer(), timeout=10)
        assert token.status_code == 200, token.text  # the API token alice is another caller
        assert token.json()["key"].startswith(f"{prefix}alice/")
