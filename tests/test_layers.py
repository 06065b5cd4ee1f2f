"""The folders are the architecture: the library knows nothing of the service or of HTTP
frameworks, and the service's decisions know nothing of Flask (the CLI runs without it)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.servers import ROOT

FRAMEWORKS = {"flask", "werkzeug", "gunicorn", "itsdangerous", "jinja2"}


def imports_of(path: Path) -> set[str]:
    """Absolute module names a file imports, relative imports resolved against its package;
    ``from m import n`` gives ``m`` and ``m.n`` (which may be a module)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


LIBRARY = [path for path in (ROOT / "signer").glob("*.py") if path.name not in ("cli.py", "__main__.py")]
SERVICE_CORE = list((ROOT / "signer" / "service").glob("*.py"))


def test_there_is_something_to_check() -> None:
    assert {path.name for path in LIBRARY} >= {"sigv4.py", "presign.py", "headers.py", "post_policy.py", "s3.py", "credentials.py"}
    assert {path.name for path in SERVICE_CORE} >= {"rules.py", "config.py", "fineuploader.py", "errors.py"}


@pytest.mark.parametrize("path", LIBRARY, ids=lambda path: path.name)
def test_library_imports_neither_service_nor_frameworks(path: Path) -> None:
    for module in imports_of(path):
        assert not module.startswith("signer.service"), f"{path.name} imports {module}"
        assert module.split(".")[0] not in FRAMEWORKS, f"{path.name} imports {module}"


@pytest.mark.parametrize("path", SERVICE_CORE, ids=lambda path: path.name)
def test_service_core_imports_no_flask(path: Path) -> None:
    for module in imports_of(path):
        assert not module.startswith("signer.service.web"), f"{path.name} imports {module}"
        assert module.split(".")[0] not in FRAMEWORKS - {"itsdangerous"}, f"{path.name} imports {module}"


def test_the_checker_sees_relative_imports() -> None:
    """The layer tests must be able to fail: a relative import of the web layer is resolved."""
    assert "signer.service.web.context" in imports_of(ROOT / "signer/service/web/api.py")
    assert "signer.sigv4" in imports_of(ROOT / "signer/service/rules.py")


def test_pip_install_gives_the_library_and_a_cli_without_flask(tmp_path: Path) -> None:
    """`pip install .` in an empty venv: the library imports, `python -m signer presign` signs,
    and Flask is nowhere (it comes only with the [service] extra)."""
    source = tmp_path / "source"  # a copy: setuptools writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "build", "*.egg-info", "__pycache__", ".*cache*", ".hypothesis", "tests"))
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SIGNER_", "PYTHON"))}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(source)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    if install.returncode != 0 and "setuptools" in install.stderr:
        install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)],
                                 capture_output=True, text=True, timeout=300, env=env)
    assert install.returncode == 0, install.stderr
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util, signer; from signer import presign_url;"
         "print(importlib.util.find_spec('flask') is None, signer.__version__)"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["True", "0.2.0"]
    run_env = {**env, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-for-the-cli-test",
               "SIGNER_BUCKET": "cli-bucket", "SIGNER_API_TOKENS": "cli:cli-token-0123456789abcdef"}
    cli = subprocess.run(
        [str(python), "-m", "signer", "presign", "GET", "uploads/x.txt"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=run_env,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("https://cli-bucket.s3.amazonaws.com/uploads/x.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256")
    assert sys.executable != str(python)


MODULES = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
           for path in (ROOT / "signer").rglob("*.py")}


def signer_imports(path: Path) -> set[str]:
    """The ``signer`` modules a file imports, lazy and typing-only imports included (a cycle
    is a tangle to a reader even when Python resolves it)."""
    return imports_of(path) & set(MODULES)


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None (depth-first search)."""
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> list[str] | None:
        if module in trail:
            return [*trail[trail.index(module):], module]
        if module in done:
            return None
        for target in sorted(graph.get(module, ())):
            if (cycle := visit(target, [*trail, module])) is not None:
                return cycle
        done.add(module)
        return None

    for start in sorted(graph):
        if (cycle := visit(start, [])) is not None:
            return cycle
    return None


def test_no_import_cycles_among_signer_modules() -> None:
    """Each module can be read knowing only what it imports: no two modules import each
    other, directly or round a longer circle (providers <-> refresh was one, issue #21)."""
    graph = {module: signer_imports(path) - {module} for module, path in MODULES.items()}
    assert graph["signer.providers"] >= {"signer.credentials", "signer.headers", "signer.refresh"}
    assert import_cycle(graph) is None, " -> ".join(import_cycle(graph) or [])


def test_the_cycle_check_can_fail() -> None:
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert "signer.providers" in signer_imports(ROOT / "signer/service/config.py")
    assert "signer.service.web.context" in signer_imports(ROOT / "signer/service/web/api.py")


VIEWS = [ROOT / "signer" / "service" / "web" / name for name in ("api.py", "fineuploader.py", "companion.py")]
PIPELINE = {
    "signer.service.finish.expect_upload", "signer.service.finish.check_object", "signer.service.completion.guard_parts",
    "signer.service.completion.refuse_existing", "signer.service.publish.publish", "signer.service.storage.delete_object",
    "signer.service.storage.list_objects", "signer.presign.presign_url", "signer.post_policy.presign_post",
    "signer.service.grants.issue", "signer.service.grants.audit",
}
"""Guard, sign, record, audit: done by signer/service/grants.py for the flows (issue #26), never by a view."""


@pytest.mark.parametrize("path", VIEWS, ids=lambda path: path.name)
def test_views_only_parse_call_and_serialize(path: Path) -> None:
    """A view neither guards, signs, records nor plans: it calls one flow (signer/service/flows.py or
    the protocol adapter) and serializes the answer."""
    assert not imports_of(path) & PIPELINE, f"{path.name} imports {imports_of(path) & PIPELINE}"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            assert name != "sign" and not name.startswith("plan_"), f"{path.name} calls .{name}()"


def test_the_view_check_can_fail() -> None:
    assert "signer.service.flows.presign" in imports_of(ROOT / "signer/service/web/api.py")
    assert imports_of(ROOT / "signer/service/flows.py") & PIPELINE
