"""docs/metrics.md, word for word: its sh blocks read from the page and run by bash against
scripts/run.sh's local default (only the addresses change to free ports), their output compared
with the text block the page says they print; the promtool block with Debian's promtool."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.docblocks import doc_block
from tests.e2e.conftest import require_weed
from tests.processes import spawn, stop
from tests.servers import ROOT, SERVER_LOGS, free_port, require_tool, wait_for_http

PAGE = ROOT / "docs" / "metrics.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)


def clean_env(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_", "LOCAL_"))}
    return {**environ, **extra}


def test_the_pages_blocks_are_all_run_here() -> None:
    assert len(blocks("sh")) == 2  # a new block needs a test below


def test_reading_the_counter_back_as_the_page_says(tmp_path: Path) -> None:
    require_tool("curl", "install it with: apt-get install curl")
    require_weed()
    service, s3, scrape = free_port(), free_port(), free_port()
    environ = clean_env(SIGNER_BIND=f"127.0.0.1:{service}", LOCAL_S3_PORT=str(s3), LOCAL_DATA_DIR=str(tmp_path / "data"),
                        SIGNER_METRICS_BIND=f"127.0.0.1:{scrape}")
    log = tmp_path / "run-sh.log"
    SERVER_LOGS.append(log)
    with open(log, "wb") as output:
        run = spawn(["scripts/run.sh"], cwd=ROOT, env=environ, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{service}/healthz", timeout=300, process=run)
        block = doc_block("docs/metrics.md", "sign one URL and read the counter back").replace("127.0.0.1:8080", f"127.0.0.1:{service}").replace(
            "127.0.0.1:9102", f"127.0.0.1:{scrape}")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, env=clean_env(),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout == blocks("text")[0]
    finally:
        os.killpg(run.pid, signal.SIGINT)
        try:
            run.wait(timeout=30)
        finally:
            stop(run)


def test_run_sh_serves_metrics_on_loopback_unless_told_otherwise() -> None:
    text = (ROOT / "scripts" / "run.sh").read_text()
    assert 'export SIGNER_METRICS_BIND="${SIGNER_METRICS_BIND-127.0.0.1:9102}"' in text


def test_the_promtool_block() -> None:
    if not shutil.which("promtool"):
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not installed: apt-get install prometheus (.ci/run unpacks it)")
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", doc_block("docs/metrics.md", "The same check by hand")], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout
