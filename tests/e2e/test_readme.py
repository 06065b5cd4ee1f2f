"""The README's first hour, word for word: its two commands' `scripts/run.sh` (the local default on
SeaweedFS) and its first upload, then docs/curl.md's curl, CLI and publish blocks and docs/deploying.md's
doctor block, each read from its file (tests/docblocks.py) and run by bash. Only the two addresses
change (127.0.0.1:8080 and s3.localhost:9000 become free ports, as LOCAL_S3_PORT and SIGNER_BIND
allow); a second run.sh on the same ports ends at once with one line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from signer import Credentials
from tests.docblocks import doc_block
from tests.e2e.conftest import require_weed
from tests.processes import spawn, stop
from tests.seaweedfs import SeaweedFS, port_is_free
from tests.servers import ROOT, SERVER_LOGS, free_port, require_tool, wait_for_http


def clean_env(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_", "LOCAL_"))}
    return {**environ, **extra}


def bash(script: str, cwd: Path, environ: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=120)


def test_run_sh_then_the_readme_blocks_verbatim(tmp_path: Path) -> None:
    require_tool("curl", "install it with: apt-get install curl")
    require_weed()
    service_port, s3_port = free_port(), free_port()
    environ = clean_env(SIGNER_BIND=f"127.0.0.1:{service_port}", LOCAL_S3_PORT=str(s3_port),
                        LOCAL_DATA_DIR=str(tmp_path / "data"), SIGNER_METRICS_BIND=f"127.0.0.1:{free_port()}")
    log = tmp_path / "run-sh.log"
    SERVER_LOGS.append(log)
    commands = [line.split("#")[0].strip() for line in doc_block("README.md", "## The two commands").splitlines()]
    assert commands == ["scripts/run.sh", "scripts/test.sh"], commands  # test.sh: what .ci/run runs (test_docs.py)
    with open(log, "wb") as output:
        run = spawn([commands[0]], cwd=ROOT, env=environ, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{service_port}/healthz", timeout=300, process=run)
        for _ in range(100):  # the banner comes right after the first answer
            if "local default ready" in log.read_text():
                break
            subprocess.run(["sleep", "0.1"])
        banner = log.read_text()
        assert banner.splitlines()[0] == ("run.sh: the local default (SeaweedFS, no AWS account), since SIGNER_BUCKET "
                                          "is not set")  # the mode first, and why
        assert "uploads under uploads/anonymous/" in banner and "keys under uploads/local/" in banner, banner

        for path in ("/", "/fine-uploader"):  # the demo page, with Fine Uploader when npm installed it
            page = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{service_port}{path}"], capture_output=True,
                                  text=True, timeout=30).stdout
            assert "sigv4-signer demo" in page and "local-uploads" in page
        for origin, allowed in ((f"http://127.0.0.1:{service_port}", True), ("http://evil.example", False)):
            preflight = subprocess.run(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "OPTIONS", "-H", f"Origin: {origin}",
                 "-H", "Access-Control-Request-Method: PUT", f"http://local-uploads.s3.localhost:{s3_port}/x"],
                capture_output=True, text=True, timeout=30).stdout
            assert (preflight == "200") is allowed, (origin, preflight)  # the bucket's CORS: the demo's origin only

        again = subprocess.run(["scripts/run.sh"], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
        assert again.returncode == 1
        assert again.stderr.strip().splitlines()[-1] == (
            f"run.sh: port {s3_port} is in use (another scripts/run.sh?); stop it or set LOCAL_S3_PORT=<port>")
        assert "setting up" not in again.stderr  # every install step was already done

        def localise(block: str) -> str:
            return (block.replace("127.0.0.1:8080", f"127.0.0.1:{service_port}")
                         .replace("s3.localhost:9000", f"s3.localhost:{s3_port}"))

        work = tmp_path / "work"
        work.mkdir()
        (work / ".venv").symlink_to(ROOT / ".venv")  # "from the project folder"
        (work / "signer").symlink_to(ROOT / "signer")
        first = bash(localise(doc_block("README.md", "## A first upload with curl")), work, clean_env())
        assert first.returncode == 0, first.stderr
        lines = first.stdout.splitlines()
        assert lines[:2] == ["presign: HTTP 200", "PUT to S3: HTTP 200"], first.stdout
        assert len(lines) == 3 and lines[2].count('"key": "uploads/local/') == 1, first.stdout
        too_large = localise(doc_block("README.md", "## A first upload with curl")).replace(
            """"content_length":'"$(stat -c%s cat.jpg)"'""", '"content_length":60000000', 1)
        refused = bash(too_large, work, clean_env())  # what the README says a refusal prints
        assert refused.returncode != 0 and refused.stdout.splitlines()[0] == "presign: HTTP 403", refused.stdout
        assert ("refused: {'error': 'content_length 60000000 is above the maximum of 52428800 bytes', "
                "'code': 'too_large'}") in refused.stderr, refused.stderr

        curl_run = bash(localise(doc_block("docs/curl.md", "## With curl")), work, clean_env())
        assert curl_run.returncode == 0, curl_run.stderr
        lines = curl_run.stdout.splitlines()
        assert lines[:5] == ["presign: HTTP 200", "PUT to S3: HTTP 200", "post-policy: HTTP 200",
                             "POST to S3: HTTP 204"] + lines[4:5], curl_run.stdout
        assert lines[4].count('"key": "uploads/local/') == 3, lines[4]  # the README's upload and these two

        publish_run = bash(localise(doc_block("docs/curl.md", "## Publishing an upload")), work, clean_env())
        assert publish_run.returncode == 0, publish_run.stderr
        lines = publish_run.stdout.splitlines()
        assert lines[:3] == ["presign: HTTP 200", "PUT to S3: HTTP 200", "publish: HTTP 200"], publish_run.stdout
        assert re.fullmatch(r"public/local/\d{4}/\d{2}/\d{2}/summer-picture-[a-z2-7]{26}\.png", lines[3]), lines
        assert lines[4:] == ["public GET: HTTP 200", "the public copy has the same bytes"], publish_run.stdout
        public = SeaweedFS(s3_port, "local-public", Credentials("local-access-key", "local-secret-key"))
        assert public.get_object(lines[3]) == b"\x89PNG not really a picture\n"

        cli_block = doc_block("docs/curl.md", "## From the command line")
        assert "9000" not in cli_block.replace("${LOCAL_S3_PORT:-9000}", "")  # the port is not hard-coded (#29 item 5)
        cli_run = bash(cli_block, work, clean_env(LOCAL_S3_PORT=str(s3_port)))
        assert cli_run.returncode == 0, cli_run.stderr
        assert cli_run.stdout == "PUT to S3: HTTP 200\n"
        store = SeaweedFS(s3_port, "local-uploads", Credentials("local-access-key", "local-secret-key"))
        assert store.get_object("uploads/cli/cat.jpg") == b"\xff\xd8\xff\xe0 not really a cat\n"

        exports = "\n".join(line for line in cli_block.splitlines() if line.startswith("export "))
        doctor = bash(exports + "\n" + doc_block("docs/deploying.md", "## Checking the store"), work,
                      clean_env(LOCAL_S3_PORT=str(s3_port)))
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr  # every check passes against SeaweedFS
        assert '"ok": false' not in doctor.stdout, doctor.stdout
    finally:
        try:
            os.killpg(run.pid, signal.SIGINT)  # Ctrl-C
            assert run.wait(timeout=30) == 0
        finally:
            stop(run)  # whatever is left of its group
    assert "stopped SeaweedFS and the service" in log.read_text()
    assert port_is_free(s3_port) and port_is_free(service_port)  # both stopped


def test_the_cli_blocks_environment_passes_check_config() -> None:
    """Issue #22, item 4: docs/curl.md's CLI environment is the service's, complete: its export lines,
    as written, satisfy `check-config` (which failed for want of a way to know callers)."""
    exports = "\n".join(line for line in doc_block("docs/curl.md", "## From the command line").splitlines()
                        if line.startswith("export "))
    assert "SIGNER_BUCKET=" in exports, exports
    result = bash(f"{exports}\n{ROOT / '.venv/bin/python'} -m signer check-config", ROOT, clean_env())
    assert result.returncode == 0, result.stderr
