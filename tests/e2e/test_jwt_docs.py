"""docs/jwt.md's three ```sh blocks, read from the page and run by bash as written: start the local
provider, check-config against it, log in as alice and presign with her ID token. Only the two
addresses change (127.0.0.1:9400 and 127.0.0.1:8080 become free ports)."""

from __future__ import annotations

import json
import os
import re
import subprocess

from tests.conftest import env_with
from tests.docblocks import doc_block
from tests.e2e.conftest import service
from tests.servers import ROOT, free_port, require_tool, running

PROVIDER, SIGNER = "127.0.0.1:9400", "127.0.0.1:8080"


def sh_blocks() -> list[str]:
    return [doc_block("docs/jwt.md", "## Try it with a local provider", 0),
            doc_block("docs/jwt.md", "## Try it with a local provider", 1),
            doc_block("docs/jwt.md", "## Try it with a local provider", 2)]


def bash(script: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=120)


def test_the_docs_blocks_run_as_written(tmp_path) -> None:
    require_tool("curl", "install it with: apt-get install curl")
    start, check, presign = sh_blocks()
    assert "--port 9400" in start and PROVIDER in check and PROVIDER in presign and SIGNER in presign
    provider = f"127.0.0.1:{free_port()}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))}
    with running(["bash", "-c", start.replace("9400", provider.rsplit(":", 1)[1])],
                 f"http://{provider}/.well-known/openid-configuration"):
        checked = bash(check.replace(PROVIDER, provider), {**clean, **env_with()})
        assert checked.returncode == 0, checked.stderr
        assert f"jwt: issuer http://{provider}: reachable, 1 signing key" in checked.stdout

        with service(tmp_path, SIGNER_API_TOKENS=None, SIGNER_JWT_ISSUER=f"http://{provider}",
                     SIGNER_JWT_AUDIENCE="my-app") as signer:
            ran = bash(presign.replace(PROVIDER, provider).replace(SIGNER, signer.removeprefix("http://")), clean)
            assert ran.returncode == 0, ran.stderr
            answer, printed = ran.stdout.split("\n", 1)
            assert json.loads(answer)["key"].startswith("uploads/user/alice/"), answer
            page = re.fullmatch(r"the demo page as alice: (http://\S+)/#token=(\S+)\n", printed)
            assert page and page.group(1) == signer, printed  # the page itself: tests/e2e/test_uppy_jwt.py

    stopped = bash(check.replace(PROVIDER, provider), {**clean, **env_with()})  # the provider is gone
    assert stopped.returncode == 1 and "keys unreachable" in stopped.stderr, stopped.stderr
