"""Not collected by the suite (no test_ prefix): tests/test_interrupted_run.py runs this file in a
real pytest run through scripts/test.sh and interrupts it. It starts the servers the end-to-end
tests start (SeaweedFS, the service under gunicorn, nginx in front, moto), writes their process
groups to $SIGNER_TEST_RECORD, and waits to be interrupted."""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from tests.conftest import ACCESS_KEY, SECRET_KEY, env_with
from tests.seaweedfs import seaweedfs
from tests.servers import free_port, moto_server, require_tool, running


def test_servers_until_interrupted(tmp_path: Path) -> None:
    record = Path(os.environ["SIGNER_TEST_RECORD"])
    groups: dict[str, int] = {}
    with ExitStack() as stack:
        store = stack.enter_context(seaweedfs(tmp_path / "weed", ACCESS_KEY, SECRET_KEY, "interrupted-bucket"))
        groups["seaweedfs"] = store.process.pid  # type: ignore[union-attr]
        port = free_port()
        service = stack.enter_context(running(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "wsgi:app"],
            f"http://127.0.0.1:{port}/healthz", env={**os.environ, **env_with(**store.signer_env("path"))}))
        groups["gunicorn"] = service.pid
        nginx = require_tool("nginx", "install it with: apt-get install nginx")
        listen = free_port()
        (tmp_path / "nginx.conf").write_text(
            f"worker_processes 2;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
            f"events {{}}\nhttp {{ access_log off; client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path};\n"
            f"  fastcgi_temp_path {tmp_path}; uwsgi_temp_path {tmp_path}; scgi_temp_path {tmp_path};\n"
            f"  server {{ listen 127.0.0.1:{listen}; location / {{ proxy_pass http://127.0.0.1:{port}; }} }} }}\n")
        proxy = stack.enter_context(running([nginx, "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                                            f"http://127.0.0.1:{listen}/healthz"))
        groups["nginx"] = proxy.pid
        stack.enter_context(moto_server())
        from tests.processes import RUNNING
        groups["moto"] = max(set(RUNNING) - set(groups.values()))
        record.write_text(json.dumps(groups))
        time.sleep(600)  # interrupted long before
